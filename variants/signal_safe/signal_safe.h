// signal_safe: a malloc that may be called from a signal handler that interrupted malloc, in
// the manner of libatomic_ops' AO_malloc. Free blocks sit on per-size-class lock-free stacks
// (ClassStacks, over layer 0's ABA-safe stack), with per-thread caches in front that a signal
// handler may interrupt (ReentrantCache); fresh memory is carved from a static arena and,
// once mmap is enabled, from mapped regions; blocks of 1 MiB and more are mappings of their
// own. No path takes a lock, allocates for itself, or calls into libc beyond raw system
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
inline constexpr const char* kEnableMmapVariable = "POLYMALLOC_SIGNAL_SAFE_MMAP";

// A header's words, in this variant (it has no boundary tags):
//   live block:    size_flags = class size | kInUse; prev_size = check word (check_of)
//   free block:    size_flags = class size [| kReleased]; prev_size = pool stack link or stale
//   aligned block: a second header just below the aligned payload, size_flags = kShifted |
//                  kInUse, prev_size = its distance from the block's own header
//   large block:   LargeObjects' header (kMapped | kInUse)
struct SignalSafeHeader {
  static constexpr std::size_t kInUse = allocator::Block::kInUse;
  static constexpr std::size_t kShifted = 2;  // Block's kPrevFree bit: no boundary tags here
  static constexpr std::size_t kMapped = allocator::LargeObjects::kMapped;
  static constexpr std::size_t kReleased = 8;  // a free block whose inner pages went back
};

template <atomics::AbaSafeStack Stack, class Arena>
class SignalSafeCore {
  using Block = allocator::Block;
  using BlockChain = allocator::BlockChain;
  using H = SignalSafeHeader;

 public:
  static constexpr const char* kName = "signal_safe";
  // Whether every path is lock-free (the counterpart of AO_MALLOC_IS_LOCK_FREE).
  static constexpr bool kIsLockFree = Stack::kIsLockFree;
  using Classes = allocator::PowerOfTwoClasses;
  // Blocks this big are mappings, as in the other variants; the classes below come from
  // the pool.
  static constexpr std::size_t kLargeBlockBytes = allocator::kLargeBlockBytes;
  static constexpr unsigned kClasses = Classes::index_of(kLargeBlockBytes / 2) + 1;
  // Blocks up to 8 KiB go through the thread caches.
  static constexpr std::size_t kMaxCachedBlock = std::size_t{8} << 10;
  static constexpr std::size_t kMaxCachedRequest = kMaxCachedBlock - Block::kHeaderBytes;
  static constexpr unsigned kCachedClasses = Classes::index_of(kMaxCachedBlock) + 1;
  // Fresh memory is carved for a class this much at a time (or one block, if bigger).
  static constexpr std::size_t kChunkBytes = std::size_t{16} << 10;

  // --- AllocatorCore ---

  // The fast path: a block from the caller's cache. Everything else (an empty bin, no cache
  // yet, a signal handler that interrupted the cache, larger requests) is allocate_slow's.
  [[gnu::always_inline]] static void* allocate(std::size_t bytes) {
    if (bytes <= kMaxCachedRequest) [[likely]] {
      const unsigned i = small_index(bytes);
      if (Cache* c = Caches::current(); c != nullptr && c->begin()) [[likely]] {
        Block* b = c->pop(i);
        c->end();
        if (b != nullptr) [[likely]]
          return hand_out(b, i);
      }
    }
    return allocate_slow(bytes);
  }

  static void* allocate_zeroed(std::size_t bytes) {
    if (block_for(bytes) == 0) return allocate_large(bytes, 16);  // fresh mappings are zero
    void* p = allocate(bytes);
    if (p != nullptr) std::memset(p, 0, bytes);
    return p;
  }

  // A block of the class that holds `bytes` plus the worst-case padding, with a second
  // header just below the aligned payload pointing back at the block's own.
  static void* allocate_aligned(std::size_t alignment, std::size_t bytes) {
    if (block_for(bytes) == 0 || block_for(bytes + alignment) == 0) {
      return allocate_large(bytes, alignment);
    }
    const unsigned i = Classes::index_of(block_for(bytes + alignment));
    Block* b = take(i);
    if (b == nullptr) return nullptr;
    auto* payload = static_cast<unsigned char*>(hand_out(b, i));
    const auto address = reinterpret_cast<std::uintptr_t>(payload);
    const std::size_t shift = ((address + alignment - 1) & ~(alignment - 1)) - address;
    if (shift == 0) return payload;
    Block* second = Block::of_payload(payload + shift);
    second->prev_size = shift;
    second->set_size_flags(H::kShifted | H::kInUse);
    return payload + shift;
  }

