// LargeObjects: mappings sized to the request, alignment with the slack returned, mremap
// growth that keeps contents, counters, and a refused mapping that changes nothing.
#include "allocator/large_objects.h"

#include <errno.h>
#include <gtest/gtest.h>

#include <cstring>

#include "platform/fault_injection.h"

namespace polymalloc::allocator {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

TEST(LargeObjectsTest, MappingHoldsTheRequestAndIsCounted) {
  LargeObjects large;
  Block* b = large.allocate(3 * kMiB + 5);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(LargeObjects::is_large(b));
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
  LargeObjects large;
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
  LargeObjects large;
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
  LargeObjects large;
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

}  // namespace
}  // namespace polymalloc::allocator
