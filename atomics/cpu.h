// The one place that knows the CPU: capability constants and the spin-wait hint.
// Porting to a new architecture means extending this file (and nothing else in atomics/).
#pragma once

#include <cstddef>

namespace polymalloc::atomics {

// Double-width (two-word) compare-and-swap is available without a library call.
#if defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16)
inline constexpr bool kHasDoubleCas = true;
#else
inline constexpr bool kHasDoubleCas = false;
#endif

// Size of the unit of cache coherence; used to keep hot atomics apart.
inline constexpr std::size_t kCacheLineSize = 64;

// Tells the CPU that the caller is spinning (saves power, yields to the sibling hyperthread).
inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace polymalloc::atomics
