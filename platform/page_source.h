// The contract every page source meets: a region that grows and shrinks at its top, in
// whole pages. Sources are not synchronised unless they say so (kThreadSafe); the allocator
// calls them under its own lock, or, for the static arena, lock-free.
#pragma once

#include <concepts>
#include <cstddef>

namespace polymalloc::platform {

template <class S>
concept PageSource = requires(S s, const S cs, std::size_t bytes, const void* p) {
  // Adds `bytes` (a multiple of page_size()) of zeroed read-write memory and returns its
  // start, or nullptr with errno = ENOMEM (the source is then unchanged). Consecutive grows
  // are contiguous when S::kContiguous, unless something else moved the program break.
  { s.grow(bytes) } -> std::same_as<void*>;
  // Gives the top `bytes` back to the OS; false (and nothing changes) if it cannot.
  { s.shrink(bytes) } -> std::same_as<bool>;
  // Whether p lies in memory this source handed out (cheap; used for ownership checks).
  { cs.contains(p) } -> std::same_as<bool>;
  { S::kContiguous } -> std::convertible_to<bool>;
  { S::kThreadSafe } -> std::convertible_to<bool>;
  { S::kName } -> std::convertible_to<const char*>;
};

}  // namespace polymalloc::platform
