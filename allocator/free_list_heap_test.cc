// FreeListHeap over real page sources: placement, the fit policy, splitting, coalescing,
// in-place growth, trimming, refused growth, several regions, and a randomized run checked as
// it goes.
#include "allocator/free_list_heap.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <vector>

#include "platform/fault_injection.h"
#include "testing/process_memory.h"

namespace polymalloc::allocator {
namespace {

using platform::FaultInjection;
using platform::ReservedRange;

// Which pages are a test heap's (each test's heap takes fresh pages, so one tag serves).
platform::PageMap pages;
constexpr std::uint16_t kTag = 1;

#define EXPECT_HEAP_OK(heap)                                   \
  do {                                                         \
    const void* where = nullptr;                               \
    const char* problem = (heap).check(&where);                \
    EXPECT_EQ(problem, nullptr) << problem << " at " << where; \
  } while (0)

// Whether a free block of `size` bytes at `start` holds a 4096-aligned payload of 512 B with a
// lead of kMinBlock or none (as FreeListHeap::aligned_payload_in() places one).
constexpr std::size_t kPageAlignment = 4096;
bool holds_aligned_512(const Block* start, std::size_t size) {
  const auto address = reinterpret_cast<std::uintptr_t>(start);
  std::uintptr_t payload = address + Block::kHeaderBytes;
  if (payload % kPageAlignment != 0) {
    payload = (payload + kMinBlock + kPageAlignment - 1) & ~(kPageAlignment - 1);
  }
  return payload - Block::kHeaderBytes + 512 <= address + size;
}

// Three neighbours among `row` (blocks of 512 B in a row) whose joint hole would hold such a
// payload: the index of the first of them.
std::size_t hole_of_three_holding_aligned_512(const std::vector<Block*>& row) {
  std::size_t first = 1;
  while (first + 4 < row.size() && !holds_aligned_512(row[first], 3 * 512)) ++first;
  return first;
}

TEST(FreeListHeapTest, BlocksAreAlignedDistinctAndUsable) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  std::vector<Block*> blocks;
  for (std::size_t size = 32; size <= 4096; size *= 2) {
    Block* b = heap.allocate(size);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->payload()) % 16, 0u);
    EXPECT_GE(b->size(), size);
    EXPECT_TRUE(b->in_use());
    std::memset(b->payload(), 0x7f, size - Block::kHeaderBytes);
    blocks.push_back(b);
  }
  EXPECT_HEAP_OK(heap);
  for (Block* b : blocks) heap.release(b);
  EXPECT_HEAP_OK(heap);
  EXPECT_EQ(heap.stats().free_blocks, 1u) << "everything freed coalesces into one block";
}

