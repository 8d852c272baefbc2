// The partitioned variant's own promises: one partition per CPU (or as many as
// --//variants/partitioned:partitions says; .ci/run also runs this with 3), a busy home partition
// sends the caller elsewhere instead of making it wait, and blocks go back to (and coalesce in) the
// partition that owns their memory, whichever thread frees them.
#include "variants/partitioned/partitioned.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace polymalloc::variants {
namespace {

using allocator::Block;

// Requests of this size skip the thread caches (64 KiB blocks; the caches stop at 32 KiB).
constexpr std::size_t kUncached = 40000;

// Another thread inside partition i (holding its lock) until leave().
class Occupant {
 public:
  explicit Occupant(unsigned i)
      : thread_([this, i] {
          Partitions::partition(i).locked([this](auto&) {
            inside_ = true;
            while (!leave_) std::this_thread::yield();
            return 0;
          });
        }) {
    while (!inside_) std::this_thread::yield();
  }
  ~Occupant() { leave(); }
  void leave() {
    leave_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> inside_{false};
  std::atomic<bool> leave_{false};
  std::thread thread_;
};

unsigned index_of(const PartitionHeap* heap) {
  for (unsigned i = 0; i < Partitions::partition_count(); ++i) {
    if (&Partitions::partition(i) == heap) return i;
  }
  return ~0u;
}

TEST(PartitionedTest, OnePartitionPerCpuUnlessTheBuildSettingSaysOtherwise) {
  Partitioned::deallocate(Partitioned::allocate(1), "free");
  const unsigned expected = kConfiguredPartitions > 0
                                ? unsigned(kConfiguredPartitions)
                                : std::min<unsigned>(platform::cpu_count(), kMaxPartitions);
  EXPECT_EQ(Partitions::partition_count(), expected);
}

TEST(PartitionedTest, ABusyHomeSendsTheCallerToAnotherPartition) {
  if (Partitions::partition_count() < 2) GTEST_SKIP() << "one CPU: there is no other partition";
  std::thread([] {
    const unsigned home = Partitions::home_partition();
    Occupant occupant(home);
    void* p = Partitioned::allocate(kUncached);  // would spin forever if it insisted on home
    occupant.leave();
    ASSERT_NE(p, nullptr);
    EXPECT_NE(index_of(Partitions::owner_of(p)), home);
    Partitioned::deallocate(p, "free");
  }).join();
}

TEST(PartitionedTest, WhenEveryPartitionIsBusyTheCallerWaitsForItsHome) {
  const unsigned n = Partitions::partition_count();
  std::vector<std::unique_ptr<Occupant>> occupants;
  for (unsigned i = 0; i < n; ++i) occupants.push_back(std::make_unique<Occupant>(i));
  std::atomic<void*> got{nullptr};
  std::atomic<unsigned> home{~0u};
  std::thread worker([&] {
    home = Partitions::home_partition();
    got = Partitioned::allocate(kUncached);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(got.load(), nullptr) << "allocated while every partition was locked";
  while (home.load() == ~0u) std::this_thread::yield();
  for (unsigned i = 0; i < n; ++i) {
    if (i != home) occupants[i]->leave();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  occupants[home]->leave();
  worker.join();
  ASSERT_NE(got.load(), nullptr);
  Partitioned::deallocate(got.load(), "free");
}

TEST(PartitionedTest, AHomeWithoutRoomBorrowsAnotherPartitionsFreeMemoryBeforeGrowing) {
  if (Partitions::partition_count() < 2) GTEST_SKIP() << "one CPU: there is no other partition";
  Partitioned::deallocate(Partitioned::allocate(1), "free");  // set up
  const unsigned home = Partitions::home_partition();
  const unsigned other = (home + 1) % Partitions::partition_count();
  auto stats_of = [](unsigned i) {
    return Partitions::partition(i).locked([](auto& heap) { return heap.stats(); });
  };
  constexpr std::size_t kRequest = 600 * 1024;  // a class block (640 KiB), from the heaps
  // The home's free memory taken (biggest blocks first, without growth), so that nothing
  // there fits; the vector has its room before the lock is taken.
  std::vector<Block*> filler;
  filler.reserve(4096);
  Partitions::partition(home).locked([&filler](auto& heap) {
    for (std::size_t size = std::size_t{1} << 20; size >= allocator::kMinBlock; size /= 2) {
      while (filler.size() < filler.capacity()) {
        Block* b = heap.allocate(size, allocator::Growth::kNone);
        if (b == nullptr) break;
        filler.push_back(b);
      }
    }
    return 0;
  });
  const auto before = stats_of(home);
  ASSERT_EQ(before.free_bytes + before.cached_bytes, 0u) << "the home has no room left";
  // Free memory in the other partition that fits the request.
  Partitions::partition(other).locked([](auto& heap) {
    heap.release(heap.allocate(kRequest + (64 << 10)));
    return 0;
  });
  void* p = Partitioned::allocate(kRequest);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(index_of(Partitions::owner_of(p)), other) << "served from the other's free memory";
  EXPECT_EQ(stats_of(home).committed_bytes, before.committed_bytes) << "the home did not grow";
  Partitioned::deallocate(p, "free");
  Partitions::partition(home).locked([&filler](auto& heap) {
    for (Block* b : filler) heap.release(b);
    return 0;
  });
}

// free()'s fast path compares only the top byte of a block's second word with the cache
// key's; a live block whose data ends that word with the same byte is cached all the same
// (by the slow path, which compares the whole word), and a real double free still stops.
TEST(PartitionedTest, ALiveBlockEndingInTheKeysByteIsCachedAndADoubleFreeStillStops) {
  void* warm = Partitioned::allocate(16);  // sets up the thread's cache (and the secret)
  Partitioned::deallocate(warm, "free");
  auto* p = static_cast<unsigned char*>(Partitioned::allocate(16));
  ASSERT_NE(p, nullptr);
  const auto key_byte =
      static_cast<unsigned char>(allocator::process_secret() >> allocator::kSecretTopShift);
  ASSERT_GE(key_byte, allocator::kKeyByteFirst);
  ASSERT_LE(key_byte, allocator::kKeyByteLast);
  p[15] = key_byte;  // the last byte of the payload's second word
  Partitioned::deallocate(p, "free");
  EXPECT_EQ(Partitioned::allocate(16), p) << "cached: the next malloc of its class takes it";
  p[15] = key_byte;
  Partitioned::deallocate(p, "free");
  EXPECT_DEATH(Partitioned::deallocate(p, "free"), "double free");
}

TEST(PartitionedTest, FreesFromAnotherThreadCoalesceInTheOwningPartition) {
  void* x = nullptr;
  void* y = nullptr;
  void* guard = nullptr;
  std::thread([&] {
    x = Partitioned::allocate(kUncached);
    y = Partitioned::allocate(kUncached);
    guard = Partitioned::allocate(kUncached);  // keeps x and y from merging into the top
  }).join();
  ASSERT_NE(Partitions::owner_of(x), nullptr);
  ASSERT_EQ(Partitions::owner_of(y), Partitions::owner_of(x));
  const std::size_t block = Block::of_payload(x)->size();
  ASSERT_EQ(static_cast<char*>(y), static_cast<char*>(x) + block) << "x and y are neighbours";
  std::thread([&] {
    Partitioned::deallocate(y, "free");
    Partitioned::deallocate(x, "free");
  }).join();
  bool free = false;
  std::size_t size = 0;
  Partitions::owner_of(x)->locked([&](auto&) {
    const Block* merged = Block::of_payload(x);
    free = !merged->in_use();
    size = merged->size();
    return 0;
  });
  EXPECT_TRUE(free);
  EXPECT_EQ(size, 2 * block) << "the two neighbours became one free block";
  Partitioned::deallocate(guard, "free");
}

TEST(PartitionedTest, CrossThreadSmallFreesReachTheirPartitionsAtThreadExit) {
  constexpr int kBlocks = 5000;
  std::vector<void*> blocks(kBlocks);
  std::thread([&] {
    for (void*& p : blocks) p = Partitioned::allocate(100);
  }).join();
  const std::size_t in_use = Partitioned::statistics().heap_in_use_bytes();
  std::thread([&] {
    for (void* p : blocks) Partitioned::deallocate(p, "free");
  }).join();
  EXPECT_EQ(Partitioned::statistics().heap_in_use_bytes(), in_use - kBlocks * 128);
  const void* where = nullptr;
  EXPECT_EQ(Partitioned::check_heap(&where), nullptr) << where;
}

// A live block whose left neighbour is free goes back to its partition when it is freed, and
// coalesces there, instead of standing in the middle of free memory from the thread's cache.
TEST(PartitionedTest, ABlockBesideFreeMemoryCoalescesInsteadOfStayingInTheCache) {
  using Map = Partitions::Map;
  const std::size_t block = Map::block_size(Map::class_of(100));  // a class the caches keep
  std::thread([block] {
    Partitioned::deallocate(Partitioned::allocate(100), "free");  // sets up the cache
    PartitionHeap& heap = Partitions::partition(Partitions::home_partition());
    // Three neighbours (the third keeps the two from merging into the free top), taken from
    // the heap (the blocks before them, which filled holes, go back afterwards).
    std::vector<Block*> taken;
    taken.reserve(4096);
    heap.locked([&](auto& h) {
      while (taken.size() < taken.capacity()) {
        taken.push_back(h.allocate(block));
        const std::size_t n = taken.size();
        if (n >= 3 && taken[n - 2] == taken[n - 3]->right() &&
            taken[n - 1] == taken[n - 2]->right())
          break;
      }
      return nullptr;
    });
    ASSERT_LT(taken.size(), taken.capacity()) << "three neighbours";
    Block* guard = taken.back();
    taken.pop_back();
    Block* b = taken.back();
    taken.pop_back();
    Block* left = taken.back();
    taken.pop_back();
    heap.locked([&](auto& h) { return h.release(left), nullptr; });
    ASSERT_TRUE(b->prev_free());
    const std::size_t cached = Partitioned::statistics().thread_cache_bytes;
    Partitioned::deallocate(b->payload(), "free");
    EXPECT_EQ(Partitioned::statistics().thread_cache_bytes, cached) << "not cached";
    heap.locked([&](auto&) {
      EXPECT_FALSE(left->in_use());
      EXPECT_GE(left->size(), 2 * block) << "b joined its free neighbour";
      return nullptr;
    });
    Partitioned::deallocate(guard->payload(), "free");
    heap.locked([&](auto& h) {
      for (Block* t : taken) h.release(t);
      return nullptr;
    });
  }).join();
}

// The exception: the newest block of a thread's aligned allocation, whose free neighbour is
// the lead its alignment left, goes into the cache, where the next aligned request of its
// size takes it back.
TEST(PartitionedTest, AnAlignedBlockBesideItsFreeLeadComesBackFromTheCache) {
  std::thread([] {
    void* p = Partitioned::allocate_aligned(4096, 200);
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(Block::of_payload(p)->prev_free()) << "its lead is free";
    Partitioned::deallocate(p, "free");
    void* q = Partitioned::allocate_aligned(4096, 200);
    EXPECT_EQ(q, p);
    Partitioned::deallocate(q, "free");
  }).join();
}

// When a partition's best fit for a cache's refill is a block a little too big for the bin
// (one it would not split), the request takes that block: no other partition grows for it.
TEST(PartitionedTest, ARefillWhoseBestFitIsALittleTooBigGivesThatBlockToTheRequest) {
  using Map = Partitions::Map;
  const unsigned i = Map::class_of(3000);
  const std::size_t block = Map::block_size(i);
  std::thread([&] {
    Partitioned::deallocate(Partitioned::allocate(16), "free");  // sets up the cache
    const unsigned home = Partitions::home_partition();
    std::vector<std::size_t> committed;
    for (unsigned k = 0; k < Partitions::partition_count(); ++k) {
      committed.push_back(
          Partitions::partition(k).locked([](auto& h) { return h.stats().committed_bytes; }));
    }
    // The home's free memory taken, but for one free block 16 bytes bigger than the class.
    std::vector<Block*> filler;
    filler.reserve(4096);
    Block* odd = nullptr;
    Partitions::partition(home).locked([&](auto& heap) {
      odd = heap.allocate(block + 16, allocator::Growth::kNone);
      for (std::size_t size = std::size_t{1} << 20; size >= allocator::kMinBlock; size /= 2) {
        while (filler.size() < filler.capacity()) {
          Block* b = heap.allocate(size, allocator::Growth::kNone);
          if (b == nullptr) break;
          filler.push_back(b);
        }
      }
      heap.release(odd);
      return nullptr;
    });
    ASSERT_NE(odd, nullptr);
    ASSERT_EQ(odd->size(), block + 16) << "(no smaller free block was left to merge with)";
    void* p = Partitioned::allocate(3000);
    EXPECT_EQ(p, odd->payload()) << "the request took the block a little too big";
    for (unsigned k = 0; k < Partitions::partition_count(); ++k) {
      EXPECT_EQ(Partitions::partition(k).locked([](auto& h) { return h.stats().committed_bytes; }),
                committed[k])
          << "partition " << k << " grew";
    }
    Partitioned::deallocate(p, "free");
    Partitions::partition(home).locked([&filler](auto& heap) {
      for (Block* b : filler) heap.release(b);
      return nullptr;
    });
  }).join();
}

TEST(PartitionedTest, ThreadsFromEveryPartitionAllocateConcurrently) {
  const unsigned threads = 2 * Partitions::partition_count() + 1;
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&failures, t] {
      std::vector<unsigned char*> held;
      for (int i = 0; i < 20000; ++i) {
        const std::size_t bytes = 16 + (i * 37 + t * 101) % 50000;
        auto* p = static_cast<unsigned char*>(Partitioned::allocate(bytes));
        p[0] = static_cast<unsigned char>(t);
        p[bytes - 1] = static_cast<unsigned char>(i);
        held.push_back(p);
        if (held.size() > 64) {
          if (held.front()[0] != static_cast<unsigned char>(t)) ++failures;
          Partitioned::deallocate(held.front(), "free");
          held.erase(held.begin());
        }
      }
      for (unsigned char* p : held) Partitioned::deallocate(p, "free");
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(failures.load(), 0);
  const void* where = nullptr;
  EXPECT_EQ(Partitioned::check_heap(&where), nullptr) << where;
}

}  // namespace
}  // namespace polymalloc::variants
