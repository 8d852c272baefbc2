// signal_safe's own promises, beyond the conformance suite: lock-freedom as a constant and a
// query, the static arena alone (exhaustion fails cleanly with ENOMEM), every request size
// around AO_malloc's problem range, and a thread stopped inside a stack pop not stopping
// anybody else.
#include "variants/signal_safe/signal_safe.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <polymalloc/polymalloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

namespace polymalloc::variants {
namespace {

constexpr std::size_t kKiB = 1024, kMiB = 1024 * 1024;

template <class Core>
void expect_consistent() {
  const void* where = nullptr;
  const char* problem = Core::check_heap(&where);
  EXPECT_EQ(problem, nullptr) << problem << " at " << where;
}

TEST(SignalSafeTest, LockFreedomIsACompileTimeConstantAndARuntimeQuery) {
  static_assert(SignalSafe::kIsLockFree == atomics::kStackIsLockFree);
  EXPECT_EQ(polymalloc_signal_safe_is_lock_free(), SignalSafe::kIsLockFree ? 1 : 0);
  if (atomics::kHasDoubleCas && std::string_view(atomics::DefaultStack::kName) == "versioned") {
    EXPECT_EQ(polymalloc_signal_safe_is_lock_free(), 1) << "double-width CAS: lock-free";
  }
}

// The variant as built, with mmap never enabled (this binary's environment leaves it off):
// the configured static arena is all there is.
TEST(SignalSafeTest, ExhaustingTheArenaWithoutMmapFailsWithEnomemAndBreaksNothing) {
  ASSERT_FALSE(SignalSafe::mmap_enabled());
  void* small = SignalSafe::allocate(40);  // a class with blocks to spare after exhaustion
  ASSERT_NE(small, nullptr);
  errno = 0;
  EXPECT_EQ(SignalSafe::allocate(2 * kMiB), nullptr) << "large blocks need mmap";
  EXPECT_EQ(errno, ENOMEM);
  std::vector<void*> held;
  for (;;) {
    errno = 0;
    void* p = SignalSafe::allocate(1000);
    if (p == nullptr) {
      EXPECT_EQ(errno, ENOMEM);
      break;
    }
    std::memset(p, 0x5a, 1000);
    held.push_back(p);
    ASSERT_LT(held.size(), 100000u) << "the arena never ran out";
  }
  const std::size_t arena = std::size_t{kConfiguredArenaKib} * kKiB;
  EXPECT_GT(held.size() * 1024, arena / 2) << "most of the arena served the 1 KiB class";
  EXPECT_LE(SignalSafe::carved_bytes(), arena);
  // Other classes with free blocks still work, and freed blocks serve again.
  void* another = SignalSafe::allocate(40);
  EXPECT_NE(another, nullptr);
  SignalSafe::deallocate(another, "free");
  const std::size_t count = held.size();
  for (void* p : held) SignalSafe::deallocate(p, "free");
  held.clear();
  for (std::size_t i = 0; i < count; ++i) {
    void* p = SignalSafe::allocate(1000);
    ASSERT_NE(p, nullptr) << "block " << i << " of " << count << " was not reused";
    held.push_back(p);
  }
  for (void* p : held) SignalSafe::deallocate(p, "free");
  SignalSafe::deallocate(small, "free");
  expect_consistent<SignalSafe>();
}

// Cores of their own (distinct arenas make distinct types), so that enabling mmap or
// exhausting an arena in one test does not leak into another.
using MappingCore = SignalSafeCore<atomics::DefaultStack, platform::StaticArena<256 * kKiB>>;
using ArenaOnlyCore = SignalSafeCore<atomics::DefaultStack, platform::StaticArena<512 * kKiB>>;

// AO_malloc hangs or fails on requests of 32 761 to 65 528 bytes with mmap on; here every
// one works, with mmap on and off, and each block holds what was asked for.
template <class Core>
void every_size_around_the_class_boundary_works() {
  for (std::size_t n = 32761 - 64; n <= 65528 + 64; ++n) {
    auto* p = static_cast<unsigned char*>(Core::allocate(n));
    ASSERT_NE(p, nullptr) << n;
    ASSERT_GE(Core::usable_size(p), n);
    ASSERT_EQ(reinterpret_cast<std::uintptr_t>(p) % 16, 0u);
    p[0] = 1;
    p[n - 1] = 2;
    Core::deallocate(p, "free");
  }
  expect_consistent<Core>();
}

TEST(SignalSafeTest, EveryRequestFrom32761To65528BytesWorksWithMmap) {
  MappingCore::enable_mmap();
  every_size_around_the_class_boundary_works<MappingCore>();
  void* large = MappingCore::allocate(3 * kMiB);
  EXPECT_NE(large, nullptr) << "with mmap, large blocks are mappings";
  MappingCore::deallocate(large, "free");
}

TEST(SignalSafeTest, AGrowingBufferIsLentTheMappingItsLastCycleLeftAndGrowsWithoutMoving) {
  MappingCore::enable_mmap();
  MappingCore::trim(0);  // no cached mapping left by earlier tests (the smallest is lent)
  void* doubled = MappingCore::allocate(16 * kMiB);  // a 20 MiB mapping once freed: cached
  ASSERT_NE(doubled, nullptr);
  MappingCore::deallocate(doubled, "free");
  const std::size_t hits = MappingCore::statistics().mapping_cache_hits;
  void* buffer = MappingCore::allocate_to_grow(4 * kKiB);  // realloc(NULL, 4096)
  ASSERT_NE(buffer, nullptr);
  EXPECT_EQ(MappingCore::statistics().mapping_cache_hits, hits) << "lent: not a request's hit";
  EXPECT_GT(MappingCore::statistics().mapped_lent_bytes, 16 * kMiB);
  std::memset(buffer, 0x6b, 4 * kKiB);
  for (std::size_t bytes = 8 * kKiB; bytes <= 16 * kMiB; bytes *= 2) {
    ASSERT_EQ(MappingCore::reallocate(buffer, bytes), buffer) << "no copy at " << bytes;
    static_cast<unsigned char*>(buffer)[bytes - 1] = 1;
  }
  EXPECT_EQ(static_cast<unsigned char*>(buffer)[4 * kKiB - 1], 0x6b);
  MappingCore::deallocate(buffer, "free");
  EXPECT_EQ(MappingCore::statistics().mapped_lent_bytes, 0u);
  EXPECT_GT(MappingCore::statistics().mapping_cache_bytes, 16 * kMiB) << "cached again";
  void* small = MappingCore::allocate_to_grow(100);
  EXPECT_EQ(MappingCore::statistics().mapped_lent_bytes, 0u) << "a small one is malloc's";
  MappingCore::deallocate(small, "free");
  expect_consistent<MappingCore>();
}

TEST(SignalSafeTest, EveryRequestFrom32761To65528BytesWorksFromTheArenaAlone) {
  ASSERT_FALSE(ArenaOnlyCore::mmap_enabled());
  every_size_around_the_class_boundary_works<ArenaOnlyCore>();
}

// A double-width CAS that holds the thread that armed it at its next CAS, i.e. inside a
// stack operation, after it read the stack's head and before it tries to swing it.
struct HoldableDoubleCas {
  static constexpr bool kIsLockFree = true;
  static constexpr const char* kName = "holdable";
  static inline thread_local bool armed = false;
  static inline std::atomic<bool> held{false};
  static inline std::atomic<bool> release{false};

