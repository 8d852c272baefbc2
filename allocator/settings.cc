// The settings table and its one reader (settings.h). No allocation anywhere: values are
// parsed in place and messages are built with LineWriter, so a setting can be read from a
// signal handler (signal_safe reads its mmap switch there) or before malloc works.
#include "allocator/settings.h"

#include <polymalloc/version.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>

#include "allocator/report.h"
#include "atomics/atomics.h"
#include "platform/platform.h"

namespace polymalloc::allocator {

namespace {
constexpr std::int64_t kKiB = 1024;
constexpr std::int64_t kMiB = 1024 * kKiB;
constexpr std::int64_t kTiB = kMiB * kMiB;
}  // namespace

const SettingSpec kSettingSpecs[] = {
    {"POLYMALLOC_STATS", SettingType::kChoice, 0, 0, 3, "0,1,text,json", "0, 1, text or json",
     "statistics at exit: none, the text summary (1 or text) or one JSON object"},
    {"POLYMALLOC_STATS_FILE", SettingType::kText, 0, 0, 0, nullptr, "a path",
     "where POLYMALLOC_STATS writes instead of stderr; %p becomes the pid"},
    {"POLYMALLOC_VERBOSE", SettingType::kFlag, 0, 0, 1, nullptr, "0 or 1",
     "at start-up, the variant, the version and every setting with its value and source"},
    {"POLYMALLOC_RELEASE_DELAY_MS", SettingType::kDelayMs, 1000, 0, std::int64_t{1} << 40, nullptr,
     "a delay in milliseconds (0: at once, -1: never)",
     "how long free memory stays before it goes back to the OS"},
    {"POLYMALLOC_MAPPING_CACHE_BYTES", SettingType::kBytes, 64 * kMiB, 0, kTiB, nullptr,
     "a size in bytes up to 1 TiB, with an optional k, m or g suffix (0: no cache)",
     "the bound on freed large mappings kept for reuse"},
    {"POLYMALLOC_HUGE_PAGES", SettingType::kFlag, 1, 0, 1, nullptr, "0 or 1",
     "transparent huge pages for large mappings of 2 MiB or more and for heaps past 128 MiB"},
    {"POLYMALLOC_THREAD_CACHE_BYTES", SettingType::kBytes, 64 * kKiB, 0, 16 * kMiB, nullptr,
     "a size in bytes up to 16 MiB, with an optional k, m or g suffix (0: no caches)",
     "partitioned: the most one thread's cache holds (the caches share 4 MiB besides)"},
    {"POLYMALLOC_PARTITIONS", SettingType::kCount, 0, 1, 1024, nullptr,
     "a count of partitions from 1 to 1024",
     "partitioned's partitions (default: the build flag, else one per CPU the process may use)"},
    {"POLYMALLOC_SIGNAL_SAFE_MMAP", SettingType::kFlag, 0, 0, 1, nullptr, "0 or 1",
     "signal_safe maps memory once its static arena is spent (the process malloc's default: 1)"},
    {"POLYMALLOC_CHECK_INTERVAL", SettingType::kCount, 1024, 0, INT64_MAX, nullptr,
     "a count of calls (0: never)", "full checks only: the whole heap is checked this often"},
    {"POLYMALLOC_QUARANTINE_BYTES", SettingType::kBytes, 16 * kMiB, 0, kTiB, nullptr,
     "a size in bytes up to 1 TiB, with an optional k, m or g suffix (0: no quarantine)",
     "full checks only: freed blocks wait this many bytes' worth of later frees before reuse"},
    {"POLYMALLOC_ZERO_ON_FREE", SettingType::kFlag, 0, 0, 1, nullptr, "0 or 1",
     "full checks only: freed blocks are zeroed instead of filled with junk"},
    {"POLYMALLOC_PROFILE_SAMPLE", SettingType::kBytes, 0, 0, kTiB, nullptr,
     "a size in bytes up to 1 TiB, with an optional k, m or g suffix (0: off)",
     "the heap profiler: one allocation sampled per this many bytes allocated, on average"},
    {"POLYMALLOC_PROFILE_FILE", SettingType::kText, 0, 0, 0, nullptr, "a path",
     "where the heap profile is written at exit; %p becomes the pid"},
    // The tools' own, known so that they are not taken for typos.
    {"POLYMALLOC_TRACE_FILE", SettingType::kTool, 0, 0, 0, nullptr, "a path",
     "the trace recorder: the file it writes"},
    {"POLYMALLOC_TRACE_OWNER", SettingType::kTool, 0, 0, 0, nullptr, "a pid",
     "the trace recorder: the process that records (set by the recorder itself)"},
    {"POLYMALLOC_EXPECTED_VARIANT", SettingType::kTool, 0, 0, 0, nullptr, "a variant name",
     "the tests: the variant a test expects to run on"},
};
const std::size_t kSettingSpecCount = sizeof(kSettingSpecs) / sizeof(kSettingSpecs[0]);
static_assert(sizeof(kSettingSpecs) / sizeof(kSettingSpecs[0]) >=
              static_cast<std::size_t>(Setting::kCount));

namespace {

constexpr unsigned kCount = static_cast<unsigned>(Setting::kCount);
constinit SettingSource g_source[kCount] = {};
constinit bool g_started = false;

const SettingSpec& spec_of(Setting s) { return kSettingSpecs[static_cast<unsigned>(s)]; }

bool equals(const char* a, const char* b) { return std::strcmp(a, b) == 0; }

// A decimal number of at most 18 digits (no sign): true and *value.
bool parse_unsigned(const char* text, const char** end, std::int64_t* value) {
  std::int64_t v = 0;
  const char* c = text;
  for (; *c >= '0' && *c <= '9'; ++c) {
    if (c - text >= 18) return false;
    v = v * 10 + (*c - '0');
  }
  *end = c;
  *value = v;
  return c != text;
}

bool parse_flag(const char* text, std::int64_t* value) {
  for (const char* off : {"0", "no", "false", "off"}) {
    if (equals(text, off)) return (*value = 0, true);
  }
  for (const char* on : {"1", "yes", "true", "on"}) {
    if (equals(text, on)) return (*value = 1, true);
  }
  return false;
}

bool parse_choice(const char* text, const char* choices, std::int64_t* value) {
  const std::size_t length = std::strlen(text);
  std::int64_t index = 0;
  for (const char* c = choices; *c != '\0'; ++index) {
    const char* comma = std::strchr(c, ',');
    const std::size_t n = comma != nullptr ? static_cast<std::size_t>(comma - c) : std::strlen(c);
    if (n == length && std::strncmp(c, text, n) == 0) return (*value = index, true);
    c += n + (comma != nullptr ? 1 : 0);
  }
  return false;
}

// The choice `index` of `choices`, into out (at most size - 1 characters).
void choice_text(const char* choices, std::int64_t index, char* out, std::size_t size) {
  const char* c = choices;
  for (; index > 0 && c != nullptr; --index) {
    c = std::strchr(c, ',');
    if (c != nullptr) ++c;
  }
  std::size_t n = 0;
  for (; c != nullptr && *c != '\0' && *c != ',' && n + 1 < size; ++c) out[n++] = *c;
  out[n] = '\0';
}

// The message about a bad value, once: "polymalloc: NAME=VALUE is not ACCEPTED; using D".
// A value of spec's type as the user writes it: a choice by name, a number in decimal.
LineWriter& value_text(LineWriter& line, const SettingSpec& spec, std::int64_t value) {
  if (spec.type == SettingType::kChoice) {
    char choice[32];
    choice_text(spec.choices, value, choice, sizeof(choice));
    return line.text(choice);
  }
  if (value < 0) return line.text("-").decimal(static_cast<std::uint64_t>(-value));
  return line.decimal(static_cast<std::uint64_t>(value));
}

void warn_bad(const SettingSpec& spec, const char* text, std::int64_t fallback) {
  LineWriter line;
  line.text("polymalloc: ").text(spec.name).text("=").text(text).text(" is not ");
  line.text(spec.accepted).text("; using ");
  value_text(line, spec, fallback).text("\n").write_to(STDERR_FILENO);
}

std::size_t edit_distance(const char* a, const char* b) {
  constexpr std::size_t kMax = 64;
  const std::size_t n = std::strlen(a), m = std::strlen(b);
  if (n >= kMax || m >= kMax) return kMax;
  std::size_t row[kMax + 1];
  for (std::size_t j = 0; j <= m; ++j) row[j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t above = row[j];
      const std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      const std::size_t insert = row[j - 1] + 1, remove = above + 1;
      row[j] = substitute < insert ? (substitute < remove ? substitute : remove)
                                   : (insert < remove ? insert : remove);
      diagonal = above;
    }
  }
  return row[m];
}

// The name of an environment entry "NAME=value", into out; false if it is too long.
bool name_of(const char* entry, char* out, std::size_t size) {
  std::size_t n = 0;
  for (; entry[n] != '=' && entry[n] != '\0'; ++n) {
    if (n + 1 >= size) return false;
    out[n] = entry[n];
  }
  out[n] = '\0';
  return true;
}

bool known(const char* name) {
  for (std::size_t i = 0; i < kSettingSpecCount; ++i) {
    if (equals(kSettingSpecs[i].name, name)) return true;
  }
  return false;
}

void warn_unknown_names() {
  static constexpr char kPrefix[] = "POLYMALLOC_";
  for (std::size_t i = 0;; ++i) {
    const char* entry = platform::os_environment_at(i);
    if (entry == nullptr) break;
    if (std::strncmp(entry, kPrefix, sizeof(kPrefix) - 1) != 0) continue;
    char name[128];
    if (!name_of(entry, name, sizeof(name)) || known(name)) continue;
    LineWriter line;
    line.text("polymalloc: unknown setting ").text(name);
    if (const char* closest = Settings::closest_known(name)) {
      line.text(" (did you mean ").text(closest).text("?)");
    }
    line.text("; it is ignored\n").write_to(STDERR_FILENO);
  }
}

const char* source_name(SettingSource source) {
  switch (source) {
    case SettingSource::kBuildFlag:
      return "build flag";
    case SettingSource::kEnvironment:
      return "environment";
    case SettingSource::kDefault:
      break;
  }
  return "default";
}

void print_settings(const char* variant) {
  LineWriter()
      .text("polymalloc: ")
      .text(variant)
      .text(" ")
      .text(POLYMALLOC_VERSION_STRING)
      .text(", pid ")
      .decimal(static_cast<std::uint64_t>(getpid()))
      .text("\n")
      .write_to(STDERR_FILENO);
  for (unsigned i = 0; i < kCount; ++i) {
    const auto s = static_cast<Setting>(i);
    const SettingSpec& spec = kSettingSpecs[i];
    LineWriter line;
    line.text("polymalloc:   ").text(spec.name).text(" = ");
    if (spec.type == SettingType::kText) {
      const char* text = Settings::text(s);
      line.text(text != nullptr ? text : "(unset)");
      line.text(text != nullptr ? " (environment)" : " (default)");
    } else {
      value_text(line, spec, Settings::value(s));
      line.text(" (").text(source_name(Settings::source(s))).text(")");
    }
    line.text("\n").write_to(STDERR_FILENO);
  }
}

}  // namespace

