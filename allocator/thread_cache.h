// Per-thread caches of free blocks of the small power-of-two classes, in front of locked
// heaps (the idea of glibc's tcache and tcmalloc's thread cache): a malloc or free that its
// cache can serve touches no lock and no shared cache line. A cache moves blocks to and from
// the heaps in batches, so one lock acquisition pays for many operations, and a block freed
// by another thread than its allocator's simply joins the freeing thread's cache.
//
// A cached block stays "in use" as far as its heap is concerned (its neighbours do not
// coalesce with it). Its payload holds the cache's key, the per-process secret, which is how
// free() recognises a double free of a cached block without a lock. Caches register
// themselves so that statistics see every cache, and hand everything back when their thread
// exits (a pthread key destructor). A cache's slots (cache_bins.h) are mapped when its thread
// first uses it, and kept for the next thread when it exits.
#pragma once

#include <errno.h>
#include <pthread.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/cache_bins.h"
#include "allocator/sanitizer.h"
#include "allocator/settings.h"
#include "atomics/atomics.h"
#include "platform/platform.h"

namespace polymalloc::allocator {

// Blocks up to 32 KiB are cached.
inline constexpr std::size_t kCacheMaxBlock = std::size_t{32} << 10;

// What the bins of all threads may hold together (tcmalloc's max_total_thread_cache_bytes),
// shared out equally among the threads with a cache, each share within [min, max]. A cached
// block is live to its heap: it neither coalesces nor serves another class, so each one
// scattered through a heap keeps the free space around it in pieces. The share is therefore
// small, as glibc's tcache is (7 blocks a bin), and goes to the bins a thread uses now.
// The most one thread's share is POLYMALLOC_THREAD_CACHE_BYTES (settings.h: 64 KiB by
// default; 0 turns the caches off), the least kThreadCacheMinBytes or that, the smaller.
inline constexpr std::size_t kThreadCachesTotalBytes = std::size_t{4} << 20;
inline constexpr std::size_t kThreadCacheMinBytes = std::size_t{32} << 10;
// A cache reviews its bins after this many misses and overflows (more often costs speed and
// saves no memory on the traces): the bins that had none since the last review halve (the
// blocks above their new size go back to the heaps), and all halve while the cache holds more
// than its share.
inline constexpr std::uint32_t kCacheReviewEvents = 1024;

// A thread's bins (one per class of size map Map up to kCacheMaxBlock), its state, and its
// place in the registry. The bins are closed except while the state is kActive, so the fast
// paths use them without reading the state.
template <class Map>
struct ThreadCache : CacheBins<Map, Map::classes_up_to(kCacheMaxBlock), /*kKeyed=*/true> {
  using Bins = CacheBins<Map, Map::classes_up_to(kCacheMaxBlock), /*kKeyed=*/true>;
  CacheState state = CacheState::kUnused;
  ThreadCache* next_registered = nullptr;
  ThreadCache* prev_registered = nullptr;
  // The bins' sizes (ThreadCaches): the bytes they may hold together, the misses and
  // overflows since the last review, and which bins had one.
  std::size_t sized_bytes = 0;
  std::uint32_t events = 0;
  std::array<bool, Bins::kBinCount> busy{};
};

// The calling thread's cache, the registry of all of them, and the thread-exit hook.
// Backend::flush(ThreadCache&) empties a cache into the heaps (at thread exit).
template <class Backend, class Map>
class ThreadCaches {
 public:
  using ThreadCache = allocator::ThreadCache<Map>;
  using Bins = ThreadCache;
  static constexpr unsigned kBins = Map::classes_up_to(kCacheMaxBlock);

  // ---- the bins' sizes: each starts at 0 and grows as its class misses or overflows ----

