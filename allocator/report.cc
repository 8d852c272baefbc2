// The allocator's own output, built in a stack buffer and written with write(2).
#include "allocator/report.h"

#include <stdlib.h>
#include <unistd.h>

#include "platform/platform.h"

namespace polymalloc::allocator {

LineWriter& LineWriter::text(const char* s) {
  while (*s != '\0' && length_ < sizeof(buffer_)) buffer_[length_++] = *s++;
  return *this;
}

LineWriter& LineWriter::digits(std::uint64_t value, unsigned base) {
  char reversed[64];
  int n = 0;
  do {
    reversed[n++] = "0123456789abcdef"[value % base];
    value /= base;
  } while (value != 0);
  while (n > 0 && length_ < sizeof(buffer_)) buffer_[length_++] = reversed[--n];
  return *this;
}

LineWriter& LineWriter::decimal(std::uint64_t value) { return digits(value, 10); }

LineWriter& LineWriter::decimal(std::uint64_t value, unsigned width) {
  unsigned length = 1;
  for (std::uint64_t rest = value / 10; rest != 0; rest /= 10) ++length;
  for (; length < width; ++length) text(" ");
  return decimal(value);
}

LineWriter& LineWriter::hex(std::uintptr_t value) { return text("0x").digits(value, 16); }

LineWriter& LineWriter::bytes(std::uint64_t value) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  unsigned unit = 0;
  std::uint64_t tenths = value * 10;
  while (value >= 1024 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    tenths = value * 10 / 1024;
    value /= 1024;
    ++unit;
  }
  decimal(tenths / 10);
  if (unit != 0) text(".").decimal(tenths % 10);
  return text(" ").text(kUnits[unit]);
}

// Not a cancellation point: malloc_stats() in a thread with a pending cancellation request
// must finish (a C++ frame that cannot unwind lies between here and the caller).
void LineWriter::write_to(int fd) const { platform::os_write_all(fd, buffer_, length_); }

namespace {

// A report line begun with "polymalloc: <call>(): ".
LineWriter call_report(const char* call) {
  LineWriter line;
  line.text("polymalloc: ").text(call).text("(): ");
  return line;
}

}  // namespace

void report_misuse(const char* call, const char* problem, const void* pointer) {
  call_report(call)
      .text(problem)
      .text(" ")
      .hex(reinterpret_cast<std::uintptr_t>(pointer))
      .text("\n")
      .write_to(STDERR_FILENO);
  abort();
}

void report_damaged_block(const char* call, const char* problem, const void* block,
                          std::size_t bytes) {
  call_report(call)
      .text(problem)
      .text(" ")
      .hex(reinterpret_cast<std::uintptr_t>(block))
      .text(" (a block of ")
      .decimal(bytes)
      .text(" bytes)\n")
      .write_to(STDERR_FILENO);
  abort();
}

void report_write_after_free(const char* call, const void* block, std::size_t bytes,
                             std::ptrdiff_t offset) {
  LineWriter line = call_report(call);
  line.text("write after free to ").hex(reinterpret_cast<std::uintptr_t>(block));
  line.text(" (a block of ").decimal(bytes).text(" bytes, offset ");
  if (offset < 0) line.text("-");
  line.decimal(offset < 0 ? 0 - static_cast<std::uint64_t>(offset)
                          : static_cast<std::uint64_t>(offset));
  line.text(")\n").write_to(STDERR_FILENO);
  abort();
}

void report_failed_check(const char* call, const char* problem, const void* where) {
  call_report(call)
      .text("heap check failed: ")
      .text(problem)
      .text(" at ")
      .hex(reinterpret_cast<std::uintptr_t>(where))
      .text("\n")
      .write_to(STDERR_FILENO);
  abort();
}

// Where the memory goes (statistics.h), one part a line.
static void print_breakdown(const MemoryBreakdown& b, int fd) {
  auto part = [fd](const char* label, std::size_t bytes) {
    LineWriter().text("    ").text(label).bytes(bytes).text("\n").write_to(fd);
  };
  LineWriter().text("  where it goes: ").bytes(b.held_bytes()).text(" held\n").write_to(fd);
  LineWriter()
      .text("    live blocks:      ")
      .bytes(b.live_bytes)
      .text(" usable in ")
      .decimal(b.live_blocks)
      .text(" blocks\n")
      .write_to(fd);
  part("headers:          ", b.header_bytes);
  part("free, reusable:   ", b.reusable_bytes);
  part("free, holes:      ", b.hole_bytes);
  part("cached:           ", b.cached_bytes);
  part("heap structure:   ", b.structure_bytes);
  part("released:         ", b.released_bytes);
  part("kept mappings:    ", b.kept_mapping_bytes);
}

