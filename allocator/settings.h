// Every POLYMALLOC_ environment variable, in one table (kSettingSpecs): its type, default,
// range and meaning, read one way: through platform::os_environment (no allocation, no
// locale), once, on first use (the process malloc reads them all at start-up, settings_
// start_up()). A value that does not parse or is out of range gets a one-line message naming
// the variable and what it accepts, and the default is used; a POLYMALLOC_ name the table
// does not know gets a one-line warning naming the closest known one. docs/settings.md
// lists the same variables (a test compares them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "atomics/atomics.h"

namespace polymalloc::allocator {

// The settings the allocator reads.
enum class Setting : unsigned {
  kStats,              // POLYMALLOC_STATS
  kStatsFile,          // POLYMALLOC_STATS_FILE
  kVerbose,            // POLYMALLOC_VERBOSE
  kReleaseDelayMs,     // POLYMALLOC_RELEASE_DELAY_MS
  kMappingCacheBytes,  // POLYMALLOC_MAPPING_CACHE_BYTES
  kHugePages,          // POLYMALLOC_HUGE_PAGES
  kThreadCacheBytes,   // POLYMALLOC_THREAD_CACHE_BYTES
  kPartitions,         // POLYMALLOC_PARTITIONS
  kSignalSafeMmap,     // POLYMALLOC_SIGNAL_SAFE_MMAP
  kCheckInterval,      // POLYMALLOC_CHECK_INTERVAL
  kQuarantineBytes,    // POLYMALLOC_QUARANTINE_BYTES
  kZeroOnFree,         // POLYMALLOC_ZERO_ON_FREE
  kProfileSample,      // POLYMALLOC_PROFILE_SAMPLE
  kProfileFile,        // POLYMALLOC_PROFILE_FILE
  kCount,
};

enum class SettingType {
  kFlag,     // 0 or 1 (also no/yes, false/true, off/on)
  kCount,    // a decimal count within [min, max]
  kBytes,    // a size in bytes with an optional k, m or g suffix, within [min, max]
  kDelayMs,  // milliseconds within [min, max], or -1 for never
  kChoice,   // one of `choices` (comma-separated); the value is its index
  kText,     // any text (a path); read with Settings::text()
  kTool,     // a tool's own variable (the trace recorder's, the tests'): known, not read here
};

// Where a setting's value came from.
enum class SettingSource { kDefault, kBuildFlag, kEnvironment };

struct SettingSpec {
  const char* name;
  SettingType type;
  std::int64_t default_value;
  std::int64_t min;
  std::int64_t max;
  const char* choices;   // kChoice
  const char* accepted;  // what it accepts, in words, for the message about a bad value
  const char* meaning;
};

// The table: the kCount settings in Setting's order, then the tools' variables.
extern const SettingSpec kSettingSpecs[];
extern const std::size_t kSettingSpecCount;

class Settings {
 public:
  // The setting's value: the environment's if it is valid, else the table's default. Inline:
  // slow paths that run often (a realloc growing a block, the decay tick) read settings, and
  // after the first read it is one load.
  static std::int64_t value(Setting s) {
    const unsigned i = static_cast<unsigned>(s);
    if (atomics::load_acquire(&state_[i]) == kRead) [[likely]]
      return value_[i];
    return read_default(s);
  }
  // The same with a default of the caller's (the build flag's, or one computed from the
  // machine), and where that default came from; the first read decides.
  static std::int64_t value(Setting s, std::int64_t default_value, SettingSource source);
  // A kText setting's value, or nullptr when unset or empty.
  static const char* text(Setting s);
  // Where the value came from (after the first read; kDefault before).
  static SettingSource source(Setting s);

  // Parses `text` as spec's type: true and *value when it is valid.
  static bool parse(const SettingSpec& spec, const char* text, std::int64_t* value);
  // The known name closest to `name` (an edit distance of at most 3), or nullptr.
  static const char* closest_known(const char* name);

  // At start-up (the process malloc's constructor): every setting read, every unknown
  // POLYMALLOC_ name warned about, and with POLYMALLOC_VERBOSE=1 the variant, the version and
  // each setting with its value and source written to stderr. Once per process.
  static void start_up(const char* variant);
  // Whether start_up() has run (the process malloc's constructor).
  static bool started();

  // For tests: forget every value read, so the next read sees the environment again.
  static void forget_for_tests();

 private:
  static constexpr unsigned kCount = static_cast<unsigned>(Setting::kCount);
  enum State : std::uint32_t { kUnread, kReading, kRead };

  static std::int64_t read_default(Setting s);
  static std::int64_t read(Setting s, std::int64_t default_value, SettingSource source);

  // Per setting: its State, and its value once kRead (written before the release store).
  static inline constinit std::uint32_t state_[kCount] = {};
  static inline constinit std::int64_t value_[kCount] = {};
};

// A setting as one component sees it: the process's value (Settings), unless the component's
// owner set its own with set() (a test, to try one instance without touching the others).
// Two loads on a read, for the slow paths that ask.
template <Setting S>
class LocalSetting {
 public:
  std::int64_t get() const {
    const std::int64_t own = atomics::load_relaxed(&own_);
    return own != kUnset ? own : Settings::value(S);
  }
  void set(std::int64_t value) { atomics::store_relaxed(&own_, value); }

 private:
  static constexpr std::int64_t kUnset = INT64_MIN;
  std::int64_t own_ = kUnset;
};

}  // namespace polymalloc::allocator