  // Empty bin i of cache c missed: it grows if it may, and the blocks to take from the pool
  // for it come back (half its size; 0 when it has no room, and the request goes uncached).
  static std::uint32_t missed(ThreadCache& c, unsigned i) {
    note_event(c, i);
    grow(c, i);
    return (c.max_count(i) + 1) / 2;
  }
  // Full bin i of cache c overflowed: it grows if it may, and the blocks to send back to the
  // pool before it takes one more come back (half its size; 0 when it grew, or when it takes
  // none: then its block goes to the pool).
  static std::uint32_t overflowed(ThreadCache& c, unsigned i) {
    note_event(c, i);
    grow(c, i);
    const std::uint32_t max = c.max_count(i);
    return max == 0 || c.count(i) < max ? 0 : (max + 1) / 2;
  }
  // Whether cache c is due a review (review() next).
  static bool review_due(const ThreadCache& c) { return c.events >= kCacheReviewEvents; }
  // Shrinks the bins of cache c that had no miss or overflow since the last review (all of
  // them while it holds more than its share) to half their size, and calls give(i, chain)
  // with what each had above that.
  template <class Give>
  static void review(ThreadCache& c, Give give) {
    const bool over = c.sized_bytes > share();
    for (unsigned i = 0; i < kBins; ++i) {
      if (c.busy[i] && !over) continue;
      const std::uint32_t max = c.max_count(i);
      c.sized_bytes -= (max - max / 2) * Map::block_size(i);
      if (const BlockChain chain = c.resize(i, max / 2); chain.head != nullptr) give(i, chain);
    }
    c.busy = {};
    c.events = 0;
  }
  // What one thread's bins may hold now: the total shared among the caches, within bounds.
  static std::size_t share() {
    const std::uint32_t caches = atomics::load_relaxed(&caches_);
    const std::size_t even = kThreadCachesTotalBytes / (caches != 0 ? caches : 1);
    const std::size_t most = max_share();
    const std::size_t least = kThreadCacheMinBytes < most ? kThreadCacheMinBytes : most;
    return even < least ? least : even > most ? most : even;
  }
  // The most one thread's bins may hold (POLYMALLOC_THREAD_CACHE_BYTES).
  static std::size_t max_share() {
    return static_cast<std::size_t>(Settings::value(Setting::kThreadCacheBytes));
  }

  // The caller's bins for the fast paths, whatever its state (closed unless in use: a push
  // fails and a pop finds nothing, so the call goes to its slow path), and the caller's cache
  // if it is in use, set up on first use (the slow paths).
  POLYMALLOC_HOT_PATH static ThreadCache* enter() {
    ThreadCache* bins = current_;
    if (bins == nullptr) __builtin_unreachable();  // (never: the fast paths need not test it)
    return bins;
  }
  static ThreadCache* enter_or_set_up() { return mine(); }

  // The caller's cache, or nullptr while it is being set up or after its thread's exit
  // handlers retired it (the caller then goes to the heaps directly).
  POLYMALLOC_HOT_PATH static ThreadCache* mine() {
    if (mine_.state == CacheState::kActive) [[likely]]
      return &mine_;
    return activate();
  }

  // Calls f(const ThreadCache&) for every registered cache, under the registry lock.
  template <class F>
  static void for_each(F f) {
    atomics::LockGuard guard(registry_lock_);
    for (const ThreadCache* c = registered_; c != nullptr; c = c->next_registered) f(*c);
  }

  static void prepare_fork() { registry_lock_.lock(); }
  static void after_fork_in_parent() { registry_lock_.unlock(); }
  // Only the forking thread lives on in the child; the other threads' caches are abandoned
  // with what they held (as glibc abandons their tcaches).
  static void after_fork_in_child() {
    registry_lock_.reset_after_fork();
    registered_ = mine_.state == CacheState::kActive ? &mine_ : nullptr;
    mine_.next_registered = mine_.prev_registered = nullptr;
    atomics::store_relaxed(&caches_, std::uint32_t{registered_ != nullptr ? 1u : 0u});
  }

 private:
  static void note_event(ThreadCache& c, unsigned i) {
    c.busy[i] = true;
    ++c.events;
  }
  // Doubles bin i of cache c (from 0 to 1), within its capacity and the room its share has.
  static void grow(ThreadCache& c, unsigned i) {
    const std::uint32_t max = c.max_count(i);
    const std::uint32_t want = max == 0                              ? 1
                               : max >= ThreadCache::capacity(i) / 2 ? ThreadCache::capacity(i)
                                                                     : 2 * max;
    const std::size_t size = Map::block_size(i);
    const std::size_t limit = share();
    const std::size_t room = limit > c.sized_bytes ? (limit - c.sized_bytes) / size : 0;
    const auto more = static_cast<std::uint32_t>(want - max < room ? want - max : room);
    if (more == 0) return;
    c.resize(i, max + more);
    c.sized_bytes += more * size;
  }

