// The large-object path: each big block is its own anonymous mapping, resized with mremap.
// A freed mapping goes to a bounded cache (mapping_cache.h) that later requests of its class
// take before the OS is asked, so that a program that keeps replacing big buffers reuses
// their pages; what the cache does not keep is unmapped. A fresh mapping of 2 MiB or more is
// 2 MiB-aligned and advised for transparent huge pages (POLYMALLOC_HUGE_PAGES): its first
// touch of each 2 MiB faults in a huge page, where small pages would fault 512 times.
// Lock-free (the counters are atomic, the cache is a table of CAS slots), so every variant can
// share it, signal_safe included.
//
// A large block carries the usual 16-byte header just below its payload: size_flags holds
// the mapping's length with kMapped | kInUse (| kGrowing), and prev_size the distance from
// the mapping's start to the header (non-zero only for over-aligned blocks). A plain block's
// mapping is a class length (MappingCache::class_length), so that any cached mapping of its
// class fits it; kGrowing marks a mapping a block took from the cache while growing by
// realloc, bigger than it asked for: realloc within it keeps it.
//
// Every header's address is also recorded in a PageMap (live, or freed once unmapped), so a
// pointer is known to be a live large block before its header is read: free() of a wild or
// unmapped address, or a second free() of a block whose mapping is gone, is reported instead
// of faulting.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "allocator/block.h"
#include "allocator/decay.h"
#include "allocator/errno_preserved.h"
#include "allocator/mapping_cache.h"
#include "allocator/report.h"
#include "allocator/settings.h"
#include "allocator/size_map.h"
#include "allocator/slice_arena.h"
#include "allocator/solo_atomics.h"
#include "atomics/atomics.h"
#include "platform/page_map.h"
#include "platform/platform.h"

namespace polymalloc::allocator {

class LargeObjects {
 public:
  static constexpr std::size_t kMapped = Block::kMapped;
  static constexpr std::size_t kGrowing = Block::kGrowing;
  // How much bigger than its class length a cached mapping may be for a block growing by
  // realloc, below kLargeBlockBytes and from there on (adopt_for_growth). 8: a buffer that
  // doubled to 16 MiB leaves a 20 MiB mapping (its quarter-power class), which the same
  // buffer growing again takes from 2.5 MiB on, instead of moving its pages with mremap at
  // every doubling (realloc_doubling makes no more system calls than with 32, from 512 KiB).
  // A buffer that stops growing holds the rest of the mapping's resident pages: with 32,
  // signal_safe's RSS growth ÷ live on the recorded python3 trace was 1.57, with 8 1.37
  // (memsim; glibc 1.03). (A plain request takes the smallest cached mapping that holds it,
  // however big: its tail stays cached, keep_tail().)
  static constexpr std::size_t kGrowthRoom = 4;
  static constexpr std::size_t kLargeGrowthRoom = 8;
  // A buffer of at least this many bytes that realloc(NULL, n) starts may also be lent a
  // cached mapping of any size beyond that room (adopt_for_growth), as long as the mappings
  // lent together stay within the cache's bound: a growing vector then starts in the mapping
  // its last cycle left, instead of being copied from class to class.
  static constexpr std::size_t kLendFromBytes = kGrowingBufferBytes;
  // A fresh mapping gathers cached mappings' pages (gather()) while this much or more of it
  // is left to fill: below it, a system call per cached mapping moved costs more than the
  // page faults it saves.
  static constexpr std::size_t kGatherFromBytes = std::size_t{256} << 10;
  static constexpr std::size_t kLent = Block::kLent;

  struct Stats {
    std::size_t mapped_bytes = 0;
    std::size_t mapped_objects = 0;
    std::size_t peak_mapped_bytes = 0;
    std::size_t peak_mapped_objects = 0;
    std::size_t lent_bytes = 0;  // of mapped_bytes, in mappings lent to growing blocks
    MappingCache::Stats cache;
    SliceArena::Stats arena;
  };

