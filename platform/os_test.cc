// OS memory calls and the fault-injection seam in front of them.
#include "platform/os.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "platform/fault_injection.h"
#include "testing/process_memory.h"

namespace polymalloc::platform {
namespace {

class OsTest : public ::testing::Test {
 protected:
  void TearDown() override { FaultInjection::disarm(); }
};

TEST_F(OsTest, PageSizeIsAPowerOfTwo) {
  const std::size_t page = page_size();
  EXPECT_GE(page, 4096u);
  EXPECT_EQ(page & (page - 1), 0u);
  EXPECT_EQ(round_up_to_page(1), page);
  EXPECT_EQ(round_up_to_page(page), page);
  EXPECT_EQ(round_up_to_page(page + 1), 2 * page);
}

TEST_F(OsTest, MapGivesZeroedWritableMemory) {
  const std::size_t bytes = 4 * page_size();
  auto* p = static_cast<unsigned char*>(os_map(bytes));
  ASSERT_NE(p, nullptr);
  for (std::size_t i = 0; i < bytes; i += 512) EXPECT_EQ(p[i], 0);
  std::memset(p, 0xab, bytes);
  EXPECT_TRUE(os_unmap(p, bytes));
}

TEST_F(OsTest, MoveGrowsOntoTheDestinationAndKeepsContents) {
  const std::size_t page = page_size();
  auto* p = static_cast<unsigned char*>(os_map(page));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x5a, page);
  auto* q = static_cast<unsigned char*>(os_map(64 * page));
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(os_move(p, page, 64 * page, q));
  EXPECT_EQ(q[0], 0x5a);
  EXPECT_EQ(q[page - 1], 0x5a);
  EXPECT_EQ(q[page], 0);
  q[64 * page - 1] = 1;
  EXPECT_TRUE(os_unmap(q, 64 * page));
}

TEST_F(OsTest, MoveLeavingSourceMovesThePagesAndKeepsTheSourceMappedAndEmpty) {
  const std::size_t page = page_size();
  auto* region = static_cast<unsigned char*>(os_map(16 * page));
  ASSERT_NE(region, nullptr);
  unsigned char* source = region + 2 * page;  // inside a bigger mapping, as in an arena
  std::memset(source, 0x3d, 4 * page);
  auto* destination = static_cast<unsigned char*>(os_map(8 * page));
  ASSERT_NE(destination, nullptr);
  destination[7 * page] = 9;
  ASSERT_TRUE(os_move_leaving_source(source, 4 * page, destination));
  EXPECT_EQ(destination[0], 0x3d);
  EXPECT_EQ(destination[4 * page - 1], 0x3d);
  EXPECT_EQ(destination[7 * page], 9) << "the destination's tail is its own";
  EXPECT_EQ(source[0], 0) << "still mapped, empty";
  EXPECT_EQ(source[4 * page - 1], 0);
  source[0] = 1;  // and writable
  EXPECT_TRUE(os_unmap(region, 16 * page));
  EXPECT_TRUE(os_unmap(destination, 8 * page));
}

TEST_F(OsTest, HugeMappingIsAlignedZeroedAndAdvisedOverItsWholeHugePages) {
  const std::size_t bytes = 2 * kHugePageBytes + 5 * page_size();
  errno = 1234;
  auto* p = static_cast<unsigned char*>(os_map_huge(bytes));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(errno, 1234) << "errno is the caller's";
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kHugePageBytes, 0u);
  for (std::size_t i = 0; i < bytes; i += 4096) EXPECT_EQ(p[i], 0);
  std::memset(p, 0x6b, bytes);
  std::uintptr_t start = 0, end = 0;
  const std::string head = polymalloc::testing::vm_flags_at(p, &start, &end);
  EXPECT_NE(head.find(" hg"), std::string::npos) << head;
  EXPECT_EQ(start, reinterpret_cast<std::uintptr_t>(p));
  EXPECT_EQ(end, start + 2 * kHugePageBytes) << "advised over the whole huge pages only";
  const std::string tail = polymalloc::testing::vm_flags_at(p + 2 * kHugePageBytes, &start, &end);
  EXPECT_EQ(tail.find(" hg"), std::string::npos) << tail;
  EXPECT_TRUE(os_unmap(p, bytes));
  FaultInjection::fail_all_requests();
  errno = 0;
  EXPECT_EQ(os_map_huge(bytes), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  FaultInjection::disarm();
  errno = 0;
  EXPECT_EQ(os_map_huge(SIZE_MAX - page_size() + 1), nullptr) << "no overflow";
  EXPECT_EQ(errno, ENOMEM);
}

TEST_F(OsTest, ResizeInPlaceShrinksAndGrowsOnlyWhereThereIsRoom) {
  const std::size_t page = page_size();
  auto* p = static_cast<unsigned char*>(os_map(8 * page));
  ASSERT_NE(p, nullptr);
  p[page - 1] = 3;
  ASSERT_TRUE(os_resize_in_place(p, 8 * page, page));  // the 7 pages above are unmapped now
  EXPECT_EQ(p[page - 1], 3);
  ASSERT_TRUE(os_resize_in_place(p, page, 4 * page));  // and free to grow back into
  EXPECT_EQ(p[4 * page - 1], 0);
  // A mapping right above blocks growth there.
  void* blocker =
      mmap(p + 4 * page, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  ASSERT_EQ(blocker, p + 4 * page);
  EXPECT_FALSE(os_resize_in_place(p, 4 * page, 8 * page));
  EXPECT_EQ(p[page - 1], 3);
  EXPECT_TRUE(os_unmap(blocker, page));
  EXPECT_TRUE(os_unmap(p, 4 * page));
}

TEST_F(OsTest, ReservedPagesCommitAndDecommitToZero) {
  const std::size_t page = page_size();
  auto* p = static_cast<unsigned char*>(os_reserve(16 * page));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(os_commit(p, 2 * page));
  p[0] = 7;
  p[2 * page - 1] = 9;
  ASSERT_TRUE(os_decommit(p, 2 * page));
  ASSERT_TRUE(os_commit(p, 2 * page));
  EXPECT_EQ(p[0], 0);
  EXPECT_EQ(p[2 * page - 1], 0);
  EXPECT_TRUE(os_unmap(p, 16 * page));
}

TEST_F(OsTest, ReleasedPagesReadBackAsZero) {
  const std::size_t page = page_size();
  auto* p = static_cast<unsigned char*>(os_map(page));
  ASSERT_NE(p, nullptr);
  p[10] = 3;
  ASSERT_TRUE(os_release_pages(p, page));
  EXPECT_EQ(p[10], 0);
  os_unmap(p, page);
}

TEST_F(OsTest, NthRequestFailsWithEnomemAndOnlyThatOne) {
  const std::size_t page = page_size();
  const std::uint64_t before = FaultInjection::requests_made();
  FaultInjection::fail_nth_request(2);
  void* first = os_map(page);
  ASSERT_NE(first, nullptr);
  errno = 0;
  EXPECT_EQ(os_map(page), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void* third = os_map(page);
  EXPECT_NE(third, nullptr);
  EXPECT_EQ(FaultInjection::requests_made(), before + 3);
  os_unmap(first, page);
  os_unmap(third, page);
}

TEST_F(OsTest, FailAllRefusesEveryRequestUntilDisarmed) {
  FaultInjection::fail_all_requests();
  EXPECT_EQ(os_map(page_size()), nullptr);
  EXPECT_EQ(os_reserve(page_size()), nullptr);
  EXPECT_FALSE(os_break_set(os_break_current()));
  FaultInjection::disarm();
  void* p = os_map(page_size());
  EXPECT_NE(p, nullptr);
  os_unmap(p, page_size());
}

TEST_F(OsTest, RandomWordIsStableAndNeverZero) {
  const std::uintptr_t word = os_random_word();
  EXPECT_NE(word, 0u);
  EXPECT_EQ(os_random_word(), word) << "one value per process";
}

TEST_F(OsTest, EnvironmentIsReadWithoutGetenv) {
  ASSERT_EQ(setenv("POLYMALLOC_OS_TEST_VALUE", "on", 1), 0);
  ASSERT_EQ(setenv("POLYMALLOC_OS_TEST_VALUE_LONGER", "0", 1), 0);
  ASSERT_EQ(setenv("POLYMALLOC_OS_TEST_ZERO", "0", 1), 0);
  ASSERT_EQ(setenv("POLYMALLOC_OS_TEST_EMPTY", "", 1), 0);
  ASSERT_NE(os_environment("POLYMALLOC_OS_TEST_VALUE"), nullptr);
  EXPECT_STREQ(os_environment("POLYMALLOC_OS_TEST_VALUE"), "on");
  EXPECT_EQ(os_environment("POLYMALLOC_OS_TEST_VALU"), nullptr) << "a prefix is not a match";
  EXPECT_EQ(os_environment("POLYMALLOC_OS_TEST_MISSING"), nullptr);
  EXPECT_TRUE(os_environment_enables("POLYMALLOC_OS_TEST_VALUE"));
  EXPECT_FALSE(os_environment_enables("POLYMALLOC_OS_TEST_ZERO"));
  EXPECT_FALSE(os_environment_enables("POLYMALLOC_OS_TEST_EMPTY"));
  EXPECT_FALSE(os_environment_enables("POLYMALLOC_OS_TEST_MISSING"));
}

}  // namespace
}  // namespace polymalloc::platform
