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

}  // namespace

LockTable::Guard::Guard(const void* address) : lock_(&g_locks[index_of(address)].held) {
  block_all_signals(saved_mask_);
  Backoff backoff;
  while (__atomic_test_and_set(lock_, __ATOMIC_ACQUIRE)) {
    while (__atomic_load_n(lock_, __ATOMIC_RELAXED)) backoff.pause();
  }
}

LockTable::Guard::~Guard() {
  __atomic_clear(lock_, __ATOMIC_RELEASE);
  restore_signals(saved_mask_);
}

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