  // The fast path: a live block of a cached class into the caller's cache, if it has room.
  [[gnu::always_inline]] static void deallocate(void* p, const char* call) {
    Block* b = Block::of_payload(p);
    if (!in_pool(b)) [[unlikely]]
      return deallocate_outside_pool(b, call);
    const std::size_t header = b->size_flags_unlocked();
    const std::size_t size = Block::size_in(header);
    if (size <= kMaxCachedBlock && is_live_class_block(b, header)) [[likely]] {
      if (Cache* c = Caches::current(); c != nullptr && c->begin()) [[likely]] {
        const unsigned i = Classes::index_of(size);
        const bool cached = c->push(i, b);
        if (cached) [[likely]]
          mark_free(b, i);  // still inside the bracket: no handler sees the block meanwhile
        c->end();
        if (cached) [[likely]]
          return;
      }
    }
    deallocate_slow(p, call);
  }

  static void* reallocate(void* p, std::size_t bytes) {
    Block* b = Block::of_payload(p);
    if (!in_pool(b)) {
      large_.check_live(b, "realloc");
      if (block_for(bytes) == 0) return payload_of(large_.resize(b, bytes));
      return allocator::move_to_fresh<SignalSafeCore>(
          allocate(bytes), p, bytes);  // shrinking below the mapping threshold
    }
    const Block* own = own_block(p, "realloc");
    const std::size_t block = block_for(bytes);
    if (own == b && block == Block::size_in(b->size_flags_unlocked())) return p;
    return allocator::move_to_fresh<SignalSafeCore>(
        block == 0 ? allocate_large(bytes, 16) : allocate(bytes), p, bytes);
  }

  static std::size_t usable_size(const void* p) {
    const Block* b = Block::of_payload(const_cast<void*>(p));
    if (!in_pool(b)) {
      large_.check_live(b, "malloc_usable_size");
      return allocator::LargeObjects::usable_size(b);
    }
    const Block* own = own_block(const_cast<void*>(p), "malloc_usable_size");
    const std::size_t end = reinterpret_cast<std::uintptr_t>(own) + own->size();
    return end - reinterpret_cast<std::uintptr_t>(p);
  }

  // Pool memory (the arena or a mapped region: readable throughout), or the payload of a
  // live large block.
  static bool owns(const void* p) {
    const Block* b = Block::of_payload(const_cast<void*>(p));
    return in_pool(b) || large_.owns(b);
  }

  static bool freed_mapping(const void* p) {
    return large_.freed(Block::of_payload(const_cast<void*>(p)));
  }

  // Empties the caller's cache into the pool and gives back the inner pages of pooled free
  // blocks of two pages or more (the blocks themselves stay pooled: stacks need their
  // memory mapped). Smaller blocks are never returned: this allocator does not coalesce.
  static bool trim(std::size_t pad) {
    const allocator::ErrnoPreserved saved;
    flush_my_cache();
    bool released = false;
    std::size_t kept = 0;
    for (unsigned i = 0; i < kClasses; ++i) {
      if (Classes::size_of(i) < 2 * platform::page_size()) continue;
      BlockChain all = stacks_.take_all(i);
      for (Block* b = all.head; b != nullptr; b = next_of(b)) {
        if (kept < pad) {
          kept += Classes::size_of(i);
        } else {
          released |= release_pages(b);
        }
      }
      pool_chain(i, all);
    }
    return released;
  }

  static allocator::Statistics statistics() {
    allocator::Statistics s;
    s.variant = kName;
    const std::size_t released = atomics::load_relaxed(&released_bytes_);
    std::size_t free_bytes = 0, free_blocks = 0;
    for (unsigned i = 0; i < kClasses; ++i) {
      std::size_t n = stacks_.free_blocks(i);
      if (i < kCachedClasses) Caches::for_each([&](const Cache& c) { n += c.count(i); });
      free_blocks += n;
      free_bytes += n * Classes::size_of(i);
    }
    s.heap_committed_bytes = carved_bytes() - released;
    s.heap_peak_committed_bytes = atomics::load_relaxed(&peak_committed_bytes_);
    s.heap_free_bytes = free_bytes > released ? free_bytes - released : 0;
    s.heap_free_blocks = free_blocks;
    const auto large = large_.stats();
    s.mapped_bytes = large.mapped_bytes;
    s.mapped_objects = large.mapped_objects;
    s.peak_mapped_bytes = large.peak_mapped_bytes;
    s.peak_mapped_objects = large.peak_mapped_objects;
    return s;
  }

