// The per-process secret behind every key that tells a genuine block from a forged or stale
// one (a cached block's key, signal_safe's check words, full checks' guards): the kernel's
// AT_RANDOM bytes, chosen once, on a slow path, before the first block is handed out or
// cached. Every thread computes the same value, so the race to store it is benign.
#pragma once

#include <cstdint>

#include "allocator/sanitizer.h"
#include "atomics/atomics.h"
#include "platform/os.h"

namespace polymalloc::allocator {

inline constinit std::uintptr_t g_process_secret = 0;

// Sets the secret if it is not set yet (never 0, so a key never equals an address).
inline void choose_process_secret() {
  if (atomics::load_relaxed(&g_process_secret) != 0) return;
  atomics::store_relaxed(&g_process_secret, platform::os_random_word());
}

// The secret, once choose_process_secret() has run.
POLYMALLOC_HOT_PATH std::uintptr_t process_secret() {
  return atomics::load_relaxed(&g_process_secret);
}

}  // namespace polymalloc::allocator
