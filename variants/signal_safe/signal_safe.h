// signal_safe: a malloc that may be called from a signal handler that interrupted malloc, in
// the manner of libatomic_ops' AO_malloc. Free blocks sit on per-size-class lock-free stacks
// (ClassStacks, over layer 0's ABA-safe stack), with per-thread caches in front that a signal
// handler may interrupt (ReentrantCache); fresh memory is carved from a static arena and,
// once mmap is enabled, from mapped regions; blocks of 1 MiB and more lie side by side in a
// lock-free arena of slices (allocator/slice_arena.h) up to 8 MiB, and beyond are mappings
// of their own. No path takes a lock, allocates for itself, or calls into libc beyond raw system
// calls. With double-width CAS (x86-64) every path is lock-free; with the LL/SC emulation
// it is 1-lock-free. Meets allocator::AllocatorCore.
#pragma once

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "allocator/allocator.h"
#include "allocator/class_stacks.h"
#include "allocator/reentrant_cache.h"
#include "atomics/atomics.h"
#include "platform/mapped_regions.h"
#include "platform/platform.h"
#include "variants/signal_safe/arena_setting.h"

namespace polymalloc::variants {

// The environment variable that enables mmap at start-up (as the API call does).

// A header's words, in this variant (it has no boundary tags):
//   live block:    size_flags = class size | kInUse; prev_size = check word (check_of)
//   free block:    size_flags = class size [| kReleased]; prev_size = pool stack link or stale
//   aligned block: a second header just below the aligned payload, size_flags = kShifted |
//                  kInUse, prev_size = its distance from the block's own header
//   large block:   LargeObjects' header (kMapped | kInUse)
struct SignalSafeHeader {
  static constexpr std::size_t kInUse = allocator::Block::kInUse;
  static constexpr std::size_t kShifted = allocator::Block::kShifted;
  static constexpr std::size_t kMapped = allocator::Block::kMapped;
  static constexpr std::size_t kReleased = allocator::Block::kReleased;
};

// The pool (a ClassPool, class_core.h): per-class lock-free stacks over the arena and the
// mapped regions, and what a header means in this variant.
template <atomics::AbaSafeStack Stack, class Arena>
class StackPool {
  using Block = allocator::Block;
  using BlockChain = allocator::BlockChain;
  using H = SignalSafeHeader;

 public:
  using Map = allocator::SizeMap<allocator::PowerOfTwoClasses>;
  static constexpr bool kIsLockFree = Stack::kIsLockFree;
  // Fresh memory is carved for a class this much at a time (or one block, if bigger).
  static constexpr std::size_t kChunkBytes = std::size_t{16} << 10;

  // ---- hot ----

  // Whether b is a 16-byte-aligned address in the arena or a mapped region: memory whose
  // header may be read (a class block's or not), as nothing else's may before it is checked.
  [[gnu::always_inline]] static bool owns(const Block* b) {
    if (reinterpret_cast<std::uintptr_t>(b) % 16 != 0) [[unlikely]]
      return false;
    return arena_.spans(b) || regions_.contains(b);
  }

  // A live header has only kInUse among its flags and its check word. A cached block's
  // header reads free (mark_cached()), so the cache's key need not be checked on free.
  static constexpr std::size_t kLiveFlags = Block::kFlags;
  static constexpr std::size_t kUncachedFlags = 0;
  static constexpr bool kCachedByKey = false;
  POLYMALLOC_HOT_PATH static bool seal_intact(const Block* b, std::size_t header) {
    return b->prev_size == check_of(b, header);
  }
  POLYMALLOC_HOT_PATH static bool is_live(const Block* b, std::size_t header) {
    return (header & Block::kFlags) == H::kInUse && seal_intact(b, header);
  }

  // Marks a block live and returns its payload. Its check word is in place already: sealed
  // when it left the pool (take(), allocate()), and kept while it sits in a cache (the cache
  // guards the payload, mark_cached() clears kInUse only). A block whose pages trim
  // released has been reclaimed before it got here. Between a cache and the client, no
  // other thread reads the header, and a signal handler cannot reach the block.
  POLYMALLOC_HOT_PATH static void* hand_out(Block* b, unsigned i) {
    b->set_flags_unshared(H::kInUse);  // (the header reads the class size: mark_cached())
    allocator::unpoison_live(b->payload(), Map::block_size(i) - Block::kHeaderBytes);
    return b->payload();
  }

