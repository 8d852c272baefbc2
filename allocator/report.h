// Messages the allocator writes itself, without allocating: the one-line misuse report
// that precedes abort(), and the statistics summary. Output goes straight to write(2).
#pragma once

#include <cstddef>
#include <cstdint>

#include "allocator/statistics.h"

namespace polymalloc::allocator {

// "polymalloc: <call>(): <problem> 0x<pointer>", then SIGABRT. Never returns.
[[noreturn]] void report_misuse(const char* call, const char* problem, const void* pointer);

// "polymalloc: <call>(): <problem> 0x<block> (a block of <bytes> bytes)", then SIGABRT.
[[noreturn]] void report_damaged_block(const char* call, const char* problem, const void* block,
                                       std::size_t bytes);

// "polymalloc: <call>(): write after free to 0x<block> (a block of <bytes> bytes, offset
// <offset>)", then SIGABRT: the first byte of a freed block found changed, at `offset` from
// the client's first byte (negative: in the guard or canary below it). Never returns.
[[noreturn]] void report_write_after_free(const char* call, const void* block, std::size_t bytes,
                                          std::ptrdiff_t offset);

// "polymalloc: <call>(): heap check failed: <problem> at 0x<where>", then SIGABRT.
[[noreturn]] void report_failed_check(const char* call, const char* problem, const void* where);

// The problem to report when `call` meets a block already freed, chosen by what the call
// does with it: a call that frees it (free, operator delete) frees it twice; a call that
// uses it (realloc, malloc_usable_size) uses a freed pointer.
inline const char* freed_block_problem(const char* call) {
  const bool uses = __builtin_strcmp(call, "realloc") == 0 ||
                    __builtin_strcmp(call, "malloc_usable_size") == 0;
  return uses ? "freed pointer" : "double free of";
}

// The statistics as a few human-readable lines (POLYMALLOC_STATS=1), the first naming the
// variant and the process.
void print_statistics(const Statistics& stats, int fd);

// malloc_stats(): glibc's lines first, in glibc's layout (one arena for the heap, then the
// totals with the mapping peaks), which programs and glibc's own tests read; then
// print_statistics()'s.
void print_malloc_stats(const Statistics& stats, int fd);

// A fixed-size line buffer with decimal and hexadecimal formatting; output that does not
// fit is cut off, never overflowed.
// value in decimal into `out` (at least 21 bytes), null-terminated.
void decimal_text(std::uint64_t value, char* out);

// A file name pattern (POLYMALLOC_STATS_FILE, POLYMALLOC_PROFILE_FILE) with "%p" replaced by
// the pid and "%%" by "%", into `path`; false if it is empty or does not fit.
bool expand_pid_pattern(const char* pattern, char* path, std::size_t size);

class LineWriter {
 public:
  LineWriter& text(const char* s);
  LineWriter& decimal(std::uint64_t value);
  // Right-aligned in `width` characters (printf's %10lu).
  LineWriter& decimal(std::uint64_t value, unsigned width);
  LineWriter& hex(std::uintptr_t value);
  // Bytes with a binary-prefix unit, e.g. "12.5 MiB".
  LineWriter& bytes(std::uint64_t value);
  void write_to(int fd) const;

 private:
  LineWriter& digits(std::uint64_t value, unsigned base);

  char buffer_[512];
  std::size_t length_ = 0;
};

}  // namespace polymalloc::allocator
