// The default page source: one large PROT_NONE reservation, committed from the bottom up.
// Contiguous and address-ordered like sbrk, but private to its owner (several can coexist,
// e.g. one per partition) and immune to anyone else moving the program break.
#pragma once

#include <cstddef>
#include <cstdint>

#include "atomics/atomics.h"

namespace polymalloc::platform {

// Reserves (PROT_NONE) up to `wanted` bytes of address space, halving the request while the
// OS refuses (e.g. under RLIMIT_AS), down to `minimum`. Returns the start and sets *got, or
// returns nullptr.
void* reserve_at_most(std::size_t wanted, std::size_t minimum, std::size_t* got);

class ReservedRange {
 public:
  static constexpr bool kContiguous = true;
  static constexpr bool kThreadSafe = false;
  static constexpr const char* kName = "reserved_range";
  // Default size of the reservation: address space only, nothing committed.
  static constexpr std::size_t kDefaultReservation = std::size_t{64} << 30;  // 64 GiB

  constexpr explicit ReservedRange(std::size_t reservation = kDefaultReservation)
      : wanted_(reservation) {}
  ReservedRange(const ReservedRange&) = delete;
  ReservedRange& operator=(const ReservedRange&) = delete;

  // Uses [base, base + bytes), reserved by the caller (one slice of a larger reservation),
  // instead of reserving its own on first use. Only before the first grow().
  void adopt(void* base, std::size_t bytes);

  void* grow(std::size_t bytes);
  bool shrink(std::size_t bytes);
  // Whether p lies in committed memory. Safe without the owner's lock (free() asks it about
  // pointers before locking): the bounds are read atomically.
  bool contains(const void* p) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t base = atomics::load_acquire(&base_);
    return base != 0 && a >= base && a < atomics::load_relaxed(&top_);
  }

  std::uintptr_t base() const { return base_; }
  std::uintptr_t top() const { return top_; }
  std::size_t reserved_bytes() const { return limit_ - base_; }

 private:
  // Reserves on first use (never during static initialisation); halves the request while
  // the OS refuses (e.g. under RLIMIT_AS), down to kMinimumReservation.
  bool reserve();

  std::size_t wanted_;
  std::uintptr_t base_ = 0;
  std::uintptr_t top_ = 0;  // end of committed memory; written atomically (see contains)
  std::uintptr_t limit_ = 0;
};

}  // namespace polymalloc::platform