  static bool cas_seq_cst(atomics::DoubleWord* p, atomics::DoubleWord& expected,
                          atomics::DoubleWord desired) {
    if (armed) {
      armed = false;
      held = true;
      while (!release.load()) std::this_thread::yield();
    }
    return atomics::NativeDoubleCas::cas_seq_cst(p, expected, desired);
  }
};
using HoldableCore =
    SignalSafeCore<atomics::VersionedStack<HoldableDoubleCas>, platform::StaticArena<1024 * kKiB>>;

TEST(SignalSafeTest, AThreadHeldInsideAPopDoesNotStopOtherThreads) {
  if (!atomics::kHasDoubleCas) GTEST_SKIP() << "needs double-width CAS to build the hook";
  // Pool some 64-byte blocks: the held thread's first malloc pops a batch of them.
  std::vector<void*> blocks;
  for (int i = 0; i < 2000; ++i) blocks.push_back(HoldableCore::allocate(48));
  for (void* p : blocks) HoldableCore::deallocate(p, "free");
  blocks.clear();

  std::vector<void*> victims_blocks;
  std::thread victim([&] {
    HoldableDoubleCas::armed = true;
    for (int i = 0; i < 100; ++i) victims_blocks.push_back(HoldableCore::allocate(48));
  });
  while (!HoldableDoubleCas::held.load()) std::this_thread::yield();

  // While it is held mid-pop, two threads allocate and free the same class through the same
  // pool (enough to refill and spill their caches many times) and finish.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::atomic<int> finished{0};
  std::vector<std::thread> others;
  for (int t = 0; t < 2; ++t) {
    others.emplace_back([&] {
      std::vector<void*> mine;
      for (int round = 0; round < 200; ++round) {
        for (int i = 0; i < 300; ++i) mine.push_back(HoldableCore::allocate(48));
        for (void* p : mine) HoldableCore::deallocate(p, "free");
        mine.clear();
      }
      finished.fetch_add(1);
    });
  }
  while (finished.load() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(finished.load(), 2) << "other threads were blocked by the held one";
  for (auto& t : others) t.join();
  EXPECT_TRUE(victims_blocks.empty()) << "the held thread was still inside its first malloc";

  HoldableDoubleCas::release = true;
  victim.join();
  ASSERT_EQ(victims_blocks.size(), 100u);
  std::sort(victims_blocks.begin(), victims_blocks.end());
  EXPECT_EQ(std::adjacent_find(victims_blocks.begin(), victims_blocks.end()), victims_blocks.end())
      << "a block was handed out twice";
  for (void* p : victims_blocks) HoldableCore::deallocate(p, "free");
  expect_consistent<HoldableCore>();
}

}  // namespace
}  // namespace polymalloc::variants
