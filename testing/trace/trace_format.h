// The allocation trace format shared by genrandms (writes), memsim (replays) and the trace
// recorder (writes). One operation per line, in the order the operations happened:
//
//   N=SIZE            malloc(SIZE) into slot N; if slot N holds a block, realloc it to SIZE
//                     (the classic memsim token)
//   N                 free the block in slot N (classic)
//   N=rSIZE           realloc(slot N, SIZE); realloc(NULL, SIZE) if the slot is empty
//   N=cCOUNT*SIZE     calloc(COUNT, SIZE) into slot N
//   N=aALIGN:SIZE     aligned allocation (memalign/posix_memalign/aligned_alloc) into slot N
//   s                 print statistics (classic)
//   e                 end of trace (classic; anything after it is ignored)
//   T@OP              OP on thread T (0 when absent): a multi-threaded trace
//   # text            a comment; blank lines are ignored too
//
// Slots and threads are small non-negative integers; sizes are decimal byte counts. A slot
// holds at most one block; allocating into an occupied slot other than with N=SIZE, or
// freeing an empty one, is an error the replayer reports with the line number.
#pragma once

#include <cstddef>
#include <cstdint>

namespace polymalloc::testing {

struct TraceOp {
  enum class Kind : std::uint8_t { kMalloc, kFree, kRealloc, kCalloc, kAligned, kStats, kEnd };
  Kind kind = Kind::kEnd;
  std::uint32_t thread = 0;
  std::uint64_t slot = 0;
  std::uint64_t size = 0;
  std::uint64_t extra = 0;  // calloc's count, or the alignment
};

// Largest slot and thread numbers a trace may use (tables are sized from the trace).
inline constexpr std::uint64_t kMaxTraceSlot = (std::uint64_t{1} << 32) - 1;
inline constexpr std::uint32_t kMaxTraceThread = 1023;

// Parses one line (without its newline). Returns true and fills *op for an operation;
// returns false with *error == nullptr for a blank or comment line, or with *error set to
// what is wrong. Allocates nothing.
bool parse_trace_line(const char* line, std::size_t length, TraceOp* op, const char** error);

// Writes op as one line with its newline into out (at least kMaxTraceLine bytes); returns
// the length. Allocates nothing.
inline constexpr std::size_t kMaxTraceLine = 96;
std::size_t format_trace_op(const TraceOp& op, char* out);

}  // namespace polymalloc::testing
