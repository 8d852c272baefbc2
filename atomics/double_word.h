// Two adjacent machine words that are compared and swapped together (e.g. pointer + version),
// and the contract every double-width CAS implementation meets.
#pragma once

#include <concepts>
#include <cstdint>

#include "atomics/word.h"

namespace polymalloc::atomics {

// Two words, 16-byte aligned so that cmpxchg16b can operate on them. Each half may also be
// read on its own with an atomic word load; such a pair of reads can be torn, which is why
// callers always confirm what they read with a double-width CAS.
struct alignas(2 * sizeof(std::uintptr_t)) DoubleWord {
  std::uintptr_t lo = 0;
  std::uintptr_t hi = 0;

  friend bool operator==(const DoubleWord&, const DoubleWord&) = default;
};

// Reads both halves with two atomic loads (lo first). The result may mix two states.
inline DoubleWord load_halves_acquire(const DoubleWord* p) {
  DoubleWord v;
  v.lo = load_acquire(&p->lo);
  v.hi = load_acquire(&p->hi);
  return v;
}

// A double-width CAS implementation: a static `cas_seq_cst(p, expected, desired)` that acts
// as a full barrier, writes `expected` with the value found on failure, and constants saying
// whether it is lock-free (and so usable from a signal handler without blocking signals).
template <class D>
concept DoubleCas = requires(DoubleWord* p, DoubleWord& expected, DoubleWord desired) {
  { D::cas_seq_cst(p, expected, desired) } -> std::same_as<bool>;
  { D::kIsLockFree } -> std::convertible_to<bool>;
  { D::kName } -> std::convertible_to<const char*>;
};

}  // namespace polymalloc::atomics
