// The TTAS spinlock: mutual exclusion, try_lock, and progress under oversubscription.
#include "atomics/spinlock.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace polymalloc::atomics {
namespace {

TEST(SpinlockTest, TryLockFailsWhileHeld) {
  Spinlock lock;
  EXPECT_FALSE(lock.is_locked());
  EXPECT_TRUE(lock.try_lock());
  EXPECT_TRUE(lock.is_locked());
  EXPECT_FALSE(lock.try_lock());
  lock.unlock();
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST(SpinlockTest, ResetAfterForkFreesTheLock) {
  Spinlock lock;
  lock.lock();
  lock.reset_after_fork();
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST(SpinlockTest, MutualExclusionWithMoreThreadsThanCores) {
  // Plain (non-atomic) counters: only mutual exclusion keeps them exact, and TSan checks it.
  Spinlock lock;
  long counter = 0;
  int inside = 0;
  bool overlap = false;
  const int threads_n = 2 * static_cast<int>(std::thread::hardware_concurrency()) + 2;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_n; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        LockGuard<Spinlock> guard(lock);
        if (++inside != 1) overlap = true;
        ++counter;
        --inside;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(overlap);
  EXPECT_EQ(counter, long{threads_n} * kPerThread);
}

TEST(BackoffTest, SaturatesAfterBoundedSpinning) {
  Backoff backoff;
  int rounds = 0;
  while (!backoff.saturated()) {
    backoff.pause();
    ++rounds;
  }
  EXPECT_EQ(rounds, 11);  // 1, 2, 4, ..., 1024 pauses
  backoff.reset();
  EXPECT_FALSE(backoff.saturated());
}

}  // namespace
}  // namespace polymalloc::atomics
