// LockedHeap: its lock is its own (others run code under it, or find it busy), blocks it does
// not hold are reported before anything changes, realloc in place shrinks, grows right and
// merges left, the top goes back once enough of it is free, and the fork hooks hold the lock.
#include "allocator/locked_heap.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>

#include "platform/platform.h"

namespace polymalloc::allocator {
namespace {

using Heap = LockedHeap<platform::ReservedRange>;
platform::PageMap pages;

TEST(LockedHeapTest, TryLockedFindsTheHeapBusyWhileAnotherThreadIsInside) {
  static Heap heap(&pages, std::uint16_t{1});
  std::atomic<bool> inside{false}, leave{false};
  std::thread occupant([&] {
    heap.locked([&](auto&) {
      inside = true;
      while (!leave) std::this_thread::yield();
      return 0;
    });
  });
  while (!inside) std::this_thread::yield();
  Block* b = nullptr;
  EXPECT_FALSE(heap.try_locked([](auto& h) { return h.allocate(64); }, &b));
  EXPECT_EQ(b, nullptr) << "not run while busy";
  leave = true;
  occupant.join();
  EXPECT_TRUE(heap.try_locked([](auto& h) { return h.allocate(64); }, &b));
  ASSERT_NE(b, nullptr);
  heap.release(b, "free");
}

// release() says whether the block was parked on a quick list (cached: nothing decay could
// release, so ClassCore skips its tick) or went into the coalescing lists.
TEST(LockedHeapTest, ReleaseSaysWhetherTheBlockWasParked) {
  static Heap heap(&pages, std::uint16_t{4});
  Block* quick = heap.allocate(1024);                 // an exact class, under kDefaultQuickMaxBlock
  Block* listed = heap.allocate(10000);               // not a power of two: the lists take it
  Block* big = heap.allocate(std::size_t{16} << 10);  // above the quick lists
  Block* guard = heap.allocate(64);
  EXPECT_TRUE(heap.release(quick, "free"));
  EXPECT_FALSE(heap.release(listed, "free"));
  EXPECT_FALSE(heap.release(big, "free"));
  Statistics s;
  heap.add_statistics(s);
  EXPECT_GE(s.heap_free_bytes, 10000u + (16u << 10)) << "the two unparked blocks are free";
  EXPECT_FALSE(heap.release(guard, "free")) << "an exact class beside free memory: not parked";
  EXPECT_EQ(heap.check(nullptr), nullptr);
}

TEST(LockedHeapTest, ReleasingFreesManyBlocksUnderOneLock) {
  static Heap heap(&pages, std::uint16_t{2});
  Block* blocks[8];
  for (Block*& b : blocks) b = heap.allocate(10000);  // past the quick lists
  heap.releasing([&](auto release) {
    for (Block* b : blocks) release(b, "free");
  });
  Statistics s;
  heap.add_statistics(s);
  EXPECT_EQ(s.heap_in_use_bytes(), s.heap_committed_bytes - s.heap_free_bytes);
  EXPECT_EQ(s.heap_free_blocks, 1u) << "all coalesced into one free block";
  const void* where = nullptr;
  EXPECT_EQ(heap.check(&where), nullptr);
}

TEST(LockedHeapTest, ResizeInPlaceShrinksGrowsRightAndMergesLeft) {
  static Heap heap(&pages, std::uint16_t{3});
  Block* left = heap.allocate(4096 + 32);
  Block* b = heap.allocate(4096 + 32);
  Block* right = heap.allocate(4096 + 32);
  Block* guard = heap.allocate(64);
  std::memset(b->payload(), 0x42, 4096);
  EXPECT_EQ(heap.resize_in_place(b, 2048), b->payload()) << "shrinks where it is";
  heap.release(right, "free");
  EXPECT_EQ(heap.resize_in_place(b, 6000), b->payload()) << "grows into the free right";
  heap.release(left, "free");
  void* moved = heap.resize_in_place(b, 12000);
  ASSERT_NE(moved, nullptr) << "merges with the free left";
  EXPECT_LT(moved, b->payload());
  EXPECT_EQ(static_cast<unsigned char*>(moved)[2000], 0x42) << "the bytes moved down";
  EXPECT_EQ(heap.resize_in_place(Block::of_payload(moved), 1 << 20), nullptr)
      << "no room: the caller moves it";
  EXPECT_EQ(heap.resize_in_place(Block::of_payload(moved), 0), nullptr) << "0: a large block";
  heap.release(Block::of_payload(moved), "free");
  heap.release(guard, "free");
  EXPECT_EQ(heap.check(nullptr), nullptr);
}

TEST(LockedHeapTest, TheFreeTopGoesBackOnceEnoughOfItIsFree) {
  static Heap heap(&pages, std::uint16_t{4});
  constexpr std::size_t kBlock = std::size_t{300} << 10;
  Block* keep = heap.allocate(64);
  Block* a = heap.allocate(kBlock);
  Block* b = heap.allocate(kBlock);
  Block* c = heap.allocate(kBlock);  // the top
  Statistics grown;
  heap.add_statistics(grown);
  heap.release(a, "free");
  heap.release(b, "free");
  heap.release(c, "free");  // 900 KiB free at the top: more than the last block + 384 KiB
  Statistics trimmed;
  heap.add_statistics(trimmed);
  EXPECT_LT(trimmed.heap_committed_bytes, grown.heap_committed_bytes);
  EXPECT_GE(trimmed.heap_top_free_bytes, kBlock)
      << "it keeps the block just freed (a loop of one big block must not fault it in again)";
  EXPECT_LT(trimmed.heap_top_free_bytes, 3 * kBlock);
  EXPECT_GT(heap.trim(0), 0u) << "malloc_trim(0) gives the rest back";
  heap.release(keep, "free");
}

TEST(LockedHeapTest, TheForkHooksHoldTheLock) {
  static Heap heap(&pages, std::uint16_t{5});
  heap.prepare_fork();
  Block* b = nullptr;
  std::thread([&] { EXPECT_FALSE(heap.try_locked([](auto& h) { return h.allocate(64); }, &b)); })
      .join();
  heap.after_fork_in_parent();
  std::thread([&] { EXPECT_TRUE(heap.try_locked([](auto& h) { return h.allocate(64); }, &b)); })
      .join();
  heap.release(b, "free");
}

TEST(LockedHeapDeathTest, ABlockNotHeldIsReportedBeforeAnythingChanges) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  static Heap heap(&pages, std::uint16_t{6});
  EXPECT_DEATH(
      {
        Block* b = heap.allocate(10000);
        heap.release(b, "free");
        heap.release(b, "free");
      },
      "polymalloc: free\\(\\): double free of 0x");
  EXPECT_DEATH(
      {
        Block* b = heap.allocate(10000);
        b->set_size_flags(b->size_flags + (1 << 20));  // an overflow wrote over the header
        heap.release(b, "free");
      },
      "polymalloc: free\\(\\): corrupted header of 0x");
  EXPECT_DEATH(
      {
        Block* b = heap.allocate(10000);
        heap.release(b, "free");
        heap.resize_in_place(b, 20000);
      },
      "polymalloc: realloc\\(\\): freed pointer 0x");
}

}  // namespace
}  // namespace polymalloc::allocator
