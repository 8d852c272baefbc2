// The AO_malloc peer behind the shared front end: every size class AO_malloc has (and the
// range it hangs on by itself), alignments, realloc both ways and calloc, so that the shootout
// measures a working malloc.
#include "benchmarks/ao_malloc_core.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "allocator/front_end.h"

namespace polymalloc::benchmarks {
namespace {

using Api = allocator::FrontEnd<AoMallocCore>;

void fill_and_check(void* p, std::size_t n, unsigned char tag) {
  auto* bytes = static_cast<unsigned char*>(p);
  std::memset(bytes, tag, n);
  ASSERT_EQ(bytes[0], tag);
  ASSERT_EQ(bytes[n - 1], tag);
}

TEST(AoMallocCore, ServesEverySizeIncludingTheRangeAoMallocHangsOn) {
  std::vector<void*> blocks;
  for (std::size_t n = 1; n < (1u << 21); n = n * 5 / 4 + 1) {
    void* p = Api::malloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 16, 0u) << n;
    EXPECT_GE(Api::malloc_usable_size(p), n);
    fill_and_check(p, n, static_cast<unsigned char>(n));
    blocks.push_back(p);
  }
  for (std::size_t n : {32761u, 40000u, 65528u}) blocks.push_back(Api::malloc(n));
  for (void* p : blocks) Api::free(p);
}

TEST(AoMallocCore, AlignsToEveryPowerOfTwoUpToAPage) {
  for (std::size_t alignment = 32; alignment <= 4096; alignment *= 2) {
    for (std::size_t n : {1u, 100u, 5000u, 70000u}) {
      void* p = nullptr;
      ASSERT_EQ(Api::posix_memalign(&p, alignment, n), 0);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % alignment, 0u) << alignment;
      fill_and_check(p, n, 0x5a);
      Api::free(p);
    }
  }
}

TEST(AoMallocCore, ReallocKeepsContentsBothWays) {
  auto* p = static_cast<unsigned char*>(Api::malloc(10));
  for (int i = 0; i < 10; ++i) p[i] = static_cast<unsigned char>(i);
  p = static_cast<unsigned char*>(Api::realloc(p, 200000));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(p[i], i);
  p = static_cast<unsigned char*>(Api::realloc(p, 3));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(p[i], i);
  Api::free(p);
}

TEST(AoMallocCore, CallocZeroesReusedMemory) {
  void* dirty = Api::malloc(4000);
  std::memset(dirty, 0xff, 4000);
  Api::free(dirty);
  auto* p = static_cast<unsigned char*>(Api::calloc(1000, 4));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 4000; ++i) ASSERT_EQ(p[i], 0) << i;
  Api::free(p);
}

}  // namespace
}  // namespace polymalloc::benchmarks
