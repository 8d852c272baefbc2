// Large blocks side by side in big mapped regions, for a pool that has no heap to serve them
// (signal_safe): a freed block's pages stay where they are, resident, for the next request
// that fits there, and free neighbours join with no merge step. Each block as a mapping of
// its own (or a cached one, moved with mremap) makes the kernel change the address space at
// almost every request, and on a paravirtualized machine the pages touched after each change
// cost several times their faults (signal_safe's replay of trace_large_blocks spent 0.95 s of
// user time touching pages that global_spinlock's heap, which reuses them in place, touched
// in 0.30 s).
//
// A region is kRegionBytes of memory cut into kSliceBytes slices, and a block is a run of
// slices. One bit per slice says it is used: a block is claimed by CAS on the words of its
// run (across words in address order, rolled back if a later word has been taken meanwhile)
// and freed by clearing its bits. So the arena is lock-free and async-signal-safe: no path
// waits for another, reads a block's memory, or calls more than mmap and madvise.
//
// Decay (decay.h): a freed run is marked dirty (its pages resident) and the word's date set.
// release_older_than() claims the free dirty slices of words dated at or before its cutoff,
// as a request would (so no request can take them meanwhile), releases their pages with
// MADV_DONTNEED and frees them clean. A request whose run has no dirty slice gets zeroed
// memory (calloc need not clear it).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "allocator/solo_atomics.h"
#include "atomics/atomics.h"
#include "platform/os.h"

namespace polymalloc::allocator {

class SliceArena {
 public:
  // 64 KiB slices: a block rounds up by at most a slice, 12 % of the smallest block the arena
  // serves (signal_safe's large blocks start above 512 KiB), where mapping classes round by
  // up to 25 %. 64 MiB regions: sixteen words of bits each, and one mmap per 64 MiB.
  static constexpr std::size_t kSliceBytes = std::size_t{64} << 10;
  static constexpr std::size_t kRegionBytes = std::size_t{64} << 20;
  static constexpr unsigned kMaxRegions = 64;  // 4 GiB; beyond it, blocks are mappings
  // Bigger blocks are mappings of their own: mremap grows and moves those without copying,
  // and a run this long would leave few regions able to hold it.
  static constexpr std::size_t kMaxRunBytes = std::size_t{8} << 20;

  struct Stats {
    std::size_t regions = 0;
    std::size_t used_bytes = 0;      // in claimed runs (blocks)
    std::size_t dirty_bytes = 0;     // free, with resident pages
    std::size_t released_bytes = 0;  // dirty slices released by decay or trim, in all
  };

  constexpr SliceArena() = default;
  SliceArena(const SliceArena&) = delete;
  SliceArena& operator=(const SliceArena&) = delete;

  // The run length of a block of `bytes` (header included): whole slices.
  static constexpr std::size_t run_bytes(std::size_t bytes) {
    return (bytes + kSliceBytes - 1) & ~(kSliceBytes - 1);
  }

  // Claims a free run of `bytes` (run_bytes(), at most kMaxRunBytes) at the lowest address
  // that has one, mapping a new region when none does; nullptr if none can be had. *fresh:
  // no slice of it was dirty (its memory is zero). `prepare(base, bytes)` is called on a new
  // region's memory before any block of it is handed out (the caller's registry); false
  // from it gives the region back.
  template <class Prepare>
  void* claim(std::size_t bytes, bool huge_pages, bool* fresh, Prepare prepare) {
    const unsigned n = static_cast<unsigned>(bytes / kSliceBytes);
    for (;;) {
      const unsigned count = atomics::load_acquire(&count_);
      for (unsigned r = 0; r < count; ++r) {
        if (void* run = claim_in(regions_[r], n, fresh)) return run;
      }
      if (!add_region(count, huge_pages, prepare)) return nullptr;
    }
  }