  [[gnu::noinline]] static ThreadCache* activate() {
    if (mine_.state != CacheState::kUnused) return nullptr;
    mine_.state = CacheState::kActivating;  // anything malloc'd meanwhile bypasses it
    {
      atomics::LockGuard guard(registry_lock_);
      if (!key_created_) {
        if (pthread_key_create(&exit_key_, &retire) != 0) return nullptr;  // stays activating
        key_created_ = true;
      }
      typename ThreadCache::Slots* slots = spare_slots();
      if (slots == nullptr) {
        mine_.state = CacheState::kRetired;  // no memory for its slots: without a cache
        return nullptr;
      }
      mine_.attach(slots);
      for (unsigned i = 0; i < kBins; ++i) mine_.resize(i, 0);  // (they grow as they are used)
      atomics::store_relaxed(&caches_, caches_ + 1);
      mine_.next_registered = registered_;
      if (registered_ != nullptr) registered_->prev_registered = &mine_;
      registered_ = &mine_;
    }
    pthread_setspecific(exit_key_, &mine_);  // the value only has to be non-null
    mine_.state = CacheState::kActive;
    mine_.open();
    current_ = &mine_;
    return &mine_;
  }

  // Thread exit: everything cached goes back to the heaps; later calls on this thread (other
  // exit handlers) bypass the cache.
  static void retire(void*) {
    mine_.state = CacheState::kRetired;
    current_ = &closed_;
    mine_.close();
    Backend::flush(mine_);
    atomics::LockGuard guard(registry_lock_);
    atomics::store_relaxed(&caches_, caches_ - 1);
    if (mine_.prev_registered != nullptr) {
      mine_.prev_registered->next_registered = mine_.next_registered;
    } else {
      registered_ = mine_.next_registered;
    }
    if (mine_.next_registered != nullptr) {
      mine_.next_registered->prev_registered = mine_.prev_registered;
    }
    keep_spare(mine_.detach());
  }

  // Slots for a cache being set up: a dead thread's, or fresh ones (nullptr if none could be
  // mapped; errno is kept). Under the registry lock.
  static typename ThreadCache::Slots* spare_slots() {
    if (auto* slots = spare_) {
      spare_ = reinterpret_cast<typename ThreadCache::Slots*>((*slots)[0]);
      return slots;
    }
    const int saved_errno = errno;
    void* fresh = platform::os_map_metadata(sizeof(typename ThreadCache::Slots));
    errno = saved_errno;
    return static_cast<typename ThreadCache::Slots*>(fresh);
  }
  // A retired cache's slots wait for the next thread, linked through their first slot.
  static void keep_spare(typename ThreadCache::Slots* slots) {
    if (slots == nullptr) return;
    (*slots)[0] = reinterpret_cast<Block*>(spare_);
    spare_ = slots;
  }

  static inline thread_local constinit ThreadCache mine_ [[gnu::tls_model("initial-exec")]]{};
  // The bins the fast paths use: a cache without slots (every push fails, every pop finds
  // nothing) until the thread's own is set up. A pointer rather than the address of mine_,
  // which the compiler recomputes from the thread pointer at each use.
  static inline constinit ThreadCache closed_{};
  static inline thread_local constinit ThreadCache* current_ [[gnu::tls_model("initial-exec")]] =
      &closed_;
  static inline constinit atomics::Spinlock registry_lock_{};
  static inline constinit ThreadCache* registered_ = nullptr;
  static inline constinit std::uint32_t caches_ = 0;  // registered (written under the lock)
  static inline constinit typename ThreadCache::Slots* spare_ = nullptr;
  static inline constinit pthread_key_t exit_key_ = 0;
  static inline constinit bool key_created_ = false;
};

}  // namespace polymalloc::allocator
