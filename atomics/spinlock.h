// Test-and-test-and-set spinlock: one exchange when free, read-only spinning with pause and
// bounded exponential backoff while held (no cache-line ping-pong), yielding once saturated.
#pragma once

#include <cstdint>

#include "atomics/backoff.h"
#include "atomics/word.h"

namespace polymalloc::atomics {

class Spinlock {
 public:
  constexpr Spinlock() = default;
  Spinlock(const Spinlock&) = delete;
  Spinlock& operator=(const Spinlock&) = delete;

  void lock() {
    if (try_lock()) return;
    lock_slow();
  }

  bool try_lock() {
    return load_relaxed(&held_) == 0 && exchange_acquire(&held_, std::uint32_t{1}) == 0;
  }

  void unlock() { store_release(&held_, std::uint32_t{0}); }

  // For assertions and statistics only: the answer may be stale as soon as it is returned.
  bool is_locked() const { return load_relaxed(&held_) != 0; }

  // Puts the lock back to unlocked without an owner: only for a fork() child, where the
  // owning thread no longer exists and the parent's state was quiesced before forking.
  void reset_after_fork() { store_relaxed(&held_, std::uint32_t{0}); }

 private:
  [[gnu::noinline]] void lock_slow() noexcept {
    Backoff backoff;
    do {
      while (load_relaxed(&held_) != 0) backoff.pause();
    } while (exchange_acquire(&held_, std::uint32_t{1}) != 0);
  }

  std::uint32_t held_ = 0;
};

// Scoped holder for any type with lock()/unlock().
template <class Lock>
class LockGuard {
 public:
  explicit LockGuard(Lock& lock) : lock_(lock) { lock_.lock(); }
  ~LockGuard() { lock_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Lock& lock_;
};

}  // namespace polymalloc::atomics