  // Grows run [start, start + bytes) to `new_bytes` where it lies, if the slices after it are
  // free and in its region (claimed: the caller's block now spans them).
  bool extend(void* start, std::size_t bytes, std::size_t new_bytes) {
    Region* region = region_of(start);
    if (region == nullptr) return false;
    const std::size_t first = slice_of(*region, start) + bytes / kSliceBytes;
    const std::size_t added = (new_bytes - bytes) / kSliceBytes;
    if (first + added > kSlices || !claim_slices(*region, first, added)) return false;
    take_dirty(*region, first, added);
    solo::fetch_add_relaxed(&used_bytes_, new_bytes - bytes);
    return true;
  }

  // What a freed run's pages are: resident, kept for later requests (dirty, dated); to be
  // given back first (a delay of 0); or gone already (moved out: the run reads zero).
  enum class Pages { kKept, kReleaseNow, kGone };

  // Frees run [start, start + bytes) if it lies in the arena (false, and nothing done, if it
  // does not), its pages as `pages` says (dated `now_ms` if kept).
  bool free(void* start, std::size_t bytes, std::uint64_t now_ms, Pages pages) {
    Region* found = region_of(start);
    if (found == nullptr) return false;
    Region& region = *found;
    const std::size_t first = slice_of(region, start), n = bytes / kSliceBytes;
    if (pages == Pages::kReleaseNow) {
      platform::os_release_pages(start, bytes);
      solo::fetch_add_relaxed(&released_bytes_, bytes);
    } else if (pages == Pages::kKept) {
      for_each_word(first, n, [&](unsigned w, std::uint64_t mask, std::size_t) {
        solo::fetch_or_acq_rel(&region.dirty[w], mask);
        atomics::store_relaxed(&region.dirtied_at_ms[w], now_ms);
      });
      solo::fetch_add_relaxed(&dirty_bytes_, bytes);
    }
    // Dirty before free: release_older_than() must not see free slices it may not release.
    for_each_word(first, n, [&](unsigned w, std::uint64_t mask, std::size_t) {
      solo::fetch_and_acq_rel(&region.used[w], ~mask);
    });
    solo::fetch_sub_relaxed(&used_bytes_, bytes);
    return true;
  }

  // Whether p lies in one of the regions.
  bool holds(const void* p) const { return region_of(p) != nullptr; }

  // Releases the free dirty slices of every word last dirtied at or before `cutoff_ms` (all
  // of them for UINT64_MAX); the bytes released.
  std::size_t release_older_than(std::uint64_t cutoff_ms) {
    std::size_t released = 0;
    const unsigned count = atomics::load_acquire(&count_);
    for (unsigned r = 0; r < count; ++r) {
      Region& region = regions_[r];
      for (unsigned w = 0; w < kWords; ++w) {
        if (atomics::load_relaxed(&region.dirty[w]) == 0 ||
            atomics::load_relaxed(&region.dirtied_at_ms[w]) > cutoff_ms) {
          continue;
        }
        released += release_word(region, w);
      }
    }
    return released;
  }

  Stats stats() const {
    return {atomics::load_relaxed(&count_), atomics::load_relaxed(&used_bytes_),
            atomics::load_relaxed(&dirty_bytes_), atomics::load_relaxed(&released_bytes_)};
  }

 private:
  static constexpr unsigned kSlices = kRegionBytes / kSliceBytes;
  static constexpr unsigned kWords = kSlices / 64;
  static_assert(kSlices % 64 == 0 && kMaxRunBytes <= kRegionBytes);

  struct Region {
    unsigned char* base = nullptr;     // set once, before count_ covers it
    std::uint64_t used[kWords] = {};   // bit s % 64 of word s / 64: slice s is claimed
    std::uint64_t dirty[kWords] = {};  // slice s is free (or being freed) with resident pages
    std::uint64_t dirtied_at_ms[kWords] = {};  // when a slice of the word was last dirtied
  };

