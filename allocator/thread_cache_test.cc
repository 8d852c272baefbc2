// ThreadCaches through its backend seam: closed bins until a slow path sets one up, one cache per
// thread, bins sized by use within the thread's share of the total, statistics see every
// registered cache, a thread's exit hands its blocks to the backend, and a fork child keeps only
// the forking thread's cache.
#include "allocator/thread_cache.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "allocator/size_map.h"

namespace polymalloc::allocator {
namespace {

using Map = SizeMap<QuarterPowerClasses>;

// A backend that frees what thread exits hand back, and counts it.
struct CountingBackend {
  static inline std::atomic<int> flushed{0};
  template <class Cache>
  static void flush(Cache& cache) {
    for (unsigned i = 0; i < Cache::kBinCount; ++i) {
      for (Block* b = cache.take_oldest(i, 0).head; b != nullptr;) {
        Block* next = b->next();
        std::free(b);
        b = next;
        ++flushed;
      }
    }
  }
};
using Caches = ThreadCaches<CountingBackend, Map>;

// Zeroed: a fresh block's bytes are not the cache's key (AddressSanitizer fills new memory
// with a byte the key's top byte could be).
Block* fresh_block() {
  void* memory = std::aligned_alloc(16, 64);
  std::memset(memory, 0, 64);
  return Block::at(memory);
}

TEST(ThreadCachesTest, TheBinsAreClosedUntilASlowPathSetsTheCacheUp) {
  std::thread([] {
    Block* b = fresh_block();
    auto* bins = Caches::enter();  // the fast paths' view: the bins, whatever the state
    EXPECT_FALSE(bins->push(2, b)) << "the fast paths never set a cache up: a push fails";
    EXPECT_EQ(bins->pop(2), nullptr);
    auto* cache = Caches::enter_or_set_up();
    ASSERT_NE(cache, nullptr);
    EXPECT_EQ(Caches::enter(), cache);
    EXPECT_EQ(Caches::enter_or_set_up(), cache);
    EXPECT_FALSE(cache->push(2, b)) << "a bin takes nothing until its class is used";
    EXPECT_EQ(Caches::missed(*cache, 2), 1u) << "a miss sizes it for one block";
    EXPECT_TRUE(cache->push(2, b)) << "open once set up";
    EXPECT_EQ(cache->pop(2), b);
    std::free(b);
  }).join();
}

TEST(ThreadCachesTest, AnExitedThreadsSlotsServeTheNextThreadsCache) {
  const void* first = nullptr;
  const void* second = nullptr;
  std::thread([&] { first = Caches::enter_or_set_up()->slots(); }).join();
  std::thread([&] { second = Caches::enter_or_set_up()->slots(); }).join();
  EXPECT_NE(first, nullptr);
  EXPECT_EQ(second, first) << "slots are kept for reuse, not mapped per thread";
}

// The heaps' caches key their blocks (the second word) and refuse a block that bears the key:
// a second free of a cached block goes to the slow path, which reports it.
TEST(ThreadCachesTest, AKeyedBinRefusesABlockItHoldsAndClearsTheKeyOnTheWayOut) {
  auto* cache = Caches::enter_or_set_up();
  ASSERT_NE(cache, nullptr);
  Block* b = fresh_block();
  b->set_key_word(0);
  if (cache->max_count(3) == 0) Caches::missed(*cache, 3);
  ASSERT_TRUE(cache->push(3, b));
  EXPECT_NE(b->key_word(), 0u);
  EXPECT_FALSE(cache->push(3, b)) << "freed twice";
  EXPECT_EQ(cache->count(3), 1u);
  EXPECT_EQ(cache->pop(3), b);
  EXPECT_EQ(b->key_word(), 0u) << "the client never sees the secret";
  std::free(b);
}

TEST(ThreadCachesTest, ABlockBetweenClassesGoesToTheSpareBinWhichTakesNothing) {
  using Bins = Caches::Bins;
  const std::size_t between = Map::block_size(20) + 16;  // realloc may leave such a block
  ASSERT_EQ(Map::class_of_block(between), Map::kNotAClass);
  EXPECT_EQ(Bins::bin_of_block(between), Caches::kBins);
  EXPECT_EQ(Bins::bin_of_block(Map::block_size(20)), 20u);
  EXPECT_EQ(Bins::bin_of_block(Bins::kMaxBlock), Caches::kBins - 1);
  auto* cache = Caches::enter_or_set_up();
  ASSERT_NE(cache, nullptr);
  Block* b = fresh_block();
  EXPECT_FALSE(cache->push(Caches::kBins, b));
  std::free(b);
}

TEST(ThreadCachesTest, EachThreadHasItsOwnCacheAndItsExitFlushesIt) {
  auto* main_cache = Caches::enter_or_set_up();
  ASSERT_NE(main_cache, nullptr);
  const int flushed_before = CountingBackend::flushed;
  Caches::ThreadCache* other = nullptr;
  std::thread([&] {
    other = Caches::enter_or_set_up();
    ASSERT_NE(other, nullptr);
    for (int k = 0; k < 5; ++k) {
      Block* b = fresh_block();
      if (!other->push(2, b)) {
        EXPECT_EQ(Caches::overflowed(*other, 2), 0u) << "a full bin that may grow grows";
        ASSERT_TRUE(other->push(2, b));
      }
    }
    int registered = 0;
    Caches::for_each([&](const Caches::ThreadCache&) { ++registered; });
    EXPECT_GE(registered, 2) << "statistics see this cache and the main thread's";
  }).join();
  EXPECT_NE(other, main_cache);
  EXPECT_EQ(CountingBackend::flushed - flushed_before, 5) << "the exit handed the blocks back";
  int registered = 0;
  Caches::for_each([&](const Caches::ThreadCache&) { ++registered; });
  EXPECT_EQ(registered, 1) << "the exited thread's cache left the registry";
}

// Frees the blocks of a chain (what a review or a flush hands back).
int free_chain(BlockChain chain) {
  int n = 0;
  for (Block *b = chain.head, *next; b != nullptr; b = next, ++n) {
    next = b->next();
    std::free(b);
  }
  return n;
}

TEST(ThreadCachesTest, ABinDoublesAsItMissesUpToItsCapacity) {
  std::thread([] {
    auto* cache = Caches::enter_or_set_up();
    ASSERT_NE(cache, nullptr);
    const unsigned i = 2;  // 48-byte blocks: a whole bin is far below any share
    const std::uint32_t capacity = Caches::ThreadCache::capacity(i);
    EXPECT_EQ(cache->max_count(i), 0u);
    std::uint32_t expected = 1;
    for (int miss = 0; miss < 10; ++miss) {
      EXPECT_EQ(Caches::missed(*cache, i), (expected + 1) / 2) << "half the bin is taken";
      EXPECT_EQ(cache->max_count(i), expected);
      expected = expected * 2 > capacity ? capacity : expected * 2;
    }
    EXPECT_EQ(cache->max_count(i), capacity);
    EXPECT_EQ(cache->sized_bytes, capacity * Map::block_size(i));
  }).join();
}

TEST(ThreadCachesTest, TheBinsTogetherStayWithinTheThreadsShare) {
  std::thread([] {
    auto* cache = Caches::enter_or_set_up();
    ASSERT_NE(cache, nullptr);
    const std::size_t share = Caches::share();
    EXPECT_GE(share, kThreadCacheMinBytes);
    EXPECT_LE(share, Caches::max_share());
    // Every class misses until nothing grows: the sizes add up to at most the share.
    for (int round = 0; round < 12; ++round) {
      for (unsigned i = 0; i < Caches::kBins; ++i) Caches::missed(*cache, i);
      if (Caches::review_due(*cache)) cache->events = 0;  // (no review: only growth here)
    }
    std::size_t sized = 0;
    for (unsigned i = 0; i < Caches::kBins; ++i) {
      sized += cache->max_count(i) * Map::block_size(i);
    }
    EXPECT_EQ(sized, cache->sized_bytes);
    EXPECT_LE(sized, share);
    EXPECT_GT(sized, share / 2) << "the share is used";
  }).join();
}

TEST(ThreadCachesTest, AReviewHalvesTheIdleBinsAndHandsBackWhatTheyHeldAboveThat) {
  std::thread([] {
    auto* cache = Caches::enter_or_set_up();
    ASSERT_NE(cache, nullptr);
    const unsigned idle = 1;
    const unsigned busy = 2;
    for (int k = 0; k < 4; ++k) {  // both to 8 blocks
      Caches::missed(*cache, idle);
      Caches::missed(*cache, busy);
    }
    ASSERT_EQ(cache->max_count(idle), 8u);
    for (int k = 0; k < 8; ++k) ASSERT_TRUE(cache->push(idle, fresh_block()));
    // A review is due after enough events, all of them the busy bin's since the last one.
    auto review = [&] {
      int handed_back = 0;
      Caches::review(*cache, [&](unsigned i, BlockChain chain) {
        EXPECT_EQ(i, idle);
        handed_back += free_chain(chain);
      });
      return handed_back;
    };
    EXPECT_EQ(review(), 0) << "both were busy since the cache was set up";
    EXPECT_EQ(cache->max_count(idle), 8u);
    std::uint32_t events = 0;
    while (!Caches::review_due(*cache)) {
      Caches::missed(*cache, busy);
      ++events;
    }
    EXPECT_EQ(events, kCacheReviewEvents);
    const std::uint32_t busy_max = cache->max_count(busy);
    EXPECT_EQ(review(), 4) << "the idle bin kept its 4 newest";
    EXPECT_EQ(cache->max_count(idle), 4u);
    EXPECT_EQ(cache->count(idle), 4u);
    EXPECT_EQ(cache->max_count(busy), busy_max) << "a busy bin keeps its size";
    EXPECT_EQ(review() + review() + review(), 4);
    EXPECT_EQ(cache->max_count(idle), 0u) << "an idle bin shrinks to nothing";
    EXPECT_EQ(cache->count(idle), 0u);
    EXPECT_EQ(cache->max_count(busy), busy_max / 8) << "idle for three reviews";
    EXPECT_EQ(cache->sized_bytes, busy_max / 8 * Map::block_size(busy));
  }).join();
}

TEST(ThreadCachesTest, AForkChildKeepsOnlyTheForkingThreadsCache) {
  ASSERT_NE(Caches::enter_or_set_up(), nullptr);
  std::atomic<bool> ready{false}, leave{false};
  std::thread other([&] {
    Caches::enter_or_set_up();
    ready = true;
    while (!leave) std::this_thread::yield();
  });
  while (!ready) std::this_thread::yield();
  Caches::prepare_fork();
  const pid_t child = fork();
  if (child == 0) {
    Caches::after_fork_in_child();
    int registered = 0;
    Caches::for_each([&](const Caches::ThreadCache&) { ++registered; });
    _exit(registered == 1 && Caches::enter() != nullptr ? 0 : 1);
  }
  Caches::after_fork_in_parent();
  leave = true;
  other.join();
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace polymalloc::allocator