TEST(FreeListHeapTest, FreeCoalescesWithBothNeighbours) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* a = heap.allocate(64);
  Block* b = heap.allocate(64);
  Block* c = heap.allocate(64);
  Block* guard = heap.allocate(64);  // keeps c's right neighbour in use
  ASSERT_EQ(b, a->right());
  ASSERT_EQ(c, b->right());
  const std::size_t free_before = heap.stats().free_blocks;
  heap.release(a);
  heap.release(c);
  EXPECT_EQ(heap.stats().free_blocks, free_before + 2);
  heap.release(b);  // joins a and c
  EXPECT_EQ(heap.stats().free_blocks, free_before + 1);
  EXPECT_HEAP_OK(heap);
  Block* again = heap.allocate(192);  // fits exactly where a, b, c were
  EXPECT_EQ(again, a);
  heap.release(again);
  heap.release(guard);
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, GrowInPlaceAbsorbsAFreeRightNeighbourOnly) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* a = heap.allocate(64);
  Block* b = heap.allocate(128);
  Block* c = heap.allocate(64);
  EXPECT_FALSE(heap.grow_in_place(a, 128)) << "right neighbour in use";
  heap.release(b);
  EXPECT_TRUE(heap.grow_in_place(a, 128));
  EXPECT_GE(a->size(), 128u);
  EXPECT_LT(a->size(), 192u) << "the excess went back to the free lists";
  EXPECT_FALSE(heap.grow_in_place(a, 4096)) << "the free neighbour is too small";
  EXPECT_HEAP_OK(heap);
  heap.shrink_in_place(a, 32);
  EXPECT_EQ(a->size(), 32u);
  EXPECT_HEAP_OK(heap);
  heap.release(a);
  heap.release(c);
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, GrowIntoTopTakesTheFreeTopOnlyAndLeavesTheRestWhereItWas) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* a = heap.allocate(64);
  Block* b = heap.allocate(4096);
  Block* c = heap.allocate(64);
  ASSERT_GE(heap.top_free_bytes(), std::size_t{64} << 10) << "the region's rest is the free top";
  EXPECT_FALSE(heap.grow_into_top(a, 128)) << "right neighbour in use";
  heap.release(b);
  EXPECT_FALSE(heap.grow_into_top(a, 128)) << "a free neighbour that is not the top";
  EXPECT_EQ(a->size(), 64u);

  const std::size_t top = heap.top_free_bytes();
  const std::size_t free_bytes = heap.stats().free_bytes;
  std::memset(c->payload(), 0x3c, 48);
  ASSERT_TRUE(heap.grow_into_top(c, 64 + 1024));
  EXPECT_EQ(c->size(), 64u + 1024u);
  EXPECT_EQ(static_cast<unsigned char*>(c->payload())[47], 0x3c) << "the block stayed put";
  EXPECT_EQ(heap.top_free_bytes(), top - 1024) << "the top gave exactly what was missing";
  EXPECT_EQ(heap.stats().free_bytes, free_bytes - 1024);
  EXPECT_HEAP_OK(heap);

  const std::size_t all = c->size() + heap.top_free_bytes();
  EXPECT_FALSE(heap.grow_into_top(c, all - 16)) << "the top would keep less than a block";
  EXPECT_EQ(c->size(), 64u + 1024u);
  EXPECT_HEAP_OK(heap);

  ASSERT_GT(heap.release_free_pages(2 * platform::page_size()), 0u);
  EXPECT_FALSE(heap.grow_into_top(c, 8192)) << "a top with released pages: grow_in_place()'s";
  EXPECT_TRUE(heap.grow_in_place(c, 8192));
  EXPECT_HEAP_OK(heap);
  heap.release(c);
  heap.release(a);
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, GrowAtTopExtendsTheNewestRegionUnderTheBlockThatEndsIt) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* low = heap.allocate(64);
  Block* top = heap.allocate(std::size_t{64} << 10);
  std::memset(top->payload(), 0x5a, top->size() - Block::kHeaderBytes);
  EXPECT_FALSE(heap.grow_at_top(low, std::size_t{1} << 20)) << "a block in use lies above";
  EXPECT_EQ(low->size(), 64u);
  ASSERT_TRUE(heap.grow_at_top(top, std::size_t{4} << 20)) << "only free space lies above";
  EXPECT_GE(top->size(), std::size_t{4} << 20);
  EXPECT_EQ(static_cast<unsigned char*>(top->payload())[(std::size_t{64} << 10) - 32], 0x5a)
      << "the block stayed where it was";
  EXPECT_HEAP_OK(heap);
  const std::size_t before = top->size();
  FaultInjection::fail_all_requests();
  EXPECT_FALSE(heap.grow_at_top(top, std::size_t{64} << 20)) << "the source refused";
  FaultInjection::disarm();
  EXPECT_EQ(top->size(), before);
  EXPECT_HEAP_OK(heap);
  heap.release(top);
  heap.release(low);
  EXPECT_HEAP_OK(heap);
}

// A block at the top does not grow the heap while a free block elsewhere holds what it asks
// for: its caller moves it there (as glibc's realloc takes free memory before it grows).
TEST(FreeListHeapTest, GrowAtTopLeavesTheHeapAloneWhileAFreeBlockElsewhereHoldsTheSize) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* hole = heap.allocate(std::size_t{512} << 10);
  Block* guard = heap.allocate(64);
  Block* top = heap.allocate(std::size_t{64} << 10);
  heap.release(hole);
  const std::size_t committed = heap.stats().committed_bytes;
  EXPECT_FALSE(heap.grow_at_top(top, std::size_t{256} << 10)) << "the hole holds it";
  EXPECT_EQ(heap.stats().committed_bytes, committed);
  EXPECT_EQ(top->size(), std::size_t{64} << 10);
  EXPECT_TRUE(heap.grow_at_top(top, std::size_t{4} << 20)) << "nothing free holds 4 MiB";
  EXPECT_GE(top->size(), std::size_t{4} << 20);
  EXPECT_HEAP_OK(heap);
  heap.release(top);
  heap.release(guard);
  EXPECT_HEAP_OK(heap);
}

