// Thread and CPU identity, and fork hooks. Initial-exec TLS only (safe inside malloc, which
// may be called before the dynamic TLS machinery could allocate).
#pragma once

#include <sys/single_threaded.h>

#include <cstdint>

namespace polymalloc::platform {

// A small number unique to the calling thread among live and past threads (1, 2, 3 … in
// order of first call), cheap after the first call. A fork child keeps its parent thread's.
std::uint32_t thread_number();

// The CPU the caller is running on now (may change at any moment), or 0 if unknown.
std::uint32_t current_cpu();

// Whether the process has only ever had one thread (glibc's __libc_single_threaded: cleared
// by the first pthread_create, before the new thread runs; glibc 2.36 leaves it cleared in
// the child of a multi-threaded parent, as it does its own fork's view of the process).
inline bool process_is_single_threaded() { return __libc_single_threaded != 0; }

// Holds `lock` for its scope unless the process is single-threaded, where no other thread
// could contend (glibc's malloc skips its arena locks the same way). What it decided at
// construction holds to the end, whatever the flag does meanwhile.
template <class Lock>
class LockUnlessSingleThreaded {
 public:
  explicit LockUnlessSingleThreaded(Lock& lock)
      : lock_(process_is_single_threaded() ? nullptr : &lock) {
    if (lock_ != nullptr) lock_->lock();
  }
  ~LockUnlessSingleThreaded() { unlock_now(); }
  LockUnlessSingleThreaded(const LockUnlessSingleThreaded&) = delete;
  LockUnlessSingleThreaded& operator=(const LockUnlessSingleThreaded&) = delete;

  // Releases early (e.g. before reporting misuse and aborting).
  void unlock_now() {
    if (lock_ != nullptr) lock_->unlock();
    lock_ = nullptr;
  }

 private:
  Lock* lock_;
};

// Number of CPUs this process may use (at least 1): those its affinity mask allows, fewer
// when a cgroup v2 CPU quota (cpu.max) of its own or of an ancestor allows fewer (rounded up).
std::uint32_t cpu_count();
// The CPUs a cgroup v2 quota allows the process, from its membership file (/proc/self/cgroup)
// and the cgroup tree's root (/sys/fs/cgroup): the smallest quota of its cgroup and its
// ancestors, rounded up; 0 when there is none (or no cgroup v2). For tests, any paths.
std::uint32_t cgroup_cpu_limit(const char* cgroup_file, const char* cgroup_root);

// Registers an allocator's handlers around fork(): `prepare` runs in the parent before the
// fork (take every lock), `parent` after it in the parent, `child` after it in the child
// (release or reset every lock). Returns false if they could not be registered.
//
// They run only when the process is multi-threaded, as glibc's own malloc locks are taken
// only then: in a single-threaded process nobody else can hold a lock, and a fork from a
// signal handler that interrupted malloc (or interrupted another fork's handlers) must not
// wait for a lock the interrupted code holds. And they run inside the stdio list lock, which
// `prepare` takes first, in the order glibc's fork takes its own malloc locks: a thread that
// holds a FILE's lock (getline, fflush) may be waiting for a heap lock, and must not wait
// for it while the forking thread holds the heap lock and waits for the stdio list.
bool register_fork_handlers(void (*prepare)(), void (*parent)(), void (*child)());

}  // namespace polymalloc::platform
