// The heap profiler's parts: the countdown samples at the rate it is set to and never when
// off, the stack walk finds its callers, samples are kept, moved and forgotten by payload, and
// the profile says what gperftools' format says, scaled as tcmalloc scales, a line per stack.
#include "allocator/heap_profile.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "allocator/settings.h"

namespace polymalloc::allocator {
namespace {

// How many of `calls` allocations of `bytes` are sampled.
int sampled_of(int calls, std::size_t bytes) {
  int sampled = 0;
  for (int i = 0; i < calls; ++i) {
    if (HeapProfile::due(bytes) && HeapProfile::take(bytes)) ++sampled;
  }
  return sampled;
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class HeapProfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Settings::forget_for_tests();
    Settings::start_up("test");  // sampling starts after the process malloc's start-up
    HeapProfile::restart_thread_for_tests();
    path_ = std::string(getenv("TEST_TMPDIR") != nullptr ? getenv("TEST_TMPDIR") : "/tmp") +
            "/heap_profile_test." + std::to_string(getpid());
  }
  // Profiling on at a mean of `mean` bytes, from a started process malloc.
  static void profile_every(const char* mean) {
    setenv("POLYMALLOC_PROFILE_SAMPLE", mean, 1);
    Settings::forget_for_tests();
    Settings::start_up("test");
  }
  void TearDown() override {
    unsetenv("POLYMALLOC_PROFILE_SAMPLE");
    Settings::forget_for_tests();
    unlink(path_.c_str());
  }
  std::string path_;
};

TEST_F(HeapProfileTest, OffTheCountdownNeverStopsAgain) {
  unsetenv("POLYMALLOC_PROFILE_SAMPLE");
  Settings::forget_for_tests();
  Settings::start_up("test");
  HeapProfile::restart_thread_for_tests();
  EXPECT_EQ(sampled_of(1000, 1 << 20), 0);
  EXPECT_FALSE(HeapProfile::due(std::size_t{1} << 40));  // the count is 2^62 bytes away
  errno = 0;
  EXPECT_EQ(HeapProfile::dump(path_.c_str()), -1);
  EXPECT_EQ(errno, ENOTSUP);
}

// Samples fall every `mean` bytes on average: 100-byte allocations at a mean of 1000 bytes
// are sampled about one in ten (200000 draws: the bounds are some 40 standard deviations).
TEST_F(HeapProfileTest, OnAllocationsAreSampledAtTheSetRate) {
  profile_every("1000");
  HeapProfile::restart_thread_for_tests();
  const int sampled = sampled_of(200000, 100);
  EXPECT_GT(sampled, 18000);
  EXPECT_LT(sampled, 22000);
  // A block far bigger than the mean is (all but) always sampled.
  EXPECT_EQ(sampled_of(100, 1 << 20), 100);
}

// The intervals between samples are exponential with the set mean, as the profile's scaling
// assumes: counted a byte at a time at a mean of 1000, 20000 of them have a mean of 1000.5
// (1000 and the byte that runs the count out; its standard error is 7), and exceed 1000 and
// 3000 bytes e^-1 and e^-3 of the time (each bound 4 standard errors or more).
TEST_F(HeapProfileTest, TheIntervalsBetweenSamplesAreExponential) {
  profile_every("1000");
  HeapProfile::restart_thread_for_tests();
  sampled_of(1, 1);  // the first count: drawn as if the thread had started at 0
  constexpr int kIntervals = 20000;
  double sum = 0;
  int above_mean = 0, above_three_means = 0;
  for (int i = 0; i < kIntervals; ++i) {
    int bytes = 1;
    while (!(HeapProfile::due(1) && HeapProfile::take(1))) ++bytes;
    sum += bytes;
    above_mean += bytes > 1000;
    above_three_means += bytes > 3000;
  }
  EXPECT_NEAR(sum / kIntervals, 1000.5, 30);
  EXPECT_NEAR(static_cast<double>(above_mean) / kIntervals, std::exp(-1.0), 0.015);
  EXPECT_NEAR(static_cast<double>(above_three_means) / kIntervals, std::exp(-3.0), 0.007);
}

[[gnu::noinline]] void capture_here(ProfileStack* stack, std::uintptr_t* caller) {
  *caller = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
  HeapProfile::capture(__builtin_frame_address(0), stack);
  asm volatile("" ::: "memory");  // not a tail call: this frame stays while capture walks
}

[[gnu::noinline]] void call_capture(ProfileStack* stack, std::uintptr_t* caller,
                                    std::uintptr_t* callers_caller) {
  *callers_caller = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
  capture_here(stack, caller);
  asm volatile("" ::: "memory");
}

TEST_F(HeapProfileTest, TheWalkStartsAtTheGivenFrameAndFollowsItsCallers) {
  ProfileStack stack;
  std::uintptr_t caller = 0, callers_caller = 0;
  call_capture(&stack, &caller, &callers_caller);
  ASSERT_GE(stack.depth, 3u);  // at least: call_capture, this test, gtest's runner
  EXPECT_EQ(stack.frames[0], caller);
  EXPECT_EQ(stack.frames[1], callers_caller);
  EXPECT_LE(stack.depth, kProfileMaxDepth);
}

TEST_F(HeapProfileTest, AWalkFromAnUnreadableFrameStopsCleanly) {
  ProfileStack stack;
  HeapProfile::capture(reinterpret_cast<const void*>(std::uintptr_t{4096}), &stack);
  EXPECT_EQ(stack.depth, 0u);
}

// One sample of 1000 bytes at a mean of 1000 stands for 1 / (1 - e^-1) = 1.58 objects:
// 2 objects and 1582 bytes in the profile, with its stack; forgotten, it is gone.
TEST_F(HeapProfileTest, TheProfileScalesKeepsMovesAndForgetsSamples) {
  profile_every("1000");
  ProfileStack stack;
  stack.push(0x1234);
  stack.push(0x5678);
  alignas(4096) static char page[2][4096];
  ASSERT_TRUE(HeapProfile::record(page[0] + 16, 1000, stack));
  ASSERT_EQ(HeapProfile::dump(path_.c_str()), 0);
  std::string text = file_text(path_);
  EXPECT_EQ(text.rfind("heap profile:      2:     1582 [     2:     1582] @ heapprofile\n", 0), 0u)
      << text.substr(0, 200);
  EXPECT_NE(text.find("     2:     1582 [     2:     1582] @ 0x0000000000001234 "
                      "0x0000000000005678\n"),
            std::string::npos)
      << text.substr(0, 300);
  EXPECT_NE(text.find("\nMAPPED_LIBRARIES:\n"), std::string::npos);
  EXPECT_NE(text.find("[stack]"), std::string::npos);  // the memory map itself

  HeapProfile::moved(page[0] + 16, page[1] + 16, 2000);  // realloc moved it: the same stack
  text = file_text((HeapProfile::dump(path_.c_str()), path_));
  const double objects = 1.0 / -std::expm1(-2.0);
  EXPECT_NE(text.find(std::to_string(static_cast<long>(objects * 2000 + 0.5)) + " [     1: "),
            std::string::npos)
      << text.substr(0, 200);

  HeapProfile::forget(page[0] + 16);  // its old place: nothing there now
  HeapProfile::forget(page[1] + 16);
  ASSERT_EQ(HeapProfile::dump(path_.c_str()), 0);
  text = file_text(path_);
  EXPECT_EQ(text.rfind("heap profile:      0:        0 [     0:        0] @ heapprofile\n"
                       "\nMAPPED_LIBRARIES:\n",
                       0),
            0u)
      << text.substr(0, 200);
}

// Samples of one stack add up on one line, each distinct stack has a line of its own, and a
// sample answers the size it was recorded with (a sized delete is checked against it); a
// block that is not a sample, or no longer one, answers 0.
TEST_F(HeapProfileTest, SamplesOfOneStackShareALineAndKnowTheirSize) {
  profile_every("1000");
  ProfileStack a;
  a.push(0xaaa0);
  ProfileStack b;
  b.push(0xbbb0);
  b.push(0xbbb8);
  alignas(16) static char blocks[5][64];
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(HeapProfile::record(blocks[i], 1000, a));
  for (int i = 3; i < 5; ++i) ASSERT_TRUE(HeapProfile::record(blocks[i], 1000, b));
  EXPECT_EQ(HeapProfile::sampled_bytes(blocks[4]), 1000u);
  EXPECT_EQ(HeapProfile::sampled_bytes(blocks[0] + 16), 0u);

  // Each sample of 1000 bytes stands for 1 / (1 - e^-1) = 1.582 objects: 3 of them for 4.75
  // objects and 4746 bytes, 2 for 3.16 and 3164, 7.91 and 7910 in all.
  ASSERT_EQ(HeapProfile::dump(path_.c_str()), 0);
  const std::string text = file_text(path_);
  EXPECT_EQ(text.rfind("heap profile:      8:     7910 [     8:     7910] @ heapprofile\n", 0), 0u)
      << text.substr(0, 300);
  EXPECT_NE(text.find("     5:     4746 [     5:     4746] @ 0x000000000000aaa0\n"),
            std::string::npos)
      << text.substr(0, 300);
  EXPECT_NE(text.find("     3:     3164 [     3:     3164] @ 0x000000000000bbb0 "
                      "0x000000000000bbb8\n"),
            std::string::npos)
      << text.substr(0, 300);

  for (auto& block : blocks) HeapProfile::forget(block);
  EXPECT_EQ(HeapProfile::sampled_bytes(blocks[4]), 0u);
  ASSERT_EQ(HeapProfile::dump(path_.c_str()), 0);
  EXPECT_EQ(file_text(path_).rfind("heap profile:      0:        0 [", 0), 0u);
}

TEST_F(HeapProfileTest, ADumpNamesWhatIsWrong) {
  setenv("POLYMALLOC_PROFILE_SAMPLE", "1000", 1);
  Settings::forget_for_tests();
  errno = 0;
  EXPECT_EQ(HeapProfile::dump(nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(HeapProfile::dump(""), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(HeapProfile::dump("/nonexistent-directory/profile"), -1);
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
}  // namespace polymalloc::allocator
