// What the intrusive stacks need of an element, and the contract every ABA-safe stack meets.
#pragma once

#include <concepts>
#include <cstdint>

#include "atomics/word.h"

namespace polymalloc::atomics {

// Elements are caller memory whose first word the stack uses as its link while the element
// is on the stack. Elements must be 16-byte aligned, and their memory must stay mapped for
// the life of the stack: a pop may read the link of an element another thread just took.
inline constexpr std::uintptr_t kStackNodeAlignment = 16;

// Links are stored mangled (safe-linking, as glibc does for its free lists): XORed with the
// element's own address >> 12. A stray write over an element's link (a use after free of the
// memory it lives in) then yields an address nobody chose, most often a misaligned one that a
// pop recognises, instead of one that steers the next pop wherever the writer wanted.
inline std::uintptr_t mangle_link(const void* node, std::uintptr_t link) {
  return link ^ (reinterpret_cast<std::uintptr_t>(node) >> 12);
}

inline void write_link(void* node, std::uintptr_t link) {
  store_relaxed(static_cast<std::uintptr_t*>(node), mangle_link(node, link));
}

// The link is read speculatively by pops that may lose the race for the element, while its
// new owner writes it as ordinary memory. The loser's value is never used (its CAS fails),
// so this read is a benign race, hidden from ThreadSanitizer on purpose.
[[gnu::no_sanitize_thread]] inline std::uintptr_t read_link_speculatively(void* node) {
  return mangle_link(node, *static_cast<volatile std::uintptr_t*>(node));
}

// Stops the process with a one-line report: the link of `node`, read while node was still the
// top of its stack, demangled to `link`, which no element can have (it was written over).
[[noreturn, gnu::cold]] void report_corrupted_link(const void* node, std::uintptr_t link);

template <class S>
concept AbaSafeStack = requires(S s, void* node) {
  s.push(node);
  { s.pop() } -> std::same_as<void*>;
  { s.empty() } -> std::same_as<bool>;
  { S::kIsLockFree } -> std::convertible_to<bool>;
  { S::kName } -> std::convertible_to<const char*>;
  // fork(): whatever the stacks' operations lock is taken before and released after, so a
  // thread that vanishes in the fork leaves nothing held in the child (no-ops when nothing
  // is locked).
  S::prepare_fork();
  S::after_fork_in_parent();
  S::after_fork_in_child();
};

}  // namespace polymalloc::atomics