  constexpr LargeObjects() = default;
  // `sliced`: plain blocks up to SliceArena::kMaxRunBytes lie side by side in an arena
  // (slice_arena.h), for a pool with no heap to serve them; bigger and over-aligned ones, and
  // every block where the arena has no room, are mappings of their own.
  constexpr explicit LargeObjects(bool sliced) : sliced_(sliced) {}
  LargeObjects(const LargeObjects&) = delete;
  LargeObjects& operator=(const LargeObjects&) = delete;

  MappingCache& cache() { return cache_; }

  // Whether big fresh mappings are made for transparent huge pages (huge_pages_for()):
  // POLYMALLOC_HUGE_PAGES, unless set.
  void set_huge_pages(bool on) { huge_pages_.set(on ? 1 : 0); }
  bool huge_pages() const { return huge_pages_.get() != 0; }

  // Whether b is the header of a live large block (from the registry: b is not read).
  bool owns(const Block* b) const { return registry_.get(b) == tag(b, kLiveTag); }
  // Whether b was the header of a large block since freed (its mapping gone).
  bool freed(const Block* b) const { return registry_.get(b) == tag(b, kFreedTag); }

  // Returns if b is a live large block with a sound header; otherwise reports `call`'s
  // misuse: a double free (or use of a freed block, for realloc), a damaged header, or a
  // pointer this path never handed out. Inline, with the report out of line: realloc and
  // free of a large block pay for the test alone (a call cost signal_safe's realloc of a
  // growing buffer about 15 of its 56 instructions here).
  [[gnu::always_inline]] void check_live(const Block* b, const char* call) const {
    const std::uint16_t found = registry_.get(b);
    if (found == tag(b, kLiveTag) && header_sound(b)) [[likely]]
      return;
    report_not_live(b, found, call);
  }

  // A block whose payload holds `bytes` and is `alignment`-aligned (a power of two, at
  // least 16), or nullptr with errno = ENOMEM. *fresh (if given) says whether its memory is
  // fresh from the OS (so zero) rather than a cached mapping.
  Block* allocate(std::size_t bytes, std::size_t alignment = 16, bool* fresh = nullptr) {
    if (fresh != nullptr) *fresh = true;
    if (alignment <= 16) return allocate_plain(bytes, fresh);
    const std::size_t slack = alignment > 16 ? alignment : 0;
    if (bytes > SIZE_MAX / 2 || slack > SIZE_MAX / 4) return fail();
    const std::size_t length = platform::round_up_to_page(bytes + Block::kHeaderBytes + slack);
    auto* start = static_cast<unsigned char*>(platform::os_map(length));
    if (start == nullptr) return nullptr;
    const auto payload =
        (reinterpret_cast<std::uintptr_t>(start) + Block::kHeaderBytes + alignment - 1) &
        ~(alignment - 1);
    const auto header = payload - Block::kHeaderBytes;
    if (!registry_.prepare(reinterpret_cast<void*>(header), 1)) {
      const ErrnoPreserved saved;
      platform::os_unmap(start, length);
      return nullptr;
    }
    const std::size_t page = platform::page_size();
    const std::size_t lead = (header - reinterpret_cast<std::uintptr_t>(start)) & ~(page - 1);
    const std::size_t used = platform::round_up_to_page(payload + bytes) -
                             reinterpret_cast<std::uintptr_t>(start) - lead;
    // Whole pages before the header's page and after the payload go straight back.
    if (lead != 0) platform::os_unmap(start, lead);
    if (lead + used < length) platform::os_unmap(start + lead + used, length - lead - used);
    Block* b = Block::at(reinterpret_cast<void*>(header));
    b->prev_size = header - reinterpret_cast<std::uintptr_t>(start) - lead;
    b->set_size_flags(used | kMapped | Block::kInUse);
    mark(b, kLiveTag);
    count(+1, used);
    return b;
  }

  // Bytes usable from the payload to the end of the mapping.
  static std::size_t usable_size(const Block* b) {
    return b->size() - b->prev_size - Block::kHeaderBytes;
  }