  // The header of a block the core caches read its class size | kInUse exactly (its flags
  // were checked: kLiveFlags), and now reads the size alone; the check word stays, for
  // hand_out(). (release() calls it too, on a block own_block() found live.)
  POLYMALLOC_HOT_PATH static void mark_cached(Block* b, unsigned i) {
    b->clear_flags_unshared(H::kInUse);
    allocator::poison_free(b->payload(), Map::block_size(i) - Block::kHeaderBytes);
  }

  // ---- slow ----

  // A batch from the pool, else freshly carved (the first n kept, the rest pooled).
  [[gnu::noinline]] static BlockChain take(unsigned i, std::uint32_t n) {
    BlockChain chain = stacks_.pop_batch(i, n);
    if (chain.head == nullptr) chain = carve(i);
    chain = keep_first(i, chain, n);
    const bool releasable = Map::block_size(i) >= kMinReleasableBlock;
    for (Block* b = chain.head; b != nullptr; b = next_of(b)) {
      if (releasable) reclaim_if_released(b);
      seal(b, i);
    }
    return chain;
  }

  static void give(unsigned i, BlockChain chain) {
    if (Map::block_size(i) >= kMinReleasableBlock) {
      for (Block* b = chain.head; b != nullptr; b = next_of(b)) date_or_release(b);
    }
    pool_chain(i, chain);
  }

  [[gnu::noinline]] static Block* allocate(unsigned i) {
    Block* b = stacks_.pop_one(i);
    if (b == nullptr) {
      BlockChain chain = carve(i);
      if (chain.head == nullptr) return nullptr;
      b = keep_first(i, chain, 1).head;
    }
    reclaim_if_released(b);
    seal(b, i);
    hand_out(b, i);
    return b;
  }

  // An aligned payload inside the payload p of a live block of the class that holds the
  // request plus `alignment` (the core allocates it, through the caches), with a second
  // header just below it pointing back at the block's own.
  static void* align_in_block(void* p, std::size_t alignment) {
    auto* payload = static_cast<unsigned char*>(p);
    const auto address = reinterpret_cast<std::uintptr_t>(payload);
    const std::size_t shift = ((address + alignment - 1) & ~(alignment - 1)) - address;
    if (shift == 0) return payload;
    Block* second = Block::of_payload(payload + shift);
    second->prev_size = shift;
    second->set_size_flags(H::kShifted | H::kInUse);
    return payload + shift;
  }

  // The block an aligned payload p lies in, checked (reports `call`'s misuse if there is
  // none); nullptr if p is not an aligned payload.
  static Block* block_of_aligned(void* p, const char* call) {
    return shifted(Block::of_payload(p)) ? own_block(p, call) : nullptr;
  }

  // A block the core did not cache: straight to the pool. True when its class is too small
  // to give pages back (ClassPool::release()).
  static bool release(void* p, const char* call) {
    Block* b = own_block(p, call);
    const unsigned i = Map::class_of_block(b->size());
    mark_cached(b, i);
    const bool releasable = Map::block_size(i) >= kMinReleasableBlock;
    if (releasable) date_or_release(b);
    stacks_.push_one(i, b);
    return !releasable;
  }

  static std::size_t usable_size(const void* p, const char* call) {
    const Block* own = own_block(const_cast<void*>(p), call);
    const std::size_t end = reinterpret_cast<std::uintptr_t>(own) + own->size();
    return end - reinterpret_cast<std::uintptr_t>(p);
  }

  // In place only when the class stays the same for a block's own payload.
  static void* resize(void* p, std::size_t block) {
    const Block* own = own_block(p, "realloc");
    if (own == Block::of_payload(p) && block == own->size()) return p;
    return nullptr;
  }

  static bool large_blocks_enabled() { return mmap_enabled(); }
  // No coalescing: blocks do not grow where they lie, and there is no heap for large blocks
  // (so the core keeps them side by side in its lock-free slice arena); a block that grows
  // past its class moves into a cached mapping if there is one.
  static constexpr bool kServesLargeBlocks = false;
  static constexpr bool kGrowsIntoCachedMappings = true;

