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

inline std::uintptr_t* link_of(void* node) { return static_cast<std::uintptr_t*>(node); }

// The link is read speculatively by pops that may lose the race for the element, while its
// new owner writes it as ordinary memory. The loser's value is never used (its CAS fails),
// so this read is a benign race, hidden from ThreadSanitizer on purpose.
[[gnu::no_sanitize_thread]] inline std::uintptr_t read_link_speculatively(void* node) {
  return *static_cast<volatile std::uintptr_t*>(node);
}

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