// Grows `heap` by blocks of 1 MiB (kept in `blocks`) until it has committed `bytes`.
void grow_to(FreeListHeap<ReservedRange>& heap, std::size_t bytes, std::vector<Block*>& blocks) {
  while (heap.stats().committed_bytes < bytes) {
    Block* b = heap.allocate(std::size_t{1} << 20);
    ASSERT_NE(b, nullptr);
    blocks.push_back(b);
  }
}

TEST(FreeListHeapTest, ABigHeapGrowsByWholeHugePagesAdvisedForTransparentHugePages) {
  using Heap = FreeListHeap<ReservedRange>;
  for (const bool huge : {true, false}) {
    SCOPED_TRACE(huge ? "huge pages on" : "huge pages off");
    Heap heap(&pages, kTag);
    heap.set_huge_pages(huge);
    std::vector<Block*> blocks;
    grow_to(heap, kHugePagesFromBytes / 2, blocks);
    std::uintptr_t start = 0, end = 0;
    const std::string small = polymalloc::testing::vm_flags_at(blocks.back(), &start, &end);
    EXPECT_EQ(small.find(" hg"), std::string::npos) << "a small heap keeps small pages";
    grow_to(heap, kHugePagesFromBytes + (std::size_t{5} << 20), blocks);
    Block* last = blocks.back();
    std::memset(last->payload(), 0x3c, last->size() - Block::kHeaderBytes);
    const std::string big = polymalloc::testing::vm_flags_at(last->payload(), &start, &end);
    if (huge) {
      EXPECT_NE(big.find(" hg"), std::string::npos) << big;
      EXPECT_EQ(start % platform::kHugePageBytes, 0u) << "advised over whole huge pages";
      EXPECT_EQ(end % platform::kHugePageBytes, 0u) << "and grown to a huge page's end";
    } else {
      EXPECT_EQ(big.find(" hg"), std::string::npos) << big;
    }
    EXPECT_HEAP_OK(heap);
    for (Block* b : blocks) heap.release(b);
    EXPECT_HEAP_OK(heap);
  }
}

TEST(FreeListHeapTest, AlignedBlocksFreeTheirLeadAndTail) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* skew = heap.allocate(48);  // so the next payload is not naturally aligned
  for (std::size_t alignment = 32; alignment <= (std::size_t{1} << 20); alignment *= 2) {
    Block* b = heap.allocate_aligned(64, alignment);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->payload()) % alignment, 0u) << alignment;
    EXPECT_GE(b->size(), 64u);
    EXPECT_LT(b->size(), 64u + kMinBlock) << "the tail went back to the free lists";
    std::memset(b->payload(), 0x5a, b->size() - Block::kHeaderBytes);
    EXPECT_HEAP_OK(heap);
    heap.release(b);
  }
  heap.release(skew);
  EXPECT_HEAP_OK(heap);
  EXPECT_EQ(heap.stats().free_blocks, 1u);
}

