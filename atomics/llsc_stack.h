// Treiber stack made ABA-safe by load-linked/store-conditional emulation (LlscWord) instead
// of double-width CAS. Pushes never wait; pops are lock-free unless LlscWord::kReservations
// of them are suspended mid-pop at once (so a signal handler may pop and push while the
// thread it interrupted is inside a pop, up to that nesting depth).
#pragma once

#include <cstdint>

#include "atomics/llsc_emulation.h"
#include "atomics/stack_node.h"

namespace polymalloc::atomics {

class LlscStack {
 public:
  static constexpr bool kIsLockFree = false;
  static constexpr const char* kName = "llsc_emulation";
  static_assert(kStackNodeAlignment >= LlscWord::kTags, "tags live in the alignment bits");

  constexpr LlscStack() = default;
  LlscStack(const LlscStack&) = delete;
  LlscStack& operator=(const LlscStack&) = delete;

  void push(void* node) {
    const auto address = reinterpret_cast<std::uintptr_t>(node);
    if (address & LlscWord::kTagMask) __builtin_trap();  // violated kStackNodeAlignment
    const std::uintptr_t tagged = head_.tag_unreserved(address);
    std::uintptr_t seen = head_.load_acquire();
    do {
      write_link(node, seen);
    } while (!head_.cas_seq_cst(seen, tagged));
  }

  void* pop() {
    for (;;) {
      const LlscWord::Link link = head_.load_linked();
      if (link.value == 0) return nullptr;
      void* top = reinterpret_cast<void*>(LlscWord::address_of(link.value));
      const std::uintptr_t next = read_link_speculatively(top);
      if (head_.store_conditional(link, next)) return top;
    }
  }

  bool empty() const { return head_.load_acquire() == 0; }

  // Nothing is locked. (A thread that vanishes in a fork while inside a pop leaves its
  // reservation held in the child, one of LlscWord::kReservations: pops go on.)
  static void prepare_fork() {}
  static void after_fork_in_parent() {}
  static void after_fork_in_child() {}

 private:
  LlscWord head_;
};

}  // namespace polymalloc::atomics
