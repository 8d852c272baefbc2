// MappedRegions: carving from shared regions and from regions of their own, the constant-time
// containment test, and a refused mapping that fails cleanly.
#include "platform/mapped_regions.h"

#include <errno.h>
#include <gtest/gtest.h>

#include <cstdint>

#include "platform/fault_injection.h"

namespace polymalloc::platform {
namespace {

TEST(MappedRegionsTest, CarvedMemoryIsZeroedDisjointAndContained) {
  static MappedRegions regions;
  auto* a = static_cast<unsigned char*>(regions.grow(8192));
  auto* b = static_cast<unsigned char*>(regions.grow(4096));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b, a + 8192) << "carved from the same region";
  EXPECT_EQ(a[0] | a[8191] | b[4095], 0);
  EXPECT_TRUE(regions.contains(a));
  EXPECT_TRUE(regions.contains(b + 4095));
  auto* big = static_cast<unsigned char*>(regions.grow(MappedRegions::kRegionBytes));
  ASSERT_NE(big, nullptr);
  EXPECT_TRUE(regions.contains(big + MappedRegions::kRegionBytes - 1));
  EXPECT_EQ(regions.used(), 8192 + 4096 + MappedRegions::kRegionBytes);
  int on_stack = 0;
  EXPECT_FALSE(regions.contains(&on_stack));
  EXPECT_FALSE(regions.contains(&regions));
}

TEST(MappedRegionsTest, ARefusedMappingFailsWithEnomemAndLaterOnesSucceed) {
  static MappedRegions regions;
  FaultInjection::fail_all_requests();
  errno = 0;
  EXPECT_EQ(regions.grow(4096), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  FaultInjection::disarm();
  void* p = regions.grow(4096);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(regions.contains(p));
  EXPECT_EQ(regions.used(), 4096u);
}

}  // namespace
}  // namespace polymalloc::platform