// A freed aligned block of an exact class parks on its quick list, and the next aligned
// request of that class takes it back; a parked block whose payload is not aligned as asked
// stays parked.
TEST(FreeListHeapTest, AnAlignedRequestTakesBackTheNewestParkedBlockOnlyIfItIsAligned) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* skew = heap.allocate(48);
  Block* b = heap.allocate_aligned(256, 64);
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->size(), 256u) << "an exact class, which parks";
  EXPECT_EQ(heap.deallocate(b), nullptr) << "parked";
  EXPECT_EQ(heap.allocate_aligned(256, 64), b) << "taken back from its quick list";

  Block* unaligned = nullptr;
  std::vector<Block*> others;
  for (int tries = 0; unaligned == nullptr && tries < 8; ++tries) {
    Block* c = heap.allocate(256);
    ASSERT_NE(c, nullptr);
    if (reinterpret_cast<std::uintptr_t>(c->payload()) % 64 != 0) {
      unaligned = c;
    } else {
      others.push_back(c);
      others.push_back(heap.allocate(48));  // shifts the next block by 48 bytes
    }
  }
  ASSERT_NE(unaligned, nullptr);
  EXPECT_EQ(heap.deallocate(unaligned), nullptr) << "parked";
  Block* d = heap.allocate_aligned(256, 64);
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d, unaligned);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(d->payload()) % 64, 0u);
  EXPECT_EQ(heap.allocate(256), unaligned) << "still parked, for a plain request";
  EXPECT_HEAP_OK(heap);
  for (Block* c : others) heap.release(c);
  for (Block* c : {b, d, unaligned, skew}) heap.release(c);
  EXPECT_HEAP_OK(heap);
}

// A block beside free memory coalesces instead of parking on its quick list (parked, it
// would split that memory with holes too small for what follows), but for the newest aligned
// block, whose free neighbour is the lead its alignment left: the next aligned request of its
// size takes it back.
TEST(FreeListHeapTest, ABlockBesideFreeMemoryCoalescesInsteadOfParkingButTheNewestAlignedOne) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* a = heap.allocate(256);
  Block* b = heap.allocate(256);
  Block* c = heap.allocate(256);  // keeps b from the free top
  ASSERT_EQ(b, a->right());
  ASSERT_EQ(c, b->right());
  EXPECT_EQ(heap.deallocate(c), nullptr) << "its left neighbour in use: parked";
  EXPECT_EQ(heap.allocate(256), c);
  heap.release(a);
  ASSERT_TRUE(b->prev_free());
  Block* merged = heap.deallocate(b);
  EXPECT_EQ(merged, a) << "not parked: one free block with its left neighbour";
  EXPECT_EQ(merged->size(), 512u);
  EXPECT_HEAP_OK(heap);

  Block* skew = heap.allocate(48);
  Block* aligned = heap.allocate_aligned(256, 1024);
  ASSERT_NE(aligned, nullptr);
  ASSERT_TRUE(aligned->prev_free()) << "its lead is free";
  EXPECT_EQ(heap.deallocate(aligned), nullptr) << "parked all the same";
  EXPECT_EQ(heap.allocate_aligned(256, 1024), aligned);
  EXPECT_HEAP_OK(heap);
  for (Block* x : {aligned, skew, c}) heap.release(x);
  EXPECT_HEAP_OK(heap);
}