  // A block of at least `bytes` in a cached mapping, for a block growing by realloc that will
  // likely go on growing into it; nullptr if the cache has none that fits. How much bigger
  // than it needs: kGrowthRoom times for a block below half kLargeBlockBytes (a small block that
  // took a big mapping would hold its resident pages for nothing, and many of them would
  // keep far more than they use), kLargeGrowthRoom times for a large one (a buffer already
  // that big, like a doubling vector's, will likely fill it, and the pages were resident in
  // the cache already, within its bound). Beyond that room, a buffer of kLendFromBytes or
  // more that `may_lend` (one that realloc(NULL, n) starts: it says it will grow) is lent the
  // smallest cached mapping that fits, while the lent mappings' bytes stay within the cache's
  // bound (lend()): what small buffers can hold for nothing is bounded as the cache's own
  // pages are. (Lending to every growing block held 43 MiB more on a replay whose blocks
  // grow by realloc at random: they held big mappings while the big requests mapped afresh.)
  Block* adopt_for_growth(std::size_t bytes, bool may_lend) {
    if (bytes > SIZE_MAX / 2 / kLargeGrowthRoom) return nullptr;
    std::size_t length = 0;
    const std::size_t needed = MappingCache::class_length(bytes + Block::kHeaderBytes);
    const std::size_t room = needed >= kLargeBlockBytes / 2 ? kLargeGrowthRoom : kGrowthRoom;
    const std::size_t lendable = may_lend && bytes >= kLendFromBytes ? lendable_bytes() : 0;
    const std::size_t most = room * needed > lendable ? room * needed : lendable;
    void* start = cache_.take_between(needed, most, &length);
    if (start == nullptr) return nullptr;
    if (length <= room * needed) return install(start, length, kGrowing);
    return lend(start, length);
  }

  // A plain block whose payload holds `bytes` in a cached mapping (the smallest that holds
  // it), or nullptr if the cache has none: its pages are resident already. A bigger mapping is
  // split: the block, a plain one of its own class, takes its head, and its tail goes back to the
  // cache with its pages (keep_tail()). A miss counts only where it means a fresh mapping
  // (`counts_misses`), not for a request that a heap serves instead.
  Block* allocate_cached(std::size_t bytes, bool counts_misses = false) {
    if (bytes > SIZE_MAX / 2) return nullptr;
    const std::size_t length = MappingCache::class_length(bytes + Block::kHeaderBytes);
    unsigned char* cached = take_cached(length, counts_misses);
    return cached != nullptr ? install(cached, length, 0) : nullptr;
  }

  // The tail [start, start + bytes) of a cached mapping whose head a block took goes back to
  // the cache as class-length pieces, biggest first (each registered first, as every mapping
  // that may become a block is): its resident pages stay for later requests. What no class
  // length fits (less than a page), or the cache does not take, goes to the OS.
  void keep_tail(unsigned char* start, std::size_t bytes) {
    const ErrnoPreserved saved;
    while (bytes != 0) {
      const std::size_t kept = MappingCache::class_length_within(bytes);
      if (kept == 0) {
        platform::os_unmap(start, bytes);
        return;
      }
      if (!registry_.prepare(start, 1) || !cache_.put(start, kept, platform::os_coarse_ms())) {
        platform::os_unmap(start, kept);
      }
      start += kept;
      bytes -= kept;
    }
  }

  // Frees live large block b (check_live() first, for a pointer from a caller): into the
  // cache if it takes it, else unmapped.
  void release(Block* b) {
    const std::size_t length = b->size();
    if ((b->size_flags & kLent) != 0) solo::fetch_sub_relaxed(&lent_bytes_, length);
    mark(b, kFreedTag);  // before the unmap: a new block may be mapped here right after it
    count(-1, length);
    if (sliced_) {
      const auto pages =
          Decay::delay_ms() == 0 ? SliceArena::Pages::kReleaseNow : SliceArena::Pages::kKept;
      if (arena_.free(b, length, platform::os_coarse_ms(), pages)) return;
    }
    if (b->prev_size == 0 && MappingCache::class_length(length) == length &&
        Decay::delay_ms() != 0 &&
        cache_.put_evicting_smaller(b, length, platform::os_coarse_ms())) {
      return;
    }
    platform::os_unmap(mapping_of(b), length);
  }

