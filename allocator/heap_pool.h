// The pool of the heap-based variants (a ClassPool, class_core.h): blocks come from locked
// free-list heaps, which a Placement chooses among (one heap for global_spinlock, one per
// partition for partitioned).
//
// What a header means here: a block is the heaps' boundary-tagged block. A block in a thread
// cache stays in use as far as its heap is concerned (its neighbours do not coalesce with
// it); its second payload word holds the cache's key, the process secret (cache_bins.h),
// which is how free() tells a block freed twice from a live one without a lock.
#pragma once

#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/cache_bins.h"
#include "allocator/locked_heap.h"
#include "allocator/report.h"
#include "allocator/sanitizer.h"
#include "allocator/secret.h"
#include "allocator/statistics.h"

namespace polymalloc::allocator {

// What a Placement provides: its heaps (LockedHeap) and how a block finds its heap.
template <class P>
concept HeapPlacement = requires(const void* p) {
  typename P::Map;
  typename P::Heap;
  // Whether thread caches stand in front (so that a live block may be a cached one).
  { P::kCachesInFront } -> std::convertible_to<bool>;
  // Whether there is one heap only (then nothing is tried before it grows).
  { P::kOneHeap } -> std::convertible_to<bool>;
  // The heap whose committed memory holds p, or nullptr: constant time, no lock; and the
  // same for a p known to be some heap's.
  { P::owner_of(p) } -> std::same_as<typename P::Heap*>;
  { P::heap_of_owned(p) } -> std::same_as<typename P::Heap&>;
  // Runs f(FreeListHeap&) on a heap under its lock (one the caller may take now, in
  // preference), then on the others until f returns non-null; the last result.
  { P::with_some_heap([](auto&) { return static_cast<Block*>(nullptr); }) } -> std::same_as<Block*>;
  // Runs f(FreeListHeap&) on the caller's own heap (the one it tries first) under its lock.
  {
    P::with_home_heap([](auto&) { return static_cast<Block*>(nullptr); })
    } -> std::same_as<Block*>;
  // Calls f(Heap&) for every heap.
  { P::for_each_heap([](auto&) {}) } -> std::same_as<void>;
};

template <HeapPlacement Placement>
class HeapPool {
  using Map = typename Placement::Map;
  using Heap = typename Placement::Heap;

 public:
  // ---- hot ----

  [[gnu::always_inline]] static bool owns(const Block* b) {
    if (reinterpret_cast<std::uintptr_t>(b) % 16 != 0) [[unlikely]]
      return false;
    return Placement::owner_of(b) != nullptr;
  }

  // A live block: in use (and not on a quick list), and, with caches in front, not keyed by
  // one. On free()'s fast path the cache's push checks the key, and nothing else is checked:
  // the boundary tags are checked when the block goes back to its heap.
  static constexpr std::size_t kLiveFlags = Block::kInUse | Block::kCached | Block::kMapped;
  static constexpr bool kCachedByKey = Placement::kCachesInFront;
  // A live block whose left neighbour is free goes back to its heap and coalesces, rather
  // than into a cache: cached, it would stand in the middle of free space (a cached block is
  // in use to its heap) and split it into holes too small for the requests that follow.
  // (memsim, RSS growth / live, partitioned, 64 KiB caches against none: 1.61 against 1.38
  // on trace_small_uniform, 2.65 against 1.67 on the 4-thread trace; with this rule 1.38
  // and 1.74.) Its header has the flag already, so free()'s fast path pays nothing.
  static constexpr std::size_t kUncachedFlags = Placement::kCachesInFront ? Block::kPrevFree : 0;
  static constexpr bool seal_intact(const Block*, std::size_t) { return true; }

  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH static bool is_live(const Block* b,
                                                                        std::size_t header) {
    return Block::live_in(header) && !is_cached(b);
  }

  // (The bins key and unkey the blocks they keep.)
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH static void* hand_out(Block* b, unsigned i) {
    unpoison_live(b->payload(), Map::block_size(i) - Block::kHeaderBytes);
    return b->payload();
  }

  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH static void mark_cached(Block* b, unsigned i) {
    poison_free(b->payload(), Map::block_size(i) - Block::kHeaderBytes);
  }

  // ---- slow ----

