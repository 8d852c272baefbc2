// The one report layer 0 makes: an element's link found overwritten. Written with write(2)
// from a stack buffer (no allocation: this may run inside malloc or a signal handler).
#include "atomics/stack_node.h"

#include <stdlib.h>
#include <unistd.h>

namespace polymalloc::atomics {
namespace {

// Appends "0x" and the hex digits of `value` at `out`; returns the end.
char* append_hex(char* out, std::uintptr_t value) {
  *out++ = '0';
  *out++ = 'x';
  int shift = 60;
  while (shift > 0 && (value >> shift) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) *out++ = "0123456789abcdef"[(value >> shift) & 15];
  return out;
}

char* append(char* out, const char* text) {
  while (*text != '\0') *out++ = *text++;
  return out;
}

}  // namespace

void report_corrupted_link(const void* node, std::uintptr_t link) {
  char line[160];
  char* end = append(
      line, "polymalloc: malloc(): corrupted free list (a freed block was written to): link to ");
  end = append_hex(end, link);
  end = append(end, " in ");
  end = append_hex(end, reinterpret_cast<std::uintptr_t>(node));
  *end++ = '\n';
  for (const char* p = line; p < end;) {
    const ssize_t n = ::write(STDERR_FILENO, p, static_cast<std::size_t>(end - p));
    if (n <= 0) break;
    p += n;
  }
  abort();
}

}  // namespace polymalloc::atomics