  // Unmaps the cached mappings cached at or before `cutoff_ms`, and releases the arena's free
  // pages dirtied by then; the bytes released.
  std::size_t release_cached(std::uint64_t cutoff_ms) {
    const std::size_t unmapped = cache_.release_older_than(cutoff_ms, [](void*, std::size_t) {});
    return unmapped + (sliced_ ? arena_.release_older_than(cutoff_ms) : 0);
  }

  // Resizes: a size that fits the mapping keeps it (as glibc keeps an mmapped chunk); a
  // bigger one grows it with mremap, in place where the pages above are free, else onto a
  // cached mapping of the new size (whose pages beyond the old ones stay resident) or a fresh
  // one: pages move, nothing is copied (but for a block whose pages came from several
  // mappings: move()). nullptr with errno = ENOMEM and `b` untouched on failure.
  Block* resize(Block* b, std::size_t bytes) {
    if (bytes > SIZE_MAX / 2) return fail();
    const std::size_t old_length = b->size();
    if (bytes <= usable_size(b)) return b;
    if (sliced_ && arena_.holds(b)) return resize_sliced(b, bytes);
    const std::size_t length =
        b->prev_size == 0 ? MappingCache::class_length(Block::kHeaderBytes + bytes)
                          : platform::round_up_to_page(b->prev_size + Block::kHeaderBytes + bytes);
    // A lent block that outgrows its mapping is a growing block like any other from here.
    const bool lent = (b->size_flags & kLent) != 0;
    const std::size_t flags = b->size_flags & kGrowing;
    if (resize_in_place(b, length)) {
      b->set_size_flags(length | kMapped | Block::kInUse | flags);
    } else {
      b = move(b, length);
      if (b == nullptr) return nullptr;
    }
    if (lent) solo::fetch_sub_relaxed(&lent_bytes_, old_length);
    solo::fetch_add_relaxed(&mapped_bytes_, b->size() - old_length);
    note_peak();
    return b;
  }

  // Whether realloc of b (a live large block) to `bytes` keeps it where it is: within its
  // mapping, if the block took that mapping to grow into, or the request is still large.
  static bool keeps(const Block* b, std::size_t bytes, bool large) {
    return (large || (b->size_flags_unlocked() & kGrowing) != 0) && bytes <= usable_size(b);
  }

  Stats stats() const {
    return {atomics::load_relaxed(&mapped_bytes_),
            atomics::load_relaxed(&mapped_objects_),
            atomics::load_relaxed(&peak_mapped_bytes_),
            atomics::load_relaxed(&peak_mapped_objects_),
            atomics::load_relaxed(&lent_bytes_),
            cache_.stats(),
            arena_.stats()};
  }

 private:
  // Registry tags: the state, and the header's offset in its 4 KiB slot in 16-byte units
  // (so that only the exact header address matches, not any pointer into its first slot).
  static constexpr std::uint16_t kLiveTag = 0x8000, kFreedTag = 0x4000;
  static std::uint16_t tag(const Block* b, std::uint16_t state) {
    const auto offset = reinterpret_cast<std::uintptr_t>(b) % platform::PageMap::kSlotBytes;
    return static_cast<std::uint16_t>(state | offset / 16);
  }
  void mark(const Block* b, std::uint16_t state) { registry_.set(b, 1, tag(b, state)); }

