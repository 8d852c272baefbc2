// Valgrind memcheck support (--//allocator:valgrind=on): an AllocatorCore that wraps another
// and tells memcheck, through its client requests, which blocks the program holds. Under
// valgrind, a program whose malloc is polymalloc then gets memcheck's reports for polymalloc
// heaps as it would for glibc's: reads and writes of freed blocks, of the header below a
// block and past its usable end, frees of what was never allocated, and leaks at exit.
//
// The inner core reads and writes free memory (links, headers), which memcheck now holds
// inaccessible, so its calls run with error reporting off for the calling thread. realloc
// always moves (as memcheck's own realloc does), so that the copy carries memcheck's
// definedness of every byte. Outside valgrind each request costs a few instructions, which is
// why this is a build setting and not the default; only that build includes valgrind's
// header (memcheck_on.inc, chosen in BUILD.bazel).
#pragma once

#include <valgrind/memcheck.h>  // Debian: valgrind (bazelw installs it)

#include <cstddef>

#include "allocator/core.h"
#include "allocator/heap_profile.h"

namespace polymalloc::allocator {

template <AllocatorCore Inner>
class MemcheckCore {
 public:
  static constexpr const char* kName = Inner::kName;
  // Below every block sits its 16-byte header: memcheck holds it inaccessible to the client.
  static constexpr std::size_t kRedzoneBytes = 16;

  static void* allocate(std::size_t n) {
    return announce(quietly([n] { return Inner::allocate(n); }), false);
  }
  static void* allocate_zeroed(std::size_t n) {
    return announce(quietly([n] { return Inner::allocate_zeroed(n); }), true);
  }
  static void* allocate_aligned(std::size_t alignment, std::size_t n) {
    return announce(quietly([=] { return Inner::allocate_aligned(alignment, n); }), false);
  }
  static void* allocate_sampled(std::size_t n, std::size_t requested, const ProfileStack& stack)
    requires requires { Inner::allocate_sampled(n, requested, stack); }
  {
    return announce(quietly([&] { return Inner::allocate_sampled(n, requested, stack); }), false);
  }

  static void deallocate(void* p, const char* call) {
    VALGRIND_FREELIKE_BLOCK(p, kRedzoneBytes);
    quietly([=] {
      Inner::deallocate(p, call);
      return 0;
    });
  }

  static void* reallocate(void* p, std::size_t n) {
    return move_to_fresh<MemcheckCore>(allocate(n), p, n);
  }

  static std::size_t usable_size(const void* p) {
    return quietly([p] { return Inner::usable_size(p); });
  }

  static bool trim(std::size_t pad) {
    return quietly([pad] { return Inner::trim(pad); });
  }
  static Statistics statistics(Detail detail = Detail::kTotals) {
    return quietly([detail] { return Inner::statistics(detail); });
  }
  static const char* check_heap(const void** where) {
    return quietly([where] { return Inner::check_heap(where); });
  }
  static void prepare_fork() { Inner::prepare_fork(); }
  static void after_fork_in_parent() { Inner::after_fork_in_parent(); }
  static void after_fork_in_child() { Inner::after_fork_in_child(); }

 private:
  // Runs an inner call with memcheck's error reporting off for this thread.
  template <class Call>
  static auto quietly(Call call) {
    VALGRIND_DISABLE_ERROR_REPORTING;
    auto result = call();
    VALGRIND_ENABLE_ERROR_REPORTING;
    return result;
  }

  // Tells memcheck that the program now holds p's usable bytes.
  static void* announce(void* p, bool zeroed) {
    if (p != nullptr) VALGRIND_MALLOCLIKE_BLOCK(p, usable_size(p), kRedzoneBytes, zeroed);
    return p;
  }
};

}  // namespace polymalloc::allocator
