// The generic fallback for CPUs without (double-width) CAS: operations run under one of a
// small table of test-and-set locks chosen by address hash, with all signals blocked so that
// a handler on the same thread can never wait for a lock its own thread holds.
// Correct everywhere, blocking (not lock-free); on x86-64 it is selectable for testing.
#pragma once

#include <cstddef>
#include <cstdint>

#include "atomics/double_word.h"

namespace polymalloc::atomics {

class LockTable {
 public:
  static constexpr std::size_t kLocks = 64;

  // Holds the lock covering `address`, with every signal blocked, for its lifetime.
  class Guard {
   public:
    explicit Guard(const void* address);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    unsigned char* lock_;
    std::uint64_t saved_mask_[2];  // the caller's signal mask (a kernel sigset_t)
  };

  // fork(): a thread that vanishes in the fork must not leave a lock held in the child. The
  // forking thread takes every lock (in table order, signals blocked) before the fork, and
  // releases them in both processes after it.
  static void prepare_fork();
  static void after_fork_in_parent();
  static void after_fork_in_child();

  static std::size_t index_of(const void* address) {
    const auto a = reinterpret_cast<std::uintptr_t>(address);
    return ((a >> 4) ^ (a >> 12)) % kLocks;
  }
};

// Single-word CAS under the lock table. Every writer of that word must use it.
template <Word T>
bool lock_table_cas_seq_cst(T* p, T& expected, T desired) {
  LockTable::Guard guard(p);
  const T found = load_acquire(p);
  if (found != expected) {
    expected = found;
    return false;
  }
  store_release(p, desired);
  return true;
}

struct LockTableDoubleCas {
  static constexpr bool kIsLockFree = false;
  static constexpr const char* kName = "lock_table";

  static bool cas_seq_cst(DoubleWord* p, DoubleWord& expected, DoubleWord desired);

  static void prepare_fork() { LockTable::prepare_fork(); }
  static void after_fork_in_parent() { LockTable::after_fork_in_parent(); }
  static void after_fork_in_child() { LockTable::after_fork_in_child(); }
};

}  // namespace polymalloc::atomics
