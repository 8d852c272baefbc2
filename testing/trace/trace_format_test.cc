// The trace format: every token parses to what it says, writes back to the same text, and a
// malformed line is an error with a message, never a crash.
#include "testing/trace/trace_format.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace polymalloc::testing {
namespace {

TraceOp parse(const std::string& line) {
  TraceOp op;
  const char* error = nullptr;
  EXPECT_TRUE(parse_trace_line(line.data(), line.size(), &op, &error)) << line;
  EXPECT_EQ(error, nullptr) << line << ": " << error;
  return op;
}

std::string error_of(const std::string& line) {
  TraceOp op;
  const char* error = nullptr;
  EXPECT_FALSE(parse_trace_line(line.data(), line.size(), &op, &error)) << line;
  return error == nullptr ? "" : error;
}

std::string format(const TraceOp& op) {
  char buffer[kMaxTraceLine];
  return std::string(buffer, format_trace_op(op, buffer));
}

TEST(TraceFormatTest, ClassicTokens) {
  TraceOp op = parse("17=100");
  EXPECT_EQ(op.kind, TraceOp::Kind::kMalloc);
  EXPECT_EQ(op.slot, 17u);
  EXPECT_EQ(op.size, 100u);
  EXPECT_EQ(op.thread, 0u);
  op = parse("17");
  EXPECT_EQ(op.kind, TraceOp::Kind::kFree);
  EXPECT_EQ(op.slot, 17u);
  EXPECT_EQ(parse("s").kind, TraceOp::Kind::kStats);
  EXPECT_EQ(parse("e").kind, TraceOp::Kind::kEnd);
}

TEST(TraceFormatTest, Extensions) {
  TraceOp op = parse("3@5=r4096");
  EXPECT_EQ(op.kind, TraceOp::Kind::kRealloc);
  EXPECT_EQ(op.thread, 3u);
  EXPECT_EQ(op.slot, 5u);
  EXPECT_EQ(op.size, 4096u);
  op = parse("9=c10*24");
  EXPECT_EQ(op.kind, TraceOp::Kind::kCalloc);
  EXPECT_EQ(op.extra, 10u);
  EXPECT_EQ(op.size, 24u);
  op = parse("1@0=a64:1000");
  EXPECT_EQ(op.kind, TraceOp::Kind::kAligned);
  EXPECT_EQ(op.extra, 64u);
  EXPECT_EQ(op.size, 1000u);
  EXPECT_EQ(op.thread, 1u);
  EXPECT_EQ(parse("  42 \r").kind, TraceOp::Kind::kFree) << "blanks around are fine";
}

TEST(TraceFormatTest, CommentsAndBlankLinesAreNotOperations) {
  for (const std::string line : {"", "   ", "# genrandms --seed 1", "  # indented"}) {
    TraceOp op;
    const char* error = "unset";
    EXPECT_FALSE(parse_trace_line(line.data(), line.size(), &op, &error)) << line;
    EXPECT_EQ(error, nullptr) << line;
  }
}

TEST(TraceFormatTest, EveryOperationWritesBackToItself) {
  for (const std::string line : {"17=100\n", "17\n", "s\n", "e\n", "3@5=r4096\n", "9=c10*24\n",
                                 "1@0=a64:1000\n", "1023@4294967295=18446744073709551615\n"}) {
    EXPECT_EQ(format(parse(line.substr(0, line.size() - 1))), line);
  }
}

TEST(TraceFormatTest, MalformedLinesSayWhatIsWrong) {
  EXPECT_NE(error_of("x").find("slot number"), std::string::npos);
  EXPECT_NE(error_of("5=").find("size"), std::string::npos);
  EXPECT_NE(error_of("5=xyz").find("size"), std::string::npos);
  EXPECT_NE(error_of("5=abc").find("alignment"), std::string::npos);
  EXPECT_NE(error_of("5=100 junk").find("unexpected text"), std::string::npos);
  EXPECT_NE(error_of("5=c10").find("'*'"), std::string::npos);
  EXPECT_NE(error_of("5=a48:100").find("power of two"), std::string::npos);
  EXPECT_NE(error_of("5=a64").find("':'"), std::string::npos);
  EXPECT_NE(error_of("2000@5").find("thread"), std::string::npos);
  EXPECT_NE(error_of("4294967296").find("slot"), std::string::npos) << "slot above 2^32-1";
  EXPECT_NE(error_of("5=18446744073709551616").find("size"), std::string::npos) << "overflow";
  EXPECT_NE(error_of("-5").find("slot number"), std::string::npos);
}

}  // namespace
}  // namespace polymalloc::testing
