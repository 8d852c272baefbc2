// Size classes: rounding, boundaries and overflow.
#include "allocator/size_class.h"

#include <gtest/gtest.h>

namespace polymalloc::allocator {
namespace {

TEST(SizeClassTest, RoundsUpToPowersOfTwoFrom32) {
  EXPECT_EQ(class_of(1), kMinClass);
  EXPECT_EQ(class_of(32), 5u);
  EXPECT_EQ(class_of(33), 6u);
  EXPECT_EQ(class_of(64), 6u);
  EXPECT_EQ(class_of(65), 7u);
  EXPECT_EQ(class_of(std::size_t{1} << 20), 20u);
  EXPECT_EQ(class_of((std::size_t{1} << 20) + 1), 21u);
  for (std::size_t n = 1; n < 100000; n += 7) {
    const unsigned k = class_of(n);
    ASSERT_GE(class_size(k), n);
    if (k > kMinClass) {
      ASSERT_LT(class_size(k - 1), n);
    }
  }
}

TEST(SizeClassTest, FreeBlockListIsTheLargestClassItCanServe) {
  EXPECT_EQ(list_of(32), 5u);
  EXPECT_EQ(list_of(48), 5u);
  EXPECT_EQ(list_of(63 & ~15), 5u);
  EXPECT_EQ(list_of(64), 6u);
  for (std::size_t n = 32; n < 100000; n += 16) {
    ASSERT_LE(class_size(list_of(n)), n);
    ASSERT_GT(2 * class_size(list_of(n)), n);
  }
}

TEST(SizeClassTest, HeaderAdditionDetectsOverflow) {
  EXPECT_EQ(block_bytes_for(100, 16), 116u);
  EXPECT_EQ(block_bytes_for(SIZE_MAX - 15, 16), 0u);
  EXPECT_EQ(block_bytes_for(SIZE_MAX - 16, 16), SIZE_MAX);
}

// Both policies: round_up gives the smallest class that fits, and index_of/size_of number
// the classes densely in increasing order.
template <class Classes>
void expect_consistent_policy(std::size_t max_rounding_percent) {
  std::size_t previous = 0;
  for (unsigned i = 0; Classes::size_of(i) <= (std::size_t{1} << 20); ++i) {
    const std::size_t s = Classes::size_of(i);
    ASSERT_GT(s, previous);
    ASSERT_EQ(s % 16, 0u);
    ASSERT_TRUE(Classes::is_class_size(s)) << s;
    ASSERT_EQ(Classes::index_of(s), i) << s;
    ASSERT_EQ(Classes::round_up(s), s);
    for (std::size_t b = previous + 1; b < s; b += 1 + (s - previous) / 7) {
      ASSERT_EQ(Classes::round_up(b), s) << b;
      if (b % 16 == 0) {
        ASSERT_FALSE(Classes::is_class_size(b)) << b;
      }
    }
    if (previous >= 64) {
      ASSERT_LE((s - previous) * 100, previous * max_rounding_percent) << s;
    }
    previous = s;
  }
}

TEST(SizeClassTest, PowerOfTwoPolicy) {
  EXPECT_EQ(PowerOfTwoClasses::round_up(1), 32u);
  EXPECT_EQ(PowerOfTwoClasses::round_up(200), 256u);
  expect_consistent_policy<PowerOfTwoClasses>(100);
}

TEST(SizeClassTest, QuarterPowerPolicy) {
  EXPECT_EQ(QuarterPowerClasses::round_up(1), 32u);
  EXPECT_EQ(QuarterPowerClasses::round_up(40), 48u);
  EXPECT_EQ(QuarterPowerClasses::round_up(65), 80u);
  EXPECT_EQ(QuarterPowerClasses::round_up(129), 160u);
  EXPECT_EQ(QuarterPowerClasses::round_up(200), 224u);
  EXPECT_EQ(QuarterPowerClasses::round_up(std::size_t{1} << 20), std::size_t{1} << 20);
  EXPECT_EQ(QuarterPowerClasses::index_of(32768), 38u);
  expect_consistent_policy<QuarterPowerClasses>(25);
}

TEST(SizeClassTest, SnugQuarterPowerPolicy) {
  using Classes = SnugQuarterPowerClasses;
  EXPECT_EQ(Classes::round_up(200), 224u);
  EXPECT_EQ(Classes::round_up(256), 256u);
  EXPECT_EQ(Classes::round_up(257), 288u) << "256 B and its header";
  EXPECT_EQ(Classes::round_up(289), 320u);
  EXPECT_EQ(Classes::round_up(1040), 1152u) << "1 KiB and its header";
  EXPECT_EQ(Classes::round_up(4368 + 16), 4608u) << "sqlite's 4368-byte page and its header";
  EXPECT_EQ(Classes::round_up(4609), 5120u);
  EXPECT_EQ(Classes::round_up(16400), 18432u);
  EXPECT_EQ(Classes::round_up(32784), QuarterPowerClasses::round_up(32784)) << "none past 16 KiB";
  EXPECT_EQ(Classes::index_of(256), QuarterPowerClasses::index_of(256));
  EXPECT_EQ(Classes::index_of(288), QuarterPowerClasses::index_of(256) + 1);
  EXPECT_EQ(Classes::index_of(320), QuarterPowerClasses::index_of(320) + 1);
  EXPECT_EQ(Classes::index_of(32768), QuarterPowerClasses::index_of(32768) + 7);
  expect_consistent_policy<Classes>(25);
}

TEST(SizeClassTest, FinerClassesAbovePolicy) {
  using Classes = FinerClassesAbove<SnugQuarterPowerClasses, 15, 4>;  // partitioned's
  EXPECT_EQ(Classes::round_up(4368 + 16), 4608u) << "the base's classes up to 32 KiB";
  EXPECT_EQ(Classes::round_up(32768), 32768u);
  EXPECT_EQ(Classes::index_of(32768), SnugQuarterPowerClasses::index_of(32768));
  EXPECT_EQ(Classes::round_up(32769), 32768u + 2048u) << "sixteen per doubling past it";
  EXPECT_EQ(Classes::index_of(32768 + 2048), SnugQuarterPowerClasses::index_of(32768) + 1);
  EXPECT_EQ(Classes::round_up(65536), 65536u);
  EXPECT_EQ(Classes::index_of(65536), SnugQuarterPowerClasses::index_of(32768) + 16);
  EXPECT_EQ(Classes::round_up(327830 + 16), 344064u) << "Python's 320 KB buffer: 5 %, not 20 %";
  EXPECT_EQ(Classes::round_up(std::size_t{1} << 20), std::size_t{1} << 20);
  expect_consistent_policy<Classes>(25);
  // Past the floor, neighbouring classes are at most a sixteenth apart.
  for (unsigned i = Classes::kFloorIndex; Classes::size_of(i) < (std::size_t{1} << 20); ++i) {
    ASSERT_LE((Classes::size_of(i + 1) - Classes::size_of(i)) * 16, Classes::size_of(i)) << i;
  }
}

}  // namespace
}  // namespace polymalloc::allocator
