// libatomic_ops' AO_malloc/AO_free as a benchmark peer (the library is GPL: it is linked into
// benchmarks only, never into polymalloc). AO_malloc serves large requests only once mmap is
// enabled, which the adapter does before first use, as a program would.
#pragma once

#include <atomic_ops_malloc.h>

#include <cstddef>

namespace polymalloc::benchmarks {

inline void* ao_malloc(std::size_t n) noexcept {
  static const bool mmap_enabled = [] {
    AO_malloc_enable_mmap();
    return true;
  }();
  (void)mmap_enabled;
  return AO_malloc(n);
}

inline void ao_free(void* p) noexcept { AO_free(p); }

// Whether AO_malloc is lock-free in this build of libatomic_ops (Debian's is not: it is
// built without double-width CAS, with the almost-lock-free stack).
#ifdef AO_MALLOC_IS_LOCK_FREE
inline constexpr bool kAoMallocIsLockFree = true;
#else
inline constexpr bool kAoMallocIsLockFree = false;
#endif

}  // namespace polymalloc::benchmarks
