// The one core of the class-based variants: malloc and free top to bottom, as tcmalloc's
// fast_alloc and mimalloc's alloc.c read. A request becomes a class through the size map,
// the class's bin of the caller's cache serves it, and everything else (an empty or full bin,
// no cache, a class the cache does not keep, a large block, misuse) is a slow path out of
// line. A variant is a Config, a short list of types (in the spirit of snmalloc's
// backend/globalconfig.h):
//
//   kName    the variant's name
//   Map      its size map (size_map.h): SizeMap<its class policy>
//   Caches   the caches in front, or NoCaches: ThreadCaches (a thread-local state) or
//            ReentrantCaches (an operation holds the thread's cache: a nested signal
//            handler finds none)
//   Pool     where blocks come from and go back to: locked heaps (heap_pool.h) or lock-free
//            class stacks (signal_safe); it owns what a block's header means
//
// and the large path (LargeObjects: a mapping per block) is the core's own.
#pragma once

#include <bit>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/cache_bins.h"
#include "allocator/core.h"
#include "allocator/errno_preserved.h"
#include "allocator/heap_profile.h"
#include "allocator/large_objects.h"
#include "allocator/report.h"
#include "allocator/size_map.h"
#include "allocator/statistics.h"

namespace polymalloc::allocator {

// What the core asks of a pool. `b` is a block header, `i` a class index of the pool's map.
template <class P>
concept ClassPool = requires(Block* b, const Block* cb, const void* p, void* q, unsigned i,
                             std::uint32_t n, std::size_t bytes, std::size_t header,
                             BlockChain chain, const char* call, Statistics& s,
                             const void** where) {
  // Hot, inline. Whether b is a 16-byte-aligned address in the pool's memory (so its header
  // may be read): lock-free, reading nothing at b.
  { P::owns(cb) } -> std::same_as<bool>;
  // Whether b (owned), whose header reads `header` and whose size is a class size, is a
  // block the client holds (not free, not cached).
  { P::is_live(cb, header) } -> std::same_as<bool>;
  // The same, split for free()'s fast path: the flag bits that read exactly Block::kInUse in a
  // live block's header (the others may read anything); what else it checks before caching
  // the block (a check word); and whether a cached block is told from a live one by its
  // cache key alone (its header reads live), which the cache's push then checks.
  { P::kLiveFlags } -> std::convertible_to<std::size_t>;
  // Flag bits that may be set in a live block's header and send it back to the pool instead
  // of into a cache (a heap's: its left neighbour is free, and it should coalesce with it).
  { P::kUncachedFlags } -> std::convertible_to<std::size_t>;
  { P::seal_intact(cb, header) } -> std::same_as<bool>;
  { P::kCachedByKey } -> std::convertible_to<bool>;
  // A free block of class i (from a cache or the pool) becomes the client's: its payload.
  { P::hand_out(b, i) } -> std::same_as<void*>;
  // A live block of class i goes into a cache: a second free must see it is not live.
  { P::mark_cached(b, i) } -> std::same_as<void>;
  // Slow. Up to n free blocks of class i for a cache (cached state); empty with ENOMEM.
  { P::take(i, n) } -> std::same_as<BlockChain>;
  // Blocks of class i (cached state) back to the pool.
  { P::give(i, chain) } -> std::same_as<void>;
  // A live block of class i, or nullptr with ENOMEM.
  { P::allocate(i) } -> std::same_as<Block*>;
  // Aligned blocks (a power of two above 16, the block below kLargeBlockBytes), one of two
  // ways: allocate_aligned(alignment, bytes), a live block's payload (nullptr with ENOMEM);
  // or align_in_block(q, alignment), an aligned payload inside payload q of a block the core
  // allocated for bytes + alignment (with block_of_aligned(q, call), the block an aligned
  // payload lies in, or nullptr if q is not one).
  requires(requires { P::allocate_aligned(n, bytes); } ||
           requires { P::align_in_block(q, bytes); });
  // Frees b, a block of the pool whose payload is q (which may lie inside b, for an aligned
  // block), after checking that the client holds it; reports `call`'s misuse otherwise.
  // True when b is kept where decay would not release it (a heap's quick list, a class too
  // small to give pages back): the caller then need not tick.
  { P::release(q, call) } -> std::same_as<bool>;
  // The block whose payload q is, checked as release() checks it; its usable bytes.
  { P::usable_size(q, call) } -> std::same_as<std::size_t>;
  // realloc of payload q (checked as release() checks it) to a block of `bytes` (a class
  // size, or 0 for a large block) where it lies: the payload (which may move down, in a
  // heap), or nullptr if it must move.
  { P::resize(q, bytes) } -> std::same_as<void*>;
  // Whether requests too big for a class may be served (as mappings of their own).
  { P::large_blocks_enabled() } -> std::same_as<bool>;
  // Whether the pool's heap serves blocks of any size (below the core's adaptive heap
  // threshold: allocate_bytes(block), a live block of `block` bytes), and whether a block it
  // cannot grow moves into a cached mapping to grow into (a pool without coalescing).
  { P::kServesLargeBlocks } -> std::convertible_to<bool>;
  { P::kGrowsIntoCachedMappings } -> std::convertible_to<bool>;
  requires(!P::kServesLargeBlocks || requires { { P::allocate_bytes(bytes) } -> std::same_as<Block*>; });
  { P::trim(bytes) } -> std::same_as<bool>;
  // Decay (decay.h): free memory that became free at or before a time goes back.
  { P::release_aged(std::uint64_t{0}) } -> std::same_as<void>;
  { P::add_statistics(s) } -> std::same_as<void>;
  // Where the pool's memory goes (statistics.h): blocks in caches count as live here.
  { P::add_breakdown(s.breakdown) } -> std::same_as<void>;
  { P::check(where) } -> std::same_as<const char*>;
  { P::prepare_fork() } -> std::same_as<void>;
  { P::after_fork_in_parent() } -> std::same_as<void>;
  { P::after_fork_in_child() } -> std::same_as<void>;
};

// No caches: every call goes to the pool (global_spinlock).
struct NoCaches : FixedBinSizes<CacheBins<SizeMap<PowerOfTwoClasses>, 1>> {
  using Bins = CacheBins<SizeMap<PowerOfTwoClasses>, 1>;
  static constexpr unsigned kBins = 0;
  static Bins* enter() { return nullptr; }
  static Bins* enter_or_set_up() { return nullptr; }
  template <class F>
  static void for_each(F) {}
  static void prepare_fork() {}
  static void after_fork_in_parent() {}
  static void after_fork_in_child() {}
};

template <class Config>
class ClassCore {
  using Map = typename Config::Map;
  using Caches = typename Config::Caches;
  using Pool = typename Config::Pool;
  using Bins = typename Caches::Bins;
  static_assert(ClassPool<Pool>);
  static_assert(Caches::kBins == 0 || Bins::kCarriesKey == Pool::kCachedByKey,
                "a pool that tells cached blocks by their key needs bins that keep it");