  // Whether the header of b, a live block by the registry, reads as one: kMapped | kInUse
  // (kLent only ever with kGrowing), a page-multiple length, and a lead within it.
  [[gnu::always_inline]] static bool header_sound(const Block* b) {
    const std::size_t header = b->size_flags_unlocked();
    const std::size_t flags = header & Block::kFlags;
    return (flags & ~(kGrowing | kLent)) == (kMapped | Block::kInUse) &&
           (flags & (kGrowing | kLent)) != kLent && b->prev_size < b->size() &&
           (header & (platform::page_size() - 1) & ~Block::kFlags) == 0;
  }

  // check_live()'s report, for b whose registry tag is `found`.
  [[gnu::noinline, gnu::cold, noreturn]] void report_not_live(const Block* b, std::uint16_t found,
                                                              const char* call) const {
    if (found == tag(b, kLiveTag)) report_misuse(call, "corrupted header of", payload_of(b));
    if (found == tag(b, kFreedTag)) {
      report_misuse(call, freed_block_problem(call), payload_of(b));
    }
    report_misuse(call, "invalid pointer", payload_of(b));
  }

  static Block* fail() {
    errno = ENOMEM;
    return nullptr;
  }
  static void* mapping_of(Block* b) { return reinterpret_cast<unsigned char*>(b) - b->prev_size; }
  // Address arithmetic only: b may be any value a caller's pointer gave (even null).
  static void* payload_of(const Block* b) {
    return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(b) + Block::kHeaderBytes);
  }

  // errno is kept: a mapping that cannot grow where it is will move instead.
  static bool resize_in_place(Block* b, std::size_t length) {
    const ErrnoPreserved saved;
    return platform::os_resize_in_place(mapping_of(b), b->size(), length);
  }

  // A plain block: a class-length mapping, from the cache if it has one of the class.
  Block* allocate_plain(std::size_t bytes, bool* fresh) {
    if (bytes > SIZE_MAX / 2) return fail();
    if (sliced_) {
      if (Block* b = allocate_sliced(bytes, fresh)) return b;
    }
    if (Block* b = allocate_cached(bytes, /*counts_misses=*/true)) {
      if (fresh != nullptr) *fresh = false;
      return b;
    }
    const std::size_t length = MappingCache::class_length(bytes + Block::kHeaderBytes);
    const bool huge = huge_pages_for(length);
    void* start = map_fresh(length, huge);
    if (start == nullptr) return nullptr;
    if (!registry_.prepare(start, 1)) {
      const ErrnoPreserved saved;
      platform::os_unmap(start, length);
      return nullptr;
    }
    if (!huge && gather(static_cast<unsigned char*>(start), length) && fresh != nullptr) {
      *fresh = false;
    }
    return install(start, length, 0);
  }

  // Whether a fresh mapping of `length` bytes is made for transparent huge pages: one of
  // kHugePageBytes or more, with POLYMALLOC_HUGE_PAGES on (the default). Such a mapping
  // gathers no cached pages: small pages moved into it would keep its huge pages from forming,
  // and (measured on a paravirtualized machine) each moved page costs a fault of its own when
  // next touched, where a huge page costs one fault for 512 pages.
  bool huge_pages_for(std::size_t length) const {
    return length >= platform::kHugePageBytes && huge_pages();
  }
  static void* map_fresh(std::size_t length, bool huge) {
    return huge ? platform::os_map_huge(length) : platform::os_map(length);
  }

  // Moves the pages of cached mappings, biggest first, into fresh mapping [start, start +
  // length) from its front, while what is left of it is kGatherFromBytes or more and the cache
  // has a mapping that fits there: a request no cached mapping holds alone is served by the
  // resident pages of several (mremap moves them; nothing is copied or faulted in), as a page
  // heap serves it from free spans. Whether any pages came (the memory is then not all zero).
  bool gather(unsigned char* start, std::size_t length) {
    const ErrnoPreserved saved;  // a move that fails leaves the rest fresh: not an error
    std::size_t filled = 0;
    std::size_t most = length;  // below any mapping that would not move
    while (length - filled >= kGatherFromBytes) {
      std::size_t got = 0;
      void* part =
          cache_.take_biggest_within(most < length - filled ? most : length - filled, &got);
      if (part == nullptr) break;
      if (!platform::os_move(part, got, got, start + filled)) {
        // Itself gathered from several kernel mappings (mremap moves one): it stays cached
        // for a request it holds alone.
        if (!cache_.put(part, got, platform::os_coarse_ms())) platform::os_unmap(part, got);
        most = got - platform::page_size();
        continue;
      }
      filled += got;
    }
    cache_.gathered(filled);
    return filled != 0;
  }

