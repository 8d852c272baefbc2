// ClassCore over a test assembly of shared parts: one locked heap with thread caches in front,
// its classes a type parameter. What the core promises whatever the parts: requests follow
// the size map (so changing a variant's classes is its one Map line), a freed block goes to
// the caller's cache and comes back first, a full bin sends half of itself to the pool, large
// requests are mappings, zero and NULL are served off the fast paths, a sized delete with the
// wrong size is reported, and statistics count cached blocks as free.
#include "allocator/class_core.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "allocator/heap_pool.h"
#include "allocator/locked_heap.h"
#include "allocator/thread_cache.h"
#include "platform/platform.h"

namespace polymalloc::allocator {
namespace {

// One heap behind thread caches, for a class policy of the test's choosing.
template <class Classes>
struct OneCachedHeap {
  using Map = SizeMap<Classes>;
  using Heap = LockedHeap<platform::ReservedRange, kNoQuickLists>;
  static constexpr bool kCachesInFront = true;
  static constexpr bool kOneHeap = true;

  static Heap* owner_of(const void* p) { return heap.contains(p) ? &heap : nullptr; }
  static Heap& heap_of_owned(const void*) { return heap; }
  template <class F>
  static Block* with_some_heap(F f) {
    return heap.locked(f);
  }
  template <class F>
  static Block* with_home_heap(F f) {
    return heap.locked(f);
  }
  template <class F>
  static void for_each_heap(F f) {
    f(heap);
  }
  static void prepare_fork() { heap.prepare_fork(); }
  static void after_fork_in_parent() { heap.after_fork_in_parent(); }
  static void after_fork_in_child() { heap.after_fork_in_child(); }

  static inline platform::PageMap pages;
  static inline Heap heap{&pages, std::uint16_t{1}};
};

template <class Classes>
struct TestConfig {
  static constexpr const char* kName = "test";
  using Map = SizeMap<Classes>;
  using Pool = HeapPool<OneCachedHeap<Classes>>;
  using Caches = ThreadCaches<ClassCore<TestConfig>, Map>;
};

template <class Classes>
class ClassCoreTest : public ::testing::Test {
 protected:
  using TestedCore = ClassCore<TestConfig<Classes>>;
  using TestedMap = SizeMap<Classes>;

