// The exported C API, generated for a core: prefixed (polymalloc_<variant>_malloc …, so
// several variants and the system malloc share a process) or unprefixed (the process's
// malloc, with glibc's __libc_* aliases and every C++ operator new/delete). A variant's
// generated sources expand these macros once; nobody pastes the list.
#pragma once

#include <malloc.h>
#include <polymalloc/polymalloc.h>
#include <stddef.h>

#include <new>

#include "allocator/front_end.h"
#include "allocator/settings.h"
#include "atomics/atomics.h"
#include "platform/platform.h"

// The API: what a shared object built from polymalloc exports (variants/exports.map lists
// the same names for the linker, which makes everything else local).
#define POLYMALLOC_EXPORT __attribute__((visibility("default")))

namespace polymalloc::allocator {

// The C API as a table of functions, so one test or benchmark body can run against any
// variant or the system malloc. check_heap and statistics are nullptr for allocators that
// have none.
struct ApiTable {
  const char* name;
  void* (*malloc)(size_t) noexcept;
  void (*free)(void*) noexcept;
  void* (*calloc)(size_t, size_t) noexcept;
  void* (*realloc)(void*, size_t) noexcept;
  void* (*reallocarray)(void*, size_t, size_t) noexcept;
  int (*posix_memalign)(void**, size_t, size_t) noexcept;
  void* (*aligned_alloc)(size_t, size_t) noexcept;
  void* (*memalign)(size_t, size_t) noexcept;
  void* (*valloc)(size_t) noexcept;
  void* (*pvalloc)(size_t) noexcept;
  size_t (*malloc_usable_size)(void*) noexcept;
  int (*malloc_trim)(size_t) noexcept;
  struct mallinfo2 (*mallinfo2)() noexcept;
  void (*malloc_stats)() noexcept;
  const char* (*check_heap)(const void** where) noexcept;
  // *out = the variant's statistics, `detail` a Detail as an int: 0 the totals, 1 with the
  // breakdown, 2 the counters alone (what the numeric properties read, without a lock).
  void (*statistics)(Statistics* out, int detail) noexcept;
};

// Registers the core's fork handlers once per process, however many API forms link it.
template <AllocatorCore Core>
inline constinit bool fork_handlers_registered = false;

template <AllocatorCore Core>
void register_fork_handlers_once() {
  if (atomics::exchange_acq_rel(&fork_handlers_registered<Core>, true)) return;
  platform::register_fork_handlers(&Core::prepare_fork, &Core::after_fork_in_parent,
                                   &Core::after_fork_in_child);
}

// The process malloc's start-up (a constructor): the variant's defaults for the process
// malloc (signal_safe maps memory) and the settings whose defaults its parts choose
// (partitioned's partitions), then every other setting read, unknown POLYMALLOC_ names
// warned about, and the settings listed under POLYMALLOC_VERBOSE. (No malloc here: a block
// handed out and back before main() leaves its address in a cache's slots, which turns
// valgrind's "definitely lost" for a program's first leak into "possibly lost".)
template <class Variant, AllocatorCore Core>
void start_up_process_malloc() {
  if constexpr (requires { Variant::use_process_malloc_defaults(); }) {
    Variant::use_process_malloc_defaults();
  }
  if constexpr (requires { Variant::read_settings(); }) Variant::read_settings();
  Settings::start_up(Core::kName);
}

}  // namespace polymalloc::allocator

// clang-format off
#define POLYMALLOC_FOR_EACH_C_FUNCTION(X, P, Core)                                                \
  X(P, Core, void*, malloc, (size_t n), (n))                                                      \
  X(P, Core, void, free, (void* p), (p))                                                          \
  X(P, Core, void*, calloc, (size_t count, size_t size), (count, size))                           \
  X(P, Core, void*, realloc, (void* p, size_t n), (p, n))                                         \
  X(P, Core, void*, reallocarray, (void* p, size_t count, size_t size), (p, count, size))         \
  X(P, Core, int, posix_memalign, (void** out, size_t alignment, size_t n), (out, alignment, n))  \
  X(P, Core, void*, aligned_alloc, (size_t alignment, size_t n), (alignment, n))                  \
  X(P, Core, void*, memalign, (size_t alignment, size_t n), (alignment, n))                       \
  X(P, Core, void*, valloc, (size_t n), (n))                                                      \
  X(P, Core, void*, pvalloc, (size_t n), (n))                                                     \
  X(P, Core, size_t, malloc_usable_size, (void* p), (p))                                          \
  X(P, Core, int, malloc_trim, (size_t pad), (pad))                                               \
  X(P, Core, struct mallinfo2, mallinfo2, (), ())                                                 \
  X(P, Core, void, malloc_stats, (), ())