  // Gives back the inner pages of pooled free blocks of two pages or more (the blocks
  // themselves stay pooled: stacks need their memory mapped). Smaller blocks are never
  // returned: this allocator does not coalesce.
  static bool trim(std::size_t pad) {
    bool released = false;
    std::size_t kept = 0;
    for (unsigned i = 0; i < Map::kClasses; ++i) {
      if (Map::block_size(i) < 2 * platform::page_size()) continue;
      BlockChain all = stacks_.take_all(i);
      for (Block* b = all.head; b != nullptr; b = next_of(b)) {
        if (kept < pad) {
          kept += Map::block_size(i);
        } else {
          released |= release_pages(b);
        }
      }
      pool_chain(i, all);
    }
    return released;
  }

  // Decay: pooled blocks of two pages or more that became free at or before `cutoff_ms` give
  // their inner pages back (the blocks stay pooled: the stacks need their memory mapped).
  static void release_aged(std::uint64_t cutoff_ms) {
    for (unsigned i = 0; i < Map::kClasses; ++i) {
      if (Map::block_size(i) < kMinReleasableBlock) continue;
      BlockChain all = stacks_.take_all(i);
      for (Block* b = all.head; b != nullptr; b = next_of(b)) {
        if (freed_at(b) <= cutoff_ms) release_pages(b);
      }
      pool_chain(i, all);
    }
  }

  static void add_statistics(allocator::Statistics& s) {
    const std::size_t released = atomics::load_relaxed(&released_bytes_);
    std::size_t free_bytes = 0, free_blocks = 0;
    for (unsigned i = 0; i < Map::kClasses; ++i) {
      const std::size_t n = stacks_.free_blocks(i);
      free_blocks += n;
      free_bytes += n * Map::block_size(i);
    }
    s.heap_committed_bytes = carved_bytes() - released;
    s.heap_peak_committed_bytes = atomics::load_relaxed(&peak_committed_bytes_);
    s.heap_free_bytes = free_bytes > released ? free_bytes - released : 0;
    s.heap_free_blocks = free_blocks;
    s.released_bytes = released;
    s.released_in_committed = false;
  }

  // Pooled blocks are free: under kHoleBytes they are holes (bound to their class, never
  // merged), bigger ones reusable except for their released pages. Everything else carved is
  // live (the caches' blocks included, as the core expects).
  static void add_breakdown(allocator::MemoryBreakdown& parts) {
    const std::size_t carved_bytes_now = carved_bytes();
    std::size_t in_blocks = 0;
    for (unsigned i = 0; i < Map::kClasses; ++i) {
      const std::size_t size = Map::block_size(i);
      const std::size_t carved = atomics::load_relaxed(&carved_blocks_[i]);
      in_blocks += carved * size;
      std::size_t free = stacks_.free_blocks(i);
      if (free > carved) free = carved;  // (counts read while other threads run)
      (size < allocator::kHoleBytes ? parts.hole_bytes : parts.reusable_bytes) += free * size;
      parts.live_blocks += carved - free;
      parts.header_bytes += (carved - free) * Block::kHeaderBytes;
      parts.live_bytes += (carved - free) * (size - Block::kHeaderBytes);
    }
    std::size_t released = atomics::load_relaxed(&released_bytes_);
    if (released > parts.reusable_bytes) released = parts.reusable_bytes;
    parts.reusable_bytes -= released;
    parts.released_bytes += released;
    parts.structure_bytes += carved_bytes_now > in_blocks ? carved_bytes_now - in_blocks : 0;
  }

  // Every pooled block (taken off its stack and put back, so it is safe while other threads
  // run; they may meanwhile carve a little more).
  static const char* check(const void** where) {
    const char* wrong = nullptr;
    for (unsigned i = 0; i < Map::kClasses; ++i) {
      BlockChain all = stacks_.take_all(i);
      for (const Block* b = all.head; b != nullptr && wrong == nullptr; b = next_of(b)) {
        wrong = check_free(b, i);
        if (wrong != nullptr && where != nullptr) *where = b;
      }
      pool_chain(i, all);
    }
    return wrong;
  }

  // No locks of its own: fork needs only the stacks' (the lock table's, if built on it).
  static void prepare_fork() { Stack::prepare_fork(); }
  static void after_fork_in_parent() { Stack::after_fork_in_parent(); }
  static void after_fork_in_child() { Stack::after_fork_in_child(); }

  // --- signal_safe's own API ---