  // Up to n blocks of exactly class i from one heap under one lock, marked cached. Running
  // short after the first block is not a failure (errno is kept). When the heap's best fit
  // is a block a little too big (which it would not split), the request takes it: it heads
  // the chain, which the caller's bin hands out first, and the rest of the chain is asked of
  // the same heap, so that no other heap grows for the bin and a loop of mallocs and frees
  // does not take the same odd block from the heap each time.
  [[gnu::noinline]] static BlockChain take(unsigned i, std::uint32_t n) {
    const std::size_t block = Map::block_size(i);
    BlockChain chain;
    Block* odd = nullptr;
    Block* last = nullptr;
    from_some_heap([&](auto& heap, Growth growth) -> Block* {
      const int saved_errno = errno;
      while (chain.count < n) {
        Block* b = heap.allocate(block, growth);
        if (b == nullptr) break;
        if (b->size() != block) [[unlikely]] {
          if (odd != nullptr || chain.count != 0) {  // (only the request's block may be odd)
            heap.release(b);
            break;
          }
          odd = b;
          continue;
        }
        mark_cached(b, i);
        if (last == nullptr) {
          chain.head = b;
        } else {
          last->set_next(b);
        }
        last = b;
        ++chain.count;
      }
      if (last != nullptr) last->set_next(nullptr);
      if (odd != nullptr) {
        mark_cached(odd, i);
        odd->set_next(chain.head);
        chain.head = odd;
        ++chain.count;
      }
      if (chain.count != 0) errno = saved_errno;
      return chain.head;
    });
    return chain;
  }

  // Frees a chain of cached blocks into their heaps, taking each heap's lock once for all of
  // its blocks in the chain.
  POLYMALLOC_UNCHECKED_BY_ASAN static void give(unsigned, BlockChain chain) {
    Block* rest = chain.head;
    while (rest != nullptr) {
      Heap& heap = *Placement::owner_of(rest);
      Block* others = nullptr;
      heap.releasing([&](auto release) {
        for (Block *b = rest, *next; b != nullptr; b = next) {
          next = b->next();
          if (Placement::owner_of(b) == &heap) {
            release(b, "free");
          } else {
            b->set_next(others);
            others = b;
          }
        }
      });
      rest = others;
    }
  }

  [[gnu::always_inline]] static Block* allocate(unsigned i) {
    const std::size_t block = Map::block_size(i);
    return from_some_heap([block](auto& heap, Growth g) { return heap.allocate(block, g); });
  }

  static void* allocate_aligned(std::size_t alignment, std::size_t bytes) {
    Block* b = allocate_bytes_aligned(Map::block_for(bytes), alignment);
    return b != nullptr ? b->payload() : nullptr;
  }

  // A cached block freed again is misuse the heap cannot see; the heap checks the rest
  // (and keeps errno: only its trim makes system calls). Inline: without caches in front,
  // this is free()'s whole path after the owner check. Returns whether the block was parked
  // on a heap's quick list (LockedHeap::release()).
  [[gnu::always_inline]] static bool release(void* p, const char* call) {
    Block* b = Block::of_payload(p);
    if constexpr (Placement::kCachesInFront) check_not_cached(b, call);
    return Placement::heap_of_owned(b).release(b, call);
  }

  static std::size_t usable_size(const void* p, const char* call) {
    const Block* b = Block::of_payload(const_cast<void*>(p));
    const std::size_t header = b->size_flags_unlocked();  // the owner's: read without its lock
    if (!is_live(b, header)) report_misuse(call, freed_block_problem(call), p);
    return Block::size_in(header) - Block::kHeaderBytes;
  }

  [[gnu::always_inline]] static void* resize(void* p, std::size_t block) {
    Block* b = Block::of_payload(p);
    check_not_cached(b, "realloc");
    return Placement::heap_of_owned(b).resize_in_place(b, block);
  }

  // A live block of `block` bytes at the top of p's heap, for p, a block growing by realloc
  // that cannot grow where it lies (FreeListHeap::allocate_at_top()); nullptr if none.
  static Block* allocate_to_grow(const void* p, std::size_t block) {
    Heap& heap = Placement::heap_of_owned(Block::of_payload(const_cast<void*>(p)));
    return heap.locked([block](auto& h) { return h.allocate_at_top(block); });
  }

  // A live block of `block` bytes at the top of the caller's heap, for a buffer that will
  // likely grow (realloc(NULL, n)): it can then grow in place. nullptr if that top has not
  // that much free (FreeListHeap::allocate_at_top()).
  static Block* allocate_at_home_top(std::size_t block) {
    if constexpr (Placement::kCachesInFront) choose_process_secret();
    return Placement::with_home_heap([block](auto& h) { return h.allocate_at_top(block); });
  }

