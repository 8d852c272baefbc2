// Thread numbering through initial-exec TLS; CPU identity through the vDSO's getcpu.
#include "platform/thread.h"

#include <errno.h>
#include <fcntl.h>
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

namespace {

// The whole of a small file into buffer (null-terminated), or false. No allocation.
bool read_small_file(const char* path, char* buffer, std::size_t size) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t n = 0;
  for (ssize_t got; n + 1 < size && (got = read(fd, buffer + n, size - 1 - n)) != 0;) {
    if (got < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return false;
    }
    n += static_cast<std::size_t>(got);
  }
  close(fd);
  buffer[n] = '\0';
  return true;
}

std::uint64_t parse_u64(const char* text, const char** end) {
  std::uint64_t v = 0;
  const char* c = text;
  for (; *c >= '0' && *c <= '9' && v < (UINT64_MAX - 9) / 10; ++c) v = v * 10 + (*c - '0');
  *end = c;
  return v;
}

}  // namespace

std::uint32_t cgroup_cpu_limit(const char* cgroup_file, const char* cgroup_root) {
  // cgroup v2: "0::/path" in /proc/self/cgroup; the quota is "QUOTA PERIOD" (or "max
  // PERIOD") in <root>/<path>/cpu.max, and every ancestor's limit applies too.
  char membership[1024];
  if (!read_small_file(cgroup_file, membership, sizeof(membership))) return 0;
  const char* line = membership;
  while (line[0] != '\0' && !(line[0] == '0' && line[1] == ':' && line[2] == ':')) {
    while (*line != '\0' && *line != '\n') ++line;
    if (*line == '\n') ++line;
  }
  if (line[0] == '\0') return 0;
  char path[1536];
  std::size_t n = 0;
  for (const char* c = cgroup_root; *c != '\0' && n + 1 < sizeof(path); ++c) path[n++] = *c;
  for (const char* c = line + 3; *c != '\0' && *c != '\n' && n + 1 < sizeof(path); ++c) {
    path[n++] = *c;
  }
  while (n > 0 && path[n - 1] == '/') --n;
  const std::size_t root_length = __builtin_strlen(cgroup_root);
  std::uint32_t limit = 0;
  for (;;) {
    static constexpr char kFile[] = "/cpu.max";
    if (n + sizeof(kFile) > sizeof(path)) return limit;
    __builtin_memcpy(path + n, kFile, sizeof(kFile));
    char quota[64];
    if (read_small_file(path, quota, sizeof(quota)) && quota[0] >= '0' && quota[0] <= '9') {
      const char* end = nullptr;
      const std::uint64_t q = parse_u64(quota, &end);
      const std::uint64_t period = *end == ' ' ? parse_u64(end + 1, &end) : 0;
      if (period != 0) {
        const std::uint64_t cpus = (q + period - 1) / period;
        const auto capped = static_cast<std::uint32_t>(cpus < 1 ? 1 : cpus > 65536 ? 65536 : cpus);
        if (limit == 0 || capped < limit) limit = capped;
      }
    }
    // The parent cgroup, until the root.
    while (n > root_length && path[n - 1] != '/') --n;
    if (n <= root_length) return limit;
    --n;
  }
}

std::uint32_t cpu_count() {
  std::uint32_t n = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    n = static_cast<std::uint32_t>(CPU_COUNT(&set));
  } else {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    n = online > 0 ? static_cast<std::uint32_t>(online) : 1;
  }
  const std::uint32_t quota = cgroup_cpu_limit("/proc/self/cgroup", "/sys/fs/cgroup");
  return quota != 0 && quota < n ? quota : n;
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