  Region* region_of(const void* p) {
    return const_cast<Region*>(static_cast<const SliceArena*>(this)->region_of(p));
  }
  const Region* region_of(const void* p) const {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    const unsigned count = atomics::load_acquire(&count_);
    for (unsigned r = 0; r < count; ++r) {
      const auto base = reinterpret_cast<std::uintptr_t>(base_of(regions_[r]));
      if (address - base < kRegionBytes) return &regions_[r];
    }
    return nullptr;
  }
  // A counted region's base, read atomically: a thread that lost the race to map it may
  // still CAS the word (and fail).
  static unsigned char* base_of(const Region& region) {
    return atomics::load_relaxed(&region.base);
  }
  static std::size_t slice_of(const Region& region, const void* p) {
    return static_cast<std::size_t>(static_cast<const unsigned char*>(p) - base_of(region)) /
           kSliceBytes;
  }

  // Calls f(word, mask, slices) for each word that slices [first, first + n) touch, in order
  // (`slices`: the bits set in mask).
  template <class F>
  static void for_each_word(std::size_t first, std::size_t n, F f) {
    while (n != 0) {
      const unsigned bit = first % 64;
      const std::size_t here = n < 64 - bit ? n : 64 - bit;
      const std::uint64_t ones = here == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << here) - 1;
      f(static_cast<unsigned>(first / 64), ones << bit, here);
      first += here;
      n -= here;
    }
  }

  // The lowest bit at which `n` (1 to 64) clear bits of `used` start, or 64 if none do.
  static unsigned free_run_in(std::uint64_t used, unsigned n) {
    std::uint64_t starts = ~used;  // bit i: bits i .. i + have - 1 are all clear
    for (unsigned have = 1; have < n && starts != 0;) {
      const unsigned step = have < n - have ? have : n - have;
      starts &= starts >> step;
      have += step;
    }
    return starts == 0 ? 64 : static_cast<unsigned>(std::countr_zero(starts));
  }

  // A free run of n slices in `region`, claimed; nullptr if it has none.
  void* claim_in(Region& region, unsigned n, bool* fresh) {
    for (unsigned w = 0; w < kWords; ++w) {
      for (;;) {
        const std::uint64_t used = atomics::load_relaxed(&region.used[w]);
        std::size_t first = kSlices;
        if (n <= 64) {
          const unsigned bit = free_run_in(used, n);
          if (bit < 64) first = 64 * w + bit;
        }
        // Or a run that starts in this word's free top bits and goes on past it.
        const unsigned top = static_cast<unsigned>(std::countl_zero(used));
        if (first == kSlices && top != 0 && top < n) first = 64 * w + 64 - top;
        if (first == kSlices || first + n > kSlices) break;
        if (claim_slices(region, first, n)) {
          *fresh = take_dirty(region, first, n) == 0;
          solo::fetch_add_relaxed(&used_bytes_, std::size_t{n} * kSliceBytes);
          return base_of(region) + first * kSliceBytes;
        }
        // Taken meanwhile (or not free past this word): this word again, as it is now.
        if (atomics::load_relaxed(&region.used[w]) == used) break;
      }
    }
    return nullptr;
  }

  // Claims slices [first, first + n) word by word, in address order; if one is taken, the
  // words claimed so far are freed again and false returned.
  static bool claim_slices(Region& region, std::size_t first, std::size_t n) {
    std::size_t claimed = 0;
    bool ok = true;
    for_each_word(first, n, [&](unsigned w, std::uint64_t mask, std::size_t slices) {
      if (!ok) return;
      std::uint64_t seen = atomics::load_relaxed(&region.used[w]);
      do {
        if ((seen & mask) != 0) {
          ok = false;
          return;
        }
      } while (!solo::cas_acq_rel(&region.used[w], seen, seen | mask));
      claimed += slices;
    });
    if (!ok) {
      for_each_word(first, claimed, [&](unsigned w, std::uint64_t mask, std::size_t) {
        solo::fetch_and_acq_rel(&region.used[w], ~mask);
      });
    }
    return ok;
  }