  static constexpr bool large_blocks_enabled() { return true; }
  static constexpr bool kServesLargeBlocks = true;
  // The heaps now serve blocks of `bytes` (the heap threshold rose): their tops keep that.
  static void keep_blocks_of(std::size_t bytes) { Heap::keep_blocks_of(bytes); }
  // How much free top a heap holds before it is trimmed, after a block of `freed` joined it.
  static std::size_t trim_at_bytes(std::size_t freed) { return Heap::trim_at_bytes(freed); }
  static constexpr bool kGrowsIntoCachedMappings = false;

  // A live block of `block` bytes (a multiple of 16, any size), or nullptr with ENOMEM.
  static Block* allocate_bytes(std::size_t block) {
    return from_some_heap([block](auto& heap, Growth g) { return heap.allocate(block, g); });
  }

  // The same, its payload `alignment`-aligned (a power of two above 16).
  static Block* allocate_bytes_aligned(std::size_t block, std::size_t alignment) {
    return from_some_heap([block, alignment](auto& heap, Growth g) {
      return heap.allocate_aligned(block, alignment, g);
    });
  }

  // Decay: every heap's free memory freed at or before `cutoff_ms` goes back.
  static void release_aged(std::uint64_t cutoff_ms) {
    Placement::for_each_heap([cutoff_ms](Heap& heap) { heap.release_aged(cutoff_ms); });
  }

  static void read_settings() {
    if constexpr (requires { Placement::read_settings(); }) Placement::read_settings();
  }

  static bool trim(std::size_t pad) {
    std::size_t returned = 0;
    Placement::for_each_heap([&](Heap& heap) { returned += heap.trim(pad); });
    return returned != 0;
  }

  static void add_statistics(Statistics& s) {
    Placement::for_each_heap([&](Heap& heap) {
      heap.add_statistics(s);
      ++s.heaps;
    });
  }

  static void add_counters(Statistics& s) {
    Placement::for_each_heap([&](Heap& heap) {
      heap.add_counters(s);
      ++s.heaps;
    });
  }

  static void add_breakdown(MemoryBreakdown& b) {
    Placement::for_each_heap([&](Heap& heap) { heap.add_breakdown(b); });
  }

  static const char* check(const void** where) {
    const char* wrong = nullptr;
    Placement::for_each_heap([&](Heap& heap) {
      if (wrong == nullptr) wrong = heap.check(where);
    });
    return wrong;
  }

  static void prepare_fork() { Placement::prepare_fork(); }
  static void after_fork_in_parent() { Placement::after_fork_in_parent(); }
  static void after_fork_in_child() { Placement::after_fork_in_child(); }

 private:
  // Reads the payload of a block that may be poisoned, hence unchecked.
  // Every block leaves the heaps through here: f(heap, growth) allocates from a heap under
  // its lock. It runs first without growth on each heap in turn (the caller's first), so that
  // no heap grows while another holds free memory that fits, then with growth. With caches in
  // front, the key (the secret) is chosen first: unchosen it reads 0, which a fresh block's
  // word holds.
  template <class F>
  [[gnu::always_inline]] static Block* from_some_heap(F f) {
    if constexpr (Placement::kCachesInFront) choose_process_secret();
    if constexpr (!Placement::kOneHeap) {
      auto fitting = [&f](auto& heap) { return f(heap, Growth::kNone); };
      if (Block* b = Placement::with_some_heap(fitting)) return b;
    }
    return Placement::with_some_heap([&f](auto& heap) { return f(heap, Growth::kAllowed); });
  }

  // The key is the secret itself: mixing in b's address would cost two instructions per free
  // and buy nothing (whoever reads a cached block's key knows its address, so learns the
  // secret either way), and a stale key cannot outlive its block's stay in a cache (a block
  // leaves a bin or the big slot with its key cleared).
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH static bool is_cached(const Block* b) {
    return Placement::kCachesInFront && b->key_word() == process_secret();
  }

  // (The report's wording is chosen only when there is one: it compares call names.)
  static void check_not_cached(const Block* b, const char* call) {
    if (Block::live_in(b->size_flags_unlocked()) && is_cached(b)) [[unlikely]] {
      report_misuse(call, freed_block_problem(call), const_cast<Block*>(b)->payload());
    }
  }
};

}  // namespace polymalloc::allocator
