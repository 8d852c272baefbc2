// LargeObjects: mappings sized to the request, alignment with the slack returned, mremap
// growth that keeps contents, counters, a refused mapping that changes nothing, and the
// registry that tells live blocks from freed and foreign addresses without reading them.
#include "allocator/large_objects.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <cstring>

#include "platform/fault_injection.h"

namespace polymalloc::allocator {
namespace {

// The end of a test that has freed every block: once its cache is emptied, `large` maps
// nothing (no mapping leaked, none counted twice).
void expect_nothing_mapped_once_the_cache_empties(LargeObjects& large) {
  large.release_cached(UINT64_MAX);
  EXPECT_EQ(large.stats().mapped_bytes, 0u);
}

constexpr std::size_t kMiB = std::size_t{1} << 20;

TEST(LargeObjectsTest, MappingHoldsTheRequestAndIsCounted) {
  static LargeObjects large;  // static: its registry's root is 512 KiB
  Block* b = large.allocate(3 * kMiB + 5);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(large.owns(b));
  large.check_live(b, "free");  // returns
  EXPECT_TRUE(b->in_use());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->payload()) % 16, 0u);
  EXPECT_GE(LargeObjects::usable_size(b), 3 * kMiB + 5);
  EXPECT_EQ(b->size(), MappingCache::class_length(3 * kMiB + 5 + Block::kHeaderBytes))
      << "a plain block's mapping is its class length (3.5 MiB: within 25 %)";
  std::memset(b->payload(), 0xab, LargeObjects::usable_size(b));
  EXPECT_EQ(large.stats().mapped_objects, 1u);
  EXPECT_EQ(large.stats().mapped_bytes, b->size());
  large.release(b);
  EXPECT_EQ(large.stats().mapped_objects, 0u);
  EXPECT_EQ(large.stats().mapped_bytes, 0u);
  EXPECT_GE(large.stats().peak_mapped_bytes, 3 * kMiB);
  EXPECT_EQ(large.stats().cache.mappings, 1u) << "the freed mapping is kept for reuse";
}

TEST(LargeObjectsTest, AFreedMappingServesTheNextRequestOfItsClassWithItsPages) {
  static LargeObjects large;
  Block* b = large.allocate(2 * kMiB - 200);  // the 2 MiB class
  ASSERT_NE(b, nullptr);
  std::memset(b->payload(), 0x5c, 2 * kMiB - 200);
  void* address = b->payload();
  large.release(b);
  EXPECT_TRUE(large.freed(b)) << "a cached block is a freed one: a second free is reported";
  bool fresh = true;
  Block* again = large.allocate(2 * kMiB - 100, 16, &fresh);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->payload(), address) << "the same class: the cached mapping";
  EXPECT_FALSE(fresh) << "not zero: calloc clears it";
  EXPECT_EQ(static_cast<unsigned char*>(again->payload())[kMiB], 0x5c) << "its pages stayed";
  EXPECT_TRUE(large.owns(again));
  EXPECT_EQ(large.stats().cache.hits, 1u);
  Block* other = large.allocate(5 * kMiB, 16, &fresh);  // another class: the OS
  EXPECT_TRUE(fresh);
  EXPECT_EQ(large.stats().cache.misses, 2u);
  large.release(again);
  large.release(other);
  EXPECT_GT(large.release_cached(UINT64_MAX), 0u);
  EXPECT_EQ(large.stats().cache.bytes, 0u);
}

