// Parsing and writing the trace format (trace_format.h), without allocating: the recorder
// runs inside malloc and memsim must not use the allocator it measures.
#include "testing/trace/trace_format.h"

namespace polymalloc::testing {
namespace {

// A cursor over one line.
struct Cursor {
  const char* p;
  const char* end;
  bool done() const { return p == end; }
  char peek() const { return p < end ? *p : '\0'; }
  bool take(char c) {
    if (peek() != c) return false;
    ++p;
    return true;
  }
  // A decimal number no larger than `max`; false if there are no digits or it is larger.
  bool number(std::uint64_t max, std::uint64_t* out) {
    if (!(peek() >= '0' && peek() <= '9')) return false;
    std::uint64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      const unsigned digit = static_cast<unsigned>(*p++ - '0');
      if (v > (max - digit) / 10) return false;
      v = v * 10 + digit;
    }
    *out = v;
    return true;
  }
  void skip_blanks() {
    while (peek() == ' ' || peek() == '\t' || peek() == '\r') ++p;
  }
};

constexpr std::uint64_t kMaxSize = ~std::uint64_t{0};

bool fail(const char** error, const char* what) {
  *error = what;
  return false;
}

// What follows "N=": the allocation forms.
bool parse_allocation(Cursor& c, TraceOp* op, const char** error) {
  if (c.take('r')) {
    op->kind = TraceOp::Kind::kRealloc;
    if (!c.number(kMaxSize, &op->size)) return fail(error, "expected a size after 'r'");
  } else if (c.take('c')) {
    op->kind = TraceOp::Kind::kCalloc;
    if (!c.number(kMaxSize, &op->extra)) return fail(error, "expected a count after 'c'");
    if (!c.take('*')) return fail(error, "expected '*' between calloc's count and size");
    if (!c.number(kMaxSize, &op->size)) return fail(error, "expected calloc's size after '*'");
  } else if (c.take('a')) {
    op->kind = TraceOp::Kind::kAligned;
    if (!c.number(kMaxSize, &op->extra)) return fail(error, "expected an alignment after 'a'");
    if (op->extra == 0 || (op->extra & (op->extra - 1)) != 0) {
      return fail(error, "the alignment must be a power of two");
    }
    if (!c.take(':')) return fail(error, "expected ':' between alignment and size");
    if (!c.number(kMaxSize, &op->size)) return fail(error, "expected a size after ':'");
  } else {
    op->kind = TraceOp::Kind::kMalloc;
    if (!c.number(kMaxSize, &op->size)) return fail(error, "expected a size after '='");
  }
  return true;
}

}  // namespace

bool parse_trace_line(const char* line, std::size_t length, TraceOp* op, const char** error) {
  *error = nullptr;
  Cursor c{line, line + length};
  c.skip_blanks();
  if (c.done() || c.peek() == '#') return false;
  *op = TraceOp{};
  if (c.take('s')) {
    op->kind = TraceOp::Kind::kStats;
  } else if (c.take('e')) {
    op->kind = TraceOp::Kind::kEnd;
  } else {
    std::uint64_t first = 0;
    if (!c.number(kMaxTraceSlot, &first)) {
      return fail(error, "expected a slot number, 's', 'e' or T@ (slot at most 2^32-1)");
    }
    if (c.take('@')) {
      if (first > kMaxTraceThread) return fail(error, "thread number above 1023");
      op->thread = static_cast<std::uint32_t>(first);
      if (!c.number(kMaxTraceSlot, &first)) return fail(error, "expected a slot after '@'");
    }
    op->slot = first;
    if (c.take('=')) {
      if (!parse_allocation(c, op, error)) return false;
    } else {
      op->kind = TraceOp::Kind::kFree;
    }
  }
  c.skip_blanks();
  if (!c.done()) return fail(error, "unexpected text after the operation");
  return true;
}

namespace {

char* put_number(char* out, std::uint64_t v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *out++ = digits[--n];
  return out;
}

}  // namespace

std::size_t format_trace_op(const TraceOp& op, char* out) {
  char* p = out;
  switch (op.kind) {
    case TraceOp::Kind::kStats:
      *p++ = 's';
      break;
    case TraceOp::Kind::kEnd:
      *p++ = 'e';
      break;
    default:
      if (op.thread != 0) {
        p = put_number(p, op.thread);
        *p++ = '@';
      }
      p = put_number(p, op.slot);
      if (op.kind == TraceOp::Kind::kFree) break;
      *p++ = '=';
      if (op.kind == TraceOp::Kind::kRealloc) *p++ = 'r';
      if (op.kind == TraceOp::Kind::kCalloc) {
        *p++ = 'c';
        p = put_number(p, op.extra);
        *p++ = '*';
      }
      if (op.kind == TraceOp::Kind::kAligned) {
        *p++ = 'a';
        p = put_number(p, op.extra);
        *p++ = ':';
      }
      p = put_number(p, op.size);
  }
  *p++ = '\n';
  return static_cast<std::size_t>(p - out);
}

}  // namespace polymalloc::testing
