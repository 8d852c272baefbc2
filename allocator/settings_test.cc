// The settings table: each type parses what it should and refuses the rest, a bad value is
// named in one line and the default used, an unknown POLYMALLOC_ name is named with the
// closest known one, and POLYMALLOC_VERBOSE lists every setting with its source.
#include "allocator/settings.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <fstream>
#include <set>
#include <string>

namespace polymalloc::allocator {
namespace {

constexpr std::int64_t kKiB = 1024, kMiB = 1024 * kKiB;

const SettingSpec& spec(Setting s) { return kSettingSpecs[static_cast<unsigned>(s)]; }

// The value `text` parses to for setting s, or -99 when it is refused.
std::int64_t parsed(Setting s, const char* text) {
  std::int64_t value = 0;
  return Settings::parse(spec(s), text, &value) ? value : -99;
}

class SettingsTest : public ::testing::Test {
 protected:
  void SetUp() override { Settings::forget_for_tests(); }
  void TearDown() override {
    for (std::size_t i = 0; i < kSettingSpecCount; ++i) unsetenv(kSettingSpecs[i].name);
    unsetenv("POLYMALLOC_STAT");
    unsetenv("POLYMALLOC_NOTHING_LIKE_IT");
    Settings::forget_for_tests();
  }
};

TEST_F(SettingsTest, TheTableListsEverySettingInOrderWithItsPrefix) {
  ASSERT_GE(kSettingSpecCount, static_cast<std::size_t>(Setting::kCount));
  EXPECT_STREQ(spec(Setting::kStats).name, "POLYMALLOC_STATS");
  EXPECT_STREQ(spec(Setting::kCheckInterval).name, "POLYMALLOC_CHECK_INTERVAL");
  for (std::size_t i = 0; i < kSettingSpecCount; ++i) {
    const SettingSpec& s = kSettingSpecs[i];
    EXPECT_EQ(std::strncmp(s.name, "POLYMALLOC_", 11), 0) << s.name;
    EXPECT_NE(std::strlen(s.meaning), 0u) << s.name;
    if (s.type == SettingType::kCount || s.type == SettingType::kBytes) {
      EXPECT_LE(s.min, s.max) << s.name;
    }
  }
}

TEST_F(SettingsTest, BytesTakeASuffixAndStayInRange) {
  EXPECT_EQ(parsed(Setting::kMappingCacheBytes, "0"), 0);
  EXPECT_EQ(parsed(Setting::kMappingCacheBytes, "4096"), 4096);
  EXPECT_EQ(parsed(Setting::kMappingCacheBytes, "16m"), 16 * kMiB);
  EXPECT_EQ(parsed(Setting::kMappingCacheBytes, "512K"), 512 * kKiB);
  EXPECT_EQ(parsed(Setting::kMappingCacheBytes, "2G"), 2048 * kMiB);
  EXPECT_EQ(parsed(Setting::kMappingCacheBytes, "1024g"), kMiB * kMiB);
  for (const char* bad : {"", "m", "12q", "-1", "5 m", "1025g", "99999999999999999999", "1mm"}) {
    EXPECT_EQ(parsed(Setting::kMappingCacheBytes, bad), -99) << bad;
  }
  EXPECT_EQ(parsed(Setting::kThreadCacheBytes, "16m"), 16 * kMiB);
  EXPECT_EQ(parsed(Setting::kThreadCacheBytes, "17m"), -99) << "past its maximum";
}

TEST_F(SettingsTest, CountsDelaysFlagsAndChoices) {
  EXPECT_EQ(parsed(Setting::kCheckInterval, "0"), 0);
  EXPECT_EQ(parsed(Setting::kCheckInterval, "8"), 8);
  EXPECT_EQ(parsed(Setting::kCheckInterval, "often"), -99);
  EXPECT_EQ(parsed(Setting::kPartitions, "0"), -99) << "at least one partition";
  EXPECT_EQ(parsed(Setting::kPartitions, "1024"), 1024);
  EXPECT_EQ(parsed(Setting::kPartitions, "1025"), -99);
  EXPECT_EQ(parsed(Setting::kReleaseDelayMs, "-1"), -1);
  EXPECT_EQ(parsed(Setting::kReleaseDelayMs, "250"), 250);
  EXPECT_EQ(parsed(Setting::kReleaseDelayMs, "-2"), -99);
  EXPECT_EQ(parsed(Setting::kReleaseDelayMs, "1s"), -99);
  EXPECT_EQ(parsed(Setting::kSignalSafeMmap, "1"), 1);
  EXPECT_EQ(parsed(Setting::kSignalSafeMmap, "off"), 0);
  EXPECT_EQ(parsed(Setting::kSignalSafeMmap, "2"), -99);
  EXPECT_EQ(parsed(Setting::kStats, "1"), 1);
  EXPECT_EQ(parsed(Setting::kStats, "text"), 2);
  EXPECT_EQ(parsed(Setting::kStats, "json"), 3);
  EXPECT_EQ(parsed(Setting::kStats, "jso"), -99);
  EXPECT_EQ(parsed(Setting::kStats, "jsonx"), -99);
}

TEST_F(SettingsTest, AValueIsReadOnceAndABadOneIsNamedAndTheDefaultUsed) {
  setenv("POLYMALLOC_CHECK_INTERVAL", "8", 1);
  EXPECT_EQ(Settings::value(Setting::kCheckInterval), 8);
  EXPECT_EQ(Settings::source(Setting::kCheckInterval), SettingSource::kEnvironment);
  setenv("POLYMALLOC_CHECK_INTERVAL", "9", 1);
  EXPECT_EQ(Settings::value(Setting::kCheckInterval), 8) << "read once";

  setenv("POLYMALLOC_RELEASE_DELAY_MS", "soon", 1);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(Settings::value(Setting::kReleaseDelayMs), 1000);
  EXPECT_EQ(Settings::value(Setting::kReleaseDelayMs), 1000);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "polymalloc: POLYMALLOC_RELEASE_DELAY_MS=soon is not a delay in milliseconds (0: at "
            "once, -1: never); using 1000\n")
      << "one line, once";
  EXPECT_EQ(Settings::source(Setting::kReleaseDelayMs), SettingSource::kDefault);