// A request takes the smallest cached mapping that holds it (best fit), and the mapping's
// tail goes back: the block is a plain one of its own class, on the same pages.
TEST(LargeObjectsTest, ARequestReusesTheHeadOfABiggerCachedMapping) {
  static LargeObjects large;
  Block* big = large.allocate(4 * kMiB);
  ASSERT_NE(big, nullptr);
  std::memset(big->payload(), 0x3a, 4 * kMiB);
  void* address = big->payload();
  large.release(big);
  bool fresh = true;
  Block* smaller = large.allocate(3 * kMiB, 16, &fresh);
  ASSERT_NE(smaller, nullptr);
  EXPECT_EQ(smaller->payload(), address) << "the cached mapping";
  EXPECT_FALSE(fresh);
  EXPECT_EQ(smaller->size(), MappingCache::class_length(3 * kMiB + Block::kHeaderBytes))
      << "its head is the block";
  EXPECT_EQ(large.stats().cache.bytes, 5 * kMiB / 2 * 3 / 5) << "its 1.5 MiB tail is cached";
  EXPECT_EQ(static_cast<unsigned char*>(smaller->payload())[2 * kMiB], 0x3a);
  Block* tail = large.allocate(kMiB + kMiB / 4, 16, &fresh);  // a 1.5 MiB class
  ASSERT_NE(tail, nullptr);
  EXPECT_FALSE(fresh) << "the tail, with its pages";
  EXPECT_EQ(static_cast<unsigned char*>(tail->payload())[100], 0x3a);
  EXPECT_EQ(large.stats().cache.bytes, 0u);
  large.release(tail);
  large.release(smaller);
  large.release_cached(UINT64_MAX);
  Block* small = large.allocate(kMiB, 16, &fresh);  // nothing cached: the OS
  EXPECT_TRUE(fresh);
  large.release(small);
  large.release_cached(UINT64_MAX);
  EXPECT_EQ(large.stats().cache.bytes, 0u);
}

// However much bigger the cached mapping is, its whole tail stays cached, as mappings of class
// lengths, biggest first: no resident page is unmapped for a small request.
TEST(LargeObjectsTest, ASmallRequestSplitsAMuchBiggerCachedMappingAndItsWholeTailStays) {
  static LargeObjects large;
  Block* big = large.allocate(6 * kMiB);  // a 7 MiB mapping
  ASSERT_NE(big, nullptr);
  ASSERT_EQ(big->size(), 7 * kMiB);
  std::memset(big->payload(), 0x6b, LargeObjects::usable_size(big));
  auto* start = reinterpret_cast<unsigned char*>(big);
  large.release(big);
  bool fresh = true;
  Block* small = large.allocate(kMiB, 16, &fresh);  // a 1.25 MiB class, a sixth of it
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(reinterpret_cast<unsigned char*>(small), start) << "the cached mapping's head";
  EXPECT_FALSE(fresh);
  EXPECT_EQ(small->size(), 5 * kMiB / 4);
  EXPECT_EQ(large.stats().cache.bytes, 23 * kMiB / 4) << "the 5.75 MiB tail, all of it";
  EXPECT_EQ(large.stats().cache.mappings, 2u) << "5 MiB, then 768 KiB";
  Block* piece = large.allocate(kMiB / 2 + kMiB / 8, 16, &fresh);  // a 768 KiB class
  ASSERT_NE(piece, nullptr);
  EXPECT_FALSE(fresh);
  EXPECT_EQ(reinterpret_cast<unsigned char*>(piece), start + 5 * kMiB / 4 + 5 * kMiB)
      << "the last piece, with its pages";
  EXPECT_EQ(static_cast<unsigned char*>(piece->payload())[100], 0x6b);
  EXPECT_EQ(large.stats().cache.bytes, 5 * kMiB);
  large.release(piece);
  large.release(small);
  expect_nothing_mapped_once_the_cache_empties(large);
}

