// Per-thread caches of free blocks of the small power-of-two classes, in front of locked
// heaps (the idea of glibc's tcache and tcmalloc's thread cache): a malloc or free that its
// cache can serve touches no lock and no shared cache line. A cache moves blocks to and from
// the heaps in batches, so one lock acquisition pays for many operations, and a block freed
// by another thread than its allocator's simply joins the freeing thread's cache.
//
// A cached block stays "in use" as far as its heap is concerned (its neighbours do not
// coalesce with it). Its payload holds the cache's link and a key derived from a per-process
// secret and the block's address, which is how free() recognises a double free of a cached
// block without a lock. Caches register themselves so that statistics see every cache, and
// hand everything back when their thread exits (a pthread key destructor).
#pragma once

#include <pthread.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/sanitizer.h"
#include "allocator/size_class.h"
#include "atomics/atomics.h"
#include "platform/platform.h"

namespace polymalloc::allocator {

// Blocks up to 32 KiB are cached.
inline constexpr std::size_t kCacheMaxBlock = std::size_t{32} << 10;

// One bin per class of the size-class policy Classes (size_class.h) up to kCacheMaxBlock;
// `i` below is a class index.
template <class Classes>
class ThreadCache {
 public:
  static constexpr unsigned kBins = Classes::index_of(kCacheMaxBlock) + 1;
  // A bin holds at most this many bytes (and at most kMaxBinCount blocks).
  static constexpr std::size_t kBinBytes = std::size_t{32} << 10;
  static constexpr std::uint32_t kMaxBinCount = 64;

  enum class State : std::uint32_t { kUnused, kActivating, kActive, kRetired };

  // How many blocks of class i a bin holds at most, and moves to or from a heap at a time.
  static constexpr std::uint32_t capacity(unsigned i) { return kCapacity[i]; }
  static constexpr std::uint32_t batch(unsigned i) { return capacity(i) / 2; }

  // Whether a block of `size` bytes is of a cached class (exactly a class size).
  static constexpr bool cacheable(std::size_t size) {
    return size <= kCacheMaxBlock && Classes::is_class_size(size);
  }

  // A block of class i, or nullptr if the bin is empty.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* pop(unsigned i) {
    Bin& bin = bins_[i];
    Block* b = bin.head;
    if (b == nullptr) return nullptr;
    bin.head = b->next();
    atomics::store_relaxed(&bin.count, bin.count - 1);
    b->set_aux_word(0);  // the key: a handed-out block is no longer "cached"
    unpoison_live(b->payload(), Classes::size_of(i) - Block::kHeaderBytes);
    return b;
  }

  // Caches b (a live block of exactly class i); false if the bin is full.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH bool push(Block* b, unsigned i) {
    Bin& bin = bins_[i];
    if (bin.count >= capacity(i)) return false;
    b->set_next(bin.head);
    b->set_aux_word(reinterpret_cast<std::uintptr_t>(key_of(b)));
    bin.head = b;
    atomics::store_relaxed(&bin.count, bin.count + 1);
    poison_free(b->payload(), Classes::size_of(i) - Block::kHeaderBytes);
    return true;
  }

  // Detaches the n least recently cached blocks of class i (all when n is 0) as a chain
  // through next_in_list, their keys cleared: they are about to leave the cache. The most
  // recently freed blocks, the likeliest to be in the CPU's cache, stay.
  POLYMALLOC_UNCHECKED_BY_ASAN Block* take(unsigned i, std::uint32_t n) {
    Bin& bin = bins_[i];
    if (n == 0 || n > bin.count) n = bin.count;
    if (n == 0) return nullptr;
    Block* first = bin.head;
    if (n == bin.count) {
      bin.head = nullptr;
    } else {
      first = Block::split_after(bin.head, bin.count - n);
    }
    for (Block* b = first; b != nullptr; b = b->next()) b->set_aux_word(0);
    atomics::store_relaxed(&bin.count, bin.count - n);
    return first;
  }

  // Whether b (a block whose header says in use) sits in some thread's cache. Reads the
  // payload of a block that may be poisoned, hence unchecked.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH static bool is_cached(const Block* b) {
    return b->aux_word() == reinterpret_cast<std::uintptr_t>(key_of(b));
  }

  // Read by other threads (statistics) while the owner runs: counts are atomic words.
  std::size_t cached_bytes() const {
    std::size_t bytes = 0;
    for (unsigned i = 0; i < kBins; ++i) {
      bytes += atomics::load_relaxed(&bins_[i].count) * Classes::size_of(i);
    }
    return bytes;
  }
  std::size_t cached_blocks() const {
    std::size_t blocks = 0;
    for (const Bin& bin : bins_) blocks += atomics::load_relaxed(&bin.count);
    return blocks;
  }

  // nullptr if every cached block is where it should be, else what is wrong (and *where).
  // `owns(b)` says whether b belongs to one of the heaps behind the cache.
  template <class Owns>
  POLYMALLOC_UNCHECKED_BY_ASAN const char* check(Owns owns, const void** where) const {
    for (unsigned i = 0; i < kBins; ++i) {
      std::uint32_t n = 0;
      for (const Block* b = bins_[i].head; b != nullptr; b = b->next(), ++n) {
        const char* wrong = !owns(b)                           ? "cached block outside the heaps"
                            : !b->live()                       ? "cached block not in use"
                            : b->size() != Classes::size_of(i) ? "cached block in the wrong bin"
                            : !is_cached(b)                    ? "cached block lost its key"
                            : n >= bins_[i].count              ? "cache bin longer than its count"
                                                               : nullptr;
        if (wrong != nullptr) {
          if (where != nullptr) *where = b;
          return wrong;
        }
      }
      if (n != bins_[i].count) return "cache bin shorter than its count";
    }
    return nullptr;
  }

  State state = State::kUnused;
  ThreadCache* next_registered = nullptr;
  ThreadCache* prev_registered = nullptr;

 private:
  struct Bin {
    Block* head = nullptr;
    std::uint32_t count = 0;
  };

  static constexpr auto kCapacity = [] {
    std::array<std::uint32_t, kBins> capacity{};
    for (unsigned i = 0; i < kBins; ++i) {
      const std::size_t by_bytes = kBinBytes / Classes::size_of(i);
      capacity[i] = by_bytes > kMaxBinCount ? kMaxBinCount
                    : by_bytes < 2          ? 2
                                            : static_cast<std::uint32_t>(by_bytes);
    }
    return capacity;
  }();

  POLYMALLOC_HOT_PATH static Block* key_of(const Block* b) {
    return reinterpret_cast<Block*>(atomics::load_relaxed(&secret_) ^
                                    reinterpret_cast<std::uintptr_t>(b));
  }

 public:
  // Sets the per-process secret behind the keys (from the kernel's AT_RANDOM bytes), once,
  // before any block is cached.
  static void choose_secret() {
    if (atomics::load_relaxed(&secret_) != 0) return;
    // Never 0, so a key never equals the address.
    atomics::store_relaxed(&secret_, platform::os_random_word());
  }

 private:
  static inline constinit std::uintptr_t secret_ = 0;
  Bin bins_[kBins] = {};
};

