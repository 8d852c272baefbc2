// What a variant reports about its memory, for mallinfo2(), malloc_stats() and
// POLYMALLOC_STATS=1. Sizes include block headers (what the allocator holds, not what the
// client asked for).
#pragma once

#include <cstddef>

namespace polymalloc::allocator {

struct Statistics {
  const char* variant = "";
  std::size_t heap_committed_bytes = 0;  // taken from page sources and not given back
  std::size_t heap_peak_committed_bytes = 0;
  std::size_t heap_free_bytes = 0;  // in free blocks
  std::size_t heap_free_blocks = 0;
  std::size_t heap_top_free_bytes = 0;  // the part trim could hand back
  std::size_t released_bytes = 0;       // of the free bytes, those whose pages went back
  std::size_t mapped_bytes = 0;         // large blocks, each its own mapping
  std::size_t mapped_objects = 0;
  std::size_t peak_mapped_bytes = 0;
  std::size_t peak_mapped_objects = 0;
  // Freed mappings kept for reuse (allocator/mapping_cache.h): counted in neither of the
  // above, as the client holds none of them.
  std::size_t mapping_cache_bytes = 0;
  std::size_t mapping_cache_mappings = 0;
  std::size_t mapping_cache_bound = 0;
  std::size_t mapping_cache_hits = 0;
  std::size_t mapping_cache_misses = 0;

  std::size_t heap_in_use_bytes() const { return heap_committed_bytes - heap_free_bytes; }
  std::size_t in_use_bytes() const { return heap_in_use_bytes() + mapped_bytes; }
};

}  // namespace polymalloc::allocator
