// CheckedCore over a core of mappings only (LargeObjects): guards and canaries that catch
// overflows anywhere up to the block's end and underflows, double free and reuse after free,
// junk in freed memory that is checked when the block leaves the quarantine and by the
// periodic check, a quarantine that keeps freed blocks from reuse, zeroing on free, sized
// delete, the periodic heap check and its setting, and a realloc that keeps the bytes.
#include "allocator/checked_core.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>

#include "allocator/large_objects.h"

namespace polymalloc::allocator {
namespace {

// Every block its own mapping; a heap check that fails once a test plants a problem.
struct MappingCore {
  static constexpr const char* kName = "mapping_core";
  static inline LargeObjects large;
  static inline const char* planted_problem = nullptr;

  static void* allocate(std::size_t n) { return payload(large.allocate(n)); }
  static void* allocate_zeroed(std::size_t n) { return allocate(n); }
  static void* allocate_aligned(std::size_t alignment, std::size_t n) {
    return payload(large.allocate(n, alignment));
  }
  static void deallocate(void* p, const char* call) {
    large.check_live(Block::of_payload(p), call);
    large.release(Block::of_payload(p));
  }
  static void* reallocate(void* p, std::size_t n) {
    return payload(large.resize(Block::of_payload(p), n));
  }
  static std::size_t usable_size(const void* p) {
    return LargeObjects::usable_size(Block::of_payload(const_cast<void*>(p)));
  }
  static bool owns(const void* p) { return large.owns(Block::of_payload(const_cast<void*>(p))); }
  static bool freed_mapping(const void* p) {
    return large.freed(Block::of_payload(const_cast<void*>(p)));
  }
  static bool trim(std::size_t) { return false; }
  static Statistics statistics(Detail = Detail::kTotals) { return {}; }
  static const char* check_heap(const void** where) {
    if (planted_problem != nullptr && where != nullptr) *where = &planted_problem;
    return planted_problem;
  }
  static void prepare_fork() {}
  static void after_fork_in_parent() {}
  static void after_fork_in_child() {}

 private:
  static void* payload(Block* b) { return b != nullptr ? b->payload() : nullptr; }
};

using Checked = CheckedCore<MappingCore>;
static_assert(AllocatorCore<Checked>);

std::string report(const char* call, const char* problem) {
  return std::string("^polymalloc: ") + call + "\\(\\): " + problem;
}

class CheckedCoreTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(CheckedCoreTest, BlocksHoldTheirBytesAndReportTheRequestedSize) {
  for (std::size_t n : {std::size_t{1}, std::size_t{100}, std::size_t{4096}}) {
    auto* p = static_cast<unsigned char*>(Checked::allocate(n));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 16, 0u);
    EXPECT_EQ(Checked::usable_size(p), n);
    std::memset(p, 0x5a, n);
    Checked::deallocate(p, "free");
  }
  auto* aligned = static_cast<unsigned char*>(Checked::allocate_aligned(4096, 300));
  ASSERT_NE(aligned, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(aligned) % 4096, 0u);
  EXPECT_EQ(Checked::usable_size(aligned), 300u);
  Checked::deallocate(aligned, "free");
}

TEST_F(CheckedCoreTest, ReallocMovesAndKeepsTheBytes) {
  auto* p = static_cast<unsigned char*>(Checked::allocate(50));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 50; ++i) p[i] = static_cast<unsigned char>(i);
  auto* q = static_cast<unsigned char*>(Checked::reallocate(p, 5000));
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, p);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(q[i], i);
  EXPECT_EQ(Checked::usable_size(q), 5000u);
  Checked::deallocate(q, "free");
}

TEST_F(CheckedCoreTest, AnOverflowOfOneByteIsReportedWithTheBlock) {
  EXPECT_DEATH(
      {
        auto* p = static_cast<unsigned char*>(Checked::allocate(100));
        p[100] ^= 0xff;  // one past the end (flipped, as any set value may be canary)
        Checked::deallocate(p, "free");
      },
      report("free",
             "buffer overflow: the bytes just past the end of 0x[0-9a-f]+ \\(a block "
             "of 100 bytes\\)\n$"));
}

TEST_F(CheckedCoreTest, AnUnderflowIsReportedAsACorruptedHeader) {
  EXPECT_DEATH(
      {
        auto* p = static_cast<unsigned char*>(Checked::allocate(100));
        p[-3] ^= 1;
        Checked::usable_size(p);
      },
      report("malloc_usable_size", "corrupted header of 0x[0-9a-f]+\n$"));
}

