// Both double-width CAS implementations: semantics, and no lost update under contention.
#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "atomics/atomics.h"

namespace polymalloc::atomics {
namespace {

template <class D>
class DoubleCasTest : public ::testing::Test {};

using Implementations = ::testing::Types<NativeDoubleCas, LockTableDoubleCas>;
TYPED_TEST_SUITE(DoubleCasTest, Implementations);

TYPED_TEST(DoubleCasTest, ComparesAndSwapsBothWords) {
  static_assert(DoubleCas<TypeParam>);
  DoubleWord w{1, 2};
  DoubleWord expected{1, 3};  // right low word, wrong high word
  EXPECT_FALSE(TypeParam::cas_seq_cst(&w, expected, DoubleWord{7, 8}));
  EXPECT_EQ(expected, (DoubleWord{1, 2}));
  EXPECT_EQ(w, (DoubleWord{1, 2}));
  expected = DoubleWord{3, 2};  // wrong low word
  EXPECT_FALSE(TypeParam::cas_seq_cst(&w, expected, DoubleWord{7, 8}));
  EXPECT_TRUE(TypeParam::cas_seq_cst(&w, expected, DoubleWord{7, 8}));
  EXPECT_EQ(w, (DoubleWord{7, 8}));
}

TYPED_TEST(DoubleCasTest, HighBitsOfBothWordsSurvive) {
  const std::uintptr_t top = std::uintptr_t{1} << 63;
  DoubleWord w{top | 1, top | 2};
  DoubleWord expected = w;
  EXPECT_TRUE(TypeParam::cas_seq_cst(&w, expected, DoubleWord{top | 3, top | 4}));
  EXPECT_EQ(w, (DoubleWord{top | 3, top | 4}));
}

TYPED_TEST(DoubleCasTest, ConcurrentPairedIncrementsStayConsistent) {
  // Every update adds 1 to lo and 2 to hi in one CAS; a torn or lost update breaks hi == 2*lo.
  DoubleWord w;
  constexpr int kThreads = 4, kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        DoubleWord seen = load_halves_acquire(&w);
        while (!TypeParam::cas_seq_cst(&w, seen, DoubleWord{seen.lo + 1, seen.hi + 2})) {
        }
        EXPECT_EQ(seen.hi, 2 * seen.lo);  // what a successful CAS replaced was consistent
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(w.lo, std::uintptr_t{kThreads} * kPerThread);
  EXPECT_EQ(w.hi, 2 * w.lo);
}

TEST(DoubleCasCapabilities, X86HasNativeDoubleCas) {
#if defined(__x86_64__)
  EXPECT_TRUE(kHasDoubleCas);
#endif
  EXPECT_TRUE(NativeDoubleCas::kIsLockFree);
  EXPECT_FALSE(LockTableDoubleCas::kIsLockFree);
}

}  // namespace
}  // namespace polymalloc::atomics