bool Settings::parse(const SettingSpec& spec, const char* text, std::int64_t* value) {
  if (text == nullptr || text[0] == '\0') return false;
  std::int64_t v = 0;
  const char* end = nullptr;
  switch (spec.type) {
    case SettingType::kFlag:
      return parse_flag(text, value);
    case SettingType::kChoice:
      return parse_choice(text, spec.choices, value);
    case SettingType::kText:
    case SettingType::kTool:
      return false;
    case SettingType::kDelayMs:
      if (equals(text, "-1")) return (*value = -1, true);
      [[fallthrough]];
    case SettingType::kCount:
      if (!parse_unsigned(text, &end, &v) || *end != '\0') return false;
      break;
    case SettingType::kBytes: {
      if (!parse_unsigned(text, &end, &v)) return false;
      unsigned shift = 0;
      if (*end == 'k' || *end == 'K') shift = 10;
      if (*end == 'm' || *end == 'M') shift = 20;
      if (*end == 'g' || *end == 'G') shift = 30;
      if (shift != 0) ++end;
      if (*end != '\0' || v > (spec.max >> shift)) return false;
      v <<= shift;
      break;
    }
  }
  if (v < spec.min || v > spec.max) return false;
  *value = v;
  return true;
}

std::int64_t Settings::read(Setting s, std::int64_t default_value, SettingSource default_source) {
  const unsigned i = static_cast<unsigned>(s);
  if (atomics::load_acquire(&state_[i]) == kRead) return value_[i];
  const SettingSpec& spec = spec_of(s);
  std::int64_t value = default_value;
  SettingSource source = default_source;
  const char* text = platform::os_environment(spec.name);
  const bool given = text != nullptr && text[0] != '\0';
  bool bad = false;
  if (given) {
    std::int64_t parsed = 0;
    if (Settings::parse(spec, text, &parsed)) {
      value = parsed;
      source = SettingSource::kEnvironment;
    } else {
      bad = true;
    }
  }
  std::uint32_t unread = kUnread;
  if (atomics::cas_acq_rel(&state_[i], unread, std::uint32_t{kReading})) {
    value_[i] = value;
    g_source[i] = source;
    atomics::store_release(&state_[i], std::uint32_t{kRead});
    if (bad) warn_bad(spec, text, default_value);
  }
  return value;  // (a reader that lost the race computed the same value)
}

