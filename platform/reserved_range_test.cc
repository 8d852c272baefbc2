// ReservedRange: contiguous growth, a reservation that grows with use (in place, else in a
// new span), placement, shrink and zeroed re-growth, refusals, and address space in
// proportion to use under an address-space limit.
#include "platform/reserved_range.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <deque>

#include "platform/fault_injection.h"
#include "platform/os.h"

namespace polymalloc::platform {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

PageMap test_pages;  // shared by the test ranges, as a variant's ranges share one

TEST(ReservedRangeTest, GrowsContiguouslyUpward) {
  ReservedRange range(&test_pages, 1);
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
  EXPECT_EQ(range.reserved_bytes(), ReservedRange::kInitialReservation);
}

TEST(ReservedRangeTest, TheReservationGrowsInPlaceWithUse) {
  ReservedRange range(&test_pages, 2);
  auto* first = static_cast<unsigned char*>(range.grow(kMiB));
  ASSERT_NE(first, nullptr);
  std::size_t committed = kMiB;
  for (int i = 0; i < 40; ++i) {  // 41 MiB in all: past two doublings of the reservation
    auto* next = static_cast<unsigned char*>(range.grow(kMiB));
    ASSERT_NE(next, nullptr);
    EXPECT_EQ(next, first + committed) << "contiguous while the space above is free";
    committed += kMiB;
    next[kMiB - 1] = 1;
  }
  EXPECT_EQ(range.spans(), 1u);
  EXPECT_GE(range.reserved_bytes(), committed);
  EXPECT_LE(range.reserved_bytes(), 2 * committed + ReservedRange::kInitialReservation)
      << "address space in proportion to what is used";
  EXPECT_TRUE(range.contains(first + committed - 1));
}

TEST(ReservedRangeTest, GoesOnElsewhereWhenTheSpaceAboveIsTaken) {
  ReservedRange range(&test_pages, 3);
  auto* first = static_cast<unsigned char*>(range.grow(page_size()));
  ASSERT_NE(first, nullptr);
  // Something else maps right where the reservation would have to grow.
  unsigned char* above = first + range.reserved_bytes();
  ASSERT_EQ(os_reserve_at(above, kMiB), above);
  unsigned char* beyond = static_cast<unsigned char*>(
      range.grow(ReservedRange::kInitialReservation));  // more than is left in place
  ASSERT_NE(beyond, nullptr);
  EXPECT_NE(beyond, first + page_size());
  EXPECT_EQ(range.spans(), 2u);
  std::memset(beyond, 1, ReservedRange::kInitialReservation);
  EXPECT_TRUE(range.contains(first)) << "the first span's memory is still the range's";
  EXPECT_TRUE(range.contains(beyond));
  EXPECT_FALSE(range.contains(above));
  EXPECT_LE(range.reserved_bytes(), page_size() + 2 * ReservedRange::kInitialReservation)
      << "the first span's unused reservation went back";
  // The top that shrinks is the current span's.
  EXPECT_TRUE(range.shrink(page_size()));
  EXPECT_FALSE(range.contains(beyond + ReservedRange::kInitialReservation - 1));
  EXPECT_TRUE(range.contains(first));
  os_unmap(above, kMiB);
}

TEST(ReservedRangeTest, PlacedRangesStartWhereAskedAndStayApart) {
  std::size_t bytes = 0;
  auto* start = static_cast<unsigned char*>(reserve_at_most(64 * kMiB, kMiB, &bytes));
  ASSERT_NE(start, nullptr);
  ASSERT_EQ(bytes, 64 * kMiB);
  os_unmap(start, bytes);  // a free area, shared out as places to grow into
  ReservedRange low(&test_pages, 4), high(&test_pages, 5);
  low.place(start, bytes / 2);
  high.place(start + bytes / 2, bytes / 2);
  EXPECT_EQ(low.grow(page_size()), start);
  EXPECT_EQ(high.grow(page_size()), start + bytes / 2);
  EXPECT_TRUE(high.contains(start + bytes / 2));
  EXPECT_FALSE(low.contains(start + bytes / 2));
  // Growing past its share, low goes on elsewhere instead of into high's.
  auto* more = static_cast<unsigned char*>(low.grow(bytes / 2));
  ASSERT_NE(more, nullptr);
  EXPECT_TRUE(more + bytes / 2 <= start + bytes / 2 || more >= start + bytes)
      << "a share never grows into its neighbour's";
  EXPECT_TRUE(low.contains(more + bytes / 2 - 1));
  EXPECT_FALSE(high.contains(more));
}

TEST(ReservedRangeTest, ShrinkReturnsTheTopAndRegrowthIsZeroed) {
  ReservedRange range(&test_pages, 6);
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

TEST(ReservedRangeTest, ARefusedRequestLeavesTheRangeUnchangedOrIsWorkedAround) {
  // Each request of a growth past the first reservation, refused in turn (a fresh range each
  // time): the growth either fails with ENOMEM and leaves the range as it was, or succeeds
  // through a fallback (a smaller reservation, another place). Ends when a growth makes
  // fewer requests than the one refused, so every request has had its turn.
  const std::size_t beyond = 2 * ReservedRange::kInitialReservation;
  unsigned failures = 0;
  for (std::uint64_t n = 1;; ++n) {
    ASSERT_LT(n, 100u);
    static std::deque<ReservedRange> kept;  // never unmapped: their pages stay tagged 7
    ReservedRange* range = &kept.emplace_back(&test_pages, 7);
    ASSERT_NE(range->grow(page_size()), nullptr);
    const std::uintptr_t top = range->top();
    const std::size_t reserved = range->reserved_bytes();
    const std::uint64_t before = FaultInjection::requests_made();
    FaultInjection::fail_nth_request(n);
    errno = 0;
    void* p = range->grow(beyond);
    const bool refused = FaultInjection::requests_made() >= before + n;
    FaultInjection::disarm();
    if (!refused) {
      ASSERT_NE(p, nullptr);
      break;
    }
    if (p == nullptr) {
      ++failures;
      EXPECT_EQ(errno, ENOMEM) << n;
      EXPECT_EQ(range->top(), top) << n;
      EXPECT_EQ(range->reserved_bytes(), reserved) << n;
      EXPECT_NE(range->grow(beyond), nullptr) << "and the next growth works, " << n;
    } else {
      std::memset(p, 1, beyond);
    }
  }
  EXPECT_GE(failures, 1u) << "a refused commit fails the growth";
}

// Address space the process has mapped now (sanitizers map terabytes of shadow).
std::size_t mapped_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f == nullptr || std::fscanf(f, "%lu", &pages) != 1) pages = 0;
  if (f != nullptr) std::fclose(f);
  return pages * page_size();
}

TEST(ReservedRangeTest, WorksUnderAnAddressSpaceLimit) {
  // In a child allowed only 64 MiB more address space than it has, the range finds room (the
  // free-area probe is halved until the OS accepts it), grows to most of the allowance, and
  // leaves room for other mappings.
  const std::size_t allowed = mapped_bytes() + 64 * kMiB;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const rlimit limit{allowed, allowed};
    if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(10);
    static ReservedRange range(&test_pages, 8);
    for (int i = 0; i < 24; ++i) {
      auto* p = static_cast<unsigned char*>(range.grow(kMiB));
      if (p == nullptr) _exit(11);
      p[kMiB - 1] = 1;
    }
    if (range.reserved_bytes() > 24 * kMiB * 2) _exit(12);
    if (os_map(8 * kMiB) == nullptr) _exit(13);  // e.g. a thread's stack
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace polymalloc::platform
