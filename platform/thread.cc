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

namespace {

// glibc's stdio list lock (public symbols of libc.so since 2.2.5; absent elsewhere, hence
// weak). A recursive lock: glibc's fork takes it again after the prepare handlers.
extern "C" void _IO_list_lock() __attribute__((weak));
extern "C" void _IO_list_unlock() __attribute__((weak));
extern "C" void _IO_list_resetlock() __attribute__((weak));

struct ForkHandlers {
  void (*prepare)();
  void (*parent)();
  void (*child)();
};

// Every allocator's handlers, run from one pthread_atfork registration: prepare in reverse
// order of registration, the others in order (as pthread_atfork orders separate ones).
constexpr unsigned kMaxForkHandlers = 8;
ForkHandlers g_fork_handlers[kMaxForkHandlers];
atomics::AtomicWord<std::uint32_t> g_fork_handler_count;
atomics::Spinlock g_fork_registration_lock;
bool g_fork_hooks_installed = false;
// Whether the running fork's prepare step took the locks (the process was multi-threaded).
bool g_fork_locks_held = false;

void prepare_fork() {
  if (process_is_single_threaded()) return;
  if (_IO_list_lock != nullptr) _IO_list_lock();
  for (std::uint32_t i = g_fork_handler_count.load_acquire(); i-- > 0;) {
    g_fork_handlers[i].prepare();
  }
  g_fork_locks_held = true;
}

void after_fork_in_parent() {
  if (!g_fork_locks_held) return;
  g_fork_locks_held = false;
  const std::uint32_t n = g_fork_handler_count.load_acquire();
  for (std::uint32_t i = 0; i < n; ++i) g_fork_handlers[i].parent();
  if (_IO_list_unlock != nullptr) _IO_list_unlock();
}

// glibc's fork has already reset the stdio list lock in a child of a multi-threaded parent;
// resetting it again covers a libc that did not.
void after_fork_in_child() {
  if (!g_fork_locks_held) return;
  g_fork_locks_held = false;
  const std::uint32_t n = g_fork_handler_count.load_acquire();
  for (std::uint32_t i = 0; i < n; ++i) g_fork_handlers[i].child();
  if (_IO_list_resetlock != nullptr) _IO_list_resetlock();
}

}  // namespace

bool register_fork_handlers(void (*prepare)(), void (*parent)(), void (*child)()) {
  atomics::LockGuard guard(g_fork_registration_lock);
  const std::uint32_t n = g_fork_handler_count.load_relaxed();
  if (n == kMaxForkHandlers) return false;
  if (!g_fork_hooks_installed) {
    if (pthread_atfork(&prepare_fork, &after_fork_in_parent, &after_fork_in_child) != 0) {
      return false;
    }
    g_fork_hooks_installed = true;
  }
  g_fork_handlers[n] = {prepare, parent, child};
  g_fork_handler_count.store_release(n + 1);
  return true;
}

}  // namespace polymalloc::platform