  // Checks the caller's cache, then every pooled block (taken off its stack and put back,
  // so it is safe while other threads run; they may meanwhile carve a little more).
  static const char* check_heap(const void** where) {
    if (Cache* c = Caches::mine(); c != nullptr && c->begin()) {
      const char* wrong = nullptr;
      for (unsigned i = 0; i < kCachedClasses && wrong == nullptr; ++i) {
        wrong = c->check(
            i, [i](const Block* b) { return check_free(b, i); }, where);
      }
      c->end();
      if (wrong != nullptr) return wrong;
    }
    const char* wrong = nullptr;
    for (unsigned i = 0; i < kClasses; ++i) {
      BlockChain all = stacks_.take_all(i);
      for (const Block* b = all.head; b != nullptr && wrong == nullptr; b = next_of(b)) {
        wrong = check_free(b, i);
        if (wrong != nullptr && where != nullptr) *where = b;
      }
      pool_chain(i, all);
    }
    return wrong;
  }

  // No locks of its own: fork needs only the stacks' (the lock table's, if built on it), and
  // the other threads' caches reclaimed in the child, after the stacks are usable again.
  static void prepare_fork() { Stack::prepare_fork(); }
  static void after_fork_in_parent() { Stack::after_fork_in_parent(); }
  static void after_fork_in_child() {
    Stack::after_fork_in_child();
    Caches::after_fork_in_child();
  }

  // --- signal_safe's own API ---

  // From now on, fresh memory may come from mmap once the arena is spent, and blocks of
  // 1 MiB and more are served (as mappings). Also enabled by POLYMALLOC_SIGNAL_SAFE_MMAP=1.
  static void enable_mmap() { atomics::store_release(&mmap_state_, kMmapOn); }

  static bool mmap_enabled() {
    std::uint32_t state = atomics::load_acquire(&mmap_state_);
    if (state == kMmapUnknown) [[unlikely]] {
      const std::uint32_t from_environment =
          platform::os_environment_enables(kEnableMmapVariable) ? kMmapOn : kMmapOff;
      if (atomics::cas_acq_rel(&mmap_state_, state, from_environment)) state = from_environment;
    }
    return state == kMmapOn;
  }

  static std::size_t block_for(std::size_t bytes) {
    return allocator::class_block_for<Classes>(bytes);
  }

  // Bytes of fresh memory taken from the arena and mapped regions so far.
  static std::size_t carved_bytes() { return arena_.used() + regions_.used(); }

 private:
  struct Backend;
  using Cache = allocator::ReentrantCache<Classes, kCachedClasses>;
  using Caches = allocator::ReentrantCaches<Cache, Backend>;
  struct Backend {
    static void flush_all(Cache& c) {
      for (unsigned i = 0; i < kCachedClasses; ++i) pool_chain(i, c.take_oldest(i, 0));
    }
  };

  static constexpr std::uint32_t kMmapUnknown = 0, kMmapOff = 1, kMmapOn = 2;

  // --- taking and giving blocks ---

  // The class index of a request of at most kMaxCachedRequest bytes, without branches:
  // blocks (header included) of up to 32 bytes are class 0, then one class per doubling.
  POLYMALLOC_HOT_PATH static unsigned small_index(std::size_t bytes) {
    return static_cast<unsigned>(std::bit_width((bytes + Block::kHeaderBytes - 1) | 31)) - 5;
  }

  [[gnu::noinline]] static void* allocate_slow(std::size_t bytes) {
    const std::size_t block = block_for(bytes);
    if (block == 0) return allocate_large(bytes, 16);
    const unsigned i = Classes::index_of(block);
    Block* b = take(i);
    return b != nullptr ? hand_out(b, i) : nullptr;
  }

  // free() of a pool block the fast path did not take: a full bin, no cache, an aligned
  // payload, or misuse.
  [[gnu::noinline]] static void deallocate_slow(void* p, const char* call) {
    Block* b = Block::of_payload(p);
    const std::size_t header = b->size_flags_unlocked();
    if (is_live_class_block(b, header))
      return give_back(b, Classes::index_of(Block::size_in(header)));
    Block* own = own_block(p, call);
    give_back(own, Classes::index_of(own->size()));
  }

