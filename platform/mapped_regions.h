// Anonymous mappings handed out from the bottom, lock-free: the signal_safe variant's memory
// once its static arena is spent and mmap is enabled. Memory is carved from the current
// region with one CAS; a request that does not fit maps a new region (a raw mmap, no lock,
// nothing allocated) and installs it. Regions are never unmapped, so memory handed out stays
// mapped for the life of the process (which lock-free stacks over it rely on). Every region
// is recorded in a PageMap, so whether an address lies in one is a constant-time question.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "atomics/atomics.h"
#include "platform/os.h"
#include "platform/page_map.h"

namespace polymalloc::platform {

class MappedRegions {
 public:
  static constexpr bool kContiguous = false;
  static constexpr bool kThreadSafe = true;
  static constexpr const char* kName = "mapped_regions";
  // Each region's size; a request bigger than a quarter of it gets a region of its own.
  static constexpr std::size_t kRegionBytes = std::size_t{4} << 20;
  static constexpr std::size_t kGrain = 4096;

  constexpr MappedRegions() = default;
  MappedRegions(const MappedRegions&) = delete;
  MappedRegions& operator=(const MappedRegions&) = delete;

  // `bytes` (a multiple of kGrain) of zeroed memory, or nullptr with errno = ENOMEM.
  void* grow(std::size_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX / 2) return fail();
    if (bytes <= kRegionBytes / 4) {
      if (void* p = carve_from_current(bytes)) return p;
    }
    return carve_from_new_region(bytes);
  }

  // Never: regions stay mapped (pages inside them may be released with os_release_pages).
  bool shrink(std::size_t) { return false; }

  // Whether p lies in a region (so in readable memory, handed out or not yet): two loads.
  bool contains(const void* p) const { return map_.get(p) == kRegionTag; }

  // Bytes handed out so far (the regions' headers and unused tails not included).
  std::size_t used() const { return atomics::load_relaxed(&used_); }

 private:
  // The first kGrain bytes of every region; memory is handed out above it.
  struct Region {
    Region* next;                             // all regions, newest first
    std::size_t length;                       // of the mapping
    atomics::AtomicWord<std::size_t> cursor;  // offset of the first byte not handed out
  };

  static constexpr std::uint16_t kRegionTag = 1;

  static void* fail() {
    errno = ENOMEM;
    return nullptr;
  }

  void* carve_from_current(std::size_t bytes) {
    Region* r = atomics::load_acquire(&current_);
    if (r == nullptr) return nullptr;
    std::size_t cursor = r->cursor.load_relaxed();
    do {
      if (bytes > r->length - cursor) return nullptr;
    } while (!r->cursor.cas_acq_rel(cursor, cursor + bytes));
    atomics::fetch_add_relaxed(&used_, bytes);
    return reinterpret_cast<unsigned char*>(r) + cursor;
  }

  // Maps a region whose first `bytes` (after the header) are already taken by the caller,
  // publishes it, and makes it current if it is a shared-size one. Two threads that race
  // here both map; the loser's region is still listed, its tail unused (never touched, so
  // it costs address space only).
  void* carve_from_new_region(std::size_t bytes) {
    const std::size_t length = bytes + kGrain <= kRegionBytes ? kRegionBytes : bytes + kGrain;
    void* mapping = os_map(length);
    if (mapping == nullptr) return nullptr;
    if (!map_.prepare(mapping, length)) {
      os_unmap(mapping, length);
      return fail();
    }
    map_.set(mapping, length, kRegionTag);  // before any block of it can be handed out
    auto* r = static_cast<Region*>(mapping);
    r->length = length;
    r->cursor.store_relaxed(kGrain + bytes);
    r->next = atomics::load_relaxed(&regions_);
    while (!atomics::cas_acq_rel(&regions_, r->next, r)) {
    }
    if (length == kRegionBytes) atomics::store_release(&current_, r);
    atomics::fetch_add_relaxed(&used_, bytes);
    return static_cast<unsigned char*>(mapping) + kGrain;
  }

  PageMap map_;
  Region* regions_ = nullptr;
  Region* current_ = nullptr;
  std::size_t used_ = 0;
};

}  // namespace polymalloc::platform