#define POLYMALLOC_DECLARE_ONE(P, Core, R, name, params, args) R P##name params noexcept;
#define POLYMALLOC_DEFINE_ONE(P, Core, R, name, params, args)   \
  POLYMALLOC_EXPORT R P##name params noexcept {                 \
    return ::polymalloc::allocator::FrontEnd<Core>::name args; \
  }
#define POLYMALLOC_TABLE_ENTRY(P, Core, R, name, params, args) &P##name,

// Declares polymalloc_<variant>_malloc … for prefix P (e.g. polymalloc_global_spinlock_).
#define POLYMALLOC_DECLARE_PREFIXED_API(P)                     \
  extern "C" {                                                 \
  POLYMALLOC_FOR_EACH_C_FUNCTION(POLYMALLOC_DECLARE_ONE, P, _) \
  const char* P##check_heap(const void** where) noexcept;      \
  void P##statistics(::polymalloc::allocator::Statistics* out, int detail) noexcept; \
  }

// The ApiTable of a prefixed API.
#define POLYMALLOC_PREFIXED_API_TABLE(name, P) \
  ::polymalloc::allocator::ApiTable { name, POLYMALLOC_FOR_EACH_C_FUNCTION(POLYMALLOC_TABLE_ENTRY, P, _) &P##check_heap, &P##statistics }

// The C API of Core under prefix P, and the fork handlers it needs.
#define POLYMALLOC_DEFINE_C_API(P, Core)                                         \
  extern "C" {                                                                   \
  POLYMALLOC_FOR_EACH_C_FUNCTION(POLYMALLOC_DEFINE_ONE, P, Core)                 \
  }                                                                              \
  __attribute__((constructor)) static void polymalloc_register_fork_handlers() { \
    ::polymalloc::allocator::register_fork_handlers_once<Core>();                \
  }

// A variant's prefixed API: polymalloc_<variant>_malloc …, _check_heap and _statistics.
#define POLYMALLOC_DEFINE_PREFIXED_API(P, Core)                                         \
  POLYMALLOC_DEFINE_C_API(P, Core)                                                      \
  extern "C" POLYMALLOC_EXPORT const char* P##check_heap(const void** where) noexcept { \
    return Core::check_heap(where);                                                     \
  }                                                                                     \
  extern "C" POLYMALLOC_EXPORT void P##statistics(::polymalloc::allocator::Statistics* out, \
                                                  int detail) noexcept {                \
    using ::polymalloc::allocator::Detail;                                              \
    *out = Core::statistics(detail == 1   ? Detail::kBreakdown                           \
                            : detail == 2 ? Detail::kCounters                            \
                                          : Detail::kTotals);                            \
  }

