// Under --config=asan the allocator tells ASan which heap bytes are live: a client's
// use-after-free inside a polymalloc heap is reported, and free payloads are poisoned while
// live ones are not. Without ASan there is nothing to observe, and the test says so.
#include <gtest/gtest.h>

#include <cstring>

#include "allocator/allocator.h"
#include "variants/under_test.h"

namespace polymalloc::testing {
namespace {

const allocator::ApiTable& api = kUnderTest;

#define SKIP_WITHOUT_ASAN()                                                                \
  if (!allocator::kUnderAsan) {                                                            \
    GTEST_SKIP() << "poisoning is only observable under --config=asan (CI runs it there)"; \
  }

TEST(AsanPoisoningTest, FreePayloadsArePoisonedAndLiveOnesAreNot) {
  SKIP_WITHOUT_ASAN();
  for (std::size_t n : {std::size_t{16}, std::size_t{1000}, std::size_t{100000}}) {
    auto* p = static_cast<char*>(api.malloc(n));
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(allocator::any_poisoned(p, api.malloc_usable_size(p))) << n;
    api.free(p);
    EXPECT_TRUE(allocator::is_poisoned(p)) << "first byte of a freed " << n << "-byte block";
    EXPECT_TRUE(allocator::is_poisoned(p + n - 1)) << n;
  }
}

TEST(AsanPoisoningDeathTest, UseAfterFreeIsReported) {
  SKIP_WITHOUT_ASAN();
  EXPECT_DEATH(
      {
        auto* p = static_cast<volatile char*>(api.malloc(64));
        p[0] = 1;
        api.free(const_cast<char*>(p));
        p[0] = 2;  // the bug ASan must catch
      },
      "AddressSanitizer: use-after-poison");
}

TEST(AsanPoisoningTest, ReallocatedMemoryIsLiveAgain) {
  SKIP_WITHOUT_ASAN();
  auto* p = static_cast<char*>(api.malloc(200));
  api.free(p);
  auto* q = static_cast<char*>(api.malloc(200));  // most likely the same block
  std::memset(q, 7, api.malloc_usable_size(q));   // must not be reported
  api.free(q);
}

}  // namespace
}  // namespace polymalloc::testing