TEST_F(CheckedCoreTest, DoubleFreeAndUseAfterFreeAreReported) {
  EXPECT_DEATH(
      {
        void* p = Checked::allocate(100);
        Checked::deallocate(p, "free");
        Checked::deallocate(p, "free");
      },
      report("free", "double free of 0x[0-9a-f]+\n$"));
  EXPECT_DEATH(
      {
        void* p = Checked::allocate_aligned(1 << 16, 100);
        Checked::deallocate(p, "free");
        Checked::reallocate(p, 200);
      },
      report("realloc", "freed pointer 0x[0-9a-f]+\n$"));
  EXPECT_DEATH(
      {
        alignas(16) static char not_a_block[64];
        Checked::deallocate(not_a_block + 32, "free");
      },
      report("free", "invalid pointer 0x[0-9a-f]+\n$"));
}

// A core that copies what it is handed to free, to show what a freed block holds.
struct SpyCore : MappingCore {
  static inline unsigned char seen[64];
  static void deallocate(void* p, const char* call) {
    std::memcpy(seen, static_cast<unsigned char*>(p) + kCheckedClientOffset, sizeof(seen));
    MappingCore::deallocate(p, call);
  }
};

TEST_F(CheckedCoreTest, FreedBytesAreJunkFilledBeforeTheInnerCoreSeesThem) {
  using CheckedSpy = CheckedCore<SpyCore>;
  auto* p = static_cast<unsigned char*>(CheckedSpy::allocate(64));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x11, 64);
  CheckedSpy::deallocate(p, "free");
  CheckedSpy::drain_quarantine();  // (it waited there until now)
  for (unsigned char byte : SpyCore::seen) ASSERT_EQ(byte, Checked::kJunk);
}

TEST_F(CheckedCoreTest, OverflowsUpToTheBlocksEndAreReported) {
  for (std::size_t past : {1, 8, 31, 32, 100}) {
    SCOPED_TRACE(past);
    EXPECT_DEATH(
        {
          auto* p = static_cast<unsigned char*>(Checked::allocate(100));
          p[100 + past - 1] ^= 0x40;  // one byte, `past` bytes past the end
          Checked::deallocate(p, "free");
        },
        report("free",
               "buffer overflow: the bytes just past the end of 0x[0-9a-f]+ \\(a block "
               "of 100 bytes\\)\n$"));
  }
  EXPECT_DEATH(
      {
        auto* p = static_cast<unsigned char*>(Checked::allocate(0));
        p[0] ^= 0xff;  // malloc(0) has no usable byte
        Checked::reallocate(p, 10);
      },
      report("realloc",
             "buffer overflow: the bytes just past the end of 0x[0-9a-f]+ \\(a "
             "block of 0 bytes\\)\n$"));
}

TEST_F(CheckedCoreTest, UnderflowsOfUpTo64BytesAreReported) {
  for (std::ptrdiff_t before : {17, 32, 64}) {
    SCOPED_TRACE(before);
    EXPECT_DEATH(
        {
          auto* p = static_cast<unsigned char*>(Checked::allocate(100));
          p[-before] ^= 0x40;
          Checked::deallocate(p, "free");
        },
        report("free",
               "buffer underflow: the bytes just before 0x[0-9a-f]+ \\(a block of 100 "
               "bytes\\)\n$"));
  }
}

TEST_F(CheckedCoreTest, AWriteAfterFreeIsReportedBeforeTheBlockIsReused) {
  EXPECT_DEATH(
      {
        auto* p = static_cast<unsigned char*>(Checked::allocate(200));
        Checked::deallocate(p, "free");
        p[10] = 0;                    // a write after free, into the quarantined block
        Checked::drain_quarantine();  // it leaves: checked before the inner core has it
      },
      report("malloc_trim",
             "write after free to 0x[0-9a-f]+ \\(a block of 200 bytes, offset 10\\)\n$"));
  EXPECT_DEATH(
      {
        auto* p = static_cast<unsigned char*>(Checked::allocate(200));
        Checked::deallocate(p, "free");
        p[-40] ^= 0xff;  // below the guard
        Checked::drain_quarantine();
      },
      report("malloc_trim",
             "write after free to 0x[0-9a-f]+ \\(a block of 200 bytes, offset -40\\)\n$"));
}

