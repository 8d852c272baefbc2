// Semantics of the named-order word operations and AtomicWord.
#include "atomics/word.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

namespace polymalloc::atomics {
namespace {

TEST(WordTest, CasSucceedsOnlyOnExpectedValueAndReportsWhatItFound) {
  std::uintptr_t w = 5;
  std::uintptr_t expected = 4;
  EXPECT_FALSE(cas_acq_rel(&w, expected, std::uintptr_t{9}));
  EXPECT_EQ(expected, 5u);
  EXPECT_EQ(w, 5u);
  EXPECT_TRUE(cas_acq_rel(&w, expected, std::uintptr_t{9}));
  EXPECT_EQ(w, 9u);
}

// The *_local operations (no lock prefix where the CPU allows) give the results the atomic
// ones give, on every width.
template <class T>
void check_local_operations() {
  T w = 5;
  T expected = 4;
  EXPECT_FALSE(cas_local(&w, expected, T{9}));
  EXPECT_EQ(expected, T{5}) << "a failed swap reports what it found";
  EXPECT_EQ(w, T{5});
  EXPECT_TRUE(cas_local(&w, expected, T{9}));
  EXPECT_EQ(w, T{9});
  EXPECT_EQ(fetch_add_local(&w, T{3}), T{9});
  EXPECT_EQ(w, T{12});
  EXPECT_EQ(fetch_sub_local(&w, T{13}), T{12});
  EXPECT_EQ(w, static_cast<T>(T{0} - T{1})) << "wraps as the atomic one does";
  w = 0b1010;
  EXPECT_EQ(fetch_or_local(&w, T{0b0110}), T{0b1010});
  EXPECT_EQ(w, T{0b1110});
  EXPECT_EQ(fetch_and_local(&w, T{0b0111}), T{0b1110});
  EXPECT_EQ(w, T{0b0110});
}

TEST(WordTest, LocalOperationsGiveTheAtomicOnesResults) {
  check_local_operations<std::uint8_t>();
  check_local_operations<std::uint16_t>();
  check_local_operations<std::uint32_t>();
  check_local_operations<std::uint64_t>();
  int x = 0;
  int y = 0;
  int* p = &x;
  int* seen = &x;
  EXPECT_TRUE(cas_local(&p, seen, &y));
  EXPECT_EQ(p, &y);
}

TEST(WordTest, EveryOrderedCasVariantHasTheSameResult) {
  for (auto cas : {&cas_relaxed<int>, &cas_acquire<int>, &cas_release<int>, &cas_acq_rel<int>,
                   &cas_seq_cst<int>}) {
    int w = 1, expected = 1;
    EXPECT_TRUE(cas(&w, expected, 2));
    EXPECT_FALSE(cas(&w, expected, 3));
    EXPECT_EQ(expected, 2);
    EXPECT_EQ(w, 2);
  }
}

TEST(WordTest, PointersAreWords) {
  int a = 0, b = 0;
  int* p = &a;
  int* expected = &a;
  EXPECT_TRUE(cas_release(&p, expected, &b));
  EXPECT_EQ(load_acquire(&p), &b);
  EXPECT_EQ(exchange_acq_rel(&p, &a), &b);
}

TEST(WordTest, FetchOpsReturnThePreviousValue) {
  std::uint32_t w = 10;
  EXPECT_EQ(fetch_add_relaxed(&w, 5u), 10u);
  EXPECT_EQ(fetch_sub_acq_rel(&w, 3u), 15u);
  EXPECT_EQ(fetch_or_acq_rel(&w, 0x100u), 12u);
  EXPECT_EQ(fetch_and_acq_rel(&w, 0xffu), 0x10cu);
  EXPECT_EQ(w, 12u);
}

TEST(WordTest, ConcurrentFetchAddLosesNothing) {
  AtomicWord<std::uint64_t> counter;
  constexpr int kThreads = 4, kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) counter.fetch_add_relaxed(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.load_acquire(), std::uint64_t{kThreads} * kPerThread);
}

TEST(WordTest, ReleaseAcquirePublishesPlainData) {
  // Message passing: the plain write before store_release is visible after load_acquire.
  for (int round = 0; round < 200; ++round) {
    int payload = 0;
    AtomicWord<int> ready;
    std::thread writer([&] {
      payload = round + 1;
      ready.store_release(1);
    });
    while (ready.load_acquire() == 0) {
    }
    EXPECT_EQ(payload, round + 1);
    writer.join();
  }
}

}  // namespace
}  // namespace polymalloc::atomics
