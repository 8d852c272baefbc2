// The allocator's own output: number formatting, truncation instead of overflow, the
// statistics summary, the misuse report's exact line followed by SIGABRT, and the runtime
// API's answers (introspection.h): properties, JSON statistics, malloc_info's XML.
#include "allocator/report.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "allocator/introspection.h"

namespace polymalloc::allocator {
namespace {

// What write(fd) writes to a pipe.
template <class Write>
std::string output_of(Write write) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  write(fds[1]);
  close(fds[1]);
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof(buffer))) > 0;) out.append(buffer, n);
  close(fds[0]);
  return out;
}

std::string written(const LineWriter& line) {
  return output_of([&line](int fd) { line.write_to(fd); });
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
                     "polymalloc test_variant statistics (pid " +
                     std::to_string(getpid()) + ")\n"),
            0u)
      << out;
}

TEST(ReportDeathTest, MisuseIsOneLineThenAbort) {
  EXPECT_DEATH(report_misuse("free", "double free of", reinterpret_cast<void*>(0x1230)),
               "^polymalloc: free\\(\\): double free of 0x1230\n$");
}

Statistics sample() {
  Statistics s;
  s.variant = "test \"variant\"\\";
  s.heap_committed_bytes = 10 << 20;
  s.heap_peak_committed_bytes = 12 << 20;
  s.heap_free_bytes = 4 << 20;  // 1 MiB of it released, 512 KiB of it in caches
  s.heap_free_blocks = 40;
  s.released_bytes = 1 << 20;
  s.thread_cache_bytes = 512 << 10;
  s.thread_cache_blocks = 8;
  s.mapped_bytes = 3 << 20;
  s.mapped_objects = 2;
  s.peak_mapped_bytes = 5 << 20;
  s.mapping_cache_bytes = 2 << 20;
  s.metadata_bytes = 64 << 10;
  s.heaps = 3;
  return s;
}

TEST(IntrospectionTest, PropertiesComeFromTheSnapshot) {
  const Statistics s = sample();
  std::size_t value = 0;
  ASSERT_TRUE(numeric_property(s, "generic.current_allocated_bytes", &value));
  EXPECT_EQ(value, std::size_t{(6 + 3) << 20});  // heap in use + mapped
  ASSERT_TRUE(numeric_property(s, "generic.heap_size", &value));
  EXPECT_EQ(value, std::size_t{(9 + 3 + 2) << 20} + (64 << 10));  // resident + maps + metadata
  ASSERT_TRUE(numeric_property(s, "polymalloc.heap_free_bytes", &value));
  EXPECT_EQ(value, std::size_t{3} << 20);  // free, less the released
  ASSERT_TRUE(numeric_property(s, "polymalloc.partitions", &value));
  EXPECT_EQ(value, 3u);
  value = 77;
  EXPECT_FALSE(numeric_property(s, "polymalloc.heap_free", &value));
  EXPECT_FALSE(numeric_property(s, "", &value));
  EXPECT_FALSE(numeric_property(s, nullptr, &value));
  EXPECT_EQ(value, 77u) << "an unknown name leaves the value alone";
}

TEST(IntrospectionTest, SignalSafesReleasedBytesAreOutsideItsCommittedBytes) {
  Statistics s = sample();
  s.released_in_committed = false;
  std::size_t value = 0;
  ASSERT_TRUE(numeric_property(s, "polymalloc.heap_free_bytes", &value));
  EXPECT_EQ(value, std::size_t{4} << 20);
  ASSERT_TRUE(numeric_property(s, "generic.heap_size", &value));
  EXPECT_EQ(value, std::size_t{(10 + 3 + 2) << 20} + (64 << 10));
  // Its arena's free slices kept resident are held from the OS as cached mappings are.
  s.arena_kept_bytes = std::size_t{1} << 20;
  ASSERT_TRUE(numeric_property(s, "polymalloc.arena_kept_bytes", &value));
  EXPECT_EQ(value, std::size_t{1} << 20);
  ASSERT_TRUE(numeric_property(s, "generic.heap_size", &value));
  EXPECT_EQ(value, std::size_t{(10 + 3 + 2 + 1) << 20} + (64 << 10));
}

TEST(IntrospectionTest, JsonHasEveryPropertyAndEscapesStrings) {
  const std::string out =
      output_of([](int fd) { write_statistics(sample(), StatsFormat::kJson, fd); });
  EXPECT_EQ(out.front(), '{');
  EXPECT_NE(out.find("\"variant\": \"test \\\"variant\\\"\\\\\",\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\"pid\": " + std::to_string(getpid()) + ",\n"), std::string::npos) << out;
  for (std::size_t i = 0; i < kNumericPropertyCount; ++i) {
    EXPECT_NE(out.find(std::string("\"") + kNumericProperties[i].name + "\": "), std::string::npos)
        << kNumericProperties[i].name;
  }
  EXPECT_EQ(out.substr(out.size() - 3), "\n}\n") << "the last member has no comma: " << out;
  EXPECT_EQ(out.find(",\n}"), std::string::npos) << out;
}

TEST(IntrospectionTest, MallocInfoIsGlibcsShapeWithPolymallocsFigures) {
  char* text = nullptr;
  size_t length = 0;
  FILE* out = open_memstream(&text, &length);
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(write_malloc_info(sample(), 0, out), 0);
  fclose(out);
  const std::string xml(text, length);
  free(text);
  EXPECT_EQ(xml.find("<malloc version=\"1\">\n<heap nr=\"0\">\n"), 0u) << xml;
  EXPECT_NE(xml.find("<total type=\"fast\" count=\"8\" size=\"524288\"/>"), std::string::npos);
  // rest: resident free (3 MiB) less the caches' 512 KiB, in 40 - 8 blocks
  EXPECT_NE(xml.find("<total type=\"rest\" count=\"32\" size=\"2621440\"/>"), std::string::npos);
  EXPECT_NE(xml.find("<total type=\"mmap\" count=\"2\" size=\"3145728\"/>"), std::string::npos);
  EXPECT_EQ(xml.substr(xml.size() - 10), "</malloc>\n");
  errno = 0;
  EXPECT_EQ(write_malloc_info(sample(), 1, stdout), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(write_malloc_info(sample(), 0, nullptr), -1);
}

}  // namespace
}  // namespace polymalloc::allocator
