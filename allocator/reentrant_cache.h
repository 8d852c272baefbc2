// Per-thread caches of free blocks that a signal handler may interrupt at any instruction:
// the thread cache of an allocator whose malloc is async-signal-safe. A cache is owned by
// one thread; the only code that can run on that thread in the middle of a cache operation
// is a signal handler, and handlers nest strictly. So a cache needs no atomics, only a
// `busy` word that an operation sets around its work: a handler that finds it set leaves
// the cache alone and uses the shared pool. No lock, no waiting, nothing to undo.
//
// Caches live in a fixed table of slots claimed with one CAS (no allocation, so a thread's
// first malloc may be in a signal handler), which statistics and checks walk. A thread's
// slot goes back to the table, its blocks to the pool, when the thread exits (a pthread key
// destructor); a thread that finds no free slot simply goes without a cache.
#pragma once

#include <pthread.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/class_stacks.h"
#include "allocator/sanitizer.h"
#include "atomics/atomics.h"

namespace polymalloc::allocator {

// One thread's bins for classes 0 … kBins-1 of the policy Classes. Blocks are chained
// through Block::next_in_list, so a bin's oldest blocks leave as a ready-made BlockChain.
template <class Classes, unsigned kBins>
class ReentrantCache {
 public:
  // Blocks of class i move between cache and pool this many at a time (about 8 KiB, 2 to
  // 64 blocks), and a bin holds at most two batches.
  static constexpr std::uint32_t batch(unsigned i) {
    const std::size_t n = (std::size_t{8} << 10) / Classes::size_of(i);
    return n < 2 ? 2 : n > 64 ? 64 : static_cast<std::uint32_t>(n);
  }
  static constexpr std::uint32_t capacity(unsigned i) { return kCapacity[i]; }

  // Brackets an operation on the cache. Between begin() returning true and end(), a signal
  // handler on this thread sees the cache busy. The compiler must not move the cache's
  // loads and stores across these (a signal fence: the handler runs on this thread).
  POLYMALLOC_HOT_PATH bool begin() {
    if (atomics::load_relaxed(&busy_) != 0) return false;
    atomics::store_relaxed(&busy_, std::uint32_t{1});
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return true;
  }
  POLYMALLOC_HOT_PATH void end() {
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    atomics::store_relaxed(&busy_, std::uint32_t{0});
  }
  bool busy() const { return atomics::load_relaxed(&busy_) != 0; }

  // A block of class i, or nullptr if the bin is empty.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* pop(unsigned i) {
    Bin& bin = bins_[i];
    Block* b = bin.head;
    if (b == nullptr) return nullptr;
    bin.head = b->next();
    atomics::store_relaxed(&bin.count, bin.count - 1);
    return b;
  }

  // Caches b (a free block of class i); false if the bin is full.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH bool push(unsigned i, Block* b) {
    Bin& bin = bins_[i];
    if (bin.count >= capacity(i)) return false;
    b->set_next(bin.head);
    bin.head = b;
    atomics::store_relaxed(&bin.count, bin.count + 1);
    return true;
  }

  // Puts a chain into an empty bin i.
  void fill(unsigned i, BlockChain chain) {
    bins_[i].head = chain.head;
    atomics::store_relaxed(&bins_[i].count, chain.count);
  }

  // Detaches the n least recently cached blocks of bin i (all when n is 0 or more than it
  // holds). The most recently freed, the likeliest to be in the CPU's cache, stay.
  POLYMALLOC_UNCHECKED_BY_ASAN BlockChain take_oldest(unsigned i, std::uint32_t n) {
    Bin& bin = bins_[i];
    if (n == 0 || n > bin.count) n = bin.count;
    if (n == 0) return {};
    Block* first = bin.head;
    if (n == bin.count) {
      bin.head = nullptr;
    } else {
      first = Block::split_after(bin.head, bin.count - n);
    }
    atomics::store_relaxed(&bin.count, bin.count - n);
    return BlockChain{first, n};
  }

  // Read by other threads (statistics) while the owner runs.
  std::uint32_t count(unsigned i) const { return atomics::load_relaxed(&bins_[i].count); }

  // nullptr if bin i's chain is as long as its count and every block passes `valid`, else
  // what is wrong (and *where). Only the owner (or a thread that owns it after a fork) may.
  template <class Valid>
  POLYMALLOC_UNCHECKED_BY_ASAN const char* check(unsigned i, Valid valid,
                                                 const void** where) const {
    std::uint32_t n = 0;
    for (const Block* b = bins_[i].head; b != nullptr; b = b->next(), ++n) {
      const char* wrong = n >= bins_[i].count ? "cache bin longer than its count" : valid(b);
      if (wrong != nullptr) {
        if (where != nullptr) *where = b;
        return wrong;
      }
    }
    return n == bins_[i].count ? nullptr : "cache bin shorter than its count";
  }

 private:
  struct Bin {
    Block* head = nullptr;
    std::uint32_t count = 0;
  };

  // Looked up on every free, so a table rather than arithmetic.
  static constexpr auto kCapacity = [] {
    std::array<std::uint32_t, kBins> capacity{};
    for (unsigned i = 0; i < kBins; ++i) capacity[i] = 2 * batch(i);
    return capacity;
  }();

  std::uint32_t busy_ = 0;
  Bin bins_[kBins] = {};
};

