// Per-thread caches of free blocks that a signal handler may interrupt at any instruction:
// the thread cache of an allocator whose malloc is async-signal-safe. A cache is owned by
// one thread; the only code that can run on that thread in the middle of a cache operation
// is a signal handler, and handlers nest strictly. So a cache needs no atomics: an operation
// takes the cache out of its thread's hands for its length (the thread-local pointer to it
// points at a closed cache meanwhile: every push fails, every pop finds nothing), and a
// handler that interrupts it finds the closed cache and uses the shared pool. No lock, no
// waiting, nothing to undo, and on the fast path no more than the pointer's load, its
// replacement and its restoring: not even a test, as a thread without a cache of its own
// finds the closed one too.
//
// Caches live in a fixed table of slots claimed with one CAS (no allocation, so a thread's
// first malloc may be in a signal handler), each with its bins' storage, which statistics
// and checks walk. A thread's
// slot goes back to the table, its blocks to the pool, when the thread exits (a pthread key
// destructor); a thread that finds no free slot simply goes without a cache.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/cache_bins.h"
#include "allocator/sanitizer.h"
#include "atomics/atomics.h"

namespace polymalloc::allocator {

// One thread's bins for classes 0 … kBins-1 of size map Map (CacheBins).
template <class Map, unsigned Bins>
class ReentrantCache : public CacheBins<Map, Bins> {
 public:
  static constexpr unsigned kBins = Bins;
};

// The calling thread's cache and the table of them. Backend::flush(Cache&) empties a cache
// into the pool; it runs at thread exit, and in a fork child for the caches of the threads
// that did not survive the fork.
template <class Cache, class Backend, unsigned kSlots = 256>
class ReentrantCaches : public FixedBinSizes<Cache> {
 public:
  using Bins = Cache;
  static constexpr unsigned kBins = Cache::kBins;

  // A cache taken out of its thread's hands for the length of a scope (a signal handler that
  // interrupts the scope finds the closed cache): the caller's own, or the closed one (which
  // is taken harmlessly: the scope puts back what it found), or empty (nothing taken).
  class Entry {
   public:
    POLYMALLOC_HOT_PATH explicit Entry(Cache* c) : cache_(c) {
      if (c == nullptr) return;
      atomics::store_relaxed(&mine_.cache, &closed_);
      __atomic_signal_fence(__ATOMIC_SEQ_CST);  // the cache's loads and stores stay inside
    }
    POLYMALLOC_HOT_PATH ~Entry() {
      if (cache_ == nullptr) return;
      __atomic_signal_fence(__ATOMIC_SEQ_CST);
      atomics::store_relaxed(&mine_.cache, cache_);
    }
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    explicit operator bool() const { return cache_ != nullptr; }
    Cache* operator->() const { return cache_; }
    Cache& operator*() const { return *cache_; }

   private:
    Cache* cache_;
  };

  // The fast paths use the cache the caller has, or the closed one (never empty); the slow
  // paths set one up on first use (empty when the thread gets none).
  POLYMALLOC_HOT_PATH static Entry enter() {
    Cache* c = current();
    if (c == nullptr) __builtin_unreachable();  // (never: the fast paths need not test it)
    return Entry(c);
  }
  static Entry enter_or_set_up() { return Entry(mine()); }

  // The caller's cache, set up on first use; nullptr when the thread has none (no slot
  // free, its exit handlers already ran, or set-up was interrupted by this very call) or an
  // operation that this call interrupted holds it.
  POLYMALLOC_HOT_PATH static Cache* mine() {
    Cache* c = atomics::load_relaxed(&mine_.cache);
    if (c != &closed_) [[likely]]
      return c;
    return activate();
  }

  // The caller's cache if it has one and no operation holds it, else the closed one; without
  // setting one up.
  POLYMALLOC_HOT_PATH static Cache* current() { return atomics::load_relaxed(&mine_.cache); }

  // Calls f(Cache&) for each claimed slot (other threads' caches: read their counts only).
  template <class F>
  static void for_each(F f) {
    for (Slot& s : slots_) {
      if (atomics::load_acquire(&s.claimed) != 0) f(s.cache);
    }
  }

  // The caches need no lock around fork: a fork from one thread leaves the others' caches
  // as they were, which the child's handler below deals with.
  static void prepare_fork() {}
  static void after_fork_in_parent() {}

  // In a fork child only the forking thread lives on. Any other thread may have been inside
  // a cache operation, its bins half changed, and nothing tells which (their operations
  // leave no mark outside their own thread), so their blocks are abandoned, as glibc
  // abandons other threads' tcaches; their slots go back to the table, emptied.
  static void after_fork_in_child() {
    for (Slot& s : slots_) {
      if (atomics::load_relaxed(&s.claimed) == 0 || &s.cache == mine_.own) continue;
      s.cache = Cache{};
      atomics::store_release(&s.claimed, std::uint32_t{0});
    }
  }

 private:
  struct Slot {
    std::uint32_t claimed = 0;
    Cache cache;
    typename Cache::Slots storage;  // the cache's bins' slots
  };
  struct ThreadState {
    Cache* cache = &closed_;  // the thread's cache while no operation holds it, else closed_
    Cache* own = nullptr;    // the thread's cache, from set-up to exit
    CacheState state = CacheState::kUnused;
  };

  [[gnu::noinline]] static Cache* activate() {
    ThreadState& me = mine_;
    if (me.state != CacheState::kUnused) return nullptr;
    me.state = CacheState::kActivating;  // a handler that interrupts from here on goes without
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    Slot* slot = exit_key_ready() ? claim_slot() : nullptr;
    if (slot == nullptr || pthread_setspecific(exit_key_, slot) != 0) {
      if (slot != nullptr) atomics::store_release(&slot->claimed, std::uint32_t{0});
      me.state = CacheState::kRetired;  // without a cache for good: no slot, or no exit hook
      return nullptr;
    }
    slot->cache.attach(&slot->storage);
    slot->cache.open();
    me.own = &slot->cache;
    me.state = CacheState::kActive;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    atomics::store_relaxed(&me.cache, me.own);
    return me.own;
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
    me.state = CacheState::kRetired;
    atomics::store_relaxed(&me.cache, &closed_);
    me.own = nullptr;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    Backend::flush(slot->cache);
    atomics::store_release(&slot->claimed, std::uint32_t{0});
  }

  static constexpr std::uint32_t kKeyNone = 0, kKeyCreating = 1, kKeyReady = 2, kKeyFailed = 3;

  // The cache of every thread that has none, or whose cache an operation holds: no slots,
  // so every push fails and every pop finds nothing, without writing to it.
  static inline constinit Cache closed_{};
  static inline thread_local constinit ThreadState mine_ [[gnu::tls_model("initial-exec")]]{};
  static inline constinit Slot slots_[kSlots]{};
  static inline constinit std::uint32_t key_state_ = kKeyNone;
  static inline constinit pthread_key_t exit_key_ = 0;
};

}  // namespace polymalloc::allocator
