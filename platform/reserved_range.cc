// ReservedRange: reserve ahead, commit and decommit at the top, grow the reservation with use.
#include "platform/reserved_range.h"

#include <errno.h>

#include <initializer_list>

#include "platform/os.h"

namespace polymalloc::platform {
namespace {

std::size_t round_up(std::size_t n, std::size_t unit) { return (n + unit - 1) / unit * unit; }

std::size_t larger(std::size_t a, std::size_t b) { return a > b ? a : b; }

}  // namespace

void* reserve_at_most(std::size_t wanted, std::size_t minimum, std::size_t* got) {
  minimum = round_up_to_page(minimum);
  std::size_t bytes = round_up_to_page(larger(wanted, minimum));
  for (; bytes >= minimum; bytes /= 2) {
    if (void* p = os_reserve(bytes)) {
      *got = bytes;
      return p;
    }
  }
  if (bytes * 2 == minimum) return nullptr;  // the last try was the minimum itself
  if (void* p = os_reserve(minimum)) {
    *got = minimum;
    return p;
  }
  return nullptr;
}

void ReservedRange::place(void* start, std::size_t bytes) {
  placed_start_ = reinterpret_cast<std::uintptr_t>(start);
  placed_bytes_ = bytes;
}

void* ReservedRange::grow(std::size_t bytes) {
  if (bytes <= span_.limit - span_.top) return commit_at_top(bytes);
  const Span before = span_;
  if (!extend_in_place(bytes) && !start_span(bytes)) return nullptr;
  void* start = commit_at_top(bytes);
  if (start == nullptr) {
    undo_reservation(before);
    return nullptr;
  }
  // A new span: the old one's uncommitted tail will never be used, its address space goes.
  if (span_.base != before.base && before.limit > before.top) {
    os_unmap(reinterpret_cast<void*>(before.top), before.limit - before.top);
    reserved_ -= before.limit - before.top;
  }
  return start;
}

bool ReservedRange::shrink(std::size_t bytes) {
  if (bytes > span_.top - span_.base) return false;
  void* start = reinterpret_cast<void*>(span_.top - bytes);
  map_->set(start, bytes, 0);  // before the pages go: nobody may take them for ours after
  if (!os_decommit(start, bytes)) {
    map_->set(start, bytes, tag_);
    return false;
  }
  span_.top -= bytes;
  // Address space stays in proportion to use on the way down too: reservation above the top
  // beyond what growth would add next goes back.
  const std::size_t keep =
      round_up(larger(span_.top - span_.base, kInitialReservation), kReservationGrain);
  if (span_.limit - span_.top > keep) {
    os_unmap(reinterpret_cast<void*>(span_.top + keep), span_.limit - span_.top - keep);
    reserved_ -= span_.limit - span_.top - keep;
    span_.limit = span_.top + keep;
  }
  return true;
}

void* ReservedRange::commit_at_top(std::size_t bytes) {
  void* start = reinterpret_cast<void*>(span_.top);
  if (!map_->prepare(start, bytes) || !os_commit(start, bytes)) return nullptr;
  map_->set(start, bytes, tag_);
  span_.top += bytes;
  return start;
}

void ReservedRange::undo_reservation(const Span& before) {
  const int error = errno;
  if (span_.base == before.base) {  // extended in place
    os_unmap(reinterpret_cast<void*>(before.limit), span_.limit - before.limit);
    reserved_ -= span_.limit - before.limit;
  } else {
    os_unmap(reinterpret_cast<void*>(span_.base), span_.limit - span_.base);
    reserved_ -= span_.limit - span_.base;
    --spans_;
  }
  span_ = before;
  errno = error;
}

// Doubles the current span where the address space above it is free (or adds just what is
// needed, if only that much is), within its area.
bool ReservedRange::extend_in_place(std::size_t bytes) {
  if (span_.base == 0) return false;
  const std::size_t needed = round_up(bytes - (span_.limit - span_.top), kReservationGrain);
  for (const std::size_t step : {larger(needed, span_.limit - span_.base), needed}) {
    if (span_.area_end != 0 && step > span_.area_end - span_.limit) continue;
    if (os_reserve_at(reinterpret_cast<void*>(span_.limit), step) != nullptr) {
      span_.limit += step;
      reserved_ += step;
      return true;
    }
  }
  return false;
}

// The first span goes where place() asked, if that area is still free; any other one goes at
// the bottom of the largest free area the OS grants (up to kFreeAreaBytes).
bool ReservedRange::start_span(std::size_t bytes) {
  const std::size_t needed = round_up(bytes, kReservationGrain);
  const std::size_t wanted =
      larger(needed, larger(kInitialReservation, span_.limit - span_.base));
  if (placed_start_ != 0) {
    const std::uintptr_t start = placed_start_;
    placed_start_ = 0;
    for (const std::size_t step : {wanted, needed}) {
      if (step > placed_bytes_) continue;
      if (os_reserve_at(reinterpret_cast<void*>(start), step) != nullptr) {
        begin_span(start, step, start + placed_bytes_);
        return true;
      }
    }
  }
  std::size_t area = 0;
  auto* start = static_cast<unsigned char*>(reserve_at_most(kFreeAreaBytes, needed, &area));
  if (start == nullptr) return false;
  const std::size_t kept = area > wanted ? wanted : area;
  if (area > kept) os_unmap(start + kept, area - kept);
  // The range grows up from here for a long way: if the map has no window yet, it goes here,
  // so that asking about this range's pages is one flat lookup.
  map_->set_window(start);
  begin_span(reinterpret_cast<std::uintptr_t>(start), kept,
             reinterpret_cast<std::uintptr_t>(start) + area);
  return true;
}

void ReservedRange::begin_span(std::uintptr_t at, std::size_t bytes, std::uintptr_t area_end) {
  span_ = Span{at, at, at + bytes, area_end};
  reserved_ += bytes;
  ++spans_;
}

}  // namespace polymalloc::platform