// (With huge pages on, a destination of 2 MiB or more gathers nothing: the next test.)
TEST(LargeObjectsTest, ARequestNoCachedMappingHoldsGathersThePagesOfSeveral) {
  static LargeObjects large;
  large.set_huge_pages(false);
  Block* two = large.allocate(2 * kMiB);  // a 2.5 MiB mapping
  Block* one = large.allocate(kMiB);      // a 1.25 MiB one
  ASSERT_NE(two, nullptr);
  ASSERT_NE(one, nullptr);
  std::memset(two->payload(), 0x22, 2 * kMiB);
  std::memset(one->payload(), 0x11, kMiB);
  large.release(two);
  large.release(one);
  bool fresh = true;
  Block* b = large.allocate(7 * kMiB / 2, 16, &fresh);  // a 4 MiB class: neither holds it
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(fresh) << "its pages are the cached ones: not zero";
  EXPECT_EQ(large.stats().cache.gathered_bytes, 15 * kMiB / 4) << "2.5 MiB, then 1.25 MiB";
  EXPECT_EQ(large.stats().cache.bytes, 0u);
  const auto* bytes = static_cast<const unsigned char*>(b->payload());
  EXPECT_EQ(bytes[kMiB], 0x22) << "the biggest first, moved, not copied";
  EXPECT_EQ(bytes[5 * kMiB / 2 + 100], 0x11);
  EXPECT_EQ(bytes[15 * kMiB / 4 + 100], 0) << "the rest is fresh";
  // Its pages came from two kernel mappings, which mremap cannot move as one: growing past
  // it copies.
  Block* grown = large.resize(b, 12 * kMiB);
  ASSERT_NE(grown, nullptr);
  bytes = static_cast<const unsigned char*>(grown->payload());
  EXPECT_EQ(bytes[kMiB], 0x22);
  EXPECT_EQ(bytes[5 * kMiB / 2 + 100], 0x11);
  EXPECT_EQ(bytes[11 * kMiB], 0);
  large.check_live(grown, "free");
  large.release(grown);
  expect_nothing_mapped_once_the_cache_empties(large);
}

TEST(LargeObjectsTest, TheCacheKeepsWithinItsBound) {
  static LargeObjects large;
  large.cache().set_bound(3 * kMiB);
  Block* a = large.allocate(2 * kMiB);
  Block* b = large.allocate(2 * kMiB);
  large.release(a);
  large.release(b);  // would take the cache past its bound: unmapped
  EXPECT_EQ(large.stats().cache.mappings, 1u);
  EXPECT_LE(large.stats().cache.bytes, 3 * kMiB);
  large.cache().set_bound(0);           // off
  Block* c = large.allocate(4 * kMiB);  // (gathers the cached mapping's pages)
  const std::size_t left = large.stats().cache.mappings;
  large.release(c);
  EXPECT_EQ(large.stats().cache.mappings, left) << "off: nothing more is kept";
  expect_nothing_mapped_once_the_cache_empties(large);
}

TEST(LargeObjectsTest, AFreshMappingOfAHugePageOrMoreIsAlignedForHugePagesAndGathersNothing) {
  static LargeObjects large;
  large.set_huge_pages(true);
  Block* small = large.allocate(kMiB);  // a 1.25 MiB mapping: small pages
  Block* cached = large.allocate(3 * kMiB);
  ASSERT_NE(small, nullptr);
  ASSERT_NE(cached, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(cached) % platform::kHugePageBytes, 0u);
  large.release(cached);  // a 3.5 MiB mapping, cached
  bool fresh = false;
  Block* b = large.allocate(7 * kMiB, 16, &fresh);  // an 8 MiB class: none holds it
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(fresh) << "huge pages: the cached mapping's small pages were not moved in";
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % platform::kHugePageBytes, 0u);
  EXPECT_EQ(large.stats().cache.gathered_bytes, 0u);
  EXPECT_EQ(large.stats().cache.mappings, 1u);
  std::memset(b->payload(), 0x44, 7 * kMiB);
  large.release(b);
  large.release(small);
  large.release_cached(UINT64_MAX);
  large.set_huge_pages(false);
  Block* plain = large.allocate(3 * kMiB);
  ASSERT_NE(plain, nullptr);
  large.release(plain);
  expect_nothing_mapped_once_the_cache_empties(large);
}