// The calling thread's cache and the table of them. Backend::flush_all(Cache&) empties a
// cache into the pool; it runs at thread exit, and in a fork child for the caches of the
// threads that did not survive the fork.
template <class Cache, class Backend, unsigned kSlots = 256>
class ReentrantCaches {
 public:
  // The caller's cache, set up on first use; nullptr when the thread has none (no slot
  // free, its exit handlers already ran, or set-up was interrupted by this very call).
  POLYMALLOC_HOT_PATH static Cache* mine() {
    if (Cache* c = atomics::load_relaxed(&mine_.cache)) [[likely]]
      return c;
    return activate();
  }

  // The caller's cache if it has one, without setting one up.
  POLYMALLOC_HOT_PATH static Cache* current() { return atomics::load_relaxed(&mine_.cache); }

  // Calls f(Cache&) for each claimed slot (other threads' caches: read their counts only).
  template <class F>
  static void for_each(F f) {
    for (Slot& s : slots_) {
      if (atomics::load_acquire(&s.claimed) != 0) f(s.cache);
    }
  }

  // In a fork child only the forking thread lives on. The others' caches go back to the
  // pool, except one whose thread was inside a cache operation: its bins may be half
  // changed, so its blocks are abandoned (as glibc abandons other threads' tcaches).
  static void after_fork_in_child() {
    for (Slot& s : slots_) {
      if (atomics::load_relaxed(&s.claimed) == 0 || &s.cache == mine_.cache) continue;
      if (s.cache.busy()) continue;
      Backend::flush_all(s.cache);
      atomics::store_release(&s.claimed, std::uint32_t{0});
    }
  }

 private:
  enum class State : std::uint32_t { kUnused, kActivating, kActive, kRetired };

  struct Slot {
    std::uint32_t claimed = 0;
    Cache cache;
  };
  struct ThreadState {
    Cache* cache = nullptr;
    State state = State::kUnused;
  };

  [[gnu::noinline]] static Cache* activate() {
    ThreadState& me = mine_;
    if (me.state != State::kUnused) return nullptr;
    me.state = State::kActivating;  // a handler that interrupts from here on goes without
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    Slot* slot = exit_key_ready() ? claim_slot() : nullptr;
    if (slot == nullptr || pthread_setspecific(exit_key_, slot) != 0) {
      if (slot != nullptr) atomics::store_release(&slot->claimed, std::uint32_t{0});
      me.state = State::kRetired;  // without a cache for good: no slot, or no exit hook
      return nullptr;
    }
    me.cache = &slot->cache;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    me.state = State::kActive;
    return me.cache;
  }

  // The pthread key whose destructor retires a thread's cache, created by the first thread
  // to get here. glibc's pthread_key_create and pthread_setspecific (for the first 32 keys)
  // neither lock nor allocate; a thread that finds creation in progress waits for nothing:
  // it does without a cache.
  static bool exit_key_ready() {
    std::uint32_t state = atomics::load_acquire(&key_state_);
    if (state == kKeyReady) return true;
    if (state != kKeyNone || !atomics::cas_acq_rel(&key_state_, state, kKeyCreating)) {
      return false;
    }
    const bool created = pthread_key_create(&exit_key_, &retire) == 0;
    atomics::store_release(&key_state_, created ? kKeyReady : kKeyFailed);
    return created;
  }

  static Slot* claim_slot() {
    for (Slot& s : slots_) {
      std::uint32_t free = 0;
      if (atomics::load_relaxed(&s.claimed) == 0 &&
          atomics::cas_acq_rel(&s.claimed, free, std::uint32_t{1})) {
        return &s;
      }
    }
    return nullptr;
  }

  // Thread exit: the cache's blocks go to the pool and its slot back to the table; later
  // calls on this thread (other exit handlers) go without a cache.
  static void retire(void* slot_address) {
    auto* slot = static_cast<Slot*>(slot_address);
    ThreadState& me = mine_;
    me.state = State::kRetired;
    atomics::store_relaxed(&me.cache, static_cast<Cache*>(nullptr));
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    Backend::flush_all(slot->cache);
    atomics::store_release(&slot->claimed, std::uint32_t{0});
  }

  static constexpr std::uint32_t kKeyNone = 0, kKeyCreating = 1, kKeyReady = 2, kKeyFailed = 3;

  static inline thread_local constinit ThreadState mine_ [[gnu::tls_model("initial-exec")]]{};
  static inline constinit Slot slots_[kSlots]{};
  static inline constinit std::uint32_t key_state_ = kKeyNone;
  static inline constinit pthread_key_t exit_key_ = 0;
};

}  // namespace polymalloc::allocator