  // From now on, fresh memory may come from mmap once the arena is spent, and blocks of
  // 1 MiB and more are served (from the slice arena, or as mappings). Also enabled by
  // POLYMALLOC_SIGNAL_SAFE_MMAP=1.
  static void enable_mmap() { atomics::store_release(&mmap_state_, kMmapOn); }

  static bool mmap_enabled() {
    std::uint32_t state = atomics::load_acquire(&mmap_state_);
    if (state == kMmapUnknown) [[unlikely]]
      state = settle_mmap(allocator::Settings::value(allocator::Setting::kSignalSafeMmap));
    return state == kMmapOn;
  }

  // As the process malloc, mmap is on unless POLYMALLOC_SIGNAL_SAFE_MMAP=0 says otherwise:
  // raw mmap is async-signal-safe on Linux, and a program that preloads this variant expects
  // more than the static arena. (The prefixed API keeps AO_malloc's opt-in.)
  static void use_process_malloc_defaults() {
    if (atomics::load_acquire(&mmap_state_) != kMmapUnknown) return;
    settle_mmap(allocator::Settings::value(allocator::Setting::kSignalSafeMmap, 1,
                                           allocator::SettingSource::kDefault));
  }

  // Bytes of fresh memory taken from the arena and mapped regions so far.
  static std::size_t carved_bytes() { return arena_.used() + regions_.used(); }

 private:
  static constexpr std::uint32_t kMmapUnknown = 0, kMmapOff = 1, kMmapOn = 2;
  // The mmap state a setting's value asks for, unless enable_mmap() or another reader
  // settled it first: the state it has now.
  static std::uint32_t settle_mmap(std::int64_t on) {
    std::uint32_t state = kMmapUnknown;
    const std::uint32_t wanted = on != 0 ? kMmapOn : kMmapOff;
    return atomics::cas_acq_rel(&mmap_state_, state, wanted) ? wanted : state;
  }
  // Cached classes move between cache and pool in batches of this many.
  static constexpr std::uint32_t kBatch = 32;
  // Only blocks of two pages or more can have inner pages to release (pages of 4 KiB at
  // least).
  static constexpr std::size_t kMinReleasableBlock = std::size_t{8} << 10;

  // Returns the first n blocks of a chain and pools the rest.
  POLYMALLOC_UNCHECKED_BY_ASAN static BlockChain keep_first(unsigned i, BlockChain chain,
                                                            std::uint32_t n) {
    if (chain.count <= n) return chain;
    Block* last = chain.head;
    for (std::uint32_t k = 1; k < n; ++k) last = next_of(last);
    BlockChain rest{next_of(last), chain.count - n};
    set_next(last, nullptr);
    pool_chain(i, rest);
    return BlockChain{chain.head, n};
  }

  // Pools a whole chain of class i, in batches (so that a cache refills with one operation).
  POLYMALLOC_UNCHECKED_BY_ASAN static void pool_chain(unsigned i, BlockChain chain) {
    while (chain.head != nullptr) {
      Block* first = chain.head;
      Block* last = first;
      std::uint32_t n = 1;
      for (; n < kBatch && next_of(last) != nullptr; ++n) last = next_of(last);
      chain = BlockChain{next_of(last), chain.count - n};
      set_next(last, nullptr);
      if (n == 1) {
        stacks_.push_one(i, first);
      } else {
        stacks_.push_batch(i, BlockChain{first, n});
      }
    }
  }

  // Fresh blocks of class i, chained in address order: a chunk from the arena, else (once
  // enabled) from a mapped region; empty with errno = ENOMEM when neither has room.
  [[gnu::noinline]] POLYMALLOC_UNCHECKED_BY_ASAN static BlockChain carve(unsigned i) {
    allocator::choose_process_secret();
    const std::size_t size = Map::block_size(i);
    const std::size_t chunk = size > kChunkBytes ? size : kChunkBytes;
    auto* base = static_cast<unsigned char*>(arena_.grow(chunk));
    if (base == nullptr && mmap_enabled()) base = static_cast<unsigned char*>(regions_.grow(chunk));
    if (base == nullptr) {
      errno = ENOMEM;
      return {};
    }
    note_committed();
    const auto count = static_cast<std::uint32_t>(chunk / size);
    atomics::fetch_add_relaxed(&carved_blocks_[i], std::size_t{count});
    Block* head = nullptr;
    for (std::uint32_t k = count; k-- > 0;) {
      Block* b = Block::at(base + k * size);
      b->set_size_flags(size);
      set_next(b, head);
      allocator::poison_free(b->payload(), size - Block::kHeaderBytes);
      head = b;
    }
    return BlockChain{head, count};
  }