// A freed mapping that finds the cache full (its bound or its slots) takes the room of
// smaller cached mappings, smallest first, which are unmapped; never of bigger ones.
TEST(LargeObjectsTest, AFreedMappingEvictsSmallerCachedOnesFromAFullCache) {
  static LargeObjects large;
  large.cache().set_bound(4 * kMiB);
  Block* one = large.allocate(kMiB);               // 1.25 MiB
  Block* other = large.allocate(kMiB + kMiB / 4);  // 1.5 MiB
  Block* big = large.allocate(2 * kMiB);           // 2.5 MiB
  Block* bigger = large.allocate(3 * kMiB);        // 3.5 MiB
  ASSERT_TRUE(one != nullptr && other != nullptr && big != nullptr && bigger != nullptr);
  large.release(one);
  large.release(other);
  EXPECT_EQ(large.stats().cache.bytes, 11 * kMiB / 4);
  large.release(big);  // 5.25 MiB with both: the 1.25 MiB one goes, then 4 MiB fits
  EXPECT_EQ(large.stats().cache.mappings, 2u);
  EXPECT_EQ(large.stats().cache.bytes, 4 * kMiB);
  EXPECT_EQ(large.stats().cache.evicted_bytes, 5 * kMiB / 4);
  large.release(bigger);  // 3.5 MiB: both smaller ones go
  EXPECT_EQ(large.stats().cache.mappings, 1u);
  EXPECT_EQ(large.stats().cache.bytes, 7 * kMiB / 2);
  EXPECT_EQ(large.stats().cache.evicted_bytes, 21 * kMiB / 4);
  Block* small = large.allocate(kMiB + kMiB / 4);
  large.release(small);  // 1.5 MiB: nothing smaller to evict, so it is unmapped
  EXPECT_EQ(large.stats().cache.bytes, 7 * kMiB / 2) << "the bigger one stays";
  large.release_cached(UINT64_MAX);
  large.cache().set_bound(std::size_t{64} << 20);
}

// (The setting's parsing is settings_test's.)
TEST(LargeObjectsTest, TheCacheBoundComesFromTheEnvironmentOnFirstUse) {
  Settings::forget_for_tests();
  setenv("POLYMALLOC_MAPPING_CACHE_BYTES", "5m", 1);
  static LargeObjects large;  // first used here: reads the setting
  EXPECT_EQ(large.stats().cache.bound, 5 * kMiB);
  unsetenv("POLYMALLOC_MAPPING_CACHE_BYTES");
  EXPECT_EQ(large.stats().cache.bound, 5 * kMiB) << "read once";
  Settings::forget_for_tests();
}

TEST(LargeObjectsTest, ResizeWithinTheMappingKeepsItAndAGrowingBlockMayTakeABiggerOne) {
  static LargeObjects large;
  Block* b = large.allocate(2 * kMiB);
  EXPECT_EQ(large.resize(b, kMiB), b) << "a size that fits keeps the mapping";
  EXPECT_EQ(large.resize(b, LargeObjects::usable_size(b)), b);
  EXPECT_TRUE(LargeObjects::keeps(b, kMiB, true));
  EXPECT_FALSE(LargeObjects::keeps(b, 1000, false)) << "a small request moves to a class block";
  Block* spare = large.allocate(8 * kMiB);
  large.release(spare);  // cached
  large.cache().set_bound(4 * kMiB);
  EXPECT_EQ(large.adopt_for_growth(10000, true), nullptr)
      << "a small block is not lent a mapping past the bound on lent mappings";
  EXPECT_EQ(large.adopt_for_growth(4000, true), nullptr)
      << "a block below kLendFromBytes is not lent one at all (it would hold its pages)";
  large.cache().set_bound(std::size_t{64} << 20);  // the default
  Block* grower = large.adopt_for_growth(3 * kMiB, true);
  ASSERT_NE(grower, nullptr) << "a block growing by realloc takes a cached mapping up to 4x";
  EXPECT_GE(LargeObjects::usable_size(grower), 8 * kMiB);
  EXPECT_TRUE(LargeObjects::keeps(grower, 6 * kMiB, false)) << "and keeps it while it fits";
  EXPECT_EQ(large.adopt_for_growth(3 * kMiB, true), nullptr) << "the cache is empty now";
  large.release(grower);
  large.release(b);
  expect_nothing_mapped_once_the_cache_empties(large);
}