 public:
  static constexpr const char* kName = Config::kName;
  // allocate(0) serves 1 byte and deallocate(nullptr) does nothing, both off the fast paths.
  static constexpr bool kTakesZeroAndNull = true;
  // The largest request the caches serve.
  static constexpr std::size_t kMaxCachedRequest =
      Caches::kBins == 0 ? 0 : Map::block_size(Caches::kBins - 1) - Block::kHeaderBytes;
  // The smallest block a sampled request is served in (allocate_sampled()): beyond every
  // cache bin, so free() never finishes it on the fast path, and at least a dated block, so
  // global_spinlock's free looks at it too. Either way free() asks the profile for it.
  static constexpr std::size_t kSampledInPlaceBytes =
      kMaxCachedRequest + 16 > Decay::kDatedBlockBytes ? kMaxCachedRequest + 16
                                                       : Decay::kDatedBlockBytes;
  // Whether a pool block of `block_bytes` (header included) can be a sample: the one test
  // free() and realloc make before they ask the profile.
  static constexpr bool may_be_sample(std::size_t block_bytes) {
    return block_bytes > kSampledInPlaceBytes;
  }
  // The classes from kBins up to this one go into a cache's big slot (cache_bins.h).
  static constexpr unsigned kBigSlotClasses =
      Caches::kBins == 0 ? 0 : Map::classes_up_to(Bins::kBigSlotMaxBlock);

  // Every function is noexcept (nothing here throws), which also lets the fast paths jump to
  // their slow paths instead of calling them.

  // ---- malloc: size -> class -> the cache's bin -> the block ----
  [[gnu::always_inline]] static void* allocate(std::size_t bytes) noexcept {
    if constexpr (Caches::kBins == 0) {  // no caches: the pool serves every class itself
      if (bytes <= Map::kTableRequest) [[likely]]
        return payload_of(Pool::allocate(Map::class_of(bytes)));
      return allocate_slow(bytes);
    }
    if (bytes <= kMaxCachedRequest) [[likely]] {
      const unsigned i = Map::class_of(bytes);
      if (auto cache = Caches::enter()) [[likely]] {
        if (Block* b = cache->pop(i)) [[likely]]
          return Pool::hand_out(b, i);
      }
    }
    return allocate_slow(bytes);
  }

  // ---- free: owner -> header -> class -> the cache's bin ----
  [[gnu::always_inline]] static void deallocate(void* p, const char* call) noexcept {
    Block* b = Block::of_payload(p);
    if (!Pool::owns(b)) [[unlikely]]
      return deallocate_unowned(b, call);
    if constexpr (Caches::kBins == 0) {  // no caches: the pool takes every block back itself
      if (b->size_flags_unlocked() >= Decay::kDatedBlockBytes) [[unlikely]] {
        // (The flags do not reach the size's bits.) A block parked on the heap's quick list
        // is cached, as a block that stays in a cache: no tick, no clock read. One that went
        // into the lists ticks after it (it is dated by the heap, and too new to release).
        HeapProfile::forget(p);  // kSampledInPlaceBytes is at least kDatedBlockBytes
        if (!Pool::release(p, call)) tick();
        return;
      }
      Pool::release(p, call);
      return;
    }
    const std::size_t header = b->size_flags_unlocked();
    const std::size_t granules = live_granules(header);
    if (granules <= Bins::kMaxBlock / 16 && Pool::seal_intact(b, header)) [[likely]] {
      const unsigned i = Bins::bin_of_granules(granules);  // between classes: the spare bin
      if (auto cache = Caches::enter()) [[likely]] {
        if (cache->push(i, b)) [[likely]] {
          Pool::mark_cached(b, i);  // inside the cache's bracket: no handler sees b meanwhile
          return;
        }
      }
    }
    deallocate_slow(p, call);
  }

