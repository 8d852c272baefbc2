// The default page source: address space reserved (PROT_NONE) ahead of use and committed from
// the bottom up. Contiguous and address-ordered like sbrk while its reservation can grow in
// place, but private to its owner (several coexist, e.g. one per partition) and immune to
// anyone else moving the program break.
//
// The reservation grows with use: it starts at kInitialReservation and each extension adds as
// much as it holds already, so the address space it takes (VmSize, what `ulimit -v` limits)
// stays within twice what it has committed, plus the first step. It grows in place where the
// address space above is free; otherwise it goes on in a new span elsewhere, and its owner
// sees non-contiguous memory (FreeListHeap starts a new region). Every committed page is
// tagged in a PageMap that sibling ranges share, so which range holds an address is one
// lookup however the spans lie.
#pragma once

#include <cstddef>
#include <cstdint>

#include "platform/page_map.h"

namespace polymalloc::platform {

// Reserves (PROT_NONE) up to `wanted` bytes of address space, halving the request while the
// OS refuses (e.g. under RLIMIT_AS), down to `minimum`. Returns the start and sets *got, or
// returns nullptr.
void* reserve_at_most(std::size_t wanted, std::size_t minimum, std::size_t* got);

class ReservedRange {
 public:
  static constexpr bool kContiguous = true;  // while the reservation grows in place
  static constexpr bool kThreadSafe = false;
  static constexpr const char* kName = "reserved_range";
  // The first reservation, and the unit extensions are rounded to.
  static constexpr std::size_t kInitialReservation = std::size_t{16} << 20;
  static constexpr std::size_t kReservationGrain = std::size_t{2} << 20;
  // A range that is not placed looks for a free area this big (halved while the OS refuses)
  // and starts at its bottom: mappings made later fill such an area from the top down, so the
  // range can grow in place for a long way. Only the range's own reservation is kept.
  static constexpr std::size_t kFreeAreaBytes = std::size_t{64} << 30;

  // `map` records which pages are this range's, as `tag` (non-zero, unique among the ranges
  // that share the map).
  constexpr ReservedRange(PageMap* map, std::uint16_t tag) : map_(map), tag_(tag) {}
  ReservedRange(const ReservedRange&) = delete;
  ReservedRange& operator=(const ReservedRange&) = delete;

  // Asks the range to start at `start` and to grow in place no further than `bytes` above it
  // (its share of an area its owner found free). Only before the first grow(); if the area
  // is taken by then, the range finds room elsewhere.
  void place(void* start, std::size_t bytes);

  void* grow(std::size_t bytes);
  bool shrink(std::size_t bytes);
  // Whether p lies in memory committed by this range. Lock-free (free() asks it about
  // pointers before locking): one PageMap lookup.
  bool contains(const void* p) const { return map_->get(p) == tag_; }
  // The same for a caller that holds the range's owner's lock (no grow() or shrink() runs
  // meanwhile): the current span's committed bytes are this range's without a lookup.
  bool contains_locked(const void* p) const {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    return (address >= span_.base && address < span_.top) || contains(p);
  }

  // The current span's start and committed top.
  std::uintptr_t base() const { return span_.base; }
  std::uintptr_t top() const { return span_.top; }
  // Address space reserved now (all spans), and how many spans the range has begun.
  std::size_t reserved_bytes() const { return reserved_; }
  std::size_t spans() const { return spans_; }

 private:
  // Commits `bytes` at the top of the current span, which has room for them.
  void* commit_at_top(std::size_t bytes);
  // Makes the current span's reservation reach `bytes` above its top without moving.
  bool extend_in_place(std::size_t bytes);
  // Begins a new current span with room for `bytes`.
  bool start_span(std::size_t bytes);
  // Makes [at, at + bytes), just reserved, the current span (nothing committed yet).
  void begin_span(std::uintptr_t at, std::size_t bytes, std::uintptr_t area_end);

  // A span: [base, limit) reserved, [base, top) committed; growth in place stops at area_end.
  struct Span {
    std::uintptr_t base = 0;
    std::uintptr_t top = 0;
    std::uintptr_t limit = 0;
    std::uintptr_t area_end = 0;
  };

  // Gives back what a growth reserved when its commit was refused, so that the range is as
  // it was (`before`).
  void undo_reservation(const Span& before);

  PageMap* map_;
  std::uint16_t tag_;
  std::uintptr_t placed_start_ = 0;  // place()'s request, until the first span begins
  std::size_t placed_bytes_ = 0;
  Span span_;  // the current one
  std::size_t reserved_ = 0;
  std::size_t spans_ = 0;
};

}  // namespace polymalloc::platform
