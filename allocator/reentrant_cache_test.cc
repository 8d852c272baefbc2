// ReentrantCache and its table: an operation holds the thread's cache (a signal handler
// finds a closed one), LIFO bins with a capacity, oldest-first draining, one cache per thread, and
// the exit flush.
#include "allocator/reentrant_cache.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <thread>
#include <vector>

#include "allocator/size_map.h"

namespace polymalloc::allocator {
namespace {

using Map = SizeMap<PowerOfTwoClasses>;
using Cache = ReentrantCache<Map, 4>;  // 32, 64, 128, 256 B

std::vector<Block*> fresh_blocks(std::size_t n) {
  std::vector<Block*> blocks;
  for (std::size_t i = 0; i < n; ++i) blocks.push_back(Block::at(std::aligned_alloc(16, 64)));
  return blocks;
}
void free_blocks(const std::vector<Block*>& blocks) {
  for (Block* b : blocks) std::free(b);
}

// A cache with slots of its own, open (as a claimed table slot's is).
struct OpenCache : Cache {
  Cache::Slots slots{};
  OpenCache() {
    attach(&slots);
    open();
  }
};

TEST(ReentrantCacheTest, BinsHoldAboutSixtyFourKibibytesWithinBounds) {
  EXPECT_EQ(Cache::capacity(0), 64u);  // 32 B: 2048 would fit, 64 is the most
  EXPECT_EQ(Cache::capacity(3), 64u);  // 256 B
  EXPECT_EQ(Cache::batch(3), 32u);     // half a bin moves at a time
  EXPECT_EQ((ReentrantCache<Map, 11>::capacity(6)), 32u);  // 2 KiB
  EXPECT_EQ((ReentrantCache<Map, 11>::capacity(8)), 8u);   // 8 KiB
  EXPECT_EQ((ReentrantCache<Map, 11>::capacity(10)), 2u);  // 32 KiB: at least 2
  EXPECT_EQ((ReentrantCache<Map, 11>::batch(10)), 1u);
}

TEST(ReentrantCacheTest, BinsWithoutSlotsOrClosedTakeNothing) {
  static Cache cache;
  Block* b = fresh_blocks(1)[0];
  EXPECT_FALSE(cache.push(0, b)) << "no slots yet";
  EXPECT_EQ(cache.pop(0), nullptr);
  static Cache::Slots slots;
  cache.attach(&slots);
  EXPECT_FALSE(cache.push(0, b)) << "attached, but not open";
  cache.open();
  EXPECT_TRUE(cache.push(0, b));
  cache.close();
  Block* other = fresh_blocks(1)[0];
  EXPECT_FALSE(cache.push(0, other)) << "closed";
  EXPECT_EQ(cache.pop(0), b) << "what a closed bin holds stays until taken";
  EXPECT_EQ(cache.detach(), &slots);
  free_blocks({b, other});
}

TEST(ReentrantCacheTest, BinsAreLastInFirstOutUpToTheirCapacity) {
  static OpenCache cache;
  const auto blocks = fresh_blocks(Cache::capacity(1) + 1);
  for (std::uint32_t k = 0; k < Cache::capacity(1); ++k) EXPECT_TRUE(cache.push(1, blocks[k]));
  EXPECT_FALSE(cache.push(1, blocks.back())) << "full";
  EXPECT_EQ(cache.count(1), Cache::capacity(1));
  EXPECT_EQ(cache.pop(1), blocks[Cache::capacity(1) - 1]);
  EXPECT_EQ(cache.pop(0), nullptr);
  const void* where = nullptr;
  EXPECT_EQ(cache.check([](const Block*, unsigned) -> const char* { return nullptr; }, &where),
            nullptr);
  free_blocks(blocks);
}

TEST(ReentrantCacheTest, TakeOldestLeavesTheMostRecentlyCached) {
  static OpenCache cache;
  const auto blocks = fresh_blocks(6);
  for (Block* b : blocks) ASSERT_TRUE(cache.push(2, b));
  const BlockChain oldest = cache.take_oldest(2, 4);
  EXPECT_EQ(oldest.count, 4u);
  EXPECT_EQ(oldest.head, blocks[3]);  // the chain runs newest to oldest: 3, 2, 1, 0
  std::uint32_t n = 0;
  for (Block* b = oldest.head; b != nullptr; b = b->next()) ++n;
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(cache.count(2), 2u);
  EXPECT_EQ(cache.pop(2), blocks[5]);
  EXPECT_EQ(cache.take_oldest(2, 0).count, 1u) << "0 takes everything";
  EXPECT_EQ(cache.pop(2), nullptr);
  free_blocks(blocks);
}

// A cached block's first word is a guard; a use after free that changes it is reported when
// the block leaves the bin (these bins keep no key: signal_safe's headers tell a cached
// block).
TEST(ReentrantCacheTest, ABlockInABinCarriesTheGuardAndNoKey) {
  static OpenCache cache;
  Block* b = fresh_blocks(1)[0];
  b->set_key_word(12345);
  ASSERT_TRUE(cache.push(1, b));
  EXPECT_EQ(b->guard_word(), Cache::kGuard);
  EXPECT_EQ(b->key_word(), 12345u);
  EXPECT_EQ(cache.pop(1), b);
  free_blocks({b});
}

TEST(ReentrantCacheDeathTest, ABlockWrittenToWhileCachedIsReportedWhenItLeaves) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const char* report = "^polymalloc: malloc\\(\\): corrupted free list \\(a freed block was "
                       "written to\\): cached block 0x[0-9a-f]+\n$";
  EXPECT_DEATH(
      {
        static OpenCache cache;
        Block* b = fresh_blocks(1)[0];
        cache.push(1, b);
        b->set_guard_word(b->guard_word() ^ 0x100);  // one bit of the first word, as a stray write
        cache.pop(1);
      },
      report);
  EXPECT_DEATH(
      {
        static OpenCache cache;
        const auto blocks = fresh_blocks(3);
        for (Block* b : blocks) cache.push(1, b);
        blocks[0]->set_guard_word(0);
        cache.take_oldest(1, 2);  // on its way back to the pool
      },
      report);
}

// A backend that counts what thread exits hand back.
struct CountingBackend {
  static inline std::atomic<int> flushed_blocks{0};
  static void flush(Cache& c) {
    for (unsigned i = 0; i < 4; ++i) {
      BlockChain chain = c.take_oldest(i, 0);
      for (Block* b = chain.head; b != nullptr;) {
        Block* next = b->next();
        std::free(b);
        b = next;
        flushed_blocks.fetch_add(1);
      }
    }
  }
};
using Caches = ReentrantCaches<Cache, CountingBackend, 4>;

// Whether the cache an entry holds takes a block of class 0 and gives it back (the closed
// cache takes nothing). The block is static: a signal handler calls this too.
bool caches_a_block(const Caches::Entry& entry) {
  alignas(16) static unsigned char memory[64];
  if (!entry) return false;
  Block* b = Block::at(memory);
  const bool taken = entry->push(0, b);
  if (taken) {
    EXPECT_EQ(entry->pop(0), b);
  }
  return taken;
}

TEST(ReentrantCachesTest, AnOperationHoldsTheCacheUntilItEnds) {
  {
    const auto entry = Caches::enter_or_set_up();
    ASSERT_TRUE(caches_a_block(entry));
    const auto nested = Caches::enter();
    EXPECT_NE(&*nested, &*entry) << "a handler interrupting the operation must keep out";
    EXPECT_FALSE(caches_a_block(nested)) << "and finds a cache that takes nothing";
    EXPECT_FALSE(Caches::enter_or_set_up()) << "and must not set up another cache";
  }
  const auto again = Caches::enter();
  EXPECT_TRUE(caches_a_block(again)) << "the cache is the thread's again once the operation ends";
}

TEST(ReentrantCachesTest, AThreadWithoutACacheFindsOneThatTakesNothing) {
  std::thread([] {
    const auto entry = Caches::enter();  // the fast paths' view: never empty, never set up
    ASSERT_TRUE(entry);
    EXPECT_FALSE(caches_a_block(entry));
  }).join();
}

bool handler_got_in = true;
void try_from_handler(int) { handler_got_in = caches_a_block(Caches::enter()); }

TEST(ReentrantCachesTest, ASignalHandlerFindsNoCacheMidOperation) {
  ASSERT_NE(Caches::mine(), nullptr);
  struct sigaction action = {};
  action.sa_handler = &try_from_handler;
  struct sigaction old;
  ASSERT_EQ(sigaction(SIGUSR1, &action, &old), 0);
  {
    const auto entry = Caches::enter();
    ASSERT_TRUE(caches_a_block(entry));
    pthread_kill(pthread_self(), SIGUSR1);  // delivered before pthread_kill returns
  }
  EXPECT_FALSE(handler_got_in);
  pthread_kill(pthread_self(), SIGUSR1);
  EXPECT_TRUE(handler_got_in) << "outside an operation the handler may use the cache";
  sigaction(SIGUSR1, &old, nullptr);
}

TEST(ReentrantCachesTest, EachThreadHasItsOwnCacheAndExitFlushesIt) {
  Cache* main_cache = Caches::mine();
  ASSERT_NE(main_cache, nullptr);
  EXPECT_EQ(Caches::mine(), main_cache);
  Cache* other = nullptr;
  std::thread([&] {
    other = Caches::mine();
    ASSERT_NE(other, nullptr);
    for (Block* b : fresh_blocks(5)) ASSERT_TRUE(other->push(0, b));
  }).join();
  EXPECT_NE(other, main_cache);
  EXPECT_EQ(CountingBackend::flushed_blocks.load(), 5);
  EXPECT_EQ(other->count(0), 0u);
  int claimed = 0;
  Caches::for_each([&](const Cache&) { ++claimed; });
  EXPECT_EQ(claimed, 1) << "the exited thread's slot went back";
}

TEST(ReentrantCachesTest, ThreadsBeyondTheTableGoWithoutACache) {
  ASSERT_NE(Caches::mine(), nullptr);  // the main thread holds one of the 4 slots
  std::vector<std::thread> threads;
  std::atomic<int> with_cache{0}, without{0};
  std::atomic<bool> release{false};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      (Caches::mine() != nullptr ? with_cache : without).fetch_add(1);
      while (!release.load()) std::this_thread::yield();
    });
  }
  while (with_cache.load() + without.load() < 6) std::this_thread::yield();
  release = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(with_cache.load(), 3) << "4 slots, one of them the main thread's";
  EXPECT_EQ(without.load(), 3);
}

}  // namespace
}  // namespace polymalloc::allocator