  // operator delete(p, n) and free_sized: the class comes from the size the caller gives,
  // and a block whose header disagrees is the wrong object deleted (a base class without a
  // virtual destructor): misuse.
  [[gnu::always_inline]] static void deallocate_sized(void* p, std::size_t bytes,
                                                      const char* call) {
    Block* b = Block::of_payload(p);
    if (bytes - 1 < kMaxCachedRequest && Pool::owns(b)) [[likely]] {
      const unsigned i = Map::class_of(bytes);
      const std::size_t header = b->size_flags_unlocked();
      if (live_granules(header) == Map::block_size(i) / 16 && Pool::seal_intact(b, header))
          [[likely]] {
        if (auto cache = Caches::enter()) [[likely]] {
          if (cache->push(i, b)) [[likely]] {
            Pool::mark_cached(b, i);
            return;
          }
        }
      }
    }
    deallocate_sized_slow(p, bytes, call);
  }

  // ---- the rest of the API ----

  // Fresh mappings are zero already; everything else is cleared.
  static void* allocate_zeroed(std::size_t bytes) {
    bool fresh = false;
    void* p = Map::class_or_large(bytes) == Map::kClasses ? allocate_large(bytes, 16, &fresh)
                                                          : allocate(bytes);
    if (p != nullptr && !fresh) __builtin_memset(p, 0, bytes);
    return p;
  }

  // A pool that aligns inside a class block (signal_safe) gets the block through the caches.
  static void* allocate_aligned(std::size_t alignment, std::size_t bytes) {
    if (Map::block_for(bytes) == 0 || Map::block_for(bytes + alignment) == 0) {
      return allocate_large(bytes, alignment);
    }
    if constexpr (requires(void* q) { Pool::align_in_block(q, alignment); }) {
      void* p = allocate(bytes + alignment);
      return p != nullptr ? Pool::align_in_block(p, alignment) : nullptr;
    } else if constexpr (Caches::kBins != 0) {
      void* p = allocate_aligned_cached(alignment, bytes);
      if (p == nullptr) p = Pool::allocate_aligned(alignment, bytes);
      if (p != nullptr && bytes <= kMaxCachedRequest) {
        if (auto cache = Caches::enter_or_set_up()) cache->note_aligned(Block::of_payload(p));
      }
      return p;
    } else {
      return Pool::allocate_aligned(alignment, bytes);
    }
  }

  // The newest block of the request's class in the caller's cache, if its payload is aligned
  // as asked: a block the pool carved aligned (with a lead and a tail to free) comes back to
  // that bin when it is freed, so a program that allocates aligned objects of one size over
  // and over takes its last one back, as a size class serves its own. nullptr otherwise.
  static void* allocate_aligned_cached(std::size_t alignment, std::size_t bytes) noexcept {
    if (bytes > kMaxCachedRequest) return nullptr;
    const unsigned i = Map::class_of(bytes);
    auto cache = Caches::enter();
    if (!cache) return nullptr;
    Block* b = cache->pop_if(i, [alignment](const Block* c) {
      return (reinterpret_cast<std::uintptr_t>(c) + Block::kHeaderBytes) % alignment == 0;
    });
    return b != nullptr ? Pool::hand_out(b, i) : nullptr;
  }

  // A sampled allocation (heap_profile.h), recorded under its payload: served where a request
  // of its size, or of kSampledInPlaceBytes if it is smaller, goes. free() of such a block
  // always takes a path that asks the profile (the pool's dated-block branch, the slow path,
  // the large-block path), and the pool serves it without a system call, where a mapping of
  // its own would cost two and a page fault. A small sample holds up to 32 KiB while it
  // lives: at the 512 KiB rate, a few percent of what the samples stand for.
  static void* allocate_sampled(std::size_t bytes, std::size_t requested,
                                const ProfileStack& stack) noexcept {
    void* p = allocate(bytes > kSampledInPlaceBytes ? bytes : kSampledInPlaceBytes);
    if (p != nullptr) HeapProfile::record(p, requested, stack);
    return p;
  }

  // A large block stays in its mapping while the size fits it (and the request is still
  // large, or the block took the mapping to grow into), and grows with mremap. A pool block
  // resizes where it lies if its pool can (a heap, into free neighbours: a heap that serves
  // large requests, too), else moves: to the top of its heap, for a heap block of a page or
  // more that grows (where it can go on growing in place), into a cached mapping of any size,
  // for a pool that cannot grow blocks (the block will likely go on growing into it), or a
  // fresh block.
  //
  // The commonest realloc, a buffer growing a little at a time, stays in its class: the block
  // is checked as free()'s fast path checks it (owned, live, not cached), and no lock is
  // taken. Its boundary tags are checked when it is freed or leaves its class.
  [[gnu::always_inline]] static void* reallocate(void* p, std::size_t bytes) noexcept {
    Block* b = Block::of_payload(p);
    if (!Pool::owns(b)) [[unlikely]]
      return reallocate_large(p, bytes);
    if (bytes <= Map::kTableRequest) [[likely]] {
      const std::size_t header = b->size_flags_unlocked();
      if (Block::size_in(header) == Map::block_size(Map::class_of(bytes)) &&
          Pool::is_live(b, header)) [[likely]]
        return p;
    }
    return reallocate_slow(p, bytes);
  }

