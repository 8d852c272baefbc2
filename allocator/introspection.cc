// The runtime API's answers, from a Statistics snapshot; written with LineWriter (no
// allocation) except malloc_info(), which writes to the caller's stdio stream.
#include "allocator/introspection.h"

#include <errno.h>
#include <fcntl.h>
#include <polymalloc/version.h>
#include <unistd.h>

#include <cstring>

#include "allocator/report.h"
#include "allocator/settings.h"

namespace polymalloc::allocator {

const NumericProperty kNumericProperties[] = {
    {"generic.current_allocated_bytes",
     "bytes in the blocks the program holds (each block whole: its usable bytes and its header)",
     [](const Statistics& s) { return s.in_use_bytes(); }},
    {"generic.heap_size",
     "bytes obtained from the OS and not given back: resident heap memory, live and cached "
     "mappings, and the allocator's metadata",
     [](const Statistics& s) { return s.os_bytes(); }},
    {"polymalloc.heap_free_bytes",
     "free bytes in the heaps that are still resident, thread caches included",
     [](const Statistics& s) { return s.heap_free_resident_bytes(); }},
    {"polymalloc.thread_cache_bytes", "free bytes held in threads' caches",
     [](const Statistics& s) { return s.thread_cache_bytes; }},
    {"polymalloc.mapped_bytes", "bytes of large blocks that are mappings of their own",
     [](const Statistics& s) { return s.mapped_bytes; }},
    {"polymalloc.mapping_cache_bytes", "bytes of freed mappings kept for reuse",
     [](const Statistics& s) { return s.mapping_cache_bytes; }},
    {"polymalloc.arena_kept_bytes",
     "bytes of free large-block arena slices kept resident for reuse (signal_safe)",
     [](const Statistics& s) { return s.arena_kept_bytes; }},
    {"polymalloc.released_bytes",
     "bytes inside free heap blocks whose pages went back to the OS (not resident)",
     [](const Statistics& s) { return s.released_bytes; }},
    {"polymalloc.metadata_bytes",
     "bytes mapped for the allocator's own bookkeeping (page map, cache slots)",
     [](const Statistics& s) { return s.metadata_bytes; }},
    {"polymalloc.partitions",
     "independently locked heaps: partitioned's partitions, 1 for global_spinlock, 0 for "
     "signal_safe (which has none)",
     [](const Statistics& s) { return s.heaps; }},
};
const std::size_t kNumericPropertyCount =
    sizeof(kNumericProperties) / sizeof(kNumericProperties[0]);

bool numeric_property(const Statistics& s, const char* name, std::size_t* value) {
  if (name == nullptr || value == nullptr) return false;
  for (const NumericProperty& p : kNumericProperties) {
    if (std::strcmp(p.name, name) == 0) {
      *value = p.value(s);
      return true;
    }
  }
  return false;
}

namespace {

// `text` as a JSON string, quotes and escapes included.
LineWriter& json_string(LineWriter& line, const char* text) {
  line.text("\"");
  for (const char* c = text; *c != '\0'; ++c) {
    const auto u = static_cast<unsigned char>(*c);
    if (u == '"' || u == '\\') {
      const char escaped[3] = {'\\', *c, '\0'};
      line.text(escaped);
    } else if (u < 0x20) {
      const char escaped[7] = {
          '\\', 'u', '0', '0', "0123456789abcdef"[u >> 4], "0123456789abcdef"[u & 15], '\0'};
      line.text(escaped);
    } else {
      const char plain[2] = {*c, '\0'};
      line.text(plain);
    }
  }
  return line.text("\"");
}

void json_number(int fd, const char* key, std::uint64_t value, bool last = false) {
  LineWriter line;
  line.text("  ");
  json_string(line, key).text(": ").decimal(value).text(last ? "\n" : ",\n").write_to(fd);
}

void write_breakdown_json(const MemoryBreakdown& b, int fd) {
  LineWriter().text("  \"breakdown\": {\n").write_to(fd);
  const struct {
    const char* key;
    std::size_t value;
  } parts[] = {
      {"live_bytes", b.live_bytes},
      {"live_blocks", b.live_blocks},
      {"header_bytes", b.header_bytes},
      {"reusable_bytes", b.reusable_bytes},
      {"hole_bytes", b.hole_bytes},
      {"cached_bytes", b.cached_bytes},
      {"structure_bytes", b.structure_bytes},
      {"released_bytes", b.released_bytes},
      {"kept_mapping_bytes", b.kept_mapping_bytes},
  };
  const std::size_t n = sizeof(parts) / sizeof(parts[0]);
  for (std::size_t i = 0; i < n; ++i) {
    LineWriter line;
    line.text("    ");
    json_string(line, parts[i].key).text(": ").decimal(parts[i].value);
    line.text(i + 1 < n ? ",\n" : "\n").write_to(fd);
  }
  LineWriter().text("  },\n").write_to(fd);
}

void write_json(const Statistics& s, int fd) {
  LineWriter().text("{\n").write_to(fd);
  LineWriter variant;
  json_string(variant.text("  \"variant\": "), s.variant).text(",\n").write_to(fd);
  LineWriter version;
  json_string(version.text("  \"version\": "), POLYMALLOC_VERSION_STRING).text(",\n").write_to(fd);
  json_number(fd, "pid", static_cast<std::uint64_t>(getpid()));
  json_number(fd, "in_use_bytes", s.in_use_bytes());
  if (s.has_breakdown) write_breakdown_json(s.breakdown, fd);
  for (std::size_t i = 0; i < kNumericPropertyCount; ++i) {
    const NumericProperty& p = kNumericProperties[i];
    json_number(fd, p.name, p.value(s), i + 1 == kNumericPropertyCount);
  }
  LineWriter().text("}\n").write_to(fd);
}

}  // namespace

void write_statistics(const Statistics& s, StatsFormat format, int fd) {
  if (format == StatsFormat::kJson) {
    write_json(s, fd);
  } else {
    print_statistics(s, fd);
  }
}

StatsRequest statistics_request() {
  switch (Settings::value(Setting::kStats)) {  // "0,1,text,json"
    case 1:
    case 2:
      return StatsRequest::kText;
    case 3:
      return StatsRequest::kJson;
    default:
      return StatsRequest::kNone;
  }
}

void write_requested_statistics(const Statistics& s, StatsRequest request) {
  const StatsFormat format =
      request == StatsRequest::kJson ? StatsFormat::kJson : StatsFormat::kText;
  int fd = STDERR_FILENO;
  if (const char* pattern = Settings::text(Setting::kStatsFile)) {
    char path[4096];
    const int saved_errno = errno;
    const int opened = expand_pid_pattern(pattern, path, sizeof(path))
                           ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                           : -1;
    if (opened >= 0) {
      fd = opened;
    } else {
      LineWriter()
          .text("polymalloc: POLYMALLOC_STATS_FILE=")
          .text(pattern)
          .text(" cannot be written; the statistics go to stderr\n")
          .write_to(STDERR_FILENO);
    }
    errno = saved_errno;
  }
  write_statistics(s, format, fd);
  if (fd != STDERR_FILENO) close(fd);
}

int write_malloc_info(const Statistics& s, int options, FILE* out) {
  if (options != 0 || out == nullptr) {
    errno = EINVAL;
    return -1;
  }
  // The heaps' free figures include the caches': "rest" is what is left without them.
  const std::size_t cached = s.thread_cache_bytes;
  const std::size_t cached_blocks = s.thread_cache_blocks;
  const std::size_t free_bytes = s.heap_free_resident_bytes();
  const std::size_t rest = free_bytes > cached ? free_bytes - cached : 0;
  const std::size_t rest_blocks =
      s.heap_free_blocks > cached_blocks ? s.heap_free_blocks - cached_blocks : 0;
  const std::size_t system = s.heap_resident_bytes();
  const std::size_t max_system = s.heap_peak_committed_bytes;
  fprintf(out,
          "<malloc version=\"1\">\n"
          "<heap nr=\"0\">\n"
          "<sizes>\n"
          "</sizes>\n"
          "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
          "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
          "<system type=\"current\" size=\"%zu\"/>\n"
          "<system type=\"max\" size=\"%zu\"/>\n"
          "<aspace type=\"total\" size=\"%zu\"/>\n"
          "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
          "</heap>\n",
          cached_blocks, cached, rest_blocks, rest, system, max_system, s.heap_committed_bytes,
          s.heap_committed_bytes);
  fprintf(out,
          "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
          "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
          "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
          "<system type=\"current\" size=\"%zu\"/>\n"
          "<system type=\"max\" size=\"%zu\"/>\n"
          "<aspace type=\"total\" size=\"%zu\"/>\n"
          "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
          "</malloc>\n",
          cached_blocks, cached, rest_blocks, rest, s.mapped_objects, s.mapped_bytes, s.os_bytes(),
          max_system + s.peak_mapped_bytes,
          s.heap_committed_bytes + s.mapped_bytes + s.kept_large_bytes(),
          s.heap_committed_bytes + s.mapped_bytes + s.kept_large_bytes());
  return 0;
}

}  // namespace polymalloc::allocator
