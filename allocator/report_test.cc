// The allocator's own output: number formatting, truncation instead of overflow, the
// statistics summary, and the misuse report's exact line followed by SIGABRT.
#include "allocator/report.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace polymalloc::allocator {
namespace {

std::string written(const LineWriter& line) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  line.write_to(fds[1]);
  close(fds[1]);
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof(buffer))) > 0;) out.append(buffer, n);
  close(fds[0]);
  return out;
}

TEST(LineWriterTest, FormatsNumbers) {
  EXPECT_EQ(written(LineWriter().decimal(0).text(" ").decimal(18446744073709551615u)),
            "0 18446744073709551615");
  EXPECT_EQ(written(LineWriter().hex(0).text(" ").hex(0xdeadbeef)), "0x0 0xdeadbeef");
  EXPECT_EQ(written(LineWriter().bytes(1023)), "1023 B");
  EXPECT_EQ(written(LineWriter().bytes(1536)), "1.5 KiB");
  EXPECT_EQ(written(LineWriter().bytes(std::uint64_t{3} << 30)), "3.0 GiB");
}

TEST(LineWriterTest, LongOutputIsCutNotOverflowed) {
  LineWriter line;
  const std::string chunk(100, 'x');
  for (int i = 0; i < 10; ++i) line.text(chunk.c_str());
  EXPECT_EQ(written(line).size(), 512u);
}

TEST(ReportTest, StatisticsSummaryNamesTheVariantAndTotals) {
  Statistics s;
  s.variant = "test_variant";
  s.heap_committed_bytes = 4 << 20;
  s.heap_free_bytes = 1 << 20;
  s.mapped_bytes = 2 << 20;
  s.mapped_objects = 1;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  print_statistics(s, fds[1]);
  close(fds[1]);
  char buffer[4096] = {};
  const ssize_t n = read(fds[0], buffer, sizeof(buffer) - 1);
  close(fds[0]);
  ASSERT_GT(n, 0);
  const std::string out(buffer);
  EXPECT_NE(out.find("polymalloc test_variant statistics"), std::string::npos) << out;
  EXPECT_NE(out.find("4.0 MiB committed"), std::string::npos) << out;
  EXPECT_NE(out.find("2.0 MiB in 1 large blocks"), std::string::npos) << out;
  EXPECT_NE(out.find("total in use: 5.0 MiB"), std::string::npos) << out;
}

TEST(ReportTest, MallocStatsBeginsWithGlibcsLines) {
  Statistics s;
  s.variant = "test_variant";
  s.heap_committed_bytes = 4 << 20;
  s.heap_free_bytes = 1 << 20;
  s.mapped_bytes = 2 << 20;
  s.mapped_objects = 1;
  s.peak_mapped_bytes = 3 << 20;
  s.peak_mapped_objects = 2;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  print_malloc_stats(s, fds[1]);
  close(fds[1]);
  char buffer[4096] = {};
  const ssize_t n = read(fds[0], buffer, sizeof(buffer) - 1);
  close(fds[0]);
  ASSERT_GT(n, 0);
  const std::string out(buffer);
  EXPECT_EQ(out.find("Arena 0:\n"
                     "system bytes     =    4194304\n"
                     "in use bytes     =    3145728\n"
                     "Total (incl. mmap):\n"
                     "system bytes     =    6291456\n"
                     "in use bytes     =    5242880\n"
                     "max mmap regions =          2\n"
                     "max mmap bytes   =    3145728\n"
                     "polymalloc test_variant statistics\n"),
            0u)
      << out;
}

TEST(ReportDeathTest, MisuseIsOneLineThenAbort) {
  EXPECT_DEATH(report_misuse("free", "double free of", reinterpret_cast<void*>(0x1230)),
               "^polymalloc: free\\(\\): double free of 0x1230\n$");
}

TEST(ReportTest, StatisticsAtExitFollowTheEnvironment) {
  unsetenv("POLYMALLOC_STATS");
  EXPECT_FALSE(statistics_requested_at_exit());
  setenv("POLYMALLOC_STATS", "0", 1);
  EXPECT_FALSE(statistics_requested_at_exit());
  setenv("POLYMALLOC_STATS", "1", 1);
  EXPECT_TRUE(statistics_requested_at_exit());
  unsetenv("POLYMALLOC_STATS");
}

}  // namespace
}  // namespace polymalloc::allocator