  // realloc(NULL, n): a buffer of kGrowingBufferBytes or more, which will likely grow (the C
  // idiom of a growing array), starts where it can grow without moving: at the top of the
  // caller's heap, or in a mapping lent from the cache (a pool that cannot grow blocks);
  // anything else, or where neither has room, is malloc(n).
  [[gnu::noinline]] static void* allocate_to_grow(std::size_t bytes) noexcept {
    if (bytes >= kGrowingBufferBytes) {
      const std::size_t block = Map::block_for(bytes);
      if constexpr (requires { Pool::allocate_at_home_top(block); }) {
        if (block != 0) {
          if (Block* top = Pool::allocate_at_home_top(block)) return top->payload();
        }
      }
      if constexpr (Pool::kGrowsIntoCachedMappings) {
        if (block != 0 && Pool::large_blocks_enabled()) {
          if (Block* lent = large_.adopt_for_growth(bytes, true)) return lent->payload();
        }
      }
    }
    return allocate(bytes);
  }

  // A pool block (p) that leaves its class: resized where it lies (the path of a buffer
  // growing at the top of its heap, kept lean: the rest is out of line), else moved.
  [[gnu::noinline]] static void* reallocate_slow(void* p, std::size_t bytes) noexcept {
    Block* b = Block::of_payload(p);
    const std::size_t block = Map::block_for(bytes);
    // (A request beyond the size map's table that stays in its class, as above.)
    const std::size_t header = b->size_flags_unlocked();
    if (block != 0 && Block::size_in(header) == block && Pool::is_live(b, header)) [[likely]]
      return p;
    const std::size_t wanted = block != 0 ? block : heap_block_for(bytes);  // 0: a mapping
    // A heap block resizes where it lies even past the heap threshold (up to its ceiling), as
    // glibc's realloc grows a chunk into its heap's top: moving it to a mapping would copy it.
    const std::size_t in_place = wanted != 0 ? wanted : heap_block_below(bytes, kMaxHeapThreshold);
    if (void* resized = Pool::resize(p, in_place)) {
      if (may_be_sample(Block::size_in(header))) keep_sample(p, resized, bytes);
      return resized;
    }
    return reallocate_moving(p, bytes, block, wanted, may_be_sample(Block::size_in(header)));
  }

  // A pool block that cannot resize where it lies moves: to the top of its heap, for a heap
  // block of a page or more that grows (where it can go on growing in place), into a cached
  // mapping, for a pool that cannot grow blocks, or to a fresh block (a class's, for a
  // `block` of one, else a mapping).
  [[gnu::noinline]] static void* reallocate_moving(void* p, std::size_t bytes, std::size_t block,
                                                   std::size_t wanted, bool sampled) noexcept {
    if constexpr (requires { Pool::allocate_to_grow(p, wanted); }) {
      if (wanted != 0 && bytes > Pool::usable_size(p, "realloc")) {
        if (Block* top = Pool::allocate_to_grow(p, wanted)) {
          return relocate(top->payload(), p, bytes, sampled);
        }
      }
    }
    if constexpr (Pool::kGrowsIntoCachedMappings) {
      if (bytes > Pool::usable_size(p, "realloc")) {
        if (Block* grown = large_.adopt_for_growth(bytes, false)) {
          return relocate(grown->payload(), p, bytes, sampled);
        }
      }
    }
    return relocate(block != 0 ? allocate(bytes) : allocate_large(bytes, 16), p, bytes, sampled);
  }

  // A mapped block stays in its mapping while that fits (LargeObjects::keeps()), is resized
  // with mremap while the request is still large, and moves to a pool block otherwise.
  // (A buffer growing within the mapping it took stays: the test alone, with no frame; the
  // rest is reallocate_large_moving().)
  [[gnu::noinline]] static void* reallocate_large(void* p, std::size_t bytes) noexcept {
    const Block* b = Block::of_payload(p);
    large_.check_live(b, "realloc");
    if (LargeObjects::keeps(b, bytes, Map::class_or_large(bytes) == Map::kClasses)) [[likely]] {
      HeapProfile::moved(p, p, bytes);  // a sampled block keeps its sample, resized
      return p;
    }
    return reallocate_large_moving(p, bytes);
  }

  // A checked large block that leaves its mapping: moved with mremap (still large), or into
  // a pool block (shrunk below a mapping).
  [[gnu::noinline]] static void* reallocate_large_moving(void* p, std::size_t bytes) noexcept {
    Block* b = Block::of_payload(p);
    const std::size_t block = Map::block_for(bytes);
    if (block == 0) {
      void* moved = payload_of(large_.resize(b, bytes));
      if (moved != nullptr) HeapProfile::moved(p, moved, bytes);
      return moved;
    }
    return relocate(allocate(bytes), p, bytes, true);  // shrinking below a mapping
  }