void print_statistics(const Statistics& s, int fd) {
  LineWriter()
      .text("polymalloc ")
      .text(s.variant)
      .text(" statistics (pid ")
      .decimal(static_cast<std::uint64_t>(getpid()))
      .text(")\n")
      .write_to(fd);
  LineWriter()
      .text("  heap:   ")
      .bytes(s.heap_committed_bytes)
      .text(" committed (peak ")
      .bytes(s.heap_peak_committed_bytes)
      .text("), ")
      .bytes(s.heap_in_use_bytes())
      .text(" in use, ")
      .bytes(s.heap_free_bytes)
      .text(" free in ")
      .decimal(s.heap_free_blocks)
      .text(" blocks (")
      .bytes(s.heap_top_free_bytes)
      .text(" at the top)\n")
      .write_to(fd);
  if (s.heap_threshold_bytes != 0) {
    LineWriter()
        .text("  thresholds: requests below ")
        .bytes(s.heap_threshold_bytes)
        .text(" from the heap, a free top past ")
        .bytes(s.heap_trim_at_bytes)
        .text(" trimmed\n")
        .write_to(fd);
  }
  LineWriter()
      .text("  mapped: ")
      .bytes(s.mapped_bytes)
      .text(" in ")
      .decimal(s.mapped_objects)
      .text(" large blocks (peak ")
      .bytes(s.peak_mapped_bytes)
      .text("; ")
      .bytes(s.mapped_lent_bytes)
      .text(" lent to growing buffers)\n")
      .write_to(fd);
  LineWriter()
      .text("  cached: ")
      .bytes(s.mapping_cache_bytes)
      .text(" in ")
      .decimal(s.mapping_cache_mappings)
      .text(" freed mappings (bound ")
      .bytes(s.mapping_cache_bound)
      .text("), ")
      .decimal(s.mapping_cache_hits)
      .text(" hits, ")
      .decimal(s.mapping_cache_misses)
      .text(" misses (")
      .bytes(s.mapping_cache_gathered_bytes)
      .text(" of pages gathered into them, ")
      .bytes(s.mapping_cache_evicted_bytes)
      .text(" evicted for bigger ones)\n")
      .write_to(fd);
  if (s.arena_regions != 0) {
    LineWriter()
        .text("  arena: ")
        .bytes(s.arena_bytes)
        .text(" in large blocks, ")
        .bytes(s.arena_kept_bytes)
        .text(" free and kept, in ")
        .decimal(s.arena_regions)
        .text(" regions (")
        .bytes(s.arena_released_bytes)
        .text(" released)\n")
        .write_to(fd);
  }
  if (s.thread_caches != 0) {
    LineWriter line;
    line.text("  thread caches: ")
        .bytes(s.thread_cache_bytes)
        .text(" in ")
        .decimal(s.thread_caches);
    line.text(s.thread_caches == 1 ? " cache" : " caches");
    if (s.thread_cache_bound != 0) line.text(" (bound ").bytes(s.thread_cache_bound).text(")");
    line.text("\n").write_to(fd);
  }
  if (s.quarantine_bound != 0) {
    LineWriter line;
    line.text("  quarantine: ").bytes(s.quarantine_bytes).text(" in ").decimal(s.quarantine_blocks);
    line.text(" freed blocks (bound ").bytes(s.quarantine_bound).text(")\n").write_to(fd);
  }
  LineWriter().text("  total in use: ").bytes(s.in_use_bytes()).text("\n").write_to(fd);
  if (s.has_breakdown) print_breakdown(s.breakdown, fd);
}

void print_malloc_stats(const Statistics& s, int fd) {
  auto line = [fd](const char* label, std::uint64_t value) {
    LineWriter().text(label).text(" = ").decimal(value, 10).text("\n").write_to(fd);
  };
  LineWriter().text("Arena 0:\n").write_to(fd);
  line("system bytes    ", s.heap_committed_bytes);
  line("in use bytes    ", s.heap_in_use_bytes());
  LineWriter().text("Total (incl. mmap):\n").write_to(fd);
  line("system bytes    ", s.heap_committed_bytes + s.mapped_bytes);
  line("in use bytes    ", s.in_use_bytes());
  line("max mmap regions", s.peak_mapped_objects);
  line("max mmap bytes  ", s.peak_mapped_bytes);
  print_statistics(s, fd);
}

void decimal_text(std::uint64_t value, char* out) {
  char reversed[21];
  int n = 0;
  do {
    reversed[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (int i = 0; i < n; ++i) out[i] = reversed[n - 1 - i];
  out[n] = '\0';
}

bool expand_pid_pattern(const char* pattern, char* path, std::size_t size) {
  char pid[24];
  decimal_text(static_cast<std::uint64_t>(getpid()), pid);
  std::size_t n = 0;
  auto put = [&](char c) {
    if (n + 1 >= size) return false;
    path[n++] = c;
    return true;
  };
  for (const char* c = pattern; *c != '\0'; ++c) {
    if (c[0] == '%' && c[1] == 'p') {
      for (const char* d = pid; *d != '\0'; ++d) {
        if (!put(*d)) return false;
      }
      ++c;
    } else if (c[0] == '%' && c[1] == '%') {
      if (!put('%')) return false;
      ++c;
    } else if (!put(*c)) {
      return false;
    }
  }
  path[n] = '\0';
  return n != 0;
}

}  // namespace polymalloc::allocator
