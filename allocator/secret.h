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

// The secret's most significant byte lies in 0x81..0xbc, which free()'s fast path compares
// alone (cache_bins.h): a byte client data seldom ends a word with (not 0 or 0xff, as
// pointers and small or negative integers do, nor a double's usual 0x3f, 0x40, 0xbf or 0xc0,
// nor ASCII, nor 0xbe, which AddressSanitizer fills fresh memory with). The other bytes stay
// random.
inline constexpr unsigned kSecretTopShift = 8 * (sizeof(std::uintptr_t) - 1);
inline constexpr std::uintptr_t kKeyByteFirst = 0x81, kKeyByteLast = 0xbc;
constexpr std::uintptr_t with_key_byte(std::uintptr_t random) {
  const std::uintptr_t top =
      kKeyByteFirst + (random >> kSecretTopShift) % (kKeyByteLast - kKeyByteFirst + 1);
  return (random & ~(std::uintptr_t{0xff} << kSecretTopShift)) | top << kSecretTopShift;
}

// Sets the secret if it is not set yet (never 0, so a key never equals an address).
inline void choose_process_secret() {
  if (atomics::load_relaxed(&g_process_secret) != 0) return;
  atomics::store_relaxed(&g_process_secret, with_key_byte(platform::os_random_word()));
}

// The secret, once choose_process_secret() has run.
POLYMALLOC_HOT_PATH std::uintptr_t process_secret() {
  return atomics::load_relaxed(&g_process_secret);
}

}  // namespace polymalloc::allocator