  // move_to_fresh(), with the sample of p kept, if p may be one (may_be_sample()).
  static void* relocate(void* fresh, void* p, std::size_t bytes, bool sampled) noexcept {
    if (fresh != nullptr && sampled) keep_sample(p, fresh, bytes);
    return move_to_fresh<ClassCore>(fresh, p, bytes);
  }

  // The sample of the block at `from` (if it was one) goes with it to `to`, now of `bytes`,
  // where free() will ask for it there (a mapping, or a pool block of kSampledInPlaceBytes
  // or more), and is forgotten otherwise: a block resized in place below that size, or
  // moved into a class the caches take, is freed without a look at the profile.
  [[gnu::always_inline]] static void keep_sample(const void* from, void* to,
                                                 std::size_t bytes) noexcept {
    if (HeapProfile::may_be_sampled(from)) [[unlikely]]
      move_sample(from, to, bytes);
  }
  [[gnu::noinline]] static void move_sample(const void* from, void* to,
                                            std::size_t bytes) noexcept {
    const bool asked_at_free =
        !Pool::owns(Block::of_payload(to)) ||
        may_be_sample(Pool::usable_size(to, "realloc") + Block::kHeaderBytes);
    HeapProfile::moved(from, asked_at_free ? to : nullptr, bytes);
  }

  static std::size_t usable_size(const void* p) {
    const Block* b = Block::of_payload(const_cast<void*>(p));
    if (!Pool::owns(b)) {
      large_.check_live(b, "malloc_usable_size");
      return LargeObjects::usable_size(b);
    }
    return Pool::usable_size(p, "malloc_usable_size");
  }

  // Pool memory (readable throughout), or the payload of a live large block.
  static bool owns(const void* p) {
    const Block* b = Block::of_payload(const_cast<void*>(p));
    return Pool::owns(b) || large_.owns(b);
  }

  // Whether live block p lies in pool memory (a class block or a heap block), not in a
  // mapping of its own.
  static bool pooled(const void* p) { return Pool::owns(Block::of_payload(const_cast<void*>(p))); }

  static bool freed_mapping(const void* p) {
    return large_.freed(Block::of_payload(const_cast<void*>(p)));
  }

  // The caller's cache goes back first, so that its blocks can be trimmed.
  static bool trim(std::size_t pad) {
    const ErrnoPreserved saved;
    flush_my_cache();
    const bool trimmed = Pool::trim(pad);
    return (large_.release_cached(UINT64_MAX) != 0) || trimmed;
  }

  // Reads now the settings whose defaults its parts choose (partitioned's partition count),
  // so that the process malloc's start-up lists them.
  static void read_settings() {
    if constexpr (requires { Pool::read_settings(); }) Pool::read_settings();
  }

  // Blocks in caches count as free (to the client they are).
  static Statistics statistics(Detail detail = Detail::kTotals) {
    Statistics s;
    s.variant = kName;
    if constexpr (requires { Pool::add_counters(s); }) {
      if (detail == Detail::kCounters) {
        Pool::add_counters(s);
      } else {
        Pool::add_statistics(s);
      }
    } else {
      Pool::add_statistics(s);  // (lock-free already)
    }
    std::size_t cached_bytes = 0, cached_blocks = 0;
    Caches::for_each([&](const auto& cache) {
      cached_bytes += cache.cached_bytes();
      cached_blocks += cache.cached_blocks();
      ++s.thread_caches;
    });
    s.thread_cache_bytes = cached_bytes;
    s.thread_cache_blocks = cached_blocks;
    s.metadata_bytes = platform::os_metadata_bytes();
    if constexpr (requires { Caches::share(); }) {
      s.thread_cache_bound = Caches::share() * s.thread_caches;
    }
    s.heap_free_bytes += cached_bytes;
    s.heap_free_blocks += cached_blocks;
    const auto large = large_.stats();
    if constexpr (Pool::kServesLargeBlocks) {
      s.heap_threshold_bytes = atomics::load_relaxed(&heap_threshold_);
      s.heap_trim_at_bytes = Pool::trim_at_bytes(0);
    }
    s.mapped_bytes = large.mapped_bytes;
    s.mapped_objects = large.mapped_objects;
    s.peak_mapped_bytes = large.peak_mapped_bytes;
    s.peak_mapped_objects = large.peak_mapped_objects;
    s.mapped_lent_bytes = large.lent_bytes;
    s.mapping_cache_bytes = large.cache.bytes;
    // (released_bytes comes from the pool: the pages of its free blocks that went back)
    s.mapping_cache_mappings = large.cache.mappings;
    s.mapping_cache_bound = large.cache.bound;
    s.mapping_cache_hits = large.cache.hits;
    s.mapping_cache_misses = large.cache.misses;
    s.mapping_cache_gathered_bytes = large.cache.gathered_bytes;
    s.mapping_cache_evicted_bytes = large.cache.evicted_bytes;
    s.arena_bytes = large.arena.used_bytes;
    s.arena_kept_bytes = large.arena.dirty_bytes;
    s.arena_regions = large.arena.regions;
    s.arena_released_bytes = large.arena.released_bytes;
    if (detail == Detail::kBreakdown) {
      add_breakdown(s, large, cached_bytes, cached_blocks);  // (reads the fields above)
    }
    return s;
  }