  void TearDown() override {
    const void* where = nullptr;
    const char* problem = TestedCore::check_heap(&where);
    EXPECT_EQ(problem, nullptr) << problem << " at " << where;
  }
};

// The policies: the same core and parts follow whichever the config names.
using Policies = ::testing::Types<PowerOfTwoClasses, QuarterPowerClasses, SnugQuarterPowerClasses,
                                  FinerClassesAbove<SnugQuarterPowerClasses, 15, 4>>;
TYPED_TEST_SUITE(ClassCoreTest, Policies);

TYPED_TEST(ClassCoreTest, UsableSizesFollowTheSizeMap) {
  using Core = typename TestFixture::TestedCore;
  using Map = typename TestFixture::TestedMap;
  for (std::size_t n = 1; n <= Map::kMaxRequest; n += n < 4096 ? 7 : n / 3) {
    void* p = Core::allocate(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 16, 0u);
    const std::size_t block = Map::block_size(Map::class_of(n));
    // (a heap hands out a block a little bigger rather than leave a remainder too small to
    // be a block)
    EXPECT_GE(Core::usable_size(p), block - Block::kHeaderBytes) << n;
    EXPECT_LT(Core::usable_size(p), block - Block::kHeaderBytes + kMinBlock) << n;
    EXPECT_EQ(Map::block_for(n), block) << n;
    std::memset(p, 0x5a, n);
    Core::deallocate(p, "free");
  }
}

TYPED_TEST(ClassCoreTest, AFreedBlockComesBackFirstFromTheCallersCache) {
  using Core = typename TestFixture::TestedCore;
  void* a = Core::allocate(100);
  void* b = Core::allocate(100);
  Core::deallocate(a, "free");
  Core::deallocate(b, "free");
  EXPECT_EQ(Core::allocate(100), b) << "last in, first out";
  EXPECT_EQ(Core::allocate(100), a);
  Core::deallocate(a, "free");
  Core::deallocate(b, "free");
}

TYPED_TEST(ClassCoreTest, AFullBinSendsHalfOfItselfToThePoolAndCachedBlocksCountAsFree) {
  using Core = typename TestFixture::TestedCore;
  using Caches = typename TestConfig<TypeParam>::Caches;
  using Map = typename TestFixture::TestedMap;
  const unsigned i = Map::class_of(200);
  const std::uint32_t capacity = Caches::ThreadCache::capacity(i);
  // On a thread of its own, whose cache is fresh (the main thread's bins may have used its
  // share already). Hold several bins' worth, then free them until a bin that can grow no
  // more overflows.
  std::thread([&] {
    std::vector<void*> held;
    for (std::uint32_t k = 0; k < 4 * capacity; ++k) held.push_back(Core::allocate(200));
    auto* cache = Caches::enter();
    ASSERT_NE(cache, nullptr);
    const Statistics before = Core::statistics();
    std::size_t freed = 0;
    std::uint32_t count = 0;
    std::uint32_t max = 0;
    while (freed < held.size()) {
      count = cache->count(i);
      max = cache->max_count(i);
      Core::deallocate(held[freed++], "free");
      if (cache->count(i) <= count) break;  // it gave some back
    }
    ASSERT_LT(freed, held.size()) << "the bin never filled";
    EXPECT_GE(max, 2u) << "the bin grew as it overflowed";
    EXPECT_LE(max, capacity);
    EXPECT_EQ(count, max) << "only a full bin gives blocks back";
    EXPECT_EQ(cache->count(i), max - (max + 1) / 2 + 1) << "a full bin gave half back";
    const Statistics after = Core::statistics();
    EXPECT_EQ(after.heap_in_use_bytes() + freed * Map::block_size(i), before.heap_in_use_bytes())
        << "cached blocks count as free";
    EXPECT_GE(after.thread_caches, 1u);
    EXPECT_GE(after.thread_cache_bytes, cache->count(i) * Map::block_size(i));
    EXPECT_GE(after.thread_cache_bound, kThreadCacheMinBytes) << "at least one thread's share";
    for (std::size_t k = freed; k < held.size(); ++k) Core::deallocate(held[k], "free");
  }).join();
}

TYPED_TEST(ClassCoreTest, LargeRequestsAreMappingsAndZeroAndNullWork) {
  using Core = typename TestFixture::TestedCore;
  using Map = typename TestFixture::TestedMap;
  static_assert(Core::kTakesZeroAndNull);
  static_assert(Map::kMaxRequest < (std::size_t{2} << 20));
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  void* buffer = Core::allocate(2 * kMiB);  // past every class, below the initial threshold
  ASSERT_NE(buffer, nullptr);
  EXPECT_EQ(Core::statistics().mapped_objects, 0u) << "the heap serves a 2 MiB buffer";
  Core::deallocate(buffer, "free");
  void* big = Core::allocate(8 * kMiB);  // past the heap threshold
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(Core::statistics().mapped_objects, 1u);
  Core::deallocate(big, "free");
  EXPECT_EQ(Core::statistics().mapped_objects, 0u);
  // The adaptive threshold: once a mapping that big was freed, the heap serves the size,
  // after the freed mapping (cached, its pages resident) is taken again.
  EXPECT_GT(Core::statistics().heap_threshold_bytes, 8 * kMiB);
  const std::size_t hits = Core::statistics().mapping_cache_hits;
  void* again = Core::allocate(8 * kMiB);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Core::statistics().mapped_objects, 1u);
  EXPECT_EQ(Core::statistics().mapping_cache_hits, hits + 1) << "the freed mapping is reused";
  void* from_heap = Core::allocate(8 * kMiB);
  ASSERT_NE(from_heap, nullptr);
  EXPECT_EQ(Core::statistics().mapped_objects, 1u) << "the heap serves the size now";
  EXPECT_GE(Core::usable_size(from_heap), 8 * kMiB);
  Core::deallocate(from_heap, "free");
  Core::deallocate(again, "free");
  void* zero = Core::allocate(0);
  ASSERT_NE(zero, nullptr);
  EXPECT_GE(Core::usable_size(zero), 1u);
  Core::deallocate(zero, "free");
  Core::deallocate(nullptr, "free");  // does nothing
}

TYPED_TEST(ClassCoreTest, SizedDeleteTakesTheClassFromTheSize) {
  using Core = typename TestFixture::TestedCore;
  void* p = Core::allocate(48);
  Core::deallocate_sized(p, 48, "operator delete");
  EXPECT_EQ(Core::allocate(48), p) << "cached by the size it was given";
  Core::deallocate_sized(p, 48, "operator delete");
}

TYPED_TEST(ClassCoreTest, ABigBlockFreedComesBackFromTheCallersBigSlot) {
  using Core = typename TestFixture::TestedCore;
  using Map = typename TestFixture::TestedMap;
  using Caches = typename TestConfig<TypeParam>::Caches;
  constexpr std::size_t kBytes = std::size_t{256} << 10;
  ASSERT_GT(Map::block_for(kBytes), Caches::Bins::kMaxBlock) << "above the bins";
  ASSERT_LE(Map::block_for(kBytes), Caches::Bins::kBigSlotMaxBlock) << "the slot takes it";
  Core::trim(0);  // empties the caller's cache (earlier tests left blocks in it)
  void* p = Core::allocate(kBytes);
  ASSERT_NE(p, nullptr);
  const Statistics before = Core::statistics();
  const std::size_t in_bins = Caches::enter()->cached_bytes();
  Core::deallocate(p, "free");
  EXPECT_EQ(Caches::enter()->cached_bytes(), in_bins + Map::block_for(kBytes))
      << "kept in the slot";
  EXPECT_EQ(Core::statistics().heap_in_use_bytes() + Map::block_for(kBytes),
            before.heap_in_use_bytes())
      << "a slotted block counts as free";
  EXPECT_EQ(Core::allocate(kBytes), p) << "taken straight back";
  constexpr std::size_t kOther = kBytes / 2 + kBytes / 4;  // another big class
  void* other = Core::allocate(kOther);
  Core::deallocate(p, "free");
  Core::deallocate(other, "free");  // the slot is taken: to the pool
  EXPECT_EQ(Caches::enter()->cached_bytes(), in_bins + Map::block_for(kBytes));
  void* again = Core::allocate(kOther);  // not the slot's class: the slot is emptied
  EXPECT_EQ(Caches::enter()->cached_bytes(), in_bins);
  Core::deallocate(again, "free");  // and takes the next big block freed
  EXPECT_EQ(Caches::enter()->cached_bytes(), in_bins + Map::block_for(kOther));
  Core::trim(0);  // empties the caller's cache, slot included
  EXPECT_EQ(Caches::enter()->cached_bytes(), 0u);
}

TYPED_TEST(ClassCoreTest, FewThreadsAtOnceKeepABigBlockAndAThreadThatExitsGivesItsCreditBack) {
  using Core = typename TestFixture::TestedCore;
  using Caches = typename TestConfig<TypeParam>::Caches;
  constexpr std::size_t kBytes = std::size_t{256} << 10;
  constexpr std::uint32_t kCredits = Caches::Bins::kBigSlotCredits;
  auto slotted_threads = [] {
    std::size_t kept = 0;
    Caches::for_each([&kept](const auto& cache) { kept += cache.has_big_credit() ? 1 : 0; });
    return kept;
  };
  // Threads that keep a big block each and wait until all have freed theirs.
  std::atomic<unsigned> freed{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kCredits + 4; ++t) {
    threads.emplace_back([&] {
      Core::deallocate(Core::allocate(kBytes), "free");
      freed.fetch_add(1);
      while (!done.load()) std::this_thread::yield();
    });
  }
  while (freed.load() < kCredits + 4) std::this_thread::yield();
  EXPECT_EQ(slotted_threads(), kCredits) << "the others' blocks went back to the pool";
  done.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(slotted_threads(), 0u) << "exiting threads emptied their slots";
  std::thread([] {
    Core::deallocate(Core::allocate(kBytes), "free");
    EXPECT_TRUE(Caches::enter()->has_big_credit()) << "the credits came back";
  }).join();
}

TYPED_TEST(ClassCoreTest, ReallocWithinTheClassKeepsTheBlockAndGrowingTakesTheTop) {
  using Core = typename TestFixture::TestedCore;
  using Map = typename TestFixture::TestedMap;
  void* p = Core::allocate(100);
  const std::size_t usable = Core::usable_size(p);
  EXPECT_EQ(Core::reallocate(p, usable), p) << "the same class";
  EXPECT_EQ(Map::block_for(usable - 15), Map::block_for(usable));
  EXPECT_EQ(Core::reallocate(p, usable - 15), p);
  Core::deallocate(p, "free");
  // A buffer of a page or more that must move to grow lands at the heap's free top, where
  // it grows in place from then on.
  void* held = Core::allocate(4000);  // a block in use after it: no room to grow
  void* buffer = Core::allocate(5000);
  void* after = Core::allocate(4000);
  std::memset(buffer, 0x3c, 5000);
  buffer = Core::reallocate(buffer, 12000);
  ASSERT_NE(buffer, nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(buffer)[4999], 0x3c);
  EXPECT_EQ(Core::reallocate(buffer, 100000), buffer) << "grew in place at the top";
  Core::deallocate(buffer, "free");
  Core::deallocate(held, "free");
  Core::deallocate(after, "free");
}

TYPED_TEST(ClassCoreTest, ReallocOfNullStartsABufferOfAPageAtTheTopWhereItGrowsInPlace) {
  using Core = typename TestFixture::TestedCore;
  void* cached = Core::allocate(4096);
  Core::deallocate(cached, "free");  // in the caller's cache: malloc(4096) would take it
  void* buffer = Core::allocate_to_grow(4096);
  ASSERT_NE(buffer, nullptr);
  EXPECT_NE(buffer, cached) << "not the cached block, whose neighbour is in use";
  std::memset(buffer, 0x5a, 4096);
  for (std::size_t bytes = 8192; bytes <= (std::size_t{1} << 20); bytes *= 2) {
    EXPECT_EQ(Core::reallocate(buffer, bytes), buffer) << "grew in place to " << bytes;
  }
  EXPECT_EQ(static_cast<unsigned char*>(buffer)[4095], 0x5a);
  Core::deallocate(buffer, "free");
  void* small = Core::allocate_to_grow(100);
  void* again = Core::allocate(100);
  Core::deallocate(again, "free");
  Core::deallocate(small, "free");
  EXPECT_EQ(Core::allocate_to_grow(100), small) << "a small one is malloc's, from the cache";
  Core::deallocate(small, "free");
}

// A heap hands out a block a little bigger than the class asked for where splitting it
// would leave less than a block (quarter-power classes are 16 bytes apart at the small
// end, so that block can be exactly another class's size): a sized delete of the size that
// was asked for is right all the same. Random sizes and lifetimes meet that case many times.
TEST(ClassCoreTest, ASizedDeleteOfTheSizeAskedForIsNeverReported) {
  using Core = ClassCore<TestConfig<QuarterPowerClasses>>;
  std::uint64_t state = 7;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  void* held[256] = {};
  std::size_t sizes[256] = {};
  for (int i = 0; i < 300000; ++i) {
    const std::size_t slot = next() % 256;
    if (held[slot] != nullptr) Core::deallocate_sized(held[slot], sizes[slot], "operator delete");
    sizes[slot] = 1 + next() % (next() % 8 == 0 ? 5000 : 300);
    held[slot] = Core::allocate(sizes[slot]);
    ASSERT_NE(held[slot], nullptr);
  }
  for (std::size_t slot = 0; slot < 256; ++slot) {
    Core::deallocate_sized(held[slot], sizes[slot], "operator delete");
  }
}

template <class Core>
void delete_with_the_wrong_size() {
  void* p = Core::allocate(24);
  Core::deallocate_sized(p, 4000, "operator delete");
}

TEST(ClassCoreDeathTest, ASizedDeleteWithTheWrongSizeIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  using Core = ClassCore<TestConfig<QuarterPowerClasses>>;
  EXPECT_DEATH(delete_with_the_wrong_size<Core>(),
               "polymalloc: operator delete\\(\\): size does not match the block of 0x");
}

TEST(ClassCoreDeathTest, ADoubleFreeOfACachedBlockIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  using Core = ClassCore<TestConfig<PowerOfTwoClasses>>;
  EXPECT_DEATH(
      {
        void* p = Core::allocate(64);
        Core::deallocate(p, "free");
        Core::deallocate(p, "free");
      },
      "polymalloc: free\\(\\): double free of 0x");
}

TEST(ClassCoreDeathTest, ADoubleFreeOfABlockInTheBigSlotIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  using Core = ClassCore<TestConfig<QuarterPowerClasses>>;
  EXPECT_DEATH(
      {
        void* p = Core::allocate(std::size_t{200} << 10);
        Core::deallocate(p, "free");
        Core::deallocate(p, "free");
      },
      "polymalloc: free\\(\\): double free of 0x");
}

}  // namespace
}  // namespace polymalloc::allocator
