// ReservedRange: reserve once, commit and decommit at the top.
#include "platform/reserved_range.h"

#include <errno.h>

#include "platform/os.h"

namespace polymalloc::platform {
namespace {
constexpr std::size_t kMinimumReservation = std::size_t{16} << 20;
}  // namespace

void* reserve_at_most(std::size_t wanted, std::size_t minimum, std::size_t* got) {
  for (std::size_t bytes = round_up_to_page(wanted); bytes >= minimum; bytes /= 2) {
    if (void* p = os_reserve(bytes)) {
      *got = bytes;
      return p;
    }
  }
  return nullptr;
}

void ReservedRange::adopt(void* start, std::size_t bytes) {
  const auto base = reinterpret_cast<std::uintptr_t>(start);
  atomics::store_relaxed(&top_, base);
  limit_ = base + bytes;
  atomics::store_release(&base_, base);  // publishes top_ for contains()
}

bool ReservedRange::reserve() {
  std::size_t bytes = 0;
  void* start = reserve_at_most(wanted_, kMinimumReservation, &bytes);
  if (start == nullptr) return false;
  adopt(start, bytes);
  return true;
}

void* ReservedRange::grow(std::size_t bytes) {
  if (base_ == 0 && !reserve()) return nullptr;
  if (bytes > limit_ - top_) {
    errno = ENOMEM;
    return nullptr;
  }
  void* start = reinterpret_cast<void*>(top_);
  if (!os_commit(start, bytes)) return nullptr;
  atomics::store_relaxed(&top_, top_ + bytes);
  return start;
}

bool ReservedRange::shrink(std::size_t bytes) {
  if (bytes > top_ - base_) return false;
  if (!os_decommit(reinterpret_cast<void*>(top_ - bytes), bytes)) return false;
  atomics::store_relaxed(&top_, top_ - bytes);
  return true;
}

}  // namespace polymalloc::platform