TEST_F(CheckedCoreTest, ThePeriodicCheckVerifiesTheQuarantinedJunk) {
  // POLYMALLOC_CHECK_INTERVAL=8 (the test's environment): the 8th call checks.
  EXPECT_DEATH(
      {
        auto* p = static_cast<unsigned char*>(Checked::allocate(3000));
        Checked::deallocate(p, "free");
        p[2999] = 0;
        for (int i = 0; i < 8; ++i) Checked::deallocate(Checked::allocate(16), "free");
      },
      report("(malloc|free)",
             "write after free to 0x[0-9a-f]+ \\(a block of 3000 bytes, offset 2999\\)\n$"));
}

TEST_F(CheckedCoreTest, AQuarantinedBlockIsNotReusedBeforeItsTurn) {
  Checked::drain_quarantine();
  void* first = Checked::allocate(100);
  Checked::deallocate(first, "free");
  // Each block holds a page of the mapping core; 1000 of them stay well within the bound.
  for (int i = 0; i < 1000; ++i) {
    void* p = Checked::allocate(100);
    ASSERT_NE(p, first) << "reused after " << i << " frees";
    Checked::deallocate(p, "free");
  }
  EXPECT_EQ(Checked::statistics().quarantine_blocks, 1001u);
  Checked::drain_quarantine();
  EXPECT_EQ(Checked::statistics().quarantine_blocks, 0u);
  EXPECT_EQ(Checked::statistics().quarantine_bytes, 0u);
}

TEST_F(CheckedCoreTest, ABlockBiggerThanTheQuarantineSkipsIt) {
  EXPECT_EXIT(
      {
        setenv("POLYMALLOC_QUARANTINE_BYTES", "64k", 1);
        Settings::forget_for_tests();
        Checked::deallocate(Checked::allocate(100 << 10), "free");
        const bool skipped = Checked::statistics().quarantine_blocks == 0;
        for (int i = 0; i < 100; ++i) Checked::deallocate(Checked::allocate(1000), "free");
        const auto s = Checked::statistics();
        _exit(skipped && s.quarantine_bytes <= (64 << 10) && s.quarantine_blocks > 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(CheckedCoreTest, ZeroOnFreeClearsTheWholeBlock) {
  EXPECT_EXIT(
      {
        setenv("POLYMALLOC_ZERO_ON_FREE", "1", 1);
        Settings::forget_for_tests();
        using CheckedSpy = CheckedCore<SpyCore>;
        auto* p = static_cast<unsigned char*>(CheckedSpy::allocate(64));
        std::memset(p, 0x11, 64);
        CheckedSpy::deallocate(p, "free");
        CheckedSpy::drain_quarantine();
        for (unsigned char byte : SpyCore::seen) {
          if (byte != 0) _exit(1);
        }
        _exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(CheckedCoreTest, ASizedDeleteOfTheWrongSizeIsReported) {
  void* p = Checked::allocate(40);
  Checked::deallocate_sized(p, 40, "operator delete");
  EXPECT_DEATH(Checked::deallocate_sized(Checked::allocate(40), 48, "operator delete"),
               report("operator delete",
                      "size does not match the block of 0x[0-9a-f]+ \\(a block of 40 "
                      "bytes\\)\n$"));
}

TEST_F(CheckedCoreTest, TheHeapCheckRunsEveryIntervalCalls) {
  // POLYMALLOC_CHECK_INTERVAL=8 (the test's environment, see BUILD.bazel).
  EXPECT_DEATH(
      {
        MappingCore::planted_problem = "planted problem";
        for (int i = 0; i < 8; ++i) Checked::deallocate(Checked::allocate(16), "free");
      },
      report("(malloc|free)", "heap check failed: planted problem at 0x[0-9a-f]+\n$"));
}

TEST_F(CheckedCoreTest, AMalformedIntervalIsNamedAndTheDefaultChecksStillRun) {
  EXPECT_EXIT(
      {
        setenv("POLYMALLOC_CHECK_INTERVAL", "often", 1);
        Settings::forget_for_tests();
        MappingCore::planted_problem = "planted problem";
        for (int i = 0; i < 2048; ++i) Checked::deallocate(Checked::allocate(16), "free");
        _exit(0);  // (not reached: the 1024th call checks the heap)
      },
      ::testing::KilledBySignal(SIGABRT),
      "^polymalloc: POLYMALLOC_CHECK_INTERVAL=often is not a count of calls \\(0: never\\); "
      "using 1024\n.*heap check failed: planted problem");
}

}  // namespace
}  // namespace polymalloc::allocator
