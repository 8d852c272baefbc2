// The classic page source: the program break. Only correct when this allocator is the
// process's malloc (it then owns the break). Unlike the classic code it does not assume
// nobody else moves the break: a grow after a foreign move starts a new, non-contiguous
// region (callers compare the result with their old top), and a shrink is refused unless
// the break is still where this source left it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace polymalloc::platform {

class SbrkHeap {
 public:
  static constexpr bool kContiguous = true;  // unless someone else moves the break
  static constexpr bool kThreadSafe = false;
  static constexpr const char* kName = "sbrk";

  constexpr SbrkHeap() = default;
  SbrkHeap(const SbrkHeap&) = delete;
  SbrkHeap& operator=(const SbrkHeap&) = delete;

  void* grow(std::size_t bytes);
  bool shrink(std::size_t bytes);
  // Everything between the first break this source saw and its current top (a foreign
  // region in between, if the break was moved by someone else, is included: callers use
  // their own block headers to tell).
  bool contains(const void* p) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    return a >= first_ && a < top_;
  }
  std::uintptr_t top() const { return top_; }

 private:
  std::uintptr_t first_ = 0;  // start of the first region handed out
  std::uintptr_t top_ = 0;    // end of the last region handed out (our view of the break)
};

}  // namespace polymalloc::platform
