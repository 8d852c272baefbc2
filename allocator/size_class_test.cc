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

}  // namespace
}  // namespace polymalloc::allocator