std::int64_t Settings::read_default(Setting s) {
  return read(s, spec_of(s).default_value, SettingSource::kDefault);
}

std::int64_t Settings::value(Setting s, std::int64_t default_value, SettingSource source) {
  return read(s, default_value, source);
}

const char* Settings::text(Setting s) {
  const char* text = platform::os_environment(spec_of(s).name);
  return text != nullptr && text[0] != '\0' ? text : nullptr;
}

SettingSource Settings::source(Setting s) {
  const unsigned i = static_cast<unsigned>(s);
  return atomics::load_acquire(&state_[i]) == kRead ? g_source[i] : SettingSource::kDefault;
}

const char* Settings::closest_known(const char* name) {
  const char* best = nullptr;
  std::size_t best_distance = 4;  // at most 3 edits away
  for (std::size_t i = 0; i < kSettingSpecCount; ++i) {
    const std::size_t d = edit_distance(name, kSettingSpecs[i].name);
    if (d < best_distance) {
      best = kSettingSpecs[i].name;
      best_distance = d;
    }
  }
  return best;
}

void Settings::start_up(const char* variant) {
  if (atomics::exchange_acq_rel(&g_started, true)) return;
  for (unsigned i = 0; i < kCount; ++i) {
    if (kSettingSpecs[i].type != SettingType::kText) value(static_cast<Setting>(i));
  }
  warn_unknown_names();
  if (value(Setting::kVerbose) != 0) print_settings(variant);
}

bool Settings::started() { return atomics::load_acquire(&g_started); }

void Settings::forget_for_tests() {
  for (unsigned i = 0; i < kCount; ++i) atomics::store_release(&state_[i], std::uint32_t{kUnread});
  atomics::store_release(&g_started, false);
}

}  // namespace polymalloc::allocator
