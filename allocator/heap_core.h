// The AllocatorCore of the heap-based variants: requests are rounded (header included) to a
// size class of the Placement's policy and served by LockedHeaps, and blocks of 1 MiB or more are
// mappings of their own. Where a block comes from and which heap owns an address is the Placement's
// choice, which is all that distinguishes global_spinlock (one heap) from partitioned (one heap per
// partition, thread caches in front).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "allocator/block.h"
#include "allocator/core.h"
#include "allocator/errno_preserved.h"
#include "allocator/large_objects.h"
#include "allocator/report.h"
#include "allocator/size_class.h"
#include "allocator/statistics.h"

namespace polymalloc::allocator {

// What a Placement provides. `block` is always a class size below kLargeBlockBytes.
template <class P>
concept HeapPlacement = requires(typename P::Heap& heap, Block* b, const void* p, std::size_t n,
                                 const char* call, Statistics& s, const void** where) {
  { P::kName } -> std::convertible_to<const char*>;
  // The size-class policy (size_class.h) blocks are rounded by.
  { P::Classes::round_up(n) } -> std::same_as<std::size_t>;
  // A live block of at least n bytes, or nullptr with errno = ENOMEM.
  { P::allocate(n) } -> std::same_as<Block*>;
  { P::allocate_aligned(n, n) } -> std::same_as<Block*>;
  // The heap whose memory holds p, or nullptr: constant time, no lock.
  { P::owner_of(p) } -> std::same_as<typename P::Heap*>;
  // Frees block b of `heap` (which may mean caching it); reports misuse as `call`.
  { P::release(heap, b, call) } -> std::same_as<void>;
  // Reports b as misuse by `call` if the placement holds it freed where the heap cannot see.
  { P::check_not_cached(b, call) } -> std::same_as<void>;
  // malloc_trim(n) for every heap (and cache); true if memory went back.
  { P::trim(n) } -> std::same_as<bool>;
  // Adds every heap's (and cache's) figures to s.
  { P::add_statistics(s) } -> std::same_as<void>;
  { P::check(where) } -> std::same_as<const char*>;
  { P::prepare_fork() } -> std::same_as<void>;
  { P::after_fork_in_parent() } -> std::same_as<void>;
  { P::after_fork_in_child() } -> std::same_as<void>;
};

template <HeapPlacement Placement>
class HeapCore {
 public:
  static constexpr const char* kName = Placement::kName;
  static constexpr std::size_t kLargeBlockBytes = allocator::kLargeBlockBytes;

  [[gnu::always_inline]] static void* allocate(std::size_t bytes) {
    const std::size_t block = block_for(bytes);
    if (block == 0) return allocate_large(bytes, 16);
    return payload_of(Placement::allocate(block));
  }

  static void* allocate_zeroed(std::size_t bytes) {
    if (block_for(bytes) == 0) return allocate_large(bytes, 16);  // fresh mappings are zero
    void* p = allocate(bytes);
    if (p != nullptr) std::memset(p, 0, bytes);
    return p;
  }

  static void* allocate_aligned(std::size_t alignment, std::size_t bytes) {
    const std::size_t block = block_for(bytes);
    if (block == 0 || block_for(bytes + alignment) == 0) return allocate_large(bytes, alignment);
    return payload_of(Placement::allocate_aligned(block, alignment));
  }

  // A heap's block is released by the heap (which checks it); anything else must be a live
  // large block, which the large-object registry tells before any header is read.
  [[gnu::always_inline]] static void deallocate(void* p, const char* call) {
    Block* b = Block::of_payload(p);
    if (auto* heap = heap_of(b)) [[likely]]
      return Placement::release(*heap, b, call);
    deallocate_unowned(b, call);
  }

  static void* reallocate(void* p, std::size_t bytes) {
    Block* b = Block::of_payload(p);
    const std::size_t block = block_for(bytes);
    if (auto* heap = heap_of(b)) {
      Placement::check_not_cached(b, "realloc");
      if (block == 0) return move_to_fresh<HeapCore>(allocate_large(bytes, 16), p, bytes);
      Block* fresh = nullptr;
      if (void* resized = heap->resize_or_allocate(b, block, &fresh)) return resized;
      return move_to_fresh<HeapCore>(payload_of(fresh), p, bytes);
    }
    large_.check_live(b, "realloc");
    if (block == 0) return payload_of(large_.resize(b, bytes));
    return move_to_fresh<HeapCore>(allocate(bytes), p,
                                   bytes);  // shrinking below the mapping threshold
  }

  // The owner's header read without its lock: the size of a live block only changes
  // through its owner (realloc), and the flag bits a neighbour flips are masked off.
  static std::size_t usable_size(const void* p) {
    const Block* b = Block::of_payload(const_cast<void*>(p));
    if (heap_of(b) == nullptr) {
      large_.check_live(b, "malloc_usable_size");
      return LargeObjects::usable_size(b);
    }
    return Block::size_in(b->size_flags_unlocked()) - Block::kHeaderBytes;
  }

  // Heap memory (any aligned address in it: the heap is readable throughout), or the
  // payload of a live large block.
  static bool owns(const void* p) {
    const Block* b = Block::of_payload(const_cast<void*>(p));
    return heap_of(b) != nullptr || large_.owns(b);
  }

  static bool freed_mapping(const void* p) {
    return large_.freed(Block::of_payload(const_cast<void*>(p)));
  }

  static bool trim(std::size_t pad) {
    const ErrnoPreserved saved;
    return Placement::trim(pad);
  }

  static Statistics statistics() {
    Statistics s;
    Placement::add_statistics(s);
    const auto large = large_.stats();
    s.variant = kName;
    s.mapped_bytes = large.mapped_bytes;
    s.mapped_objects = large.mapped_objects;
    s.peak_mapped_bytes = large.peak_mapped_bytes;
    s.peak_mapped_objects = large.peak_mapped_objects;
    return s;
  }

  static const char* check_heap(const void** where) { return Placement::check(where); }

  static void prepare_fork() { Placement::prepare_fork(); }
  static void after_fork_in_parent() { Placement::after_fork_in_parent(); }
  static void after_fork_in_child() { Placement::after_fork_in_child(); }

  static std::size_t block_for(std::size_t bytes) {
    return class_block_for<typename Placement::Classes>(bytes);
  }

 private:
  static void* payload_of(Block* b) { return b != nullptr ? b->payload() : nullptr; }

  // The heap whose memory holds header b, if b is aligned as every header is (so all 16
  // bytes of it lie in that heap's memory, which may then be read).
  [[gnu::always_inline]] static typename Placement::Heap* heap_of(const Block* b) {
    if (reinterpret_cast<std::uintptr_t>(b) % 16 != 0) [[unlikely]]
      return nullptr;
    return Placement::owner_of(b);
  }

  // Out of line, so that the heap path of free() stays small enough to inline. No heap
  // holds p: it must be a live large block, which the registry says before b is read.
  [[gnu::noinline]] static void deallocate_unowned(Block* b, const char* call) {
    large_.check_live(b, call);
    const ErrnoPreserved saved;
    large_.release(b);
  }

  static void* allocate_large(std::size_t bytes, std::size_t alignment) {
    return payload_of(large_.allocate(bytes, alignment));
  }

  static inline constinit LargeObjects large_{};
};

}  // namespace polymalloc::allocator
