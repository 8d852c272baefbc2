// A bounded cache of freed mappings (large blocks), shared by every variant, so that a program
// that keeps replacing big buffers reuses their pages instead of mapping (and faulting in)
// fresh ones every time.
//
// Lock-free and async-signal-safe: a fixed table of slots, each one word (the mapping's
// address, page-aligned, with its length class in the low bits), emptied with one CAS. A
// bitmap word says which slots are claimed: a slot holds a mapping only while its bit is set
// (put() claims the bit first, take clears it last), so a look scans the claimed slots
// alone, not the whole table. Nothing is read from a cached mapping's memory while it sits
// in the table, so whoever takes a mapping out may unmap it or move pages into it at once; no
// other thread can still be looking at it (which a linked stack through the mappings could
// not promise).
//
// Mapping lengths are classes: quarter powers of two, as the heaps' classes (at most 25 %
// over the request, and the tail pages a block never touches cost no memory). A request takes
// the smallest cached mapping that holds it, and a bigger one's tail goes back as mappings of
// class lengths, so the waste is bounded by the class rounding; a block that grows by realloc
// may keep a bigger one whole (it is likely to go on growing into it).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "allocator/settings.h"
#include "allocator/size_class.h"
#include "allocator/solo_atomics.h"
#include "atomics/atomics.h"
#include "platform/os.h"

namespace polymalloc::allocator {

class MappingCache {
 public:
  // Room for the mappings of a spike of big buffers and the tails that requests split off
  // them (LargeObjects::keep_tail()): with 64, signal_safe's replay of trace_large_blocks
  // found the slots full while the bound had room, and evicted resident pages for nothing.
  // A look scans the claimed slots alone.
  static constexpr unsigned kSlots = 128;
  // The bound on the bytes the cache holds: POLYMALLOC_MAPPING_CACHE_BYTES (settings.h; 64 MiB
  // by default, 0 turns the cache off), read on first use. A program that churns through
  // more big buffers than this keeps faulting them in; one with a spike of them keeps up to
  // this much for the release delay after it.

  struct Stats {
    std::size_t bytes = 0;  // in cached mappings now
    std::size_t mappings = 0;
    std::size_t bound = 0;
    std::size_t hits = 0;  // requests served from the cache
    std::size_t misses = 0;
    std::size_t gathered_bytes = 0;  // of cached mappings, moved into fresh ones (gathered())
    std::size_t evicted_bytes = 0;   // of cached mappings, unmapped for bigger ones
  };

  constexpr MappingCache() = default;
  MappingCache(const MappingCache&) = delete;
  MappingCache& operator=(const MappingCache&) = delete;

  // The class length of a mapping that holds `bytes` (a multiple of the page size above it).
  static std::size_t class_length(std::size_t bytes) {
    return platform::round_up_to_page(QuarterPowerClasses::round_up(bytes));
  }

  // The biggest class length of at most `bytes`, or 0 if there is none.
  static std::size_t class_length_within(std::size_t bytes) {
    if (bytes < platform::page_size()) return 0;
    unsigned i = QuarterPowerClasses::index_of(QuarterPowerClasses::round_up(bytes));
    while (i > 0 && platform::round_up_to_page(QuarterPowerClasses::size_of(i)) > bytes) --i;
    const std::size_t length = platform::round_up_to_page(QuarterPowerClasses::size_of(i));
    return length <= bytes ? length : 0;
  }

  // Sets the bound (bytes); mappings beyond it are not kept. 0 turns the cache off.
  void set_bound(std::size_t bytes) { bound_.set(static_cast<std::int64_t>(bytes)); }
  std::size_t bound() const { return static_cast<std::size_t>(bound_.get()); }

  // The smallest cached mapping of at least `length` (a class length), or nullptr: counted as
  // a hit or a miss. *got is its length.
  void* take(std::size_t length, std::size_t* got) {
    void* found = take_between(length, SIZE_MAX, got);
    solo::fetch_add_relaxed(found != nullptr ? &hits_ : &misses_, std::size_t{1});
    return found;
  }