// The process's malloc: the unprefixed C API, glibc's extras and __libc_* aliases,
// polymalloc_check_heap/_variant/_version (<polymalloc/polymalloc.h>), statistics at exit, and
// operator new/delete.
#define POLYMALLOC_DEFINE_PROCESS_MALLOC(Variant, Core)                                     \
  POLYMALLOC_DEFINE_C_API(, Core)                                                           \
  __attribute__((constructor)) static void polymalloc_start_up() {                          \
    ::polymalloc::allocator::start_up_process_malloc<Variant, Core>();                      \
  }                                                                                         \
  extern "C" POLYMALLOC_EXPORT struct mallinfo mallinfo() noexcept {                        \
    return ::polymalloc::allocator::FrontEnd<Core>::mallinfo();                             \
  }                                                                                         \
  extern "C" {                                                                              \
  POLYMALLOC_DEFINE_ONE(__libc_, Core, void*, malloc, (size_t n), (n))                      \
  POLYMALLOC_DEFINE_ONE(__libc_, Core, void, free, (void* p), (p))                          \
  POLYMALLOC_DEFINE_ONE(__libc_, Core, void*, calloc, (size_t c, size_t n), (c, n))         \
  POLYMALLOC_DEFINE_ONE(__libc_, Core, void*, realloc, (void* p, size_t n), (p, n))         \
  POLYMALLOC_DEFINE_ONE(__libc_, Core, void*, memalign, (size_t a, size_t n), (a, n))       \
  POLYMALLOC_DEFINE_ONE(__libc_, Core, void*, valloc, (size_t n), (n))                      \
  POLYMALLOC_DEFINE_ONE(__libc_, Core, void*, pvalloc, (size_t n), (n))                     \
  POLYMALLOC_DEFINE_ONE(__libc_, Core, struct mallinfo, mallinfo, (), ())                   \
  }                                                                                         \
  extern "C" POLYMALLOC_EXPORT const char* polymalloc_check_heap(const void** where) noexcept { \
    return Core::check_heap(where);                                                         \
  }                                                                                         \
  extern "C" POLYMALLOC_EXPORT const char* polymalloc_variant() noexcept {                 \
    return Core::kName;                                                                     \
  }                                                                                         \
  extern "C" POLYMALLOC_EXPORT const char* polymalloc_version() noexcept {                 \
    return POLYMALLOC_VERSION_STRING;                                                       \
  }                                                                                         \
  extern "C" POLYMALLOC_EXPORT int polymalloc_get_numeric_property(const char* name,        \
                                                                   size_t* value) noexcept { \
    return ::polymalloc::allocator::FrontEnd<Core>::get_numeric_property(name, value);      \
  }                                                                                         \
  extern "C" POLYMALLOC_EXPORT void polymalloc_release_free_memory() noexcept {            \
    ::polymalloc::allocator::FrontEnd<Core>::release_free_memory();                         \
  }                                                                                         \
  extern "C" POLYMALLOC_EXPORT int polymalloc_write_stats(int fd, int json) noexcept {     \
    return ::polymalloc::allocator::FrontEnd<Core>::write_stats(fd, json);                  \
  }                                                                                         \
  extern "C" POLYMALLOC_EXPORT int polymalloc_dump_heap_profile(const char* path) noexcept { \
    return ::polymalloc::allocator::HeapProfile::dump(path);                                \
  }                                                                                         \
  extern "C" POLYMALLOC_EXPORT int malloc_info(int options, FILE* out) noexcept {          \
    return ::polymalloc::allocator::FrontEnd<Core>::malloc_info(options, out);              \
  }                                                                                         \
  __attribute__((destructor)) static void polymalloc_statistics_at_exit() {                 \
    ::polymalloc::allocator::FrontEnd<Core>::print_statistics_if_requested();               \
    ::polymalloc::allocator::HeapProfile::dump_at_exit_if_requested();                      \
  }                                                                                         \
  POLYMALLOC_DEFINE_CXX_OPERATORS(::polymalloc::allocator::FrontEnd<Core>)

#define POLYMALLOC_DEFINE_CXX_OPERATORS(F)                                                   \
  POLYMALLOC_EXPORT void* operator new(size_t n) { return F::operator_new(n); }                               \
  POLYMALLOC_EXPORT void* operator new[](size_t n) { return F::operator_new(n); }                             \
  POLYMALLOC_EXPORT void* operator new(size_t n, const std::nothrow_t&) noexcept { return F::operator_new_nothrow(n); } \
  POLYMALLOC_EXPORT void* operator new[](size_t n, const std::nothrow_t&) noexcept { return F::operator_new_nothrow(n); } \
  POLYMALLOC_EXPORT void* operator new(size_t n, std::align_val_t a) { return F::operator_new_aligned(n, static_cast<size_t>(a)); } \
  POLYMALLOC_EXPORT void* operator new[](size_t n, std::align_val_t a) { return F::operator_new_aligned(n, static_cast<size_t>(a)); } \
  POLYMALLOC_EXPORT void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {        \
    return F::operator_new_aligned_nothrow(n, static_cast<size_t>(a));                     \
  }                                                                                         \
  POLYMALLOC_EXPORT void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {      \
    return F::operator_new_aligned_nothrow(n, static_cast<size_t>(a));                     \
  }                                                                                         \
  POLYMALLOC_EXPORT void operator delete(void* p) noexcept { F::operator_delete(p); }                         \
  POLYMALLOC_EXPORT void operator delete[](void* p) noexcept { F::operator_delete(p); }                       \
  POLYMALLOC_EXPORT void operator delete(void* p, size_t n) noexcept { F::operator_delete_sized(p, n); }     \
  POLYMALLOC_EXPORT void operator delete[](void* p, size_t n) noexcept { F::operator_delete_sized(p, n); }   \
  POLYMALLOC_EXPORT void operator delete(void* p, std::align_val_t) noexcept { F::operator_delete(p); }       \
  POLYMALLOC_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { F::operator_delete(p); }     \
  POLYMALLOC_EXPORT void operator delete(void* p, size_t, std::align_val_t) noexcept { F::operator_delete(p); } \
  POLYMALLOC_EXPORT void operator delete[](void* p, size_t, std::align_val_t) noexcept { F::operator_delete(p); } \
  POLYMALLOC_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { F::operator_delete(p); }  \
  POLYMALLOC_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { F::operator_delete(p); } \
  POLYMALLOC_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {         \
    F::operator_delete(p);                                                                  \
  }                                                                                         \
  POLYMALLOC_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {       \
    F::operator_delete(p);                                                                  \
  }
// clang-format on