  // free() of a header outside the pool's memory: a live large block, or misuse (which the
  // registry tells before the header is read: the address may not even be mapped).
  [[gnu::noinline]] static void deallocate_outside_pool(Block* b, const char* call) {
    large_.check_live(b, call);
    const allocator::ErrnoPreserved saved;
    large_.release(b);
  }

  // A free block of class i: from the caller's cache unless a signal handler interrupted
  // an operation on it, else from the pool, else freshly carved; nullptr with ENOMEM.
  POLYMALLOC_HOT_PATH static Block* take(unsigned i) {
    if (i < kCachedClasses) {
      if (Cache* c = Caches::mine(); c != nullptr && c->begin()) [[likely]] {
        Block* b = c->pop(i);
        if (b == nullptr) [[unlikely]]
          b = refill(*c, i);
        c->end();
        return b;
      }
    }
    return take_from_pool(i);
  }

  [[gnu::noinline]] static Block* refill(Cache& c, unsigned i) {
    BlockChain chain = stacks_.pop_batch(i, Cache::batch(i));
    if (chain.head == nullptr) chain = carve(i);
    if (chain.head == nullptr) return nullptr;
    c.fill(i, keep_first(i, chain, Cache::batch(i)));
    return c.pop(i);
  }

  [[gnu::noinline]] static Block* take_from_pool(unsigned i) {
    if (Block* b = stacks_.pop_one(i)) return b;
    BlockChain chain = carve(i);
    if (chain.head == nullptr) return nullptr;
    return keep_first(i, chain, 1).head;
  }

  // Marks a block live and returns its payload.
  POLYMALLOC_HOT_PATH static void* hand_out(Block* b, unsigned i) {
    const std::size_t old = b->size_flags_unlocked();
    if (old & H::kReleased) [[unlikely]]
      note_reuse_of_released(b);
    const std::size_t header = Classes::size_of(i) | H::kInUse;
    b->set_size_flags(header);
    b->prev_size = check_of(b, header);  // the secret is set: every block was carved first
    allocator::unpoison_live(b->payload(), Classes::size_of(i) - Block::kHeaderBytes);
    return b->payload();
  }

  // Frees a live block of class i: into the caller's cache (a full bin first sends its
  // oldest batch to the pool), else straight to the pool.
  static void give_back(Block* b, unsigned i) {
    if (i < kCachedClasses) {
      if (Cache* c = Caches::mine(); c != nullptr && c->begin()) {
        if (!c->push(i, b)) spill(*c, i, b);
        mark_free(b, i);
        c->end();
        return;
      }
    }
    mark_free(b, i);
    stacks_.push_one(i, b);
  }

  POLYMALLOC_HOT_PATH static void mark_free(Block* b, unsigned i) {
    b->set_size_flags(Classes::size_of(i));
    allocator::poison_free(b->payload(), Classes::size_of(i) - Block::kHeaderBytes);
  }

  [[gnu::noinline]] static void spill(Cache& c, unsigned i, Block* b) {
    stacks_.push_batch(i, c.take_oldest(i, Cache::batch(i)));
    c.push(i, b);
  }

  static void flush_my_cache() {
    if (Cache* c = Caches::mine(); c != nullptr && c->begin()) {
      Backend::flush_all(*c);
      c->end();
    }
  }

  // Returns the first n blocks of a chain and pools the rest, in batches for cached
  // classes (so that caches refill with one operation) and singly for the others.
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