  // The pool, then the caller's cache (other threads' caches are theirs to touch).
  static const char* check_heap(const void** where) {
    if (const char* wrong = Pool::check(where)) return wrong;
    if (auto cache = Caches::enter_or_set_up()) {
      return cache->check(
          [](const Block* b, unsigned i) -> const char* {
            if (!Pool::owns(b)) return "cached block outside the pool";
            const std::size_t header = b->size_flags_unlocked();
            if (Block::size_in(header) != Map::block_size(i)) return "cached block in the wrong bin";
            if (Pool::is_live(b, header)) return "cached block not marked cached";
            return nullptr;
          },
          where);
    }
    return nullptr;
  }

  static void prepare_fork() {
    Caches::prepare_fork();
    Pool::prepare_fork();
  }
  static void after_fork_in_parent() {
    Pool::after_fork_in_parent();
    Caches::after_fork_in_parent();
  }
  // The dead threads' caches are abandoned with their slot credits: the credits left are
  // counted again from the caches that live on.
  static void after_fork_in_child() {
    Pool::after_fork_in_child();
    Caches::after_fork_in_child();
    std::uint32_t held = 0;
    Caches::for_each([&held](const auto& cache) { held += cache.has_big_credit() ? 1 : 0; });
    atomics::store_relaxed(&big_credits_, Bins::kBigSlotCredits - held);
  }

  // Empties a cache into the pool (thread exit, trim, a fork child's dead threads).
  template <class Cache>
  static void flush(Cache& cache) {
    tick();
    for (unsigned i = 0; i < Caches::kBins; ++i) Pool::give(i, cache.take_oldest(i, 0));
    give_back_big_slot(cache);
    if (cache.has_big_credit()) {
      cache.set_big_credit(false);
      return_big_credit();
    }
  }

 private:
  // The pool's parts, less what the caches hold (live to the pool, free to the client), and
  // the large blocks' and their kept memory's (s's large-block figures are in place).
  static void add_breakdown(Statistics& s, const LargeObjects::Stats& large,
                            std::size_t cached_bytes, std::size_t cached_blocks) {
    MemoryBreakdown& b = s.breakdown;
    Pool::add_breakdown(b);
    const std::size_t cached_headers = cached_blocks * Block::kHeaderBytes;
    b.live_bytes -= cached_bytes - cached_headers;
    b.header_bytes -= cached_headers;
    b.live_blocks -= cached_blocks;
    b.cached_bytes += cached_bytes;
    const std::size_t large_headers = large.mapped_objects * Block::kHeaderBytes;
    b.live_bytes += large.mapped_bytes - large_headers;
    b.header_bytes += large_headers;
    b.live_blocks += large.mapped_objects;
    b.kept_mapping_bytes = s.kept_large_bytes();
    s.has_breakdown = true;
  }

  // A block's size in 16-byte granules if its header's flags say live and cacheable
  // (Pool::kLiveFlags read kInUse, and no Pool::kUncachedFlags), else a number above any
  // block's: the flags rotate into the top bits, so one comparison tests the size and the
  // flags, and the granules index the bins' table.
  [[gnu::always_inline]] static std::size_t live_granules(std::size_t header) {
    constexpr std::size_t kIgnored =
        Block::kFlags & ~std::size_t{Pool::kLiveFlags | Pool::kUncachedFlags};
    return std::rotr((header ^ Block::kInUse) & ~kIgnored, 4);
  }

  [[gnu::always_inline]] static void* payload_of(Block* b) {
    return b != nullptr ? b->payload() : nullptr;
  }

  // A class the cache does not keep, an empty bin (refilled with a batch from the pool), no
  // cache yet, a large request.
  [[gnu::noinline]] static void* allocate_slow(std::size_t bytes) noexcept {
    const unsigned i = Map::class_or_large(bytes);
    if (i == Map::kClasses) return allocate_large(bytes, 16);
    if (i < Caches::kBins) {
      if (auto cache = Caches::enter_or_set_up()) {
        if (Block* b = cache->pop(i)) return Pool::hand_out(b, i);
        tick();
        review_if_due(*cache);
        const std::uint32_t n = Caches::missed(*cache, i);
        const BlockChain chain = n != 0 ? Pool::take(i, n) : BlockChain{};
        if (chain.head != nullptr) {
          cache->fill(i, chain);
          return Pool::hand_out(cache->pop(i), i);
        }
      }
    }
    if (i >= Caches::kBins && i < kBigSlotClasses) {
      if (auto cache = Caches::enter_or_set_up()) {
        if (Block* b = cache->take_big(i)) return Pool::hand_out(b, i);
        // The slot's block is not what this thread asks for now: back to the pool, and the
        // slot takes the next big block freed.
        give_back_big_slot(*cache);
      }
    }
    // Uncached, or the pool had no block of exactly the class for a cache (a heap may hand
    // out one a little bigger), or none at all (then this fails too, with ENOMEM).
    return payload_of(Pool::allocate(i));
  }

