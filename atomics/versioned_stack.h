// Treiber stack whose head is a (pointer, version) pair changed only by double-width CAS:
// every change bumps the version, so a pop that read a stale head can never succeed (ABA).
// Lock-free when its DoubleCas is; never blocks signals unless its DoubleCas does.
#pragma once

#include <cstdint>

#include "atomics/double_word.h"
#include "atomics/stack_node.h"

namespace polymalloc::atomics {

template <DoubleCas D>
class VersionedStack {
 public:
  static constexpr bool kIsLockFree = D::kIsLockFree;
  static constexpr const char* kName = D::kIsLockFree ? "versioned" : "versioned_lock_table";

  constexpr VersionedStack() = default;
  VersionedStack(const VersionedStack&) = delete;
  VersionedStack& operator=(const VersionedStack&) = delete;

  void push(void* node) {
    const auto address = reinterpret_cast<std::uintptr_t>(node);
    DoubleWord seen = load_halves_acquire(&head_);
    do {
      write_link(node, seen.lo);
    } while (!D::cas_seq_cst(&head_, seen, DoubleWord{address, seen.hi + 1}));
  }

  void* pop() {
    DoubleWord seen = load_halves_acquire(&head_);
    for (;;) {
      if (seen.lo == 0) return nullptr;
      void* top = reinterpret_cast<void*>(seen.lo);
      const std::uintptr_t next = read_link_speculatively(top);
      if (next % kStackNodeAlignment != 0) [[unlikely]] {
        check_link(seen, top, next);
        seen = load_halves_acquire(&head_);
        continue;
      }
      if (D::cas_seq_cst(&head_, seen, DoubleWord{next, seen.hi + 1})) return top;
    }
  }

  bool empty() const { return load_acquire(&head_.lo) == 0; }

  // Only a DoubleCas with locks (the lock table) has anything to do at fork().
  static void prepare_fork() {
    if constexpr (requires { D::prepare_fork(); }) D::prepare_fork();
  }
  static void after_fork_in_parent() {
    if constexpr (requires { D::after_fork_in_parent(); }) D::after_fork_in_parent();
  }
  static void after_fork_in_child() {
    if constexpr (requires { D::after_fork_in_child(); }) D::after_fork_in_child();
  }

 private:
  // A misaligned link is either a stale read (top was popped and reused meanwhile: the head
  // has moved on) or top's real link, overwritten while top sat on the stack (the head, and
  // its version, are still as seen). The latter is reported.
  [[gnu::noinline]] void check_link(DoubleWord seen, void* top, std::uintptr_t next) {
    const DoubleWord now = load_halves_acquire(&head_);
    if (now.lo == seen.lo && now.hi == seen.hi) report_corrupted_link(top, next);
  }

  DoubleWord head_;  // lo: top element (0 when empty); hi: version
};

}  // namespace polymalloc::atomics