  // --- validation ---

  // The check word of a live header: ties it to its address and the process secret, so that
  // a pointer this allocator did not hand out, or a header a buffer overflow wrote over, is
  // told from a live block.
  POLYMALLOC_HOT_PATH static std::size_t check_of(const Block* b, std::size_t header) {
    return reinterpret_cast<std::uintptr_t>(b) ^ header ^ allocator::process_secret();
  }

  // Writes the check word a live block of class i will have (over the pool's stack link),
  // before the block leaves the pool. The secret is set: every block was carved first.
  POLYMALLOC_UNCHECKED_BY_ASAN static void seal(Block* b, unsigned i) {
    b->prev_size = check_of(b, Map::block_size(i) | H::kInUse);
  }

  static bool is_live_class_block(const Block* b, std::size_t header) {
    const std::size_t size = Block::size_in(header);
    return is_live(b, header) && Map::class_of_block(size) != Map::kNotAClass;
  }

  static bool shifted(const Block* b) {
    return (b->size_flags_unlocked() & Block::kFlags) == (H::kShifted | H::kInUse);
  }

  // The live class block that payload p belongs to (p may be an aligned payload inside
  // it); reports misuse by `call` if there is none.
  static Block* own_block(void* p, const char* call) {
    Block* b = Block::of_payload(p);
    if (shifted(b)) {
      const std::size_t shift = b->prev_size;
      if (shift % 16 != 0 || shift >= allocator::kLargeBlockBytes) {
        allocator::report_misuse(call, "invalid pointer", p);
      }
      b = Block::at(reinterpret_cast<unsigned char*>(b) - shift);
      if (!owns(b)) allocator::report_misuse(call, "invalid pointer", p);
    }
    const std::size_t header = b->size_flags_unlocked();
    const std::size_t size = Block::size_in(header);
    const bool class_size = Map::class_of_block(size) != Map::kNotAClass;
    const bool inside = static_cast<unsigned char*>(p) < reinterpret_cast<unsigned char*>(b) + size;
    if (is_live_class_block(b, header) && inside) return b;
    if (class_size && inside && (header & (H::kInUse | H::kMapped | H::kShifted)) == 0) {
      allocator::report_misuse(call, allocator::freed_block_problem(call), p);
    }
    allocator::report_misuse(call, "invalid pointer", p);
  }

  // nullptr if b is a sound free block of class i, else what is wrong with it.
  static const char* check_free(const Block* b, unsigned i) {
    const std::size_t header = b->size_flags_unlocked();
    if (!arena_.contains(b) && !regions_.contains(b)) return "free block outside the heap";
    if (reinterpret_cast<std::uintptr_t>(b) % 16 != 0) return "misaligned free block";
    if (header & H::kInUse) return "free block marked in use";
    if (Block::size_in(header) != Map::block_size(i)) return "free block of the wrong class";
    return nullptr;
  }

  // --- memory accounting ---

  static void note_committed() {
    const std::size_t now = carved_bytes() - atomics::load_relaxed(&released_bytes_);
    std::size_t peak = atomics::load_relaxed(&peak_committed_bytes_);
    while (now > peak && !atomics::cas_relaxed(&peak_committed_bytes_, peak, now)) {
    }
  }

  // A pooled block's dating word (decay), past its header and the stacks' links.
  // A pooled block of two pages or more on its way into the pool: dated, for decay, or with
  // the delay at 0 (decay at once), its inner pages given back now.
  static void date_or_release(Block* b) {
    if (allocator::Decay::delay_ms() == 0) [[unlikely]] {
      release_pages(b);
    } else {
      date(b);
    }
  }

  // It lies in poisoned (free) memory: it is read and written only by these unchecked two.
  POLYMALLOC_UNCHECKED_BY_ASAN static std::uint64_t freed_at(const Block* b) {
    return *dating_word(b);
  }
  POLYMALLOC_UNCHECKED_BY_ASAN static void date(Block* b) {
    *dating_word(b) = platform::os_coarse_ms();
  }
  static std::uint64_t* dating_word(const Block* b) {
    return reinterpret_cast<std::uint64_t*>(reinterpret_cast<std::uintptr_t>(b) + sizeof(Block));
  }

