// Word-sized atomic operations with the memory order in the name, on plain memory.
// Built on the compiler's __atomic builtins, so ThreadSanitizer sees every one of them.
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "atomics/cpu.h"

namespace polymalloc::atomics {

// Types these operations accept: integers and pointers no wider than a machine word.
template <class T>
concept Word = (std::is_integral_v<T> || std::is_pointer_v<T> || std::is_enum_v<T>)&&sizeof(T) <=
               sizeof(void*);

// clang-format off
template <Word T> inline T load_relaxed(const T* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
template <Word T> inline T load_acquire(const T* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
template <Word T> inline T load_seq_cst(const T* p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

template <Word T> inline void store_relaxed(T* p, T v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
template <Word T> inline void store_release(T* p, T v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
template <Word T> inline void store_seq_cst(T* p, T v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

template <Word T> inline T exchange_acquire(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_ACQUIRE); }
template <Word T> inline T exchange_acq_rel(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL); }

// Strong compare-and-swap: on failure `expected` receives the value found.
template <Word T> inline bool cas_relaxed(T* p, T& expected, T desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}
template <Word T> inline bool cas_acquire(T* p, T& expected, T desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE);
}
template <Word T> inline bool cas_release(T* p, T& expected, T desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}
template <Word T> inline bool cas_acq_rel(T* p, T& expected, T desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
template <Word T> inline bool cas_seq_cst(T* p, T& expected, T desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

template <std::integral T> inline T fetch_add_relaxed(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
template <std::integral T> inline T fetch_add_acq_rel(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL); }
template <std::integral T> inline T fetch_sub_relaxed(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
template <std::integral T> inline T fetch_sub_acq_rel(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_ACQ_REL); }
template <std::integral T> inline T fetch_or_acq_rel(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_ACQ_REL); }
template <std::integral T> inline T fetch_and_acq_rel(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_ACQ_REL); }
// clang-format on

// The same read-modify-writes for a word no other thread can reach now (the caller knows the
// process has one thread): indivisible to this thread's signal handlers, so a lock-free
// structure stays async-signal-safe, but not atomic across CPUs. Where the CPU has no such
// instructions (cpu.h's kHasLocalRmw), they are the atomic operations above.
template <Word T>
inline bool cas_local(T* p, T& expected, T desired) {
  if constexpr (kHasLocalRmw) return cas_local_instruction(p, expected, desired);
  return cas_acq_rel(p, expected, desired);
}
template <std::integral T>
inline T fetch_add_local(T* p, T v) {
  if constexpr (kHasLocalRmw) return fetch_add_local_instruction(p, v);
  return fetch_add_relaxed(p, v);
}
template <std::integral T>
inline T fetch_sub_local(T* p, T v) {
  return fetch_add_local(p, static_cast<T>(T{0} - v));
}
template <std::integral T>
inline T fetch_or_local(T* p, T v) {
  if constexpr (!kHasLocalRmw) return fetch_or_acq_rel(p, v);
  T seen = load_relaxed(p);
  while (!cas_local(p, seen, static_cast<T>(seen | v))) {
  }
  return seen;
}
template <std::integral T>
inline T fetch_and_local(T* p, T v) {
  if constexpr (!kHasLocalRmw) return fetch_and_acq_rel(p, v);
  T seen = load_relaxed(p);
  while (!cas_local(p, seen, static_cast<T>(seen & v))) {
  }
  return seen;
}

// Note: gcc's ThreadSanitizer rejects standalone fences; prefer ordered operations.
inline void fence_seq_cst() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// A word that is only ever accessed atomically; the order is named at each use.
template <Word T>
class AtomicWord {
 public:
  constexpr AtomicWord() = default;
  constexpr explicit AtomicWord(T v) : value_(v) {}
  AtomicWord(const AtomicWord&) = delete;
  AtomicWord& operator=(const AtomicWord&) = delete;

  T load_relaxed() const { return atomics::load_relaxed(&value_); }
  T load_acquire() const { return atomics::load_acquire(&value_); }
  T load_seq_cst() const { return atomics::load_seq_cst(&value_); }
  void store_relaxed(T v) { atomics::store_relaxed(&value_, v); }
  void store_release(T v) { atomics::store_release(&value_, v); }
  void store_seq_cst(T v) { atomics::store_seq_cst(&value_, v); }
  T exchange_acquire(T v) { return atomics::exchange_acquire(&value_, v); }
  T exchange_acq_rel(T v) { return atomics::exchange_acq_rel(&value_, v); }
  bool cas_relaxed(T& expected, T desired) {
    return atomics::cas_relaxed(&value_, expected, desired);
  }
  bool cas_acquire(T& expected, T desired) {
    return atomics::cas_acquire(&value_, expected, desired);
  }
  bool cas_release(T& expected, T desired) {
    return atomics::cas_release(&value_, expected, desired);
  }
  bool cas_acq_rel(T& expected, T desired) {
    return atomics::cas_acq_rel(&value_, expected, desired);
  }
  bool cas_seq_cst(T& expected, T desired) {
    return atomics::cas_seq_cst(&value_, expected, desired);
  }
  T fetch_add_relaxed(T v) requires std::integral<T> {
    return atomics::fetch_add_relaxed(&value_, v);
  }
  T fetch_add_acq_rel(T v) requires std::integral<T> {
    return atomics::fetch_add_acq_rel(&value_, v);
  }
  T fetch_sub_relaxed(T v) requires std::integral<T> {
    return atomics::fetch_sub_relaxed(&value_, v);
  }
  T fetch_sub_acq_rel(T v) requires std::integral<T> {
    return atomics::fetch_sub_acq_rel(&value_, v);
  }

  // Address of the raw word, for code that must name the memory (e.g. futex-like waits).
  T* raw() { return &value_; }

 private:
  T value_{};
};

// A counter with one writer at a time (the holder of the lock that guards it) and readers
// that take no lock: an update is a relaxed load and a relaxed store, not a read-modify-write
// instruction (on x86-64 the same code as a plain counter), and a reader sees some value the
// counter had. Readers must not mix counters into one invariant: each is its own snapshot.
template <std::integral T>
class SingleWriterCounter {
 public:
  constexpr SingleWriterCounter() = default;
  SingleWriterCounter(const SingleWriterCounter&) = delete;
  SingleWriterCounter& operator=(const SingleWriterCounter&) = delete;

  T get() const { return atomics::load_relaxed(&value_); }
  operator T() const { return get(); }  // NOLINT: reads as the number it counts
  void set(T v) { atomics::store_relaxed(&value_, v); }
  // (Always inline: GCC otherwise keeps an out-of-line clone that the heaps' hot paths call.)
  [[gnu::always_inline]] SingleWriterCounter& operator+=(T v) {
    set(static_cast<T>(get() + v));
    return *this;
  }
  [[gnu::always_inline]] SingleWriterCounter& operator-=(T v) {
    set(static_cast<T>(get() - v));
    return *this;
  }
  SingleWriterCounter& operator++() { return *this += T{1}; }
  SingleWriterCounter& operator--() { return *this -= T{1}; }

 private:
  T value_{};
};

}  // namespace polymalloc::atomics
