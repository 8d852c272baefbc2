// ReservedRange: contiguous growth, shrink, zeroed re-growth, limits and refusals.
#include "platform/reserved_range.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "platform/fault_injection.h"
#include "platform/os.h"

namespace polymalloc::platform {
namespace {

TEST(ReservedRangeTest, GrowsContiguouslyUpward) {
  ReservedRange range(std::size_t{64} << 20);
  const std::size_t page = page_size();
  auto* a = static_cast<unsigned char*>(range.grow(2 * page));
  auto* b = static_cast<unsigned char*>(range.grow(3 * page));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b, a + 2 * page);
  std::memset(a, 1, 5 * page);  // all of it is usable
  EXPECT_TRUE(range.contains(a));
  EXPECT_TRUE(range.contains(b + 3 * page - 1));
  EXPECT_FALSE(range.contains(b + 3 * page));
  EXPECT_FALSE(range.contains(a - 1));
}

TEST(ReservedRangeTest, SlicesOfOneReservationStayApart) {
  std::size_t bytes = 0;
  auto* start = static_cast<unsigned char*>(reserve_at_most(std::size_t{64} << 20, 1 << 20, &bytes));
  ASSERT_NE(start, nullptr);
  ASSERT_EQ(bytes, std::size_t{64} << 20);
  ReservedRange low, high;
  low.adopt(start, bytes / 2);
  high.adopt(start + bytes / 2, bytes / 2);
  EXPECT_EQ(low.grow(page_size()), start);
  EXPECT_EQ(high.grow(page_size()), start + bytes / 2);
  EXPECT_TRUE(high.contains(start + bytes / 2));
  EXPECT_FALSE(low.contains(start + bytes / 2));
  errno = 0;
  EXPECT_EQ(low.grow(bytes / 2), nullptr) << "a slice never grows into its neighbour";
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_NE(low.grow(bytes / 2 - page_size()), nullptr);
  os_unmap(start, bytes);
}

TEST(ReservedRangeTest, ShrinkReturnsTheTopAndRegrowthIsZeroed) {
  ReservedRange range(std::size_t{64} << 20);
  const std::size_t page = page_size();
  auto* a = static_cast<unsigned char*>(range.grow(4 * page));
  ASSERT_NE(a, nullptr);
  std::memset(a, 0xee, 4 * page);
  ASSERT_TRUE(range.shrink(2 * page));
  EXPECT_FALSE(range.contains(a + 2 * page));
  EXPECT_EQ(a[2 * page - 1], 0xee);  // below the new top: untouched
  auto* again = static_cast<unsigned char*>(range.grow(2 * page));
  ASSERT_EQ(again, a + 2 * page);
  EXPECT_EQ(again[0], 0);
  EXPECT_FALSE(range.shrink(5 * page)) << "cannot shrink below the base";
}

TEST(ReservedRangeTest, FullReservationRefusesWithEnomem) {
  ReservedRange range(std::size_t{16} << 20);
  ASSERT_NE(range.grow(std::size_t{16} << 20), nullptr);
  errno = 0;
  EXPECT_EQ(range.grow(page_size()), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(ReservedRangeTest, RefusedCommitLeavesTheRangeUnchanged) {
  ReservedRange range(std::size_t{64} << 20);
  ASSERT_NE(range.grow(page_size()), nullptr);
  const std::uintptr_t top = range.top();
  FaultInjection::fail_nth_request(1);
  EXPECT_EQ(range.grow(page_size()), nullptr);
  EXPECT_EQ(range.top(), top);
  EXPECT_NE(range.grow(page_size()), nullptr);
  FaultInjection::disarm();
}

// Address space the process has mapped now (sanitizers map terabytes of shadow).
std::size_t mapped_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f == nullptr || std::fscanf(f, "%lu", &pages) != 1) pages = 0;
  if (f != nullptr) std::fclose(f);
  return pages * page_size();
}

TEST(ReservedRangeTest, SmallerReservationUnderAddressSpaceLimit) {
  // In a child allowed only 1 GiB more address space than it has, the 64 GiB request is
  // halved until the OS accepts it, and the range still works.
  const std::size_t allowed = mapped_bytes() + (std::size_t{1} << 30);
  ASSERT_GT(allowed, std::size_t{1} << 30);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const rlimit limit{allowed, allowed};
    if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(10);
    static ReservedRange range;
    auto* p = static_cast<unsigned char*>(range.grow(page_size()));
    if (p == nullptr) _exit(11);
    p[0] = 1;
    if (range.reserved_bytes() > (std::size_t{1} << 30)) _exit(12);  // was halved to fit
    if (range.reserved_bytes() < (std::size_t{16} << 20)) _exit(13);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace polymalloc::platform