// A fragmented heap serves an aligned request from a hole that holds an aligned payload,
// instead of growing for a block of the request plus the alignment.
TEST(FreeListHeapTest, AnAlignedRequestReusesAHoleThatHoldsAnAlignedPayload) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  std::vector<Block*> blocks;
  for (int i = 0; i < 24; ++i) blocks.push_back(heap.allocate(512));
  constexpr std::size_t kAlignment = kPageAlignment, kHole = 3 * 512;
  const std::size_t first = hole_of_three_holding_aligned_512(blocks);
  ASSERT_LT(first + 4, blocks.size()) << "24 blocks of 512 B span a page boundary that fits";
  for (std::size_t i = first; i < first + 3; ++i) heap.release(blocks[i]);
  EXPECT_HEAP_OK(heap);
  const std::size_t committed = heap.stats().committed_bytes;
  Block* b = heap.allocate_aligned(512, kAlignment);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->payload()) % kAlignment, 0u);
  const auto hole = reinterpret_cast<std::uintptr_t>(blocks[first]);
  EXPECT_GE(reinterpret_cast<std::uintptr_t>(b), hole) << "placed in the hole";
  EXPECT_LE(reinterpret_cast<std::uintptr_t>(b) + b->size(), hole + kHole);
  EXPECT_EQ(heap.stats().committed_bytes, committed) << "no growth for it";
  EXPECT_HEAP_OK(heap);
  heap.release(b);
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    if (i < first || i >= first + 3) heap.release(blocks[i]);
  }
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, ManySmallHolesDoNotHideOneThatHoldsAnAlignedPayload) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  constexpr std::size_t kAlignment = kPageAlignment, kSmall = 608, kHole = 3 * 512;
  // Many small holes on one list, none of which holds a 4096-aligned payload of 512 (more
  // than the whole search would examine if that list could use it up), each between blocks
  // in use.
  std::vector<Block*> in_use, small_holes;
  while (small_holes.size() < 400) {
    Block* b = heap.allocate(kSmall);
    in_use.push_back(heap.allocate(64));
    (holds_aligned_512(b, kSmall) ? in_use : small_holes).push_back(b);
  }
  // Then one hole on a bigger list that holds one.
  std::vector<Block*> row;
  for (int i = 0; i < 24; ++i) row.push_back(heap.allocate(512));
  const std::size_t first = hole_of_three_holding_aligned_512(row);
  ASSERT_LT(first + 4, row.size());
  for (Block* b : small_holes) heap.release(b);
  for (std::size_t i = first; i < first + 3; ++i) heap.release(row[i]);
  EXPECT_HEAP_OK(heap);
  Block* b = heap.allocate_aligned(512, kAlignment);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->payload()) % kAlignment, 0u);
  const auto hole = reinterpret_cast<std::uintptr_t>(row[first]);
  EXPECT_GE(reinterpret_cast<std::uintptr_t>(b), hole) << "placed in the hole, not the top";
  EXPECT_LE(reinterpret_cast<std::uintptr_t>(b) + b->size(), hole + kHole);
  heap.release(b);
  for (std::size_t i = 0; i < row.size(); ++i) {
    if (i < first || i >= first + 3) heap.release(row[i]);
  }
  for (Block* u : in_use) heap.release(u);
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, GrowIntoNeighboursMovesThePayloadDown) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* left = heap.allocate(256);
  Block* b = heap.allocate(64);
  Block* guard = heap.allocate(64);
  std::memset(b->payload(), 0x3c, 64 - Block::kHeaderBytes);
  EXPECT_EQ(heap.grow_into_neighbours(b, 256), nullptr) << "left neighbour in use";
  heap.release(left);
  EXPECT_EQ(heap.grow_into_neighbours(b, 1024), nullptr) << "neighbours too small";
  Block* merged = heap.grow_into_neighbours(b, 256);
  ASSERT_EQ(merged, left);
  EXPECT_GE(merged->size(), 256u);
  EXPECT_TRUE(merged->in_use());
  const auto* bytes = static_cast<unsigned char*>(merged->payload());
  for (std::size_t i = 0; i < 64 - Block::kHeaderBytes; ++i) ASSERT_EQ(bytes[i], 0x3c) << i;
  EXPECT_HEAP_OK(heap);
  heap.release(merged);
  heap.release(guard);
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, TopFreeBytesAndReleasedPages) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* bottom = heap.allocate(64);
  Block* middle = heap.allocate(std::size_t{1} << 20);
  Block* top = heap.allocate(64);
  const std::size_t top_free = heap.top_free_bytes();
  EXPECT_GT(top_free, 0u);
  heap.release(top);
  EXPECT_EQ(heap.top_free_bytes(), top_free + 64) << "the freed block joined the top";
  heap.release(middle);
  EXPECT_GE(heap.release_free_pages(std::size_t{64} << 10), (std::size_t{1} << 20) - 8192);
  EXPECT_HEAP_OK(heap);
  heap.release(bottom);
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, TrimGivesTheFreeTopBack) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  std::vector<Block*> blocks;
  for (int i = 0; i < 2000; ++i) blocks.push_back(heap.allocate(4096));
  const std::size_t committed = heap.stats().committed_bytes;
  ASSERT_GE(committed, 2000u * 4096);
  Block* keep = blocks.front();  // the bottom block stays in use
  for (std::size_t i = 1; i < blocks.size(); ++i) heap.release(blocks[i]);
  const std::size_t given = heap.trim(64 << 10);
  EXPECT_GT(given, committed / 2);
  EXPECT_EQ(heap.stats().committed_bytes, committed - given);
  EXPECT_EQ(heap.source().top(), heap.source().base() + heap.stats().committed_bytes);
  EXPECT_HEAP_OK(heap);
  // The heap grows again from where it was trimmed.
  Block* big = heap.allocate(std::size_t{1} << 20);
  ASSERT_NE(big, nullptr);
  std::memset(big->payload(), 1, (std::size_t{1} << 20) - Block::kHeaderBytes);
  heap.release(big);
  heap.release(keep);
  EXPECT_HEAP_OK(heap);
  EXPECT_GT(heap.trim(0), 0u);
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, RefusedGrowthReturnsNullAndLeavesTheHeapWhole) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* first = heap.allocate(64);
  ASSERT_NE(first, nullptr);
  FaultInjection::fail_all_requests();
  errno = 0;
  EXPECT_EQ(heap.allocate(std::size_t{8} << 20), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  FaultInjection::disarm();
  EXPECT_HEAP_OK(heap);
  Block* later = heap.allocate(std::size_t{8} << 20);
  EXPECT_NE(later, nullptr);
  heap.release(later);
  heap.release(first);
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, ExhaustedStaticArenaFailsCleanly) {
  static FreeListHeap<platform::StaticArena<1 << 20>> heap;
  std::vector<Block*> blocks;
  while (Block* b = heap.allocate(1024)) blocks.push_back(b);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_GT(blocks.size(), 900u);
  EXPECT_HEAP_OK(heap);
  for (Block* b : blocks) heap.release(b);
  EXPECT_HEAP_OK(heap);
  EXPECT_NE(heap.allocate(1024), nullptr) << "freed memory is reused";
}

