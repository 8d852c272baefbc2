// Quarantine: blocks leave in the order they came, when the ring is full or the bytes pass
// the bound; drain empties it; for_each sees every block (for_each_newest the last pushed)
// and keeps it; concurrent pushes
// lose and duplicate nothing.
#include "allocator/quarantine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace polymalloc::allocator {
namespace {

// Blocks are numbers (as pointers); each "holds" 10 bytes.
void* block(std::uintptr_t i) { return reinterpret_cast<void*>(i); }
std::uintptr_t number(void* p) { return reinterpret_cast<std::uintptr_t>(p); }

TEST(QuarantineTest, BlocksLeaveInOrderOnceTheBoundIsPassed) {
  static Quarantine<64> q;
  std::vector<std::uintptr_t> left;
  const auto leave = [&left](void* p) {
    left.push_back(number(p));
    return std::size_t{10};
  };
  for (std::uintptr_t i = 1; i <= 5; ++i) q.push(block(i), 10, 50, leave);
  EXPECT_TRUE(left.empty());  // 50 bytes: at the bound, not past it
  EXPECT_EQ(q.stats().bytes, 50u);
  EXPECT_EQ(q.stats().blocks, 5u);
  for (std::uintptr_t i = 6; i <= 9; ++i) q.push(block(i), 10, 50, leave);
  EXPECT_EQ(left, (std::vector<std::uintptr_t>{1, 2, 3, 4}));
  EXPECT_EQ(q.stats().bytes, 50u);
  q.drain(leave);
  EXPECT_EQ(left, (std::vector<std::uintptr_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(q.stats().bytes, 0u);
  EXPECT_EQ(q.stats().blocks, 0u);
}

TEST(QuarantineTest, AFullRingSendsTheOldestOut) {
  static Quarantine<4> q;
  std::vector<std::uintptr_t> left;
  const auto leave = [&left](void* p) {
    left.push_back(number(p));
    return std::size_t{10};
  };
  for (std::uintptr_t i = 1; i <= 7; ++i) q.push(block(i), 10, SIZE_MAX, leave);
  EXPECT_EQ(left, (std::vector<std::uintptr_t>{1, 2, 3}));
  EXPECT_EQ(q.stats().blocks, 4u);
  q.drain(leave);
  EXPECT_EQ(left, (std::vector<std::uintptr_t>{1, 2, 3, 4, 5, 6, 7}));
}

TEST(QuarantineTest, ForEachNewestChecksTheLastPushedAndKeepsThem) {
  static Quarantine<8> q;
  const auto leave = [](void*) { return std::size_t{10}; };
  for (std::uintptr_t i = 1; i <= 11; ++i) q.push(block(i), 10, SIZE_MAX, leave);  // 1-3 left
  std::vector<std::uintptr_t> seen;
  q.for_each_newest(
      3, [&seen](void* p) { seen.push_back(number(p)); }, leave);
  EXPECT_EQ(seen, (std::vector<std::uintptr_t>{9, 10, 11}));
  seen.clear();
  q.for_each_newest(
      100, [&seen](void* p) { seen.push_back(number(p)); }, leave);
  EXPECT_EQ(seen, (std::vector<std::uintptr_t>{4, 5, 6, 7, 8, 9, 10, 11}));  // all that wait
  EXPECT_EQ(q.stats().blocks, 8u);
  q.drain(leave);
}

TEST(QuarantineTest, ForEachChecksEveryBlockAndKeepsIt) {
  static Quarantine<8> q;
  const auto leave = [](void*) { return std::size_t{10}; };
  for (std::uintptr_t i = 1; i <= 5; ++i) q.push(block(i), 10, SIZE_MAX, leave);
  std::uintptr_t sum = 0;
  q.for_each([&sum](void* p) { sum += number(p); }, leave);
  EXPECT_EQ(sum, 15u);
  EXPECT_EQ(q.stats().blocks, 5u);
  std::vector<std::uintptr_t> left;
  q.drain([&left](void* p) {
    left.push_back(number(p));
    return std::size_t{10};
  });
  EXPECT_EQ(left, (std::vector<std::uintptr_t>{1, 2, 3, 4, 5}));
}

TEST(QuarantineTest, ConcurrentPushesLoseAndDuplicateNothing) {
  static Quarantine<256> q;
  constexpr int kThreads = 4;
  constexpr std::uintptr_t kPerThread = 20000;
  static std::atomic<std::uint8_t> seen[kThreads * kPerThread + 1];
  const auto leave = [](void* p) {
    seen[number(p)].fetch_add(1, std::memory_order_relaxed);
    return std::size_t{1};
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &leave] {
      for (std::uintptr_t i = 0; i < kPerThread; ++i) {
        q.push(block(1 + t * kPerThread + i), 1, 100, leave);
        if (i % 1000 == 0) q.for_each([](void*) {}, leave);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(q.stats().bytes, 100u + kThreads);
  q.drain(leave);
  EXPECT_EQ(q.stats().bytes, 0u);
  EXPECT_EQ(q.stats().blocks, 0u);
  for (std::uintptr_t i = 1; i <= kThreads * kPerThread; ++i) ASSERT_EQ(seen[i].load(), 1) << i;
}

}  // namespace
}  // namespace polymalloc::allocator