  // The same, for a request that has somewhere else to go (a heap): a hit is counted, a
  // miss is not (no mapping is made for it).
  void* take_if_cached(std::size_t length, std::size_t* got) {
    void* found = take_between(length, SIZE_MAX, got);
    if (found != nullptr) solo::fetch_add_relaxed(&hits_, std::size_t{1});
    return found;
  }

  // The smallest cached mapping of at least `length` and at most `most` bytes, or nullptr
  // (not counted: a growing block's opportunistic look). *got is its length.
  void* take_between(std::size_t length, std::size_t most, std::size_t* got = nullptr) {
    return take_best([length, most](std::size_t l) { return l >= length && l <= most; },
                     [](std::size_t l, std::size_t best) { return l < best; }, got);
  }

  // The biggest cached mapping of at most `most` bytes, or nullptr (not counted: its pages
  // are gathered into a fresh mapping, LargeObjects::gather()). *got is its length.
  void* take_biggest_within(std::size_t most, std::size_t* got) {
    return take_best([most](std::size_t l) { return l <= most; },
                     [](std::size_t l, std::size_t best) { return l > best; }, got);
  }

  // Counts `bytes` of cached mappings whose pages a fresh mapping took.
  void gathered(std::size_t bytes) { solo::fetch_add_relaxed(&gathered_bytes_, bytes); }

  // Keeps mapping [address, address + length) (a class length, page-aligned) if the bound and
  // a free slot allow; false otherwise (the caller unmaps it). `now_ms` dates it, for decay.
  bool put(void* address, std::size_t length, std::uint64_t now_ms) {
    const std::size_t bound = this->bound();
    if (length > bound) return false;
    if (solo::fetch_add_relaxed(&bytes_, length) + length > bound) {
      solo::fetch_sub_relaxed(&bytes_, length);
      return false;
    }
    const std::uintptr_t value = reinterpret_cast<std::uintptr_t>(address) | class_index(length);
    for (unsigned w = 0; w < kWords;) {
      const std::uint64_t claimed = atomics::load_relaxed(&claimed_[w]);
      if (claimed == ~std::uint64_t{0}) {  // every slot of this word taken
        ++w;
        continue;
      }
      const std::uint64_t bit = ~claimed & (claimed + 1);  // the lowest free slot's
      if ((solo::fetch_or_acq_rel(&claimed_[w], bit) & bit) != 0) continue;  // another's
      const unsigned i = 64 * w + static_cast<unsigned>(std::countr_zero(bit));
      atomics::store_relaxed(&slots_[i].cached_at_ms, now_ms);
      atomics::store_release(&slots_[i].value, value);
      solo::fetch_add_relaxed(&mappings_, std::size_t{1});
      return true;
    }
    solo::fetch_sub_relaxed(&bytes_, length);
    return false;
  }

  // put(), making room where the bound or the slots are full by unmapping cached mappings
  // smaller than this one, smallest first: a bigger mapping serves more requests (a smaller
  // request takes its head, and its tail stays cached) and saves more page faults. False if
  // no room can be made (the caller unmaps it).
  bool put_evicting_smaller(void* address, std::size_t length, std::uint64_t now_ms) {
    if (length > bound()) return false;  // no room to make
    for (unsigned evicted = 0; evicted <= kSlots; ++evicted) {
      if (put(address, length, now_ms)) return true;
      std::size_t got = 0;
      void* smaller = take_best([length](std::size_t l) { return l < length; },
                                [](std::size_t l, std::size_t best) { return l < best; }, &got);
      if (smaller == nullptr) return false;
      solo::fetch_add_relaxed(&evicted_bytes_, got);
      platform::os_unmap(smaller, got);
    }
    return false;
  }

  // Unmaps every mapping cached at or before `cutoff_ms` (all of them for UINT64_MAX), after
  // calling forget(address, length) for each (the caller's registry); the bytes released.
  template <class Forget>
  std::size_t release_older_than(std::uint64_t cutoff_ms, Forget forget) {
    std::size_t released = 0;
    for_each_claimed([&](unsigned i) {
      std::uintptr_t value = atomics::load_acquire(&slots_[i].value);
      if (value == 0 || atomics::load_relaxed(&slots_[i].cached_at_ms) > cutoff_ms) return;
      if (!solo::cas_acq_rel(&slots_[i].value, value, std::uintptr_t{0})) return;
      unclaim(i);
      const std::size_t length = length_of(value);
      solo::fetch_sub_relaxed(&bytes_, length);
      solo::fetch_sub_relaxed(&mappings_, std::size_t{1});
      forget(address_of(value), length);
      platform::os_unmap(address_of(value), length);
      released += length;
    });
    return released;
  }