TEST(LargeObjectsTest, ABufferThatDoubledTo16MiBLeavesAMappingItTakesAgainFrom2MiB) {
  static LargeObjects large;
  Block* doubled = large.allocate(16 * kMiB);  // a 20 MiB mapping: its quarter-power class
  large.release(doubled);
  EXPECT_EQ(large.adopt_for_growth(1 * kMiB, false), nullptr)
      << "more than 8 times what a 1 MiB block needs";
  Block* grower = large.adopt_for_growth(2 * kMiB + (512 << 10) - 64, false);
  ASSERT_NE(grower, nullptr) << "the same buffer growing again takes it";
  EXPECT_TRUE(LargeObjects::keeps(grower, 16 * kMiB, false)) << "and grows to 16 MiB in it";
  large.release(grower);
  expect_nothing_mapped_once_the_cache_empties(large);
}

TEST(LargeObjectsTest, AGrowingBufferIsLentABigCachedMappingWithinTheCachesBound) {
  static LargeObjects large;
  large.cache().set_bound(24 * kMiB);
  Block* doubled = large.allocate(16 * kMiB);  // a 20 MiB mapping
  Block* other = large.allocate(2 * kMiB);     // a 2.5 MiB one
  large.release(doubled);
  large.release(other);
  large.cache().set_bound(20 * kMiB);  // from here on, it bounds the lent mappings
  Block* grower = large.adopt_for_growth(8192, true);
  ASSERT_NE(grower, nullptr) << "a buffer of 8 KiB growing by realloc is lent a mapping";
  EXPECT_LT(LargeObjects::usable_size(grower), 16 * kMiB) << "the smallest one that fits";
  EXPECT_TRUE(LargeObjects::keeps(grower, 8192, false));
  EXPECT_EQ(large.stats().lent_bytes, grower->size());
  EXPECT_EQ(large.adopt_for_growth(8192, true), nullptr)
      << "the 20 MiB mapping would take the lent bytes past the bound";
  large.cache().set_bound(64 * kMiB);
  large.release(grower);
  EXPECT_EQ(large.stats().lent_bytes, 0u);
  grower = large.adopt_for_growth(8192, true);
  Block* big = large.adopt_for_growth(8192, true);
  ASSERT_NE(grower, nullptr);
  ASSERT_NE(big, nullptr);
  EXPECT_GE(LargeObjects::usable_size(big), 16 * kMiB);
  EXPECT_EQ(large.stats().lent_bytes, grower->size() + big->size());
  // Growing past its mapping, a lent block is lent no more.
  const std::size_t grower_length = grower->size();
  grower = large.resize(grower, 4 * kMiB);
  ASSERT_NE(grower, nullptr);
  EXPECT_GT(grower->size(), grower_length);
  EXPECT_EQ(large.stats().lent_bytes, big->size());
  EXPECT_EQ(large.stats().lent_bytes + grower->size(), large.stats().mapped_bytes);
  large.release(grower);
  large.release(big);
  EXPECT_EQ(large.stats().lent_bytes, 0u);
  expect_nothing_mapped_once_the_cache_empties(large);
}

TEST(LargeObjectsTest, OverAlignedBlocksKeepOnlyWhatTheyNeed) {
  static LargeObjects large;  // static: its registry's root is 512 KiB
  for (std::size_t alignment = 32; alignment <= 8 * kMiB; alignment *= 4) {
    Block* b = large.allocate(kMiB, alignment);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->payload()) % alignment, 0u) << alignment;
    EXPECT_LT(b->size(), kMiB + 2 * platform::page_size()) << "slack unmapped, " << alignment;
    std::memset(b->payload(), 1, kMiB);
    large.release(b);
  }
  EXPECT_EQ(large.stats().mapped_bytes, 0u);
}

