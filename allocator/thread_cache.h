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

#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/cache_bins.h"
#include "allocator/sanitizer.h"
#include "atomics/atomics.h"
#include "platform/platform.h"

namespace polymalloc::allocator {

// Blocks up to 32 KiB are cached.
inline constexpr std::size_t kCacheMaxBlock = std::size_t{32} << 10;

// A thread's bins (one per class of size map Map up to kCacheMaxBlock), its state, and its
// place in the registry. The bins are closed except while the state is kActive, so the fast
// paths use them without reading the state.
template <class Map>
struct ThreadCache : CacheBins<Map, Map::classes_up_to(kCacheMaxBlock), /*kKeyed=*/true> {
  CacheState state = CacheState::kUnused;
  ThreadCache* next_registered = nullptr;
  ThreadCache* prev_registered = nullptr;
};

// The calling thread's cache, the registry of all of them, and the thread-exit hook.
// Backend::flush(ThreadCache&) empties a cache into the heaps (at thread exit).
template <class Backend, class Map>
class ThreadCaches {
 public:
  using ThreadCache = allocator::ThreadCache<Map>;
  using Bins = ThreadCache;
  static constexpr unsigned kBins = Map::classes_up_to(kCacheMaxBlock);
  static constexpr std::uint32_t batch(unsigned i) { return ThreadCache::batch(i); }

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
  }

 private:
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
    void* fresh = platform::os_map(sizeof(typename ThreadCache::Slots));
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
  static inline constinit typename ThreadCache::Slots* spare_ = nullptr;
  static inline constinit pthread_key_t exit_key_ = 0;
  static inline constinit bool key_created_ = false;
};

}  // namespace polymalloc::allocator
