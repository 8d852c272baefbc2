// What a variant reports about its memory, for mallinfo2(), malloc_stats() and
// POLYMALLOC_STATS=1. Sizes include block headers (what the allocator holds, not what the
// client asked for).
#pragma once

#include <cstddef>

namespace polymalloc::allocator {

// A free block smaller than this is a hole: too small to serve a request of a page or to
// give a page back, so it is reusable only by a request that happens to fit it.
inline constexpr std::size_t kHoleBytes = 4096;

// Where the memory a variant holds goes, part by part (each byte in exactly one part):
//   live + headers + reusable + holes + cached + structure + released
//       = heap_committed_bytes + mapped_bytes
// and kept mappings (the mapping cache) besides. (signal_safe's heap_committed_bytes leaves
// its released pages out: add them to it there.) What the client asked for is not known to
// the allocator (free() is not told); a replay that knows it (memsim) splits `live` into the
// request and the rounding to the block.
struct MemoryBreakdown {
  std::size_t live_bytes = 0;  // usable bytes of the blocks the client holds
  std::size_t live_blocks = 0;
  std::size_t header_bytes = 0;        // those blocks' headers
  std::size_t reusable_bytes = 0;      // free blocks of kHoleBytes or more, resident
  std::size_t hole_bytes = 0;          // free blocks under kHoleBytes (fragmentation)
  std::size_t cached_bytes = 0;        // free to the client but parked: thread caches, quick lists
  std::size_t structure_bytes = 0;     // a heap's region blocks and fences
  std::size_t released_bytes = 0;      // pages inside free blocks given back (not resident)
  std::size_t kept_mapping_bytes = 0;  // freed large blocks' memory kept for reuse

  std::size_t held_bytes() const {
    return live_bytes + header_bytes + reusable_bytes + hole_bytes + cached_bytes +
           structure_bytes + released_bytes;
  }
};

// statistics() with or without the breakdown (which walks every heap block under its
// heap's lock: for reports, not for polling), or only the counters, read without any lock a
// hot path takes (for polling: heap_top_free_bytes, which needs the heap's lock, stays 0).
enum class Detail { kTotals, kBreakdown, kCounters };

struct Statistics {
  const char* variant = "";
  std::size_t heap_committed_bytes = 0;  // taken from page sources and not given back
  std::size_t heap_peak_committed_bytes = 0;
  std::size_t heap_free_bytes = 0;  // in free blocks
  std::size_t heap_free_blocks = 0;
  std::size_t heap_top_free_bytes = 0;  // the part trim could hand back
  std::size_t released_bytes = 0;       // of the free bytes, those whose pages went back
  // The adaptive thresholds (heaps that serve large requests; 0 elsewhere): requests below
  // heap_threshold_bytes come from the heap, and a free top past heap_trim_at_bytes goes back.
  std::size_t heap_threshold_bytes = 0;
  std::size_t heap_trim_at_bytes = 0;
  std::size_t mapped_bytes = 0;  // large blocks, each its own mapping
  std::size_t mapped_objects = 0;
  std::size_t peak_mapped_bytes = 0;
  std::size_t peak_mapped_objects = 0;
  // Of mapped_bytes, cached mappings lent to buffers that realloc(NULL, n) started, however
  // much bigger than they asked for (LargeObjects::adopt_for_growth): at most
  // mapping_cache_bound.
  std::size_t mapped_lent_bytes = 0;
  // Freed mappings kept for reuse (allocator/mapping_cache.h): counted in neither of the
  // above, as the client holds none of them.
  std::size_t mapping_cache_bytes = 0;
  std::size_t mapping_cache_mappings = 0;
  std::size_t mapping_cache_bound = 0;
  std::size_t mapping_cache_hits = 0;
  std::size_t mapping_cache_misses = 0;
  // Of cached mappings, the bytes whose pages a fresh mapping gathered (a request that no one
  // cached mapping held: LargeObjects::gather()).
  std::size_t mapping_cache_gathered_bytes = 0;
  // Of cached mappings, the bytes unmapped to make room for bigger ones
  // (MappingCache::put_evicting_smaller()).
  std::size_t mapping_cache_evicted_bytes = 0;
  // The arena of a pool with no heap for large blocks (signal_safe: slice_arena.h): of
  // mapped_bytes, those in its regions; its free slices whose pages stay resident for reuse
  // (counted, as cached mappings are, in neither of the above; decay releases them); the
  // regions mapped; and the bytes of free slices released, in all.
  std::size_t arena_bytes = 0;
  std::size_t arena_kept_bytes = 0;
  std::size_t arena_regions = 0;
  std::size_t arena_released_bytes = 0;
  // Per-thread caches: what they hold (free to the client, so in heap_free_bytes too), how
  // many there are, and what their bins may hold together now (ThreadCaches: each thread's
  // share of the total times the caches; 0 where bins keep fixed capacities). The big slots,
  // a few blocks of up to 512 KiB process-wide, come on top.
  std::size_t thread_cache_bytes = 0;
  std::size_t thread_cache_blocks = 0;
  std::size_t thread_caches = 0;
  std::size_t thread_cache_bound = 0;
  // Full checks' quarantine (checked_core.h): freed blocks waiting before the inner core may
  // reuse them; the inner core counts them in use.
  std::size_t quarantine_bytes = 0;
  std::size_t quarantine_blocks = 0;
  std::size_t quarantine_bound = 0;
  // Memory mapped for the allocator's own bookkeeping (the page map, the caches' slot
  // arrays); its static data is not counted.
  std::size_t metadata_bytes = 0;
  // Independently locked heaps (partitioned; 1 for global_spinlock, 0 for signal_safe).
  std::size_t heaps = 0;
  // Whether heap_committed_bytes and heap_free_bytes include released_bytes (the heaps: a
  // released page stays inside its free block) or leave them out (signal_safe).
  bool released_in_committed = true;
  // Filled only for statistics(Detail::kBreakdown).
  bool has_breakdown = false;
  MemoryBreakdown breakdown;

  std::size_t heap_in_use_bytes() const { return heap_committed_bytes - heap_free_bytes; }
  std::size_t in_use_bytes() const { return heap_in_use_bytes() + mapped_bytes; }
  // The heaps' resident bytes: committed and not released.
  std::size_t heap_resident_bytes() const {
    return released_in_committed ? heap_committed_bytes - released_bytes : heap_committed_bytes;
  }
  // Free in the heaps (thread caches included) and resident.
  std::size_t heap_free_resident_bytes() const {
    return released_in_committed ? heap_free_bytes - released_bytes : heap_free_bytes;
  }
  // Freed large blocks' memory kept resident for reuse: cached mappings and the arena's.
  std::size_t kept_large_bytes() const { return mapping_cache_bytes + arena_kept_bytes; }
  // Everything obtained from the OS and not given back: resident heaps, live mappings,
  // kept large blocks' memory, and the allocator's own metadata.
  std::size_t os_bytes() const {
    return heap_resident_bytes() + mapped_bytes + kept_large_bytes() + metadata_bytes;
  }
};

}  // namespace polymalloc::allocator
