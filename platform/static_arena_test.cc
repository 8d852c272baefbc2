// StaticArena: lock-free bump allocation that never overlaps and fails cleanly when full.
#include "platform/static_arena.h"

#include <errno.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace polymalloc::platform {
namespace {

using SmallArena = StaticArena<64 * 4096>;

TEST(StaticArenaTest, HandsOutConsecutiveChunksUntilFull) {
  static SmallArena arena;
  auto* a = static_cast<unsigned char*>(arena.grow(4096));
  auto* b = static_cast<unsigned char*>(arena.grow(8192));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(b, a + 4096);
  EXPECT_TRUE(arena.contains(b + 8191));
  EXPECT_FALSE(arena.contains(b + 8192));
  errno = 0;
  EXPECT_EQ(arena.grow(62 * 4096), nullptr) << "one page more than is left";
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_NE(arena.grow(61 * 4096), nullptr) << "a failed request must not waste the rest";
  EXPECT_EQ(arena.grow(4096), nullptr);
  EXPECT_EQ(arena.used(), SmallArena::kCapacity);
  EXPECT_FALSE(arena.shrink(4096));
}

TEST(StaticArenaTest, ConcurrentGrowsNeverOverlap) {
  static SmallArena arena;
  std::vector<std::vector<unsigned char*>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      while (auto* p = static_cast<unsigned char*>(arena.grow(4096))) {
        *p = static_cast<unsigned char>(t);
        got[t].push_back(p);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<unsigned char*> all;
  for (int t = 0; t < 4; ++t) {
    for (unsigned char* p : got[t]) EXPECT_EQ(*p, t);
    all.insert(all.end(), got[t].begin(), got[t].end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all.size(), 64u);
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
}

}  // namespace
}  // namespace polymalloc::platform