  // A plain block in the arena, or nullptr if it is too big for it or the arena has no room.
  Block* allocate_sliced(std::size_t bytes, bool* fresh) {
    const std::size_t length = SliceArena::run_bytes(bytes + Block::kHeaderBytes);
    if (length > SliceArena::kMaxRunBytes) return nullptr;
    bool zero = false;
    void* start = arena_.claim(length, huge_pages(), &zero, [this](void* region, std::size_t n) {
      return registry_.prepare(region, n);
    });
    if (start == nullptr) return nullptr;
    if (fresh != nullptr) *fresh = zero;
    return install(start, length, 0);
  }

  // An arena block that grows: over the free slices after it where it can, else moved to a
  // block of its new size. Into a fresh mapping (beyond the arena's runs) its pages move with
  // mremap, leaving its run mapped and empty: a copy would fault in every page of the new
  // mapping. Into a run of the arena, or a cached mapping, its bytes are copied: those pages
  // are likely resident, and moving pages out of the arena empties runs that the next
  // requests would fault in again (signal_safe's trace_large_blocks replay took 75-106 k
  // faults and 1.8 s with every move by mremap, 32 k and 0.5 s with copies).
  Block* resize_sliced(Block* b, std::size_t bytes) {
    const std::size_t old_length = b->size();
    const std::size_t length = SliceArena::run_bytes(bytes + Block::kHeaderBytes);
    if (length <= SliceArena::kMaxRunBytes && arena_.extend(b, old_length, length)) {
      b->set_size_flags(length | kMapped | Block::kInUse);
      solo::fetch_add_relaxed(&mapped_bytes_, length - old_length);
      note_peak();
      return b;
    }
    bool fresh = true;  // (allocate_plain() says only where it is not)
    Block* moved = allocate_plain(bytes, &fresh);
    if (moved == nullptr) return nullptr;
    const std::size_t moved_length = moved->size();
    const ErrnoPreserved saved;  // a move that cannot be done copies instead
    if (!fresh || arena_.holds(moved) || !platform::os_move_leaving_source(b, old_length, moved)) {
      std::memcpy(moved->payload(), b->payload(), usable_size(b));
      release(b);
      return moved;
    }
    moved->prev_size = 0;  // (b's header came with its pages)
    moved->set_size_flags(moved_length | kMapped | Block::kInUse);
    mark(b, kFreedTag);
    count(-1, old_length);
    arena_.free(b, old_length, 0, SliceArena::Pages::kGone);
    return moved;
  }

  // Makes the mapping at `start` (registered before: fresh and prepared, or cached) a live
  // plain block of `length` bytes.
  Block* install(void* start, std::size_t length, std::size_t flags) {
    Block* b = Block::at(start);
    b->prev_size = 0;
    b->set_size_flags(length | kMapped | Block::kInUse | flags);
    mark(b, kLiveTag);
    count(+1, length);
    return b;
  }