  // Clears the dirty bits of claimed slices [first, first + n); how many were dirty.
  std::size_t take_dirty(Region& region, std::size_t first, std::size_t n) {
    std::size_t dirty = 0;
    for_each_word(first, n, [&](unsigned w, std::uint64_t mask, std::size_t slices) {
      if ((atomics::load_relaxed(&region.dirty[w]) & mask) == 0) return;
      const std::uint64_t taken = solo::fetch_and_acq_rel(&region.dirty[w], ~mask) & mask;
      // (A run freed whole is dirty whole: no bit count, a library call on baseline x86-64.)
      dirty += taken == mask ? slices : static_cast<std::size_t>(std::popcount(taken));
    });
    if (dirty != 0) solo::fetch_sub_relaxed(&dirty_bytes_, dirty * kSliceBytes);
    return dirty;
  }

  // Releases the free dirty slices of word w: claimed first, as a request claims, then each
  // run of them released and freed clean. The bytes released.
  std::size_t release_word(Region& region, unsigned w) {
    std::uint64_t used = atomics::load_relaxed(&region.used[w]);
    std::uint64_t mine = 0;
    do {
      mine = atomics::load_relaxed(&region.dirty[w]) & ~used;
      if (mine == 0) return 0;
    } while (!solo::cas_acq_rel(&region.used[w], used, used | mine));
    mine &= solo::fetch_and_acq_rel(&region.dirty[w], ~mine);
    for (std::uint64_t left = mine; left != 0;) {
      const unsigned bit = static_cast<unsigned>(std::countr_zero(left));
      const unsigned length = static_cast<unsigned>(std::countr_one(left >> bit));
      platform::os_release_pages(base_of(region) + (64 * std::size_t{w} + bit) * kSliceBytes,
                                 std::size_t{length} * kSliceBytes);
      left &= length == 64 ? 0 : ~(((std::uint64_t{1} << length) - 1) << bit);
    }
    solo::fetch_and_acq_rel(&region.used[w], ~mine);
    const std::size_t bytes = static_cast<std::size_t>(std::popcount(mine)) * kSliceBytes;
    solo::fetch_sub_relaxed(&dirty_bytes_, bytes);
    solo::fetch_add_relaxed(&released_bytes_, bytes);
    return bytes;
  }

  // Maps region `count` (the first not yet counted), unless another thread has; false if
  // none can be had (the table is full, or the OS refuses).
  template <class Prepare>
  bool add_region(unsigned count, bool huge_pages, Prepare prepare) {
    if (count >= kMaxRegions) return false;
    if (atomics::load_acquire(&regions_[count].base) == nullptr) {
      // Huge pages from the first region (unlike a heap, which waits for kHugePagesFromBytes):
      // with small pages in the first two regions, signal_safe's trace_large_blocks replay
      // took 64.5 k faults and 0.93 s instead of 31.9 k and 0.67 s; what it costs is a block
      // touched here and there holding whole 2 MiB pages (a buffer doubling to 8 MiB through
      // the arena: 14 MiB peak RSS, 8.3 with those regions in small pages).
      void* mapped =
          huge_pages ? platform::os_map_huge(kRegionBytes) : platform::os_map(kRegionBytes);
      if (mapped == nullptr) return false;
      unsigned char* expected = nullptr;
      if (!prepare(mapped, kRegionBytes) ||
          !solo::cas_acq_rel(&regions_[count].base, expected,
                             static_cast<unsigned char*>(mapped))) {
        platform::os_unmap(mapped, kRegionBytes);
        if (expected == nullptr) return false;  // prepare() failed
      }
    }
    unsigned seen = count;  // whoever mapped it, count it (once)
    solo::cas_acq_rel(&count_, seen, count + 1);
    return true;
  }

  Region regions_[kMaxRegions] = {};
  unsigned count_ = 0;
  std::size_t used_bytes_ = 0;
  std::size_t dirty_bytes_ = 0;
  std::size_t released_bytes_ = 0;
};

}  // namespace polymalloc::allocator
