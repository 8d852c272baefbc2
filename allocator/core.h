// The contract between a variant and the front end: the few primitives a variant writes
// itself. The front end (front_end.h) builds the whole malloc API on top of them.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstring>

#include "allocator/statistics.h"

namespace polymalloc::allocator {

// Static functions over the variant's one global heap. Unless noted, `p` is non-null and was
// returned by this core; sizes are at least 1.
template <class Core>
concept AllocatorCore = requires(void* p, const void* cp, const void** where, std::size_t n,
                                 std::size_t alignment, const char* call) {
  { Core::kName } -> std::convertible_to<const char*>;
  // 16-byte-aligned memory for n bytes, or nullptr with errno = ENOMEM.
  { Core::allocate(n) } -> std::same_as<void*>;
  // The same, zero-filled (a core knows which of its memory is already zero).
  { Core::allocate_zeroed(n) } -> std::same_as<void*>;
  // The same, aligned to `alignment` (a power of two above 16); the alignment comes first.
  { Core::allocate_aligned(alignment, n) } -> std::same_as<void*>;
  // Frees p; `call` names the API function, for the misuse report. Preserves errno.
  { Core::deallocate(p, call) } -> std::same_as<void>;
  // Resizes p to n bytes, moving it if needed; nullptr with errno = ENOMEM (p intact).
  { Core::reallocate(p, n) } -> std::same_as<void*>;
  { Core::usable_size(cp) } -> std::same_as<std::size_t>;
  // Gives free memory back to the OS, keeping `n` bytes of slack; true if any went back.
  { Core::trim(n) } -> std::same_as<bool>;
  // The figures; with Detail::kBreakdown, also where the memory goes (a walk of the heaps).
  { Core::statistics(Detail::kTotals) } -> std::same_as<Statistics>;
  // nullptr if the heap is consistent, else what is wrong (and *where, where).
  { Core::check_heap(where) } -> std::same_as<const char*>;
  // fork(): take every lock before, release after in the parent, reset in the child.
  { Core::prepare_fork() } -> std::same_as<void>;
  { Core::after_fork_in_parent() } -> std::same_as<void>;
  { Core::after_fork_in_child() } -> std::same_as<void>;
};

// A core that can also say, in constant time and reading nothing outside its own memory,
// whether p is a payload address in its memory (so the 16 bytes below p and the block after
// may be read): a block handed out or not. Decorators that keep data around the client's
// bytes (CheckedCore) need it before they read a pointer a caller passed.
template <class Core>
// Also whether p was the payload of a block freed with its memory (a large block's mapping),
// so that a second free of it is told from a pointer never handed out.
concept OwnershipAwareCore = AllocatorCore<Core> && requires(const void* cp) {
  { Core::owns(cp) } -> std::same_as<bool>;
  { Core::freed_mapping(cp) } -> std::same_as<bool>;
};

// realloc by copying: what fits of `old` (a block of Core) goes into `fresh`, which Core just
// allocated, and `old` is freed; nullptr (old intact) if that allocation failed.
template <class Core>
void* move_to_fresh(void* fresh, void* old, std::size_t bytes) {
  if (fresh == nullptr) return nullptr;
  const std::size_t old_bytes = Core::usable_size(old);
  std::memcpy(fresh, old, old_bytes < bytes ? old_bytes : bytes);
  Core::deallocate(old, "realloc");
  return fresh;
}

}  // namespace polymalloc::allocator
