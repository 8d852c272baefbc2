// SliceArena: runs side by side at the lowest free address, a freed run reused in place and
// joined with its free neighbours, runs across bitmap words, growth in place, dirty pages kept
// until their release is due (then zero), a refused region, and claims from many threads at
// once that never overlap.
#include "allocator/slice_arena.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "platform/fault_injection.h"

namespace polymalloc::allocator {
namespace {

constexpr std::size_t kSlice = SliceArena::kSliceBytes;

auto accept_every_region() {
  return [](void*, std::size_t) { return true; };
}

unsigned char* claim(SliceArena& arena, std::size_t slices, bool* fresh = nullptr) {
  bool zero = false;
  void* run = arena.claim(slices * kSlice, false, &zero, accept_every_region());
  if (fresh != nullptr) *fresh = zero;
  return static_cast<unsigned char*>(run);
}

void free_run(SliceArena& arena, void* run, std::size_t slices,
              SliceArena::Pages pages = SliceArena::Pages::kKept) {
  arena.free(run, slices * kSlice, 100, pages);
}

// Whether every page of [p, p + bytes) is resident.
bool resident(const void* p, std::size_t bytes) {
  const std::size_t page = 4096;
  std::vector<unsigned char> pages(bytes / page);
  if (mincore(const_cast<void*>(p), bytes, pages.data()) != 0) return false;
  for (unsigned char v : pages) {
    if ((v & 1) == 0) return false;
  }
  return true;
}

TEST(SliceArenaTest, RunLengthsAreWholeSlices) {
  EXPECT_EQ(SliceArena::run_bytes(1), kSlice);
  EXPECT_EQ(SliceArena::run_bytes(kSlice), kSlice);
  EXPECT_EQ(SliceArena::run_bytes(512 * 1024 + 16), 9 * kSlice);
}

TEST(SliceArenaTest, RunsLieSideBySideAndAFreedOneIsReusedWhereItLies) {
  static SliceArena arena;
  unsigned char* a = claim(arena, 9);
  unsigned char* b = claim(arena, 20);
  unsigned char* c = claim(arena, 3);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(b, a + 9 * kSlice) << "the lowest free address";
  EXPECT_EQ(c, b + 20 * kSlice);
  EXPECT_EQ(arena.stats().used_bytes, 32 * kSlice);
  EXPECT_EQ(arena.stats().regions, 1u);
  std::memset(b, 0x5a, 20 * kSlice);
  free_run(arena, b, 20);
  EXPECT_EQ(arena.stats().dirty_bytes, 20 * kSlice);
  bool fresh = true;
  unsigned char* again = claim(arena, 12, &fresh);
  EXPECT_EQ(again, b) << "the first run that fits: the freed one";
  EXPECT_FALSE(fresh) << "its pages were dirtied: not known to be zero";
  EXPECT_EQ(again[0], 0x5a) << "the same pages, kept";
  EXPECT_EQ(arena.stats().dirty_bytes, 8 * kSlice) << "the 8 slices left are dirty still";
  free_run(arena, a, 9);
  free_run(arena, again, 12);
  // a's 9 slices, again's 12 and the 8 after them are free neighbours: one run of 29.
  EXPECT_EQ(claim(arena, 29), a) << "free neighbours join with no merge step";
  free_run(arena, a, 29);
  free_run(arena, c, 3);
  EXPECT_EQ(arena.stats().used_bytes, 0u);
}

TEST(SliceArenaTest, ARunMaySpanBitmapWords) {
  static SliceArena arena;
  unsigned char* first = claim(arena, 60);
  unsigned char* across = claim(arena, 70);  // slices 60 to 129: three words
  unsigned char* after = claim(arena, 1);
  ASSERT_NE(across, nullptr);
  EXPECT_EQ(across, first + 60 * kSlice);
  EXPECT_EQ(after, across + 70 * kSlice);
  free_run(arena, across, 70);
  unsigned char* small = claim(arena, 5);
  EXPECT_EQ(small, across) << "the top of word 0 holds it";
  unsigned char* big = claim(arena, 128);
  EXPECT_EQ(big, after + kSlice) << "65 free slices between do not hold 128";
  free_run(arena, first, 60);
  free_run(arena, small, 5);
  free_run(arena, after, 1);
  free_run(arena, big, 128);
  EXPECT_EQ(claim(arena, 60 + 70 + 1 + 128), first) << "all joined again";
}

TEST(SliceArenaTest, ARunGrowsWhereItLiesOverFreeSlicesOnly) {
  static SliceArena arena;
  unsigned char* a = claim(arena, 10);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(arena.extend(a, 10 * kSlice, 70 * kSlice)) << "across a word, into free slices";
  EXPECT_EQ(arena.stats().used_bytes, 70 * kSlice);
  unsigned char* b = claim(arena, 1);
  EXPECT_EQ(b, a + 70 * kSlice);
  EXPECT_FALSE(arena.extend(a, 70 * kSlice, 72 * kSlice)) << "b lies in the way";
  EXPECT_EQ(arena.stats().used_bytes, 71 * kSlice) << "a failed extension claims nothing";
  const std::size_t region_slices = SliceArena::kRegionBytes / kSlice;
  EXPECT_FALSE(arena.extend(b, kSlice, (region_slices - 70 + 1) * kSlice))
      << "not past the region's end";
  free_run(arena, b, 1);
  EXPECT_TRUE(arena.extend(a, 70 * kSlice, 72 * kSlice));
  free_run(arena, a, 72);
  EXPECT_EQ(arena.stats().used_bytes, 0u);
}

TEST(SliceArenaTest, DirtySlicesAreReleasedOnceDueAndThenReadZero) {
  static SliceArena arena;
  bool fresh = false;
  unsigned char* a = claim(arena, 4, &fresh);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(fresh) << "never touched";
  std::memset(a, 0x77, 4 * kSlice);
  arena.free(a, 4 * kSlice, /*now_ms=*/1000, SliceArena::Pages::kKept);
  EXPECT_TRUE(resident(a, 4 * kSlice)) << "kept for reuse";
  EXPECT_EQ(arena.release_older_than(999), 0u) << "not due before its date";
  EXPECT_EQ(arena.stats().dirty_bytes, 4 * kSlice);
  EXPECT_EQ(arena.release_older_than(1000), 4 * kSlice);
  EXPECT_EQ(arena.stats().dirty_bytes, 0u);
  EXPECT_EQ(arena.stats().released_bytes, 4 * kSlice);
  EXPECT_EQ(arena.stats().used_bytes, 0u) << "released runs are free again";
  unsigned char* again = claim(arena, 4, &fresh);
  EXPECT_EQ(again, a);
  EXPECT_TRUE(fresh) << "released: zero";
  for (std::size_t i = 0; i < 4 * kSlice; i += 4096) ASSERT_EQ(again[i], 0) << i;
  // A delay of 0 gives the pages back as the run is freed.
  std::memset(again, 0x11, 4 * kSlice);
  free_run(arena, again, 4, SliceArena::Pages::kReleaseNow);
  EXPECT_EQ(arena.stats().dirty_bytes, 0u);
  unsigned char* third = claim(arena, 4, &fresh);
  EXPECT_TRUE(fresh);
  EXPECT_EQ(third[100], 0);
  free_run(arena, third, 4);
}

TEST(SliceArenaTest, ANewRegionIsPreparedFirstAndARefusedOneFailsTheClaim) {
  static SliceArena arena;
  const std::size_t region_slices = SliceArena::kRegionBytes / kSlice;
  const std::size_t max_slices = SliceArena::kMaxRunBytes / kSlice;
  std::vector<unsigned char*> runs;
  for (std::size_t left = region_slices; left != 0; left -= max_slices) {
    runs.push_back(claim(arena, max_slices));
    ASSERT_NE(runs.back(), nullptr);
  }
  EXPECT_EQ(arena.stats().regions, 1u) << "the region is full";
  int prepared = 0;
  bool fresh = false;
  platform::FaultInjection::fail_all_requests();
  EXPECT_EQ(arena.claim(kSlice, false, &fresh,
                        [&](void*, std::size_t) {
                          ++prepared;
                          return true;
                        }),
            nullptr);
  platform::FaultInjection::disarm();
  EXPECT_EQ(prepared, 0);
  EXPECT_EQ(arena.claim(kSlice, false, &fresh, [](void*, std::size_t) { return false; }), nullptr)
      << "a region the caller could not prepare is given back";
  EXPECT_EQ(arena.stats().regions, 1u);
  void* run = arena.claim(kSlice, false, &fresh, [&](void* base, std::size_t bytes) {
    ++prepared;
    EXPECT_EQ(bytes, SliceArena::kRegionBytes);
    EXPECT_FALSE(arena.holds(base)) << "prepared before it is published";
    return true;
  });
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(prepared, 1);
  EXPECT_EQ(arena.stats().regions, 2u);
  EXPECT_TRUE(arena.holds(run));
  EXPECT_FALSE(arena.holds(&prepared));
  EXPECT_FALSE(arena.free(&prepared, kSlice, 0, SliceArena::Pages::kKept))
      << "not the arena's: nothing done";
  EXPECT_TRUE(arena.free(run, kSlice, 0, SliceArena::Pages::kGone));
  EXPECT_EQ(arena.stats().dirty_bytes, 0u) << "a run whose pages moved out is clean";
  for (unsigned char* r : runs) free_run(arena, r, max_slices);
}

// Threads claim, fill, check and free runs of random lengths while another releases dirty
// slices: every run a thread holds keeps its bytes (no two runs overlap, and no release
// takes a used slice's pages).
TEST(SliceArenaTest, ManyThreadsClaimRunsThatNeverOverlap) {
  static SliceArena arena;
  constexpr int kThreads = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread releaser([&] {
    while (!stop.load()) arena.release_older_than(UINT64_MAX);
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(static_cast<unsigned>(t));
      struct Held {
        unsigned char* run;
        std::size_t slices;
      };
      std::vector<Held> held;
      for (int i = 0; i < 3000; ++i) {
        if (held.size() < 8 && (held.empty() || random() % 2 == 0)) {
          const std::size_t slices = 1 + random() % 100;
          unsigned char* run = claim(arena, slices);
          if (run == nullptr) {
            ++failures;
            continue;
          }
          for (std::size_t s = 0; s < slices; ++s)
            run[s * kSlice] = static_cast<unsigned char>(t + 1);
          held.push_back({run, slices});
        } else {
          const std::size_t k = random() % held.size();
          for (std::size_t s = 0; s < held[k].slices; ++s) {
            if (held[k].run[s * kSlice] != t + 1) ++failures;
          }
          free_run(arena, held[k].run, held[k].slices);
          held.erase(held.begin() + static_cast<long>(k));
        }
      }
      for (const Held& h : held) free_run(arena, h.run, h.slices);
    });
  }
  for (auto& thread : threads) thread.join();
  stop = true;
  releaser.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(arena.stats().used_bytes, 0u);
}

}  // namespace
}  // namespace polymalloc::allocator