// The calling thread's cache, the registry of all of them, and the thread-exit hook.
// Backend::flush_all(ThreadCache&) empties a cache into the heaps (at thread exit).
template <class Backend, class Classes>
class ThreadCaches {
 public:
  using ThreadCache = allocator::ThreadCache<Classes>;

  // The caller's cache, or nullptr while it is being set up or after its thread's exit
  // handlers retired it (the caller then goes to the heaps directly).
  POLYMALLOC_HOT_PATH static ThreadCache* mine() {
    if (mine_.state == ThreadCache::State::kActive) [[likely]]
      return &mine_;
    return activate();
  }

  // The caller's cache if it is in use, without setting one up.
  static ThreadCache* current() {
    return mine_.state == ThreadCache::State::kActive ? &mine_ : nullptr;
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
    registered_ = mine_.state == ThreadCache::State::kActive ? &mine_ : nullptr;
    mine_.next_registered = mine_.prev_registered = nullptr;
  }

 private:
  [[gnu::noinline]] static ThreadCache* activate() {
    if (mine_.state != ThreadCache::State::kUnused) return nullptr;
    mine_.state = ThreadCache::State::kActivating;  // anything malloc'd meanwhile bypasses it
    {
      atomics::LockGuard guard(registry_lock_);
      if (!key_created_) {
        if (pthread_key_create(&exit_key_, &retire) != 0) return nullptr;  // stays activating
        ThreadCache::choose_secret();
        key_created_ = true;
      }
      mine_.next_registered = registered_;
      if (registered_ != nullptr) registered_->prev_registered = &mine_;
      registered_ = &mine_;
    }
    pthread_setspecific(exit_key_, &mine_);  // the value only has to be non-null
    mine_.state = ThreadCache::State::kActive;
    return &mine_;
  }

  // Thread exit: everything cached goes back to the heaps; later calls on this thread (other
  // exit handlers) bypass the cache.
  static void retire(void*) {
    mine_.state = ThreadCache::State::kRetired;
    Backend::flush_all(mine_);
    atomics::LockGuard guard(registry_lock_);
    if (mine_.prev_registered != nullptr) {
      mine_.prev_registered->next_registered = mine_.next_registered;
    } else {
      registered_ = mine_.next_registered;
    }
    if (mine_.next_registered != nullptr) {
      mine_.next_registered->prev_registered = mine_.prev_registered;
    }
  }

  static inline thread_local constinit ThreadCache mine_ [[gnu::tls_model("initial-exec")]]{};
  static inline constinit atomics::Spinlock registry_lock_{};
  static inline constinit ThreadCache* registered_ = nullptr;
  static inline constinit pthread_key_t exit_key_ = 0;
  static inline constinit bool key_created_ = false;
};

}  // namespace polymalloc::allocator
