// A quarantine for freed blocks (full checks, checked_core.h): a bounded FIFO that a freed
// block waits in before its memory can be reused, so that a use after free lands in memory
// nobody else owns yet, where the junk check sees it when the block leaves.
//
// A ring of kSlots words indexed by tickets: a push takes the next tail ticket and exchanges
// its block into that slot; whatever the slot held (the block of a full ring ago) leaves.
// While the quarantined bytes exceed the bound, the oldest leave: a thread claims the head
// ticket with a CAS and exchanges that slot empty. Every block is owned by exactly the one
// thread that took it out of its slot with an exchange, so each leaves once. No lock and no
// waiting: a slot not yet written (its pusher was preempted, or is the code a signal
// handler interrupted) is skipped, and its block leaves a full ring later instead. So it is
// async-signal-safe, and lock-free wherever layer 0's exchange and CAS are. Single-threaded,
// blocks leave in the order they came.
#pragma once

#include <cstddef>
#include <cstdint>

#include "atomics/atomics.h"

namespace polymalloc::allocator {

template <unsigned kSlots>
class Quarantine {
  static_assert(kSlots > 0 && (kSlots & (kSlots - 1)) == 0, "a power of two");

 public:
  struct Stats {
    std::size_t bytes;
    std::size_t blocks;
  };

  // Quarantines block p of `bytes`. Blocks that must leave go to `leave(q)`, which returns
  // the bytes q was pushed with: the block a full ring ago, and the oldest while more than
  // `bound` bytes wait.
  template <class Leave>
  void push(void* p, std::size_t bytes, std::size_t bound, Leave leave) {
    atomics::fetch_add_relaxed(&bytes_, bytes);
    atomics::fetch_add_relaxed(&blocks_, std::size_t{1});
    const std::uint64_t t = atomics::fetch_add_acq_rel(&tail_, std::uint64_t{1});
    if (void* old = atomics::exchange_acq_rel(&slots_[t % kSlots], p)) {
      pass_head(t - kSlots);  // that slot's earlier ticket is gone
      evict(old, leave);
    }
    while (atomics::load_relaxed(&bytes_) > bound && pop_oldest(leave)) {
    }
  }

  // Every block leaves (malloc_trim, and tests).
  template <class Leave>
  void drain(Leave leave) {
    while (pop_oldest(leave)) {
    }
    for (void*& slot : slots_) {  // blocks whose pushers had not stored them when passed
      if (void* q = atomics::exchange_acq_rel(&slot, static_cast<void*>(nullptr))) {
        evict(q, leave);
      }
    }
  }

  // Runs check(q) on every waiting block, each taken out of its slot meanwhile (so that it
  // cannot leave and be reused while it is checked) and put back after, or made to leave if
  // a push took the slot in between.
  template <class Check, class Leave>
  void for_each(Check check, Leave leave) {
    for (void*& slot : slots_) check_slot(slot, check, leave);
  }

  // The same for the `count` blocks pushed last (fewer if fewer wait): the periodic check's
  // share, so that its cost follows the calls since the last one, not the quarantine's size.
  template <class Check, class Leave>
  void for_each_newest(std::uint64_t count, Check check, Leave leave) {
    const std::uint64_t tail = atomics::load_acquire(&tail_);
    const std::uint64_t head = atomics::load_acquire(&head_);
    const std::uint64_t from = tail - head > count ? tail - count : head;
    for (std::uint64_t t = from; t < tail; ++t) check_slot(slots_[t % kSlots], check, leave);
  }

  Stats stats() const { return {atomics::load_relaxed(&bytes_), atomics::load_relaxed(&blocks_)}; }

 private:
  // check(q) on the block in `slot`, taken out meanwhile and put back after (or made to leave
  // if a push took the slot in between).
  template <class Check, class Leave>
  void check_slot(void*& slot, Check check, Leave leave) {
    void* q = atomics::load_acquire(&slot);
    if (q == nullptr || !atomics::cas_acq_rel(&slot, q, static_cast<void*>(nullptr))) return;
    check(q);
    void* empty = nullptr;
    if (!atomics::cas_acq_rel(&slot, empty, q)) evict(q, leave);
  }

  template <class Leave>
  void evict(void* q, Leave leave) {
    atomics::fetch_sub_relaxed(&bytes_, leave(q));
    atomics::fetch_sub_relaxed(&blocks_, std::size_t{1});
  }

  // Claims the head ticket and empties its slot; false when no ticket is left.
  template <class Leave>
  bool pop_oldest(Leave leave) {
    std::uint64_t h = atomics::load_acquire(&head_);
    do {
      if (h >= atomics::load_acquire(&tail_)) return false;
    } while (!atomics::cas_acq_rel(&head_, h, h + 1));
    if (void* q = atomics::exchange_acq_rel(&slots_[h % kSlots], static_cast<void*>(nullptr))) {
      evict(q, leave);
    }
    return true;
  }

  // Moves the head past ticket `ticket`, if it is not past it already.
  void pass_head(std::uint64_t ticket) {
    std::uint64_t h = atomics::load_relaxed(&head_);
    while (h <= ticket && !atomics::cas_acq_rel(&head_, h, ticket + 1)) {
    }
  }

  void* slots_[kSlots] = {};
  std::uint64_t head_ = 0;  // the oldest ticket that may still hold a block
  std::uint64_t tail_ = 0;  // the next ticket
  std::size_t bytes_ = 0;
  std::size_t blocks_ = 0;
};

}  // namespace polymalloc::allocator