TEST(LargeObjectsTest, ResizeKeepsContentsBothWays) {
  static LargeObjects large;  // static: its registry's root is 512 KiB
  Block* b = large.allocate(2 * kMiB);
  ASSERT_NE(b, nullptr);
  auto* bytes = static_cast<unsigned char*>(b->payload());
  for (std::size_t i = 0; i < 2 * kMiB; i += 4096) bytes[i] = static_cast<unsigned char>(i >> 12);
  b = large.resize(b, 64 * kMiB);
  ASSERT_NE(b, nullptr);
  EXPECT_GE(LargeObjects::usable_size(b), 64 * kMiB);
  bytes = static_cast<unsigned char*>(b->payload());
  for (std::size_t i = 0; i < 2 * kMiB; i += 4096) {
    ASSERT_EQ(bytes[i], static_cast<unsigned char>(i >> 12));
  }
  bytes[64 * kMiB - 1] = 7;
  b = large.resize(b, kMiB);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(large.stats().mapped_bytes, b->size());
  EXPECT_EQ(static_cast<unsigned char*>(b->payload())[4096], 1);
  large.release(b);
}

TEST(LargeObjectsTest, RefusedRequestsFailWithEnomem) {
  static LargeObjects large;  // static: its registry's root is 512 KiB
  platform::FaultInjection::fail_all_requests();
  errno = 0;
  EXPECT_EQ(large.allocate(kMiB), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  platform::FaultInjection::disarm();
  Block* b = large.allocate(kMiB);
  ASSERT_NE(b, nullptr);
  platform::FaultInjection::fail_all_requests();
  EXPECT_EQ(large.resize(b, 32 * kMiB), nullptr);
  platform::FaultInjection::disarm();
  EXPECT_EQ(large.stats().mapped_objects, 1u);
  std::memset(b->payload(), 2, kMiB);  // untouched and still usable
  large.release(b);
  errno = 0;
  EXPECT_EQ(large.allocate(SIZE_MAX - 10), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(LargeObjectsTest, ResizeThatMovesKeepsTheRegistryInStep) {
  static LargeObjects large;
  Block* b = large.allocate(kMiB);
  ASSERT_NE(b, nullptr);
  // A mapping right above the block's (ours, or whatever the kernel put there) stops it
  // growing in place: it must move.
  auto* end = reinterpret_cast<char*>(b) - b->prev_size + b->size();
  void* blocker =
      mmap(end, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  const bool ours = blocker == end;
  ASSERT_TRUE(ours || errno == EEXIST);
  Block* old = b;
  b = large.resize(b, 8 * kMiB);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(b, old);
  EXPECT_FALSE(large.owns(old));
  EXPECT_TRUE(large.owns(b));
  large.release(b);
  if (ours) munmap(blocker, 4096);
  EXPECT_FALSE(large.owns(b));
  EXPECT_EQ(large.stats().mapped_objects, 0u);
}

TEST(LargeObjectsTest, SlicedBlocksLieSideBySideAreReusedInPlaceAndGrowWhereTheyLie) {
  static LargeObjects large{/*sliced=*/true};
  constexpr std::size_t kKiB = 1024;
  Block* a = large.allocate(600 * kKiB);
  Block* b = large.allocate(kMiB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->size(), 640 * kKiB) << "whole 64 KiB slices";
  EXPECT_EQ(reinterpret_cast<char*>(b), reinterpret_cast<char*>(a) + a->size());
  EXPECT_TRUE(large.owns(a));
  EXPECT_TRUE(large.owns(b));
  std::memset(a->payload(), 0x3c, LargeObjects::usable_size(a));
  std::memset(b->payload(), 0x4d, LargeObjects::usable_size(b));
  const std::size_t b_length = b->size();
  large.release(b);
  EXPECT_TRUE(large.freed(b));
  EXPECT_EQ(large.stats().arena.dirty_bytes, b_length) << "its pages stay";
  EXPECT_EQ(large.stats().mapped_objects, 1u);
  EXPECT_EQ(large.stats().cache.mappings, 0u) << "an arena block is no mapping to cache";

  Block* grown = large.resize(a, 1500 * kKiB);
  EXPECT_EQ(grown, a) << "over the free slices after it";
  EXPECT_EQ(grown->size(), 1536 * kKiB);
  EXPECT_EQ(static_cast<unsigned char*>(grown->payload())[600 * kKiB - 1], 0x3c);
  EXPECT_EQ(large.stats().mapped_bytes, 1536 * kKiB);

  bool fresh = true;
  Block* c = large.allocate(kMiB, 16, &fresh);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(reinterpret_cast<char*>(c), reinterpret_cast<char*>(a) + 1536 * kKiB)
      << "the rest of b's run, then untouched slices";
  EXPECT_FALSE(fresh) << "part of b's pages: calloc must clear it";
  std::memset(c->payload(), 0x5e, LargeObjects::usable_size(c));

  Block* mapped = large.resize(c, 9 * kMiB);  // beyond the arena's biggest run
  ASSERT_NE(mapped, nullptr);
  EXPECT_NE(mapped, c);
  EXPECT_TRUE(large.freed(c));
  EXPECT_EQ(static_cast<unsigned char*>(mapped->payload())[kMiB - 1], 0x5e);
  EXPECT_EQ(static_cast<unsigned char*>(c->payload())[kMiB - 1], 0)
      << "its pages moved with mremap, nothing copied: its run is mapped and empty";
  EXPECT_EQ(large.stats().arena.used_bytes, 1536 * kKiB) << "its run is free";
  EXPECT_EQ(mapped->size(), MappingCache::class_length(9 * kMiB + Block::kHeaderBytes));
  large.release(mapped);
  EXPECT_EQ(large.stats().cache.mappings, 1u) << "a mapping of its own, cached as any";
  large.release(grown);
  EXPECT_EQ(large.stats().arena.used_bytes, 0u);
  EXPECT_GT(large.stats().arena.dirty_bytes, 0u);
  EXPECT_GT(large.release_cached(UINT64_MAX), 9 * kMiB);
  EXPECT_EQ(large.stats().arena.dirty_bytes, 0u);
  Block* again = large.allocate(2 * kMiB, 16, &fresh);
  EXPECT_EQ(again, a) << "the lowest free address";
  EXPECT_TRUE(fresh) << "released: zero";
  large.release(again);
  expect_nothing_mapped_once_the_cache_empties(large);
}

TEST(LargeObjectsDeathTest, MisuseOfASlicedBlockIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  static LargeObjects large{/*sliced=*/true};
  Block* b = large.allocate(kMiB);
  ASSERT_NE(b, nullptr);
  large.release(b);
  EXPECT_DEATH(large.check_live(b, "free"),
               "^polymalloc: free\\(\\): double free of 0x[0-9a-f]+\n$");
  Block* live = large.allocate(2 * kMiB);
  ASSERT_NE(live, nullptr);
  EXPECT_DEATH(large.check_live(Block::at(reinterpret_cast<char*>(live) + 65536), "free"),
               "invalid pointer");
  live->set_size_flags(0x4141414141414141u);
  EXPECT_DEATH(large.check_live(live, "free"), "^polymalloc: free\\(\\): corrupted header of 0x");
}

TEST(LargeObjectsDeathTest, MisuseIsReportedWithoutReadingTheAddress) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  static LargeObjects large;
  Block* b = large.allocate(2 * kMiB);
  ASSERT_NE(b, nullptr);
  void* payload = b->payload();
  large.release(b);
  EXPECT_DEATH(large.check_live(b, "free"),
               "^polymalloc: free\\(\\): double free of 0x[0-9a-f]+\n$");
  EXPECT_DEATH(large.check_live(b, "realloc"),
               "^polymalloc: realloc\\(\\): freed pointer 0x[0-9a-f]+\n$");
  // Unmapped now: reading the header would fault.
  EXPECT_DEATH(large.check_live(Block::of_payload(static_cast<char*>(payload) + 8192), "free"),
               "^polymalloc: free\\(\\): invalid pointer 0x[0-9a-f]+\n$");
  Block* live = large.allocate(2 * kMiB);
  ASSERT_NE(live, nullptr);
  Block* interior = Block::at(reinterpret_cast<char*>(live) + 64);
  EXPECT_DEATH(large.check_live(interior, "free"), "invalid pointer");
  live->set_size_flags(0x4141414141414141u);  // what an underflowing write leaves
  EXPECT_DEATH(large.check_live(live, "free"), "^polymalloc: free\\(\\): corrupted header of 0x");
}

}  // namespace
}  // namespace polymalloc::allocator