  // Moves b's mapping onto one of `length` bytes: a cached one if one fits (its pages past
  // b's stay resident, as allocate_cached() takes one), else a fresh one, whose header is
  // registered first (so the move cannot leave a block the registry does not know). nullptr
  // if no mapping can be had.
  Block* move(Block* b, std::size_t length) {
    const std::size_t flags = b->size_flags & kGrowing;  // b's memory moves away below
    unsigned char* destination = b->prev_size == 0 ? take_cached(length, true) : nullptr;
    if (destination == nullptr) {
      const bool huge = huge_pages_for(length);
      destination = static_cast<unsigned char*>(map_fresh(length, huge));
      if (destination == nullptr) return nullptr;
      if (!registry_.prepare(destination + b->prev_size, 1)) {
        const ErrnoPreserved saved;
        platform::os_unmap(destination, length);
        return nullptr;
      }
      if (!huge) gather(destination + b->size(), length - b->size());  // past b's pages
    }
    Block* moved = Block::at(destination + b->prev_size);
    // Marked freed before the move: the moment the old pages are gone another thread may map
    // a block at that address and mark it live, and that mark must stay.
    mark(b, kFreedTag);
    if (!platform::os_move(mapping_of(b), b->size(), b->size(), destination)) {
      // A mapping whose pages came from several (gather(), or a move into a cached one)
      // spans several kernel mappings, which mremap cannot move as one: its bytes are
      // copied instead.
      const ErrnoPreserved saved;
      std::memcpy(destination, mapping_of(b), b->size());
      platform::os_unmap(mapping_of(b), b->size());
    }
    moved->set_size_flags(length | kMapped | Block::kInUse | flags);
    mark(moved, kLiveTag);
    return moved;
  }

  // A cached mapping of class length `length` (the smallest cached one that holds it; a bigger
  // one's tail stays cached, keep_tail()), counted as a hit, and as a miss if it
  // `counts_misses`; nullptr if none.
  unsigned char* take_cached(std::size_t length, bool counts_misses) {
    std::size_t got = 0;
    void* cached = counts_misses ? cache_.take(length, &got) : cache_.take_if_cached(length, &got);
    if (cached != nullptr && got != length) {
      keep_tail(static_cast<unsigned char*>(cached) + length, got - length);
    }
    return static_cast<unsigned char*>(cached);
  }

  // How big a mapping may be lent now: what the cache's bound leaves of the lent bytes.
  std::size_t lendable_bytes() const {
    const std::size_t bound = cache_.bound();
    const std::size_t lent = atomics::load_relaxed(&lent_bytes_);
    return lent < bound ? bound - lent : 0;
  }

  // Lends cached mapping [start, start + length) to a growing block if the lent bytes stay
  // within the cache's bound (another thread may have lent one since lendable_bytes());
  // else it goes back to the cache and the block gets none (nullptr).
  Block* lend(void* start, std::size_t length) {
    if (solo::fetch_add_relaxed(&lent_bytes_, length) + length > cache_.bound()) {
      solo::fetch_sub_relaxed(&lent_bytes_, length);
      // (Still marked freed in the registry, as every cached mapping is.)
      if (!cache_.put(start, length, platform::os_coarse_ms())) platform::os_unmap(start, length);
      return nullptr;
    }
    return install(start, length, kGrowing | kLent);
  }

  void count(int objects, std::size_t bytes) {
    const std::size_t now =
        solo::fetch_add_relaxed(&mapped_objects_, static_cast<std::size_t>(objects)) + objects;
    solo::fetch_add_relaxed(&mapped_bytes_, objects > 0 ? bytes : 0 - bytes);
    if (objects > 0) {
      raise_peak(&peak_mapped_objects_, now);
      note_peak();
    }
  }

  void note_peak() { raise_peak(&peak_mapped_bytes_, atomics::load_relaxed(&mapped_bytes_)); }

  static void raise_peak(std::size_t* peak, std::size_t now) {
    std::size_t seen = atomics::load_relaxed(peak);
    while (now > seen && !solo::cas_relaxed(peak, seen, now)) {
    }
  }

  std::size_t mapped_bytes_ = 0;
  std::size_t mapped_objects_ = 0;
  std::size_t peak_mapped_bytes_ = 0;
  std::size_t peak_mapped_objects_ = 0;
  std::size_t lent_bytes_ = 0;
  LocalSetting<Setting::kHugePages> huge_pages_;
  bool sliced_ = false;
  platform::PageMap registry_;
  MappingCache cache_;
  SliceArena arena_;
};

}  // namespace polymalloc::allocator
