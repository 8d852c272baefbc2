// The lock-table fallback: signals are blocked while a lock is held, and restored after.
#include "atomics/lock_table.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace polymalloc::atomics {
namespace {

bool signal_blocked(int sig) {
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, nullptr, &now);
  return sigismember(&now, sig) == 1;
}

TEST(LockTableTest, GuardBlocksEverySignalAndRestoresTheMask) {
  sigset_t only_usr2;
  sigemptyset(&only_usr2);
  sigaddset(&only_usr2, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &only_usr2, nullptr);
  int word = 0;
  {
    LockTable::Guard guard(&word);
    EXPECT_TRUE(signal_blocked(SIGUSR1));
    EXPECT_TRUE(signal_blocked(SIGALRM));
    EXPECT_TRUE(signal_blocked(SIGUSR2));
  }
  EXPECT_FALSE(signal_blocked(SIGUSR1));
  EXPECT_TRUE(signal_blocked(SIGUSR2));  // the caller's own mask is kept
  pthread_sigmask(SIG_UNBLOCK, &only_usr2, nullptr);
}

TEST(LockTableTest, IndexIsInRangeAndSpreadsNeighbours) {
  alignas(64) char buffer[64 * 64];
  bool used[LockTable::kLocks] = {};
  int distinct = 0;
  for (int i = 0; i < 64; ++i) {
    const std::size_t index = LockTable::index_of(buffer + 64 * i);
    ASSERT_LT(index, LockTable::kLocks);
    if (!used[index]) ++distinct;
    used[index] = true;
  }
  EXPECT_GE(distinct, 16);
}

TEST(LockTableTest, WordCasSemantics) {
  std::uintptr_t w = 3;
  std::uintptr_t expected = 4;
  EXPECT_FALSE(lock_table_cas_seq_cst(&w, expected, std::uintptr_t{5}));
  EXPECT_EQ(expected, 3u);
  EXPECT_TRUE(lock_table_cas_seq_cst(&w, expected, std::uintptr_t{5}));
  EXPECT_EQ(w, 5u);
}

TEST(LockTableTest, ConcurrentWordCasLosesNothing) {
  std::uint64_t counter = 0;
  constexpr int kThreads = 4, kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        std::uint64_t seen = load_relaxed(&counter);
        while (!lock_table_cas_seq_cst(&counter, seen, seen + 1)) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, std::uint64_t{kThreads} * kPerThread);
}

// Another thread takes and drops locks all the time; every fork still leaves a child in which
// every lock of the table is free (the child takes each one, under an alarm).
TEST(LockTableTest, ForkLeavesNoLockHeldInTheChild) {
  static bool registered = false;
  if (!registered) {
    ASSERT_EQ(pthread_atfork(&LockTable::prepare_fork, &LockTable::after_fork_in_parent,
                             &LockTable::after_fork_in_child),
              0);
    registered = true;
  }
  std::atomic<bool> stop{false};
  static std::uint64_t words[LockTable::kLocks * 64];
  std::thread churn([&] {
    for (std::size_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      std::uint64_t& w = words[i % (sizeof(words) / sizeof(words[0]))];
      std::uint64_t seen = w;
      lock_table_cas_seq_cst(&w, seen, seen + 1);
    }
  });
  for (int round = 0; round < 50; ++round) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      alarm(10);  // a lock left held would hang the child with signals blocked: the
                  // parent's waitpid below then never returns and the test times out
      for (std::uint64_t& w : words) {
        std::uint64_t seen = w;
        lock_table_cas_seq_cst(&w, seen, seen + 1);
      }
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "round " << round;
  }
  stop = true;
  churn.join();
}

}  // namespace
}  // namespace polymalloc::atomics