// A source whose every grow is a separate mapping: the heap must keep regions apart.
class SeparateMappings {
 public:
  static constexpr bool kContiguous = false;
  static constexpr bool kThreadSafe = false;
  static constexpr const char* kName = "separate_mappings";
  void* grow(std::size_t bytes) {
    void* p = platform::os_map(bytes);
    if (p != nullptr) regions_.push_back({p, bytes});
    return p;
  }
  bool shrink(std::size_t) { return false; }
  bool contains(const void* p) const {
    for (const auto& [start, bytes] : regions_) {
      if (p >= start && p < static_cast<const char*>(start) + bytes) return true;
    }
    return false;
  }
  ~SeparateMappings() {
    for (const auto& [start, bytes] : regions_) {
      unpoison_live(start, bytes);  // the next mapping here is not this heap's free memory
      platform::os_unmap(start, bytes);
    }
  }

 private:
  std::vector<std::pair<void*, std::size_t>> regions_;
};

TEST(FreeListHeapTest, RandomizedWorkloadOverSeveralRegionsStaysConsistent) {
  static_assert(platform::PageSource<SeparateMappings>);
  FreeListHeap<SeparateMappings> heap;
  std::mt19937_64 rng(42);
  struct Live {
    Block* block;
    std::size_t bytes;
    unsigned char fill;
  };
  std::vector<Live> live;
  for (int op = 0; op < 50000; ++op) {
    if (live.empty() || rng() % 100 < 55) {
      const std::size_t bytes = std::size_t{32} << (rng() % 12);
      Block* b = heap.allocate(bytes);
      ASSERT_NE(b, nullptr);
      ASSERT_TRUE(heap.contains(b));
      const auto fill = static_cast<unsigned char>(rng());
      std::memset(b->payload(), fill, bytes - Block::kHeaderBytes);
      live.push_back({b, bytes, fill});
    } else {
      const std::size_t i = rng() % live.size();
      const Live victim = live[i];
      const auto* p = static_cast<unsigned char*>(victim.block->payload());
      for (std::size_t j = 0; j < victim.bytes - Block::kHeaderBytes; j += 61) {
        ASSERT_EQ(p[j], victim.fill) << "block contents changed while in use";
      }
      heap.release(victim.block);
      live[i] = live.back();
      live.pop_back();
    }
    if (op % 5000 == 0) EXPECT_HEAP_OK(heap);
  }
  for (const Live& l : live) heap.release(l.block);
  EXPECT_HEAP_OK(heap);
}