  setenv("POLYMALLOC_STATS", "yes", 1);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(Settings::value(Setting::kStats), 0);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "polymalloc: POLYMALLOC_STATS=yes is not 0, 1, text or json; using 0\n");
}

TEST_F(SettingsTest, ACallersDefaultAndItsSourceStandUnlessTheEnvironmentSetsIt) {
  EXPECT_EQ(Settings::value(Setting::kPartitions, 6, SettingSource::kBuildFlag), 6);
  EXPECT_EQ(Settings::source(Setting::kPartitions), SettingSource::kBuildFlag);
  Settings::forget_for_tests();
  setenv("POLYMALLOC_PARTITIONS", "3", 1);
  EXPECT_EQ(Settings::value(Setting::kPartitions, 6, SettingSource::kBuildFlag), 3);
  EXPECT_EQ(Settings::source(Setting::kPartitions), SettingSource::kEnvironment);
}

TEST_F(SettingsTest, TextIsTheRawValue) {
  EXPECT_EQ(Settings::text(Setting::kStatsFile), nullptr);
  setenv("POLYMALLOC_STATS_FILE", "/tmp/stats.%p", 1);
  EXPECT_STREQ(Settings::text(Setting::kStatsFile), "/tmp/stats.%p");
  setenv("POLYMALLOC_STATS_FILE", "", 1);
  EXPECT_EQ(Settings::text(Setting::kStatsFile), nullptr);
}

TEST_F(SettingsTest, AnUnknownNameIsNamedWithTheClosestKnownOne) {
  EXPECT_STREQ(Settings::closest_known("POLYMALLOC_STAT"), "POLYMALLOC_STATS");
  EXPECT_STREQ(Settings::closest_known("POLYMALLOC_PARTITION"), "POLYMALLOC_PARTITIONS");
  EXPECT_EQ(Settings::closest_known("POLYMALLOC_NOTHING_LIKE_IT"), nullptr);
  setenv("POLYMALLOC_STAT", "1", 1);
  setenv("POLYMALLOC_NOTHING_LIKE_IT", "1", 1);
  setenv("POLYMALLOC_TRACE_FILE", "x", 1);  // the recorder's own: known
  ::testing::internal::CaptureStderr();
  Settings::start_up("test_variant");
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("polymalloc: unknown setting POLYMALLOC_STAT (did you mean "
                     "POLYMALLOC_STATS?); it is ignored\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("polymalloc: unknown setting POLYMALLOC_NOTHING_LIKE_IT; it is ignored\n"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("TRACE_FILE"), std::string::npos) << err;
}

TEST_F(SettingsTest, VerboseListsEverySettingWithItsValueAndSource) {
  setenv("POLYMALLOC_VERBOSE", "1", 1);
  setenv("POLYMALLOC_RELEASE_DELAY_MS", "-1", 1);
  ::testing::internal::CaptureStderr();
  Settings::start_up("test_variant");
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("polymalloc: test_variant "), 0u) << err;
  EXPECT_NE(err.find("  POLYMALLOC_RELEASE_DELAY_MS = -1 (environment)\n"), std::string::npos)
      << err;
  EXPECT_NE(err.find("  POLYMALLOC_MAPPING_CACHE_BYTES = 67108864 (default)\n"), std::string::npos)
      << err;
  EXPECT_NE(err.find("  POLYMALLOC_STATS = 0 (default)\n"), std::string::npos) << err;
  EXPECT_NE(err.find("  POLYMALLOC_STATS_FILE = (unset) (default)\n"), std::string::npos) << err;
  for (unsigned i = 0; i < static_cast<unsigned>(Setting::kCount); ++i) {
    EXPECT_NE(err.find(std::string("  ") + kSettingSpecs[i].name + " = "), std::string::npos)
        << kSettingSpecs[i].name;
  }
  ::testing::internal::CaptureStderr();
  Settings::start_up("test_variant");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << "once per process";
}

// docs/settings.md lists every variable the code reads, and nothing else: the names in its
// tables' first column are the table's.
TEST(SettingsDocsTest, ThePageListsExactlyTheVariablesTheCodeReads) {
  std::ifstream page("docs/settings.md");
  ASSERT_TRUE(page.good()) << "docs/settings.md is not in the test's runfiles";
  // A table row whose first cell is `POLYMALLOC_...` (no std::regex: GCC 12 warns inside it
  // at -O1, which the sanitizer configs build with, and warnings are errors).
  static constexpr char kRowStart[] = "| `POLYMALLOC_";
  std::set<std::string> listed;
  for (std::string line; std::getline(page, line);) {
    if (line.rfind(kRowStart, 0) != 0) continue;
    const std::size_t end = line.find("` |", 3);
    if (end != std::string::npos) listed.insert(line.substr(3, end - 3));
  }
  std::set<std::string> read;
  for (std::size_t i = 0; i < kSettingSpecCount; ++i) read.insert(kSettingSpecs[i].name);
  for (const std::string& name : read) {
    EXPECT_TRUE(listed.count(name)) << name << " is read but docs/settings.md does not list it";
  }
  for (const std::string& name : listed) {
    EXPECT_TRUE(read.count(name)) << name << " is listed in docs/settings.md but nothing reads it";
  }
}

}  // namespace
}  // namespace polymalloc::allocator
