// The lock-table fallback: signals are blocked while a lock is held, and restored after.
#include "atomics/lock_table.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

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

}  // namespace
}  // namespace polymalloc::atomics