  // The whole pages of a free block past its header, links and dating word, which trim and
  // decay may give back.
  static std::pair<unsigned char*, std::size_t> inner_pages(Block* b) {
    const std::size_t page = platform::page_size();
    const auto start =
        (reinterpret_cast<std::uintptr_t>(b) + sizeof(Block) + 8 + page - 1) & ~(page - 1);
    const auto end = (reinterpret_cast<std::uintptr_t>(b) + b->size()) & ~(page - 1);
    return {reinterpret_cast<unsigned char*>(start), end > start ? end - start : 0};
  }

  static bool release_pages(Block* b) {
    const std::size_t header = b->size_flags_unlocked();
    if (header & H::kReleased) return false;
    const auto [start, bytes] = inner_pages(b);
    if (bytes == 0 || !platform::os_release_pages(start, bytes)) return false;
    b->set_size_flags(header | H::kReleased);
    atomics::fetch_add_relaxed(&released_bytes_, bytes);
    return true;
  }

  // A block whose inner pages trim released is in use again (they come back as zero pages
  // on first touch): its pages no longer count as released.
  static void reclaim_if_released(Block* b) {
    const std::size_t header = b->size_flags_unlocked();
    if ((header & H::kReleased) == 0) return;
    atomics::fetch_sub_relaxed(&released_bytes_, inner_pages(b).second);
    b->set_size_flags(header & ~H::kReleased);
  }

  POLYMALLOC_UNCHECKED_BY_ASAN static Block* next_of(const Block* b) {
    return b->next_unchecked();  // lock-free readers may read a reused block's link
  }
  POLYMALLOC_UNCHECKED_BY_ASAN static void set_next(Block* b, Block* next) { b->set_next(next); }

  static inline constinit allocator::ClassStacks<Stack, Map::kClasses> stacks_{};
  // Blocks carved for each class so far (carving is the only way blocks come to be).
  static inline constinit std::size_t carved_blocks_[Map::kClasses]{};
  static inline constinit Arena arena_{};
  static inline constinit platform::MappedRegions regions_{};
  static inline constinit std::uint32_t mmap_state_ = kMmapUnknown;
  static inline constinit std::size_t released_bytes_ = 0;
  static inline constinit std::size_t peak_committed_bytes_ = 0;
};

// Blocks up to 8 KiB go through the thread caches.
inline constexpr std::size_t kSignalSafeMaxCachedBlock = std::size_t{8} << 10;

template <atomics::AbaSafeStack Stack, class Arena>
struct SignalSafeConfig {
  static constexpr const char* kName = "signal_safe";
  using Pool = StackPool<Stack, Arena>;
  using Map = typename Pool::Map;
  using Cache = allocator::ReentrantCache<Map, Map::classes_up_to(kSignalSafeMaxCachedBlock)>;
  using Caches = allocator::ReentrantCaches<Cache, allocator::ClassCore<SignalSafeConfig>>;
};

// The variant: the one core over the pool, and signal_safe's own API.
template <atomics::AbaSafeStack Stack, class Arena>
class SignalSafeCore : public allocator::ClassCore<SignalSafeConfig<Stack, Arena>> {
  using Pool = StackPool<Stack, Arena>;

 public:
  // Whether every path is lock-free (the counterpart of AO_MALLOC_IS_LOCK_FREE).
  static constexpr bool kIsLockFree = Pool::kIsLockFree;
  static void enable_mmap() { Pool::enable_mmap(); }
  static bool mmap_enabled() { return Pool::mmap_enabled(); }
  static void use_process_malloc_defaults() { Pool::use_process_malloc_defaults(); }
  static std::size_t carved_bytes() { return Pool::carved_bytes(); }
};

// The variant as built: the configured ABA-safe stack and a static arena of the configured
// size (--//variants/signal_safe:arena_kib, 2048 by default).
static_assert(kConfiguredArenaKib >= 64 && kConfiguredArenaKib % 4 == 0,
              "--//variants/signal_safe:arena_kib must be a multiple of 4, at least 64");
using SignalSafe =
    SignalSafeCore<atomics::DefaultStack,
                   platform::StaticArena<static_cast<std::size_t>(kConfiguredArenaKib) << 10>>;

static_assert(allocator::OwnershipAwareCore<SignalSafe>);

}  // namespace polymalloc::variants
