// The one place that knows the CPU: capability constants and the spin-wait hint.
// Porting to a new architecture means extending this file (and nothing else in atomics/).
#pragma once

#include <cstddef>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define POLYMALLOC_ATOMICS_TSAN_FEATURE 1
#endif
#endif
#ifndef POLYMALLOC_ATOMICS_TSAN_FEATURE
#define POLYMALLOC_ATOMICS_TSAN_FEATURE 0
#endif

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

// Read-modify-write instructions that one thread's signal handlers cannot split but that
// other CPUs may (x86's, without the lock prefix: the Linux kernel's local_t operations). They
// cost what a plain store costs, where a locked one costs some twenty cycles, and are enough
// for memory no other thread can reach. Elsewhere, and under ThreadSanitizer (which sees only
// the compiler's atomics), there are none, and word.h's *_local operations are atomic.
#if (defined(__x86_64__) || defined(__i386__)) && !defined(__SANITIZE_THREAD__) && \
    !POLYMALLOC_ATOMICS_TSAN_FEATURE
inline constexpr bool kHasLocalRmw = true;
#else
inline constexpr bool kHasLocalRmw = false;
#endif

// cmpxchg without the lock prefix: on failure `expected` receives the value found.
template <class T>
inline bool cas_local_instruction(T* p, T& expected, T desired) {
#if defined(__x86_64__) || defined(__i386__)
  bool swapped;
  asm volatile("cmpxchg %3, %1"
               : "=@ccz"(swapped), "+m"(*p), "+a"(expected)
               : "r"(desired)
               : "memory");
  return swapped;
#else
  return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE);
#endif
}

// xadd without the lock prefix: adds v and returns the value before.
template <class T>
inline T fetch_add_local_instruction(T* p, T v) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("xadd %0, %1" : "+r"(v), "+m"(*p) : : "memory");
  return v;
#else
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
#endif
}

}  // namespace polymalloc::atomics
