// PageMap: tags per 4 KiB slot, leaves mapped on first use (a refused mapping fails
// cleanly), the flat window, addresses beyond the mapped bits, and concurrent installs of one
// leaf.
#include "platform/page_map.h"

#include <errno.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "platform/fault_injection.h"

namespace polymalloc::platform {
namespace {

const void* at(std::uintptr_t address) { return reinterpret_cast<const void*>(address); }

constexpr std::uintptr_t kBase = std::uintptr_t{0x7f12} << 32;

TEST(PageMapTest, UnsetSlotsReadZero) {
  static PageMap map;
  EXPECT_EQ(map.get(at(kBase)), 0);
  EXPECT_EQ(map.get(nullptr), 0);
  EXPECT_EQ(map.get(at(~std::uintptr_t{0})), 0);
}

TEST(PageMapTest, SetMarksExactlyTheSlotsOfTheRange) {
  static PageMap map;
  const std::uintptr_t start = kBase + 3 * PageMap::kSlotBytes + 100;
  ASSERT_TRUE(map.prepare(at(start), 2 * PageMap::kSlotBytes));
  map.set(at(start), 2 * PageMap::kSlotBytes, 0x8123);
  EXPECT_EQ(map.get(at(kBase + 3 * PageMap::kSlotBytes - 1)), 0);
  EXPECT_EQ(map.get(at(kBase + 3 * PageMap::kSlotBytes)), 0x8123);
  EXPECT_EQ(map.get(at(start + 2 * PageMap::kSlotBytes - 1)), 0x8123);  // third slot, touched
  EXPECT_EQ(map.get(at(kBase + 6 * PageMap::kSlotBytes)), 0);
  map.set(at(start), 1, 0);
  EXPECT_EQ(map.get(at(start)), 0);
  EXPECT_EQ(map.get(at(start + PageMap::kSlotBytes)), 0x8123);
}

// The window's tags are a flat array of their own: a range across its end keeps its tags on
// both sides, only the first window set is kept, and addresses outside behave as before.
TEST(PageMapTest, AWindowServesItsAddressesAndTheLeavesTheRest) {
  static PageMap map;
  const std::uintptr_t window = kBase + (std::uintptr_t{1} << 32);
  ASSERT_TRUE(map.set_window(at(window)));
  EXPECT_FALSE(map.set_window(at(kBase))) << "a map has one window";
  EXPECT_EQ(map.get(at(window)), 0);
  const std::uintptr_t last = window + PageMap::kWindowBytes - PageMap::kSlotBytes;
  ASSERT_TRUE(map.prepare(at(last), 2 * PageMap::kSlotBytes));
  map.set(at(last), 2 * PageMap::kSlotBytes, 7);
  EXPECT_EQ(map.get(at(last)), 7) << "the window's last slot";
  EXPECT_EQ(map.get(at(last + PageMap::kSlotBytes)), 7) << "the first slot beyond, in a leaf";
  EXPECT_EQ(map.get(at(last - 1)), 0);
  ASSERT_TRUE(map.prepare(at(window - PageMap::kSlotBytes), PageMap::kSlotBytes));
  map.set(at(window - PageMap::kSlotBytes), PageMap::kSlotBytes, 9);
  map.set(at(window), 1, 8);
  EXPECT_EQ(map.get(at(window - 1)), 9);
  EXPECT_EQ(map.get(at(window)), 8);
  EXPECT_EQ(map.get(nullptr), 0);
  EXPECT_EQ(map.get(at(~std::uintptr_t{0})), 0);
  static PageMap other;
  EXPECT_FALSE(other.set_window(at(window + 1))) << "not slot-aligned";
}

TEST(PageMapTest, RangesAcrossLeavesAndAddressesBeyondTheMappedBits) {
  static PageMap map;
  const std::uintptr_t leaf_span = PageMap::kSlotBytes << PageMap::kLeafBits;
  const std::uintptr_t edge = kBase + leaf_span - PageMap::kSlotBytes;  // last slot of a leaf
  ASSERT_TRUE(map.prepare(at(edge), 2 * PageMap::kSlotBytes));
  map.set(at(edge), 2 * PageMap::kSlotBytes, 7);
  EXPECT_EQ(map.get(at(edge)), 7);
  EXPECT_EQ(map.get(at(edge + PageMap::kSlotBytes)), 7);
  errno = 0;
  EXPECT_FALSE(map.prepare(at(std::uintptr_t{1} << PageMap::kAddressBits), 1));
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_FALSE(map.prepare(at(~std::uintptr_t{0} - 10), 100)) << "a range that wraps";
}

TEST(PageMapTest, ARefusedLeafMappingFailsCleanly) {
  static PageMap map;
  FaultInjection::fail_all_requests();
  errno = 0;
  EXPECT_FALSE(map.prepare(at(kBase), 1));
  EXPECT_EQ(errno, ENOMEM);
  FaultInjection::disarm();
  EXPECT_EQ(map.get(at(kBase)), 0);
  ASSERT_TRUE(map.prepare(at(kBase), 1));
  const std::uint64_t before = FaultInjection::requests_made();
  ASSERT_TRUE(map.prepare(at(kBase + PageMap::kSlotBytes), 1));
  EXPECT_EQ(FaultInjection::requests_made(), before) << "a prepared leaf costs no request";
}

TEST(PageMapTest, ThreadsRacingToInstallOneLeafAllSeeEveryTag) {
  static PageMap map;
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      const std::uintptr_t slot = kBase + static_cast<std::uintptr_t>(t) * PageMap::kSlotBytes;
      ASSERT_TRUE(map.prepare(at(slot), 1));
      map.set(at(slot), 1, static_cast<std::uint16_t>(t + 1));
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(map.get(at(kBase + static_cast<std::uintptr_t>(t) * PageMap::kSlotBytes)), t + 1);
  }
}

}  // namespace
}  // namespace polymalloc::platform