  // Pools a whole chain of class i.
  POLYMALLOC_UNCHECKED_BY_ASAN static void pool_chain(unsigned i, BlockChain chain) {
    const std::uint32_t batch = i < kCachedClasses ? Cache::batch(i) : 1;
    while (chain.head != nullptr) {
      Block* first = chain.head;
      Block* last = first;
      std::uint32_t n = 1;
      for (; n < batch && next_of(last) != nullptr; ++n) last = next_of(last);
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
    choose_secret();
    const std::size_t size = Classes::size_of(i);
    const std::size_t chunk = size > kChunkBytes ? size : kChunkBytes;
    auto* base = static_cast<unsigned char*>(arena_.grow(chunk));
    if (base == nullptr && mmap_enabled()) base = static_cast<unsigned char*>(regions_.grow(chunk));
    if (base == nullptr) {
      errno = ENOMEM;
      return {};
    }
    note_committed();
    const auto count = static_cast<std::uint32_t>(chunk / size);
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

  // The check word of a live header: ties it to its address and a per-process secret, so
  // that a pointer this allocator did not hand out, or a header a buffer overflow wrote
  // over, is told from a live block.
  POLYMALLOC_HOT_PATH static std::size_t check_of(const Block* b, std::size_t header) {
    return reinterpret_cast<std::uintptr_t>(b) ^ header ^ atomics::load_relaxed(&secret_);
  }

  POLYMALLOC_HOT_PATH static bool is_live_class_block(const Block* b, std::size_t header) {
    const std::size_t size = Block::size_in(header);
    return (header & Block::kFlags) == H::kInUse && Classes::is_class_size(size) &&
           size < kLargeBlockBytes && b->prev_size == check_of(b, header);
  }

  // Whether b is a 16-byte-aligned address in the arena or a mapped region: memory whose
  // header may be read (a class block's or not), as nothing else's may before it is checked.
  POLYMALLOC_HOT_PATH static bool in_pool(const Block* b) {
    if (reinterpret_cast<std::uintptr_t>(b) % 16 != 0) [[unlikely]]
      return false;
    return arena_.spans(b) || regions_.contains(b);
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
      if (shift % 16 != 0 || shift >= kLargeBlockBytes) {
        allocator::report_misuse(call, "invalid pointer", p);
      }
      b = Block::at(reinterpret_cast<unsigned char*>(b) - shift);
      if (!in_pool(b)) allocator::report_misuse(call, "invalid pointer", p);
    }
    const std::size_t header = b->size_flags_unlocked();
    const std::size_t size = Block::size_in(header);
    const bool class_size = Classes::is_class_size(size) && size < kLargeBlockBytes;
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
    if (Block::size_in(header) != Classes::size_of(i)) return "free block of the wrong class";
    return nullptr;
  }

  // --- memory accounting ---

  static void note_committed() {
    const std::size_t now = carved_bytes() - atomics::load_relaxed(&released_bytes_);
    std::size_t peak = atomics::load_relaxed(&peak_committed_bytes_);
    while (now > peak && !atomics::cas_relaxed(&peak_committed_bytes_, peak, now)) {
    }
  }

  // The whole pages of a free block past its header and links, which trim may give back.
  static std::pair<unsigned char*, std::size_t> inner_pages(Block* b) {
    const std::size_t page = platform::page_size();
    const auto start =
        (reinterpret_cast<std::uintptr_t>(b) + sizeof(Block) + page - 1) & ~(page - 1);
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

  [[gnu::noinline]] static void note_reuse_of_released(Block* b) {
    atomics::fetch_sub_relaxed(&released_bytes_, inner_pages(b).second);
  }

  // --- small helpers ---

  static void* payload_of(Block* b) { return b != nullptr ? b->payload() : nullptr; }

  static void* allocate_large(std::size_t bytes, std::size_t alignment) {
    if (!mmap_enabled()) {
      errno = ENOMEM;
      return nullptr;
    }
    return payload_of(large_.allocate(bytes, alignment));
  }

  POLYMALLOC_UNCHECKED_BY_ASAN static Block* next_of(const Block* b) {
    return b->next_unchecked();  // lock-free readers may read a reused block's link
  }
  POLYMALLOC_UNCHECKED_BY_ASAN static void set_next(Block* b, Block* next) { b->set_next(next); }

  // Sets the per-process secret from the kernel's AT_RANDOM bytes, before the first block is
  // carved (so before any is handed out). Every thread computes the same value, so the race
  // to store it is benign.
  static void choose_secret() {
    if (atomics::load_relaxed(&secret_) != 0) return;
    atomics::store_relaxed(&secret_, platform::os_random_word());
  }

  static inline constinit allocator::ClassStacks<Stack, kClasses> stacks_{};
  static inline constinit Arena arena_{};
  static inline constinit platform::MappedRegions regions_{};
  static inline constinit allocator::LargeObjects large_{};
  static inline constinit std::uint32_t mmap_state_ = kMmapUnknown;
  static inline constinit std::size_t released_bytes_ = 0;
  static inline constinit std::size_t peak_committed_bytes_ = 0;
  static inline constinit std::uintptr_t secret_ = 0;
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
