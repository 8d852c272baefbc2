// The front end: glibc's malloc contract built from a variant's primitives (core.h), once
// for every variant. Zero-size requests, overflow checks, alignment rules, errno and the
// C++ new-handler loop live here; the variants never see them.
#pragma once

#include <errno.h>
#include <malloc.h>

#include <bit>
#include <climits>
#include <cstddef>
#include <cstring>
#include <new>

#include "allocator/core.h"
#include "allocator/heap_profile.h"
#include "allocator/introspection.h"
#include "allocator/report.h"
#include "allocator/size_class.h"
#include "platform/platform.h"

namespace polymalloc::allocator {

// Largest alignment served. A larger one is still valid (any power of two is), but no
// request could be met with it, so it fails as any unmeetable request does: ENOMEM.
inline constexpr std::size_t kMaxAlignment = std::size_t{1} << 40;

template <AllocatorCore Core>
struct FrontEnd {
  // Whether the core serves allocate(0) (as 1) and ignores deallocate(nullptr) itself, on its
  // slow paths, so that the fast paths test neither.
  static constexpr bool kCoreTakesZeroAndNull = requires { requires Core::kTakesZeroAndNull; };

  // Whether the core can serve and record a sampled allocation (heap_profile.h). A core that
  // cannot says so once when profiling is asked for.
  static constexpr bool kProfiles = requires(std::size_t n, const ProfileStack& stack) {
    Core::allocate_sampled(n, n, stack);
  };

  // The two hottest entry points are inlined into the exported functions (not called
  // through the PLT, as a shared object's default-visibility functions otherwise are).
  // malloc counts down to the next sample first (heap_profile.h): a decrement and a branch.
  [[gnu::always_inline]] static void* malloc(std::size_t n) {
    if (HeapProfile::due(n)) [[unlikely]]
      return malloc_sampled(n);
    if constexpr (kCoreTakesZeroAndNull) return Core::allocate(n);
    return Core::allocate(n != 0 ? n : 1);
  }

  [[gnu::always_inline]] static void free(void* p) {
    if (kCoreTakesZeroAndNull || p != nullptr) Core::deallocate(p, "free");
  }

  static void* calloc(std::size_t count, std::size_t size) {
    std::size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) return fail_enomem();
    if (HeapProfile::due(bytes)) [[unlikely]]
      return calloc_sampled(bytes);
    return Core::allocate_zeroed(bytes != 0 ? bytes : 1);
  }

  // realloc(p, 0) frees p and returns NULL, as glibc does. realloc(NULL, n) is malloc(n),
  // placed, where the core can, for a buffer that will grow.
  static void* realloc(void* p, std::size_t n) {
    if (p == nullptr) {
      if constexpr (requires { Core::allocate_to_grow(n); }) {
        return Core::allocate_to_grow(n != 0 ? n : 1);
      }
      return malloc(n);
    }
    if (n == 0) return free_for_realloc(p);
    return Core::reallocate(p, n);
  }

  // realloc(p, 0), out of line: inlined, free()'s path would give realloc() a frame to save
  // registers in that every growing buffer pays for.
  [[gnu::noinline]] static void* free_for_realloc(void* p) {
    Core::deallocate(p, "realloc");
    return nullptr;
  }