  Stats stats() const {
    return {atomics::load_relaxed(&bytes_),
            atomics::load_relaxed(&mappings_),
            bound(),
            atomics::load_relaxed(&hits_),
            atomics::load_relaxed(&misses_),
            atomics::load_relaxed(&gathered_bytes_),
            atomics::load_relaxed(&evicted_bytes_)};
  }

 private:
  // Length classes: QuarterPowerClasses' sizes rounded to pages, numbered by their index in
  // that policy (below 4096, so they fit in a page-aligned address's low bits).
  static constexpr std::uintptr_t kClassMask = 0xfff;
  static std::uintptr_t class_index(std::size_t length) {
    return QuarterPowerClasses::index_of(QuarterPowerClasses::round_up(length));
  }
  static std::size_t length_of(std::uintptr_t value) {
    return platform::round_up_to_page(
        QuarterPowerClasses::size_of(static_cast<unsigned>(value & kClassMask)));
  }
  static void* address_of(std::uintptr_t value) {
    return reinterpret_cast<void*>(value & ~kClassMask);
  }

  // Takes the cached mapping whose length `fits` and that `better(length, best)` prefers to
  // every other that fits; nullptr if none fits. *got (if given) is its length. A slot
  // another thread empties or changes meanwhile makes it look again.
  template <class Fits, class Better>
  void* take_best(Fits fits, Better better, std::size_t* got) {
    for (;;) {
      unsigned best = kSlots;
      std::size_t best_length = 0;
      std::uintptr_t best_value = 0;  // the CAS below may rewrite it
      for_each_claimed([&](unsigned i) {
        const std::uintptr_t value = atomics::load_relaxed(&slots_[i].value);
        if (value == 0) return;
        const std::size_t l = length_of(value);
        if (!fits(l) || (best != kSlots && !better(l, best_length))) return;
        best = i, best_length = l, best_value = value;
      });
      if (best == kSlots) return nullptr;
      if (solo::cas_acq_rel(&slots_[best].value, best_value, std::uintptr_t{0})) {
        unclaim(best);
        solo::fetch_sub_relaxed(&bytes_, best_length);
        solo::fetch_sub_relaxed(&mappings_, std::size_t{1});
        if (got != nullptr) *got = best_length;
        return address_of(best_value);
      }
    }
  }

  // Frees slot i (emptied by its taker) for put() to claim again.
  void unclaim(unsigned i) {
    solo::fetch_and_acq_rel(&claimed_[i / 64], ~(std::uint64_t{1} << (i % 64)));
  }

  // Calls f(i) for every claimed slot i (as the bitmap said when its word was read).
  template <class F>
  void for_each_claimed(F f) const {
    for (unsigned w = 0; w < kWords; ++w) {
      for (std::uint64_t claimed = atomics::load_acquire(&claimed_[w]); claimed != 0;
           claimed &= claimed - 1) {
        f(64 * w + static_cast<unsigned>(std::countr_zero(claimed)));
      }
    }
  }

  struct Slot {
    std::uintptr_t value = 0;  // address | class index; 0: empty
    std::uint64_t cached_at_ms = 0;
  };

  static constexpr unsigned kWords = kSlots / 64;
  static_assert(kSlots % 64 == 0, "one bit of claimed_ per slot");
  Slot slots_[kSlots] = {};
  // Bit i % 64 of word i / 64: slot i is claimed (holds a mapping, or is being filled).
  std::uint64_t claimed_[kWords] = {};
  LocalSetting<Setting::kMappingCacheBytes> bound_;  // POLYMALLOC_MAPPING_CACHE_BYTES, unless set
  std::size_t bytes_ = 0;
  std::size_t mappings_ = 0;
  std::size_t hits_ = 0;
  std::size_t gathered_bytes_ = 0;
  std::size_t evicted_bytes_ = 0;
  std::size_t misses_ = 0;
};

}  // namespace polymalloc::allocator