  // Everything free() does not finish on its fast path: a full bin (half goes back to the
  // pool, then b joins it), no cache, a class the cache does not keep, an aligned payload,
  // misuse (which the pool reports).
  [[gnu::noinline]] static void deallocate_slow(void* p, const char* call) noexcept {
    Block* b = Block::of_payload(p);
    const std::size_t header = b->size_flags_unlocked();
    if (may_be_sample(Block::size_in(header))) HeapProfile::forget(p);
    const unsigned i = Map::class_of_block(Block::size_in(header));
    if (i < kBigSlotClasses && Pool::is_live(b, header)) {
      auto cache = Caches::enter_or_set_up();
      if (cache && may_cache(*cache, b, header)) {
        if (i < Caches::kBins ? cache_evicting(*cache, b, i) : keep_big(*cache, b, i)) return;
      }
    }
    tick();  // (a block that stays in a cache is as cheap as the fast path: no clock read)
    if constexpr (requires { Pool::block_of_aligned(p, call); }) {
      if (Block* own = Pool::block_of_aligned(p, call)) {  // an aligned payload inside it
        const unsigned k = Map::class_of_block(own->size());
        if (k < Caches::kBins) {
          auto cache = Caches::enter_or_set_up();
          if (cache && cache_evicting(*cache, own, k)) return;
        }
      }
    }
    Pool::release(p, call);
  }

  // Whether live block b (whose header reads `header`) may go into the cache: not if it has
  // one of Pool::kUncachedFlags (it coalesces instead), unless it is the newest block the
  // thread's aligned allocation handed out. Its free neighbour is then likely the lead that
  // alignment left, and a loop of aligned allocations takes it back from the cache
  // (allocate_aligned_cached()).
  template <class Cache>
  static bool may_cache(const Cache& cache, const Block* b, std::size_t header) noexcept {
    return (header & Pool::kUncachedFlags) == 0 || cache.is_newest_aligned(b);
  }

  // Caches live block b of class i (a full bin first grows, or sends half of itself to the
  // pool); false if its bin takes none now.
  template <class Cache>
  static bool cache_evicting(Cache& cache, Block* b, unsigned i) noexcept {
    if (!cache.push_live(i, b)) {
      tick();
      review_if_due(cache);
      if (const std::uint32_t n = Caches::overflowed(cache, i); n != 0) {
        Pool::give(i, cache.take_oldest(i, n));
      }
      if (!cache.push_live(i, b)) return false;
    }
    Pool::mark_cached(b, i);
    return true;
  }

  // Resizes the cache's bins to what its thread uses, when a review is due (ThreadCaches).
  template <class Cache>
  static void review_if_due(Cache& cache) noexcept {
    if (!Caches::review_due(cache)) [[likely]]
      return;
    Caches::review(cache, [](unsigned i, BlockChain chain) { Pool::give(i, chain); });
  }

  // Empties the cache's big slot into the pool.
  template <class Cache>
  static void give_back_big_slot(Cache& cache) noexcept {
    unsigned i = 0;
    if (const BlockChain big = cache.take_big_chain(&i); big.head != nullptr) Pool::give(i, big);
  }

  // Puts live block b of big class i into the cache's big slot; false if the slot is taken,
  // or the cache's thread holds no slot credit and none is left.
  template <class Cache>
  static bool keep_big(Cache& cache, Block* b, unsigned i) noexcept {
    if (!cache.has_big_credit()) {
      if (!take_big_credit()) return false;
      cache.set_big_credit(true);
    }
    if (!cache.put_big(b, i)) return false;
    Pool::mark_cached(b, i);
    return true;
  }

  // The slot credits: a thread takes one when its cache first keeps a big block and gives it
  // back when the cache is emptied (thread exit, trim). Lock-free, for signal_safe.
  static bool take_big_credit() noexcept {
    std::uint32_t left = atomics::load_relaxed(&big_credits_);
    while (left != 0) {
      if (atomics::cas_relaxed(&big_credits_, left, left - 1)) return true;
    }
    return false;
  }
  static void return_big_credit() noexcept { atomics::fetch_add_relaxed(&big_credits_, 1u); }

  // The size disagrees with the header, or anything deallocate_slow() handles. A size
  // bigger than the block, or one whose class block is smaller than this block by a whole
  // block or more, is the wrong object deleted. (A heap hands out a block up to a minimal
  // block bigger than asked, where splitting would leave a sliver, and with classes 16
  // bytes apart that bigger block can be exactly another class's size: telling a size
  // 16 bytes smaller from the right one would stop correct programs.)
  [[gnu::noinline]] static void deallocate_sized_slow(void* p, std::size_t bytes,
                                                      const char* call) noexcept {
    Block* b = Block::of_payload(p);
    bool wrong = false;
    if (Pool::owns(b)) {
      const std::size_t usable = Pool::usable_size(p, call);  // reports a block not held
      const std::size_t block = usable + Block::kHeaderBytes;
      const std::size_t asked = Map::block_for(bytes);  // 0 beyond the classes
      wrong = bytes > usable || (asked != 0 && block - asked >= kMinBlock);
    } else {
      large_.check_live(b, call);
      wrong = bytes > LargeObjects::usable_size(b);
    }
    // A sampled block is bigger than its request (allocate_sampled()): the profile has it.
    if (wrong && HeapProfile::sampled_bytes(p) != bytes)
      report_damaged_block(call, "size does not match the block of", p, bytes);
    deallocate(p, call);
  }