// Decay marks a free block whose pages went back (kReleased); a block allocated from it, whole
// or in part, is an ordinary live block again.
TEST(FreeListHeapTest, ABlockWhosePagesWentBackIsLiveOnceAllocatedAgain) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* a = heap.allocate(16 << 10);
  Block* guard = heap.allocate(64);
  ASSERT_NE(a, nullptr);
  heap.release(a);
  EXPECT_GE(heap.release_aged(UINT64_MAX), std::size_t{8} << 10) << "its inner pages went back";
  EXPECT_GE(heap.stats().free_bytes, std::size_t{16} << 10);
  EXPECT_GT(heap.released_bytes(), 0u);
  Block* again = heap.allocate(16 << 10);  // the exact fit: the whole free block
  ASSERT_EQ(again, a);
  EXPECT_TRUE(again->live());
  EXPECT_EQ(static_cast<unsigned char*>(again->payload())[9000], 0) << "released pages read 0";
  heap.release(again);
  heap.release(guard);
  EXPECT_HEAP_OK(heap);
}

// A small block that joins a big free block which has sat free leaves its age alone: a
// trickle of small frees must not keep the big block young for ever (it would never go back).
// A big block freed now is what dates a merge to now.
TEST(FreeListHeapTest, ASmallBlockJoiningAnAgedFreeBlockKeepsItsAge) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* big = heap.allocate(64 << 10);
  Block* small = heap.allocate(64);
  Block* guard = heap.allocate(64);
  ASSERT_NE(guard, nullptr);
  heap.release(big);
  usleep(60000);  // the coarse clock steps by a scheduler tick (at most 10 ms)
  const std::uint64_t before_small_free = platform::os_coarse_ms();
  heap.release(small);  // merges into big's free block
  EXPECT_GE(heap.release_aged(before_small_free - 20), std::size_t{56} << 10)
      << "the merged block is as old as the big free block it joined";
  Block* again = heap.allocate(64 << 10);
  ASSERT_NE(again, nullptr);
  heap.release(again);  // a big block freed now: the merged block is young
  EXPECT_EQ(heap.release_aged(platform::os_coarse_ms() - 20), 0u);
  heap.release(guard);
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, GrowingIntoAFreeNeighbourLeavesTheRestFreeWithItsAge) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* a = heap.allocate(64);
  Block* big = heap.allocate(std::size_t{256} << 10);
  Block* guard = heap.allocate(64);
  ASSERT_EQ(big, a->right());
  heap.release(big);
  usleep(60000);  // the coarse clock steps by a scheduler tick (at most 10 ms)
  const std::uint64_t before_growth = platform::os_coarse_ms();
  const std::size_t free_blocks = heap.stats().free_blocks;
  // Steps of 16 bytes (the rest's header lands on the old neighbour's links), then big ones.
  for (std::size_t size = 80; size <= 160; size += 16) {
    ASSERT_TRUE(heap.grow_in_place(a, size));
    EXPECT_EQ(a->size(), size);
    EXPECT_HEAP_OK(heap);
  }
  for (std::size_t size = 4096; size <= (std::size_t{128} << 10); size *= 2) {
    ASSERT_TRUE(heap.grow_in_place(a, size));
    EXPECT_EQ(a->size(), size);
  }
  EXPECT_EQ(heap.stats().free_blocks, free_blocks) << "the rest took the neighbour's place";
  EXPECT_HEAP_OK(heap);
  EXPECT_GE(heap.release_aged(before_growth - 20), std::size_t{64} << 10)
      << "the rest is as old as the free block it was part of";
  heap.release(a);
  heap.release(guard);
  EXPECT_HEAP_OK(heap);
}

// Free blocks of the given sizes, each kept apart from the next by a live 64-byte block, freed
// in the order given (so the last is first on its list).
std::vector<Block*> separated_holes(FreeListHeap<ReservedRange>& heap,
                                    const std::vector<std::size_t>& sizes) {
  std::vector<Block*> holes;
  for (std::size_t size : sizes) {
    holes.push_back(heap.allocate(size));
    heap.allocate(64);  // (kept live: the holes do not coalesce, nor join the top)
  }
  for (Block* b : holes) heap.release(b);
  return holes;
}

