// Thread numbering through initial-exec TLS; CPU identity through the vDSO's getcpu.
#include "platform/thread.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "atomics/atomics.h"

namespace polymalloc::platform {
namespace {

atomics::AtomicWord<std::uint32_t> g_threads_seen;
thread_local std::uint32_t t_number [[gnu::tls_model("initial-exec")]] = 0;

}  // namespace

std::uint32_t thread_number() {
  std::uint32_t n = t_number;
  if (n == 0) [[unlikely]] {
    n = g_threads_seen.fetch_add_relaxed(1) + 1;
    t_number = n;
  }
  return n;
}

std::uint32_t current_cpu() {
  const int cpu = sched_getcpu();
  return cpu < 0 ? 0 : static_cast<std::uint32_t>(cpu);
}

std::uint32_t cpu_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<std::uint32_t>(n);
  }
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<std::uint32_t>(online) : 1;
}

bool register_fork_handlers(void (*prepare)(), void (*parent)(), void (*child)()) {
  return pthread_atfork(prepare, parent, child) == 0;
}

}  // namespace polymalloc::platform