  // Out of line, so that free() stays small: no pool holds p, so it must be a live large
  // block, which the registry tells before b is read (or free(NULL)).
  [[gnu::noinline]] static void deallocate_unowned(Block* b, const char* call) noexcept {
    if (reinterpret_cast<std::uintptr_t>(b) == 0 - Block::kHeaderBytes) return;
    large_.check_live(b, call);
    HeapProfile::forget(b->payload());  // before its mapping can be anyone else's
    const ErrnoPreserved saved;
    tick();  // first: the mapping may be cached, dated with the tick's time
    const std::size_t length = b->size();
    large_.release(b);
    if constexpr (Pool::kServesLargeBlocks) raise_heap_threshold(length);
  }

  // Decay (decay.h): a tick, on the slow paths that free (first, so that what they free is
  // dated with the time it took), refill a bin or map; allocation from a bin or a heap does
  // not read the clock. When a release is due, free memory that has sat unused past the
  // delay goes back: the pools' (heap pages, pooled blocks) and the cached mappings. Keeps
  // errno.
  static void tick() noexcept {
    std::uint64_t now = 0;
    if (!Decay::due(&now)) [[likely]]
      return;
    const ErrnoPreserved saved;
    const std::uint64_t cutoff = now - static_cast<std::uint64_t>(Decay::delay_ms());
    Pool::release_aged(cutoff);
    large_.release_cached(cutoff);
  }

  // A large request: from the pool's heap while it is under the heap threshold (a pool that
  // can serve any size), else a mapping of its own (fresh or cached; *fresh says which).
  static void* allocate_large(std::size_t bytes, std::size_t alignment, bool* fresh = nullptr) {
    if constexpr (Pool::kServesLargeBlocks) {
      if (const std::size_t block = heap_block_for(bytes); block != 0) {
        // A cached mapping first: its pages are resident, where the heap's may not be (a
        // mapping freed before the threshold rose would otherwise sit unused until decay).
        if (bytes >= kLargeBlockBytes && alignment <= 16) {
          if (Block* cached = large_.allocate_cached(bytes)) return cached->payload();
        }
        Block* b = alignment <= 16 ? Pool::allocate_bytes(block)
                                   : Pool::allocate_bytes_aligned(block, alignment);
        if (b != nullptr) return b->payload();
      }
    }
    if (!Pool::large_blocks_enabled()) {
      errno = ENOMEM;
      return nullptr;
    }
    tick();
    return payload_of(large_.allocate(bytes, alignment, fresh));
  }

  // The adaptive threshold, as glibc's mmap threshold: requests below it are served by the
  // pool's heap (which keeps its pages when they are freed and grows blocks in place), and
  // freeing a mapped block raises it to that block's size, up to kMaxHeapThreshold: a
  // program that keeps reallocating or replacing buffers of some size gets them from the
  // heap after the first. It starts at kInitialHeapThreshold: buffers of up to a few MiB are
  // the big ones programs replace most, and as mappings each would fault its pages in anew
  // until the threshold rose past it (a heap block keeps them, and gives them back by the
  // top's trim or by decay). 0 for a pool that cannot serve large requests.
  static constexpr std::size_t kInitialHeapThreshold = std::size_t{4} << 20;
  static constexpr std::size_t kMaxHeapThreshold = std::size_t{32} << 20;
  static std::size_t heap_block_for(std::size_t bytes) {
    return heap_block_below(bytes, atomics::load_relaxed(&heap_threshold_));
  }
  // The heap block for `bytes` if that is under `limit`, else 0.
  static std::size_t heap_block_below(std::size_t bytes, std::size_t limit) {
    if constexpr (!Pool::kServesLargeBlocks) return 0;
    if (bytes >= limit) return 0;
    return (bytes + Block::kHeaderBytes + 15) & ~std::size_t{15};
  }
  static void raise_heap_threshold(std::size_t mapped) {
    if (mapped > kMaxHeapThreshold) return;
    std::size_t seen = atomics::load_relaxed(&heap_threshold_);
    while (mapped > seen && !atomics::cas_relaxed(&heap_threshold_, seen, mapped)) {
    }
    if (mapped > seen) Pool::keep_blocks_of(mapped);
  }

  static inline constinit std::size_t heap_threshold_ = kInitialHeapThreshold;
  static inline constinit std::uint32_t big_credits_ = Bins::kBigSlotCredits;

  static void flush_my_cache() {
    if (auto cache = Caches::enter()) flush(*cache);
  }

  // A pool with no heap for large blocks has them side by side in an arena (slice_arena.h).
  static inline constinit LargeObjects large_{!Pool::kServesLargeBlocks};
};

}  // namespace polymalloc::allocator