  static void* reallocarray(void* p, std::size_t count, std::size_t size) {
    std::size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) return fail_enomem();
    return realloc(p, bytes);
  }

  // glibc's memalign: an alignment that is not a power of two is rounded up to one; one that
  // cannot be rounded up (above 2^63) is EINVAL.
  static void* memalign(std::size_t alignment, std::size_t n) {
    if (alignment <= 16) return malloc(n);
    if (alignment > SIZE_MAX / 2 + 1) return fail(EINVAL);
    if (alignment > kMaxAlignment) return fail_enomem();
    return Core::allocate_aligned(std::bit_ceil(alignment), n != 0 ? n : 1);
  }

  // C17 (and glibc 2.38+): the alignment must be a power of two.
  static void* aligned_alloc(std::size_t alignment, std::size_t n) {
    if (!is_power_of_two(alignment)) return fail(EINVAL);
    return memalign(alignment, n);
  }

  // POSIX: EINVAL unless a power of two multiple of sizeof(void*), ENOMEM for any valid one
  // that cannot be met; *out untouched on failure. errno is not part of POSIX's interface;
  // as glibc's, it is left alone for EINVAL and set to ENOMEM with ENOMEM (programs written
  // against glibc read it).
  static int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
    if (!is_power_of_two(alignment) || alignment % sizeof(void*) != 0) return EINVAL;
    void* p = memalign(alignment, n);
    if (p == nullptr) return ENOMEM;
    *out = p;
    return 0;
  }

  static void* valloc(std::size_t n) { return memalign(platform::page_size(), n); }

  // Rounds the size up to whole pages (one page for 0).
  static void* pvalloc(std::size_t n) {
    const std::size_t page = platform::page_size();
    if (n > SIZE_MAX - page) return fail_enomem();
    return memalign(page, n != 0 ? platform::round_up_to_page(n) : page);
  }

  static std::size_t malloc_usable_size(void* p) { return p != nullptr ? Core::usable_size(p) : 0; }

  static int malloc_trim(std::size_t pad) { return Core::trim(pad) ? 1 : 0; }

  static struct mallinfo2 mallinfo2() {
    const Statistics s = Core::statistics();
    struct mallinfo2 info = {};
    info.arena = s.heap_committed_bytes;
    info.ordblks = s.heap_free_blocks;
    info.hblks = s.mapped_objects;
    info.hblkhd = s.mapped_bytes;
    info.usmblks = s.heap_peak_committed_bytes + s.peak_mapped_bytes;
    info.uordblks = s.heap_in_use_bytes();
    info.fordblks = s.heap_free_bytes;
    info.keepcost = s.heap_top_free_bytes;
    return info;
  }

  // The deprecated int-sized mallinfo(): fields saturate instead of wrapping.
  static struct mallinfo mallinfo() {
    const struct mallinfo2 wide = mallinfo2();
    struct mallinfo info = {};
    info.arena = saturate(wide.arena);
    info.ordblks = saturate(wide.ordblks);
    info.hblks = saturate(wide.hblks);
    info.hblkhd = saturate(wide.hblkhd);
    info.usmblks = saturate(wide.usmblks);
    info.uordblks = saturate(wide.uordblks);
    info.fordblks = saturate(wide.fordblks);
    info.keepcost = saturate(wide.keepcost);
    return info;
  }

  static void malloc_stats() { print_malloc_stats(Core::statistics(Detail::kBreakdown), 2); }

  // C++: operator new retries through the new-handler and throws std::bad_alloc; the
  // nothrow forms return nullptr where the throwing ones would throw.
  static void* operator_new(std::size_t n) {
    return retry_through_new_handler([n] { return malloc(n); });
  }

  static void* operator_new_aligned(std::size_t n, std::size_t alignment) {
    return retry_through_new_handler([n, alignment] { return memalign(alignment, n); });
  }

  static void* operator_new_nothrow(std::size_t n) noexcept {
    return nothrow([n] { return operator_new(n); });
  }

  static void* operator_new_aligned_nothrow(std::size_t n, std::size_t alignment) noexcept {
    return nothrow([n, alignment] { return operator_new_aligned(n, alignment); });
  }

  static void operator_delete(void* p) noexcept {
    if (kCoreTakesZeroAndNull || p != nullptr) Core::deallocate(p, "operator delete");
  }

  // operator delete(p, n) and free_sized(p, n): a core that can takes the class from n (and
  // checks it against the block); others free p as it is.
  static void operator_delete_sized(void* p, std::size_t n) noexcept {
    if (p == nullptr) return;
    if constexpr (requires { Core::deallocate_sized(p, n, "operator delete"); }) {
      Core::deallocate_sized(p, n != 0 ? n : 1, "operator delete");
    } else {
      Core::deallocate(p, "operator delete");
    }
  }

  // Statistics at exit, when POLYMALLOC_STATS asks for them (runs as a destructor function,
  // which needs no allocation to register, unlike atexit()).
  static void print_statistics_if_requested() {
    const StatsRequest request = statistics_request();
    if (request != StatsRequest::kNone) {
      write_requested_statistics(Core::statistics(Detail::kBreakdown), request);
    }
  }

  // ---- the runtime API (<polymalloc/polymalloc.h>) ----

  // From the counters alone: no lock a malloc or free waits on (statistics.h).
  static int get_numeric_property(const char* name, std::size_t* value) {
    return numeric_property(Core::statistics(Detail::kCounters), name, value) ? 1 : 0;
  }

  // Everything free that can go back to the OS does: the caller's cache, the heaps' free
  // tops and the inner pages of their free blocks, the mapping cache (malloc_trim(0)).
  static void release_free_memory() { Core::trim(0); }

  // The statistics to fd on demand, text or JSON (with the breakdown: it walks the heaps);
  // 0, or -1 with errno = EBADF for a negative fd.
  static int write_stats(int fd, int json) {
    if (fd < 0) {
      errno = EBADF;
      return -1;
    }
    write_statistics(Core::statistics(Detail::kBreakdown),
                     json != 0 ? StatsFormat::kJson : StatsFormat::kText, fd);
    return 0;
  }

  static int malloc_info(int options, FILE* out) {
    return write_malloc_info(Core::statistics(), options, out);
  }

 private:
  // malloc(n) and calloc when the sampling countdown ran out. The exported function jumps
  // here (a tail call, with no frame of its own), so this frame's caller is the client:
  // the walk starts here. (Where the exported function calls instead, the preloaded
  // library drops its own frame from the stack: heap_profile.cc.)
  [[gnu::noinline]] static void* malloc_sampled(std::size_t n) noexcept {
    if (void* p = sampled(n, __builtin_frame_address(0))) return p;
    return Core::allocate(n != 0 ? n : 1);
  }
  [[gnu::noinline]] static void* calloc_sampled(std::size_t bytes) noexcept {
    if (void* p = sampled(bytes, __builtin_frame_address(0))) {
      __builtin_memset(p, 0, bytes);
      return p;
    }
    return Core::allocate_zeroed(bytes != 0 ? bytes : 1);
  }

  // A sampled block of n bytes, its stack taken from `frame` up, if this allocation is
  // sampled; nullptr to allocate it as usual.
  [[gnu::always_inline]] static void* sampled(std::size_t n, const void* frame) {
    if (!HeapProfile::take(n)) return nullptr;
    if constexpr (kProfiles) {
      ProfileStack stack;
      HeapProfile::capture(frame, &stack);
      return Core::allocate_sampled(n != 0 ? n : 1, n, stack);
    } else {
      HeapProfile::unsupported("this build cannot sample (its core has no allocate_sampled)");
      return nullptr;
    }
  }

  template <class Allocate>
  static void* retry_through_new_handler(Allocate allocate) {
    for (;;) {
      if (void* p = allocate()) return p;
      std::new_handler handler = std::get_new_handler();
      if (handler == nullptr) throw std::bad_alloc();
      handler();
    }
  }

  template <class New>
  static void* nothrow(New throwing_new) noexcept {
    try {
      return throwing_new();
    } catch (...) {
      return nullptr;
    }
  }

  static void* fail(int error) {
    errno = error;
    return nullptr;
  }
  static void* fail_enomem() { return fail(ENOMEM); }
  static int saturate(std::size_t v) { return v > INT_MAX ? INT_MAX : static_cast<int>(v); }
};

}  // namespace polymalloc::allocator
