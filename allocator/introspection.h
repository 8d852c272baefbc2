// What a running process can ask polymalloc about its memory (the public header's runtime
// API): numeric properties by name, the statistics as text or JSON on demand or at exit, and
// glibc's malloc_info() XML with polymalloc's figures. Everything here works from a
// Statistics snapshot the caller took; nothing allocates except malloc_info(), which writes
// through the caller's stdio stream.
#pragma once

#include <stdio.h>

#include <cstddef>

#include "allocator/statistics.h"

namespace polymalloc::allocator {

// A property polymalloc_get_numeric_property() answers: its name, what it means (docs/
// settings.md lists the same), and its value in a snapshot.
struct NumericProperty {
  const char* name;
  const char* meaning;
  std::size_t (*value)(const Statistics&);
};

// Every property, in the order the JSON statistics list them.
extern const NumericProperty kNumericProperties[];
extern const std::size_t kNumericPropertyCount;

// *value = property `name` of s; false (and *value untouched) if no property has that name.
bool numeric_property(const Statistics& s, const char* name, std::size_t* value);

enum class StatsFormat { kText, kJson };

// The statistics to fd: the text summary (with the pid in its first line), or one JSON
// object holding the variant, the version, the pid, in_use_bytes, every numeric property
// and (when s has it) the breakdown.
void write_statistics(const Statistics& s, StatsFormat format, int fd);

// What POLYMALLOC_STATS asks for at exit (settings.h): nothing ("0", the default), the text
// ("1" or "text") or JSON ("json").
enum class StatsRequest { kNone, kText, kJson };
StatsRequest statistics_request();

// Writes the statistics as requested (request != kNone) to POLYMALLOC_STATS_FILE, where
// "%p" becomes the pid, or to stderr when it is unset or cannot be opened (with a message).
void write_requested_statistics(const Statistics& s, StatsRequest request);

// malloc_info(options, out) in glibc's XML shape: one heap (all of polymalloc's heaps
// together), its free blocks as "rest" and its thread caches as "fast", and the totals with
// the mappings. 0, or -1 with errno = EINVAL for options other than 0 or no stream.
int write_malloc_info(const Statistics& s, int options, FILE* out);

}  // namespace polymalloc::allocator