TEST(FreeListHeapTest, ALargeRequestSplitsTheSmallestFreeBlockAboveItsOwnList) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  constexpr std::size_t kKiB = 1024;
  // The 30 KiB block comes first on a list that held both under one list per doubling.
  const std::vector<Block*> holes = separated_holes(heap, {17 * kKiB, 30 * kKiB});
  EXPECT_EQ(heap.allocate(9 * kKiB), holes[0]) << "within a quarter of the best fit";
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, ASmallRequestSplitsABlockOf2KiBOrMoreBeforeOneOf1To2KiB) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  const std::vector<Block*> holes = separated_holes(heap, {3072, 1536});
  EXPECT_EQ(heap.allocate(128), holes[0]) << "the 1.5 KiB block is kept whole";
  EXPECT_EQ(heap.allocate(1536), holes[1]);
  EXPECT_EQ(heap.allocate(256), reinterpret_cast<Block*>(reinterpret_cast<char*>(holes[0]) + 128))
      << "and only then the rest of the bigger one";
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, AllocateAtTopTakesTheFrontOfTheFreeBlockThatEndsTheNewestRegion) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* low = heap.allocate(std::size_t{8} << 10);
  Block* hole_maker = heap.allocate(64);
  Block* high = heap.allocate(std::size_t{8} << 10);
  heap.release(low);  // a hole that a best fit would choose for 8 KiB
  EXPECT_EQ(heap.allocate_at_top(1024), nullptr) << "a block under a page is better off in a hole";
  Block* top = heap.allocate_at_top(std::size_t{8} << 10);
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(top, high->right()) << "the front of the free top, not the hole";
  EXPECT_TRUE(top->in_use());
  ASSERT_TRUE(heap.grow_in_place(top, std::size_t{64} << 10)) << "free space lies above it";
  EXPECT_HEAP_OK(heap);
  EXPECT_EQ(heap.allocate_at_top(std::size_t{64} << 20), nullptr) << "more than the free top";
  heap.release(top);
  heap.release(high);
  heap.release(hole_maker);
  EXPECT_HEAP_OK(heap);
}

TEST(FreeListHeapTest, TheTopIsTakenLastAndABlockGrowsIntoItAcrossEveryListSize) {
  FreeListHeap<ReservedRange> heap(&pages, kTag);
  Block* hole = heap.allocate(std::size_t{8} << 10);
  Block* pin = heap.allocate(64);
  heap.release(hole);
  Block* small = heap.allocate(256);
  EXPECT_EQ(small, hole) << "a hole fits, so the top (the region's free end) is left whole";
  Block* grower = heap.allocate(std::size_t{16} << 10);
  ASSERT_NE(grower, nullptr);
  EXPECT_EQ(heap.stats().free_blocks, 2u) << "the rest of the hole, and the top";
  // Growing through sizes of every power-of-two list: the top shrinks under it (and the
  // heap grows under both), and the heap (its lists, statistics and boundary tags) stays
  // whole at every step.
  for (std::size_t size = std::size_t{32} << 10; size <= std::size_t{8} << 20; size *= 2) {
    const bool grew = heap.grow_in_place(grower, size) || heap.grow_at_top(grower, size);
    ASSERT_TRUE(grew) << size;
    EXPECT_HEAP_OK(heap);
  }
  EXPECT_GE(grower->size(), std::size_t{8} << 20);
  EXPECT_EQ(heap.stats().free_blocks, 2u);
  heap.release(grower);
  EXPECT_EQ(heap.stats().free_blocks, 2u) << "it went back into the top";
  EXPECT_GE(heap.top_free_bytes(), std::size_t{8} << 20);
  EXPECT_GT(heap.trim(0), 0u);
  EXPECT_HEAP_OK(heap);
  heap.release(small);
  heap.release(pin);
  EXPECT_HEAP_OK(heap);
  EXPECT_EQ(heap.stats().free_blocks, 1u);
}

}  // namespace
}  // namespace polymalloc::allocator
