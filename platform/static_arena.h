// A fixed, preallocated buffer handed out from the bottom with one atomic add: no system
// call, no lock, async-signal-safe. The signal_safe variant's first source of memory.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "atomics/atomics.h"

namespace polymalloc::platform {

inline constexpr std::size_t kDefaultStaticArenaBytes = std::size_t{2} << 20;  // 2 MiB

template <std::size_t kBytes = kDefaultStaticArenaBytes, std::size_t kGrain = 4096>
class StaticArena {
 public:
  static constexpr bool kContiguous = true;
  static constexpr bool kThreadSafe = true;
  static constexpr const char* kName = "static_arena";
  static constexpr std::size_t kCapacity = kBytes;
  static_assert(kBytes % kGrain == 0);

  constexpr StaticArena() = default;
  StaticArena(const StaticArena&) = delete;
  StaticArena& operator=(const StaticArena&) = delete;

  // `bytes` need only be a multiple of kGrain. Lock-free: a CAS loop that never overshoots,
  // so a failed request leaves the rest of the arena usable by smaller ones.
  void* grow(std::size_t bytes) {
    std::size_t used = used_.load_relaxed();
    do {
      if (bytes > kBytes - used) {
        errno = ENOMEM;
        return nullptr;
      }
    } while (!used_.cas_acq_rel(used, used + bytes));
    return storage_ + used;
  }

  // Never: the arena is not returned to the OS, and taking its top back would break the
  // promise that grow() hands out zeroed memory (no safe moment to clear it lock-free).
  bool shrink(std::size_t) { return false; }

  bool contains(const void* p) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    const auto base = reinterpret_cast<std::uintptr_t>(storage_);
    return a >= base && a < base + used_.load_acquire();
  }

  // Whether p lies in the arena's storage, handed out or not (all of it is readable memory).
  bool spans(const void* p) const {
    return reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(storage_) <
           kBytes;
  }

  std::size_t used() const { return used_.load_acquire(); }

 private:
  alignas(kGrain) unsigned char storage_[kBytes] = {};  // zero: in .bss, constant-initialised
  atomics::AtomicWord<std::size_t> used_;
};

}  // namespace polymalloc::platform
