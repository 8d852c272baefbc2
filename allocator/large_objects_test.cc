// LargeObjects: mappings sized to the request, alignment with the slack returned, mremap
// growth that keeps contents, counters, a refused mapping that changes nothing, and the
// registry that tells live blocks from freed and foreign addresses without reading them.
#include "allocator/large_objects.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>

#include "platform/fault_injection.h"

namespace polymalloc::allocator {
namespace {

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
  EXPECT_LT(LargeObjects::usable_size(b), 3 * kMiB + 5 + platform::page_size());
  std::memset(b->payload(), 0xab, LargeObjects::usable_size(b));
  EXPECT_EQ(large.stats().mapped_objects, 1u);
  EXPECT_EQ(large.stats().mapped_bytes, b->size());
  large.release(b);
  EXPECT_EQ(large.stats().mapped_objects, 0u);
  EXPECT_EQ(large.stats().mapped_bytes, 0u);
  EXPECT_GE(large.stats().peak_mapped_bytes, 3 * kMiB);
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
