// The lock table: test-and-set bytes, one cache line apart, taken with signals blocked.
#include "atomics/lock_table.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atomics/backoff.h"
#include "atomics/cpu.h"

namespace polymalloc::atomics {
namespace {

struct alignas(kCacheLineSize) PaddedLock {
  unsigned char held = 0;
};

PaddedLock g_locks[LockTable::kLocks];

// rt_sigprocmask directly: async-signal-safe, and free of libc's own bookkeeping.
constexpr std::size_t kKernelSigsetBytes = 8;

void block_all_signals(std::uint64_t* saved) {
  const std::uint64_t all = ~std::uint64_t{0};
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, saved, kKernelSigsetBytes);
}

void restore_signals(const std::uint64_t* saved) {
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, saved, nullptr, kKernelSigsetBytes);
}

void acquire(unsigned char* lock) {
  Backoff backoff;
  while (__atomic_test_and_set(lock, __ATOMIC_ACQUIRE)) {
    while (__atomic_load_n(lock, __ATOMIC_RELAXED)) backoff.pause();
  }
}

void release(unsigned char* lock) { __atomic_clear(lock, __ATOMIC_RELEASE); }

// The forking thread's signal mask, kept from prepare_fork() to the after-fork hooks.
thread_local std::uint64_t fork_saved_mask [[gnu::tls_model("initial-exec")]][2];

void release_all_after_fork() {
  for (PaddedLock& l : g_locks) release(&l.held);
  restore_signals(fork_saved_mask);
}

}  // namespace

LockTable::Guard::Guard(const void* address) : lock_(&g_locks[index_of(address)].held) {
  block_all_signals(saved_mask_);
  acquire(lock_);
}

LockTable::Guard::~Guard() {
  release(lock_);
  restore_signals(saved_mask_);
}

// A thread holds at most one lock at a time, so taking them all in table order cannot
// deadlock.
void LockTable::prepare_fork() {
  block_all_signals(fork_saved_mask);
  for (PaddedLock& l : g_locks) acquire(&l.held);
}

void LockTable::after_fork_in_parent() { release_all_after_fork(); }
void LockTable::after_fork_in_child() { release_all_after_fork(); }

bool LockTableDoubleCas::cas_seq_cst(DoubleWord* p, DoubleWord& expected, DoubleWord desired) {
  // Every CAS on `p` is serialised by the same lock. Halves are accessed atomically so that
  // lock-free readers of one half (load_halves_acquire) never race; they may see a torn
  // pair, which their own CAS then rejects.
  LockTable::Guard guard(p);
  const DoubleWord found{load_acquire(&p->lo), load_acquire(&p->hi)};
  const bool ok = found == expected;
  if (ok) {
    store_release(&p->lo, desired.lo);
    store_release(&p->hi, desired.hi);
  } else {
    expected = found;
  }
  return ok;
}

}  // namespace polymalloc::atomics
