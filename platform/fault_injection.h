// Tests only: makes the Nth request to the operating system fail (with ENOMEM), to prove
// that every caller survives a failed mmap/mremap/mprotect/brk. Inert unless armed; the
// check on each request is one relaxed load, next to a system call.
#pragma once

#include <cstdint>

namespace polymalloc::platform {

class FaultInjection {
 public:
  // The `n`th OS request from now on (1 = the very next) fails; earlier and later succeed.
  static void fail_nth_request(std::uint64_t n);
  // Every OS request from now on fails, until disarm().
  static void fail_all_requests();
  static void disarm();
  // OS requests made since start (armed or not): lets a test sweep N over a workload.
  static std::uint64_t requests_made();

  // Called by os.cc before each request: true means "pretend the OS refused".
  static bool should_fail();
};

}  // namespace polymalloc::platform
