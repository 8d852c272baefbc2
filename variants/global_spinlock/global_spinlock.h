// global_spinlock: the classic power-of-two allocator. One boundary-tagged, coalescing
// free-list heap over the reserved range, blocks of 1 MiB and more as their own mappings,
// and one test-and-test-and-set spinlock around the heap. Meets allocator::AllocatorCore.
#pragma once

#include <cstddef>
#include <cstring>

#include "allocator/allocator.h"
#include "atomics/atomics.h"
#include "platform/platform.h"

namespace polymalloc::variants {

// The one heap and its lock (a namespace-level type, so that it is complete where the
// class below defines its constinit instance).
struct GlobalSpinlockState {
  atomics::Spinlock lock;
  allocator::FreeListHeap<platform::ReservedRange> heap{};
  allocator::LargeObjects large;
};

class GlobalSpinlock {
 public:
  static constexpr const char* kName = "global_spinlock";
  // Blocks (header included, rounded to their power of two) this big are mappings.
  static constexpr std::size_t kLargeBlockBytes = std::size_t{1} << 20;
  // Once this much is free at the top of the heap, all but kTrimKeepBytes goes back.
  static constexpr std::size_t kTrimThresholdBytes = std::size_t{512} << 10;
  static constexpr std::size_t kTrimKeepBytes = std::size_t{128} << 10;

  [[gnu::always_inline]] static void* allocate(std::size_t bytes) {
    const std::size_t block = block_for(bytes);
    if (block == 0) return allocate_large(bytes, 16);
    allocator::Block* b;
    {
      Guard guard(state_.lock);
      b = state_.heap.allocate(block);
    }
    return b != nullptr ? b->payload() : nullptr;
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
    allocator::Block* b;
    {
      Guard guard(state_.lock);
      b = state_.heap.allocate_aligned(block, alignment);
    }
    return b != nullptr ? b->payload() : nullptr;
  }

  [[gnu::always_inline]] static void deallocate(void* p, const char* call) {
    allocator::Block* b = allocator::Block::of_payload(p);
    if (state_.heap.contains(p)) return release_small(b, call);
    if (is_large(p)) {
      const allocator::ErrnoPreserved saved;
      state_.large.release(b);
      return;
    }
    allocator::report_misuse(call, "invalid pointer", p);
  }

  static void* reallocate(void* p, std::size_t bytes) {
    allocator::Block* b = allocator::Block::of_payload(p);
    if (state_.heap.contains(p)) return reallocate_small(b, bytes);
    if (!is_large(p)) allocator::report_misuse("realloc", "invalid pointer", p);
    if (block_for(bytes) == 0) {
      allocator::Block* moved = state_.large.resize(b, bytes);
      return moved != nullptr ? moved->payload() : nullptr;
    }
    return move_to(allocate(bytes), p, bytes);  // shrinking below the mapping threshold
  }

  static std::size_t usable_size(const void* p) {
    auto* b = allocator::Block::of_payload(const_cast<void*>(p));
    if (!state_.heap.contains(p)) return allocator::LargeObjects::usable_size(b);
    Guard guard(state_.lock);  // a neighbour's free rewrites this header's flags
    return b->size() - allocator::Block::kHeaderBytes;
  }

  static bool trim(std::size_t pad) {
    const allocator::ErrnoPreserved saved;
    Guard guard(state_.lock);
    const std::size_t returned = state_.heap.trim(pad);
    return returned + state_.heap.release_free_pages(2 * platform::page_size()) != 0;
  }

  static allocator::Statistics statistics() {
    allocator::Statistics s;
    {
      Guard guard(state_.lock);
      const auto& heap = state_.heap.stats();
      s.heap_committed_bytes = heap.committed_bytes;
      s.heap_peak_committed_bytes = heap.peak_committed_bytes;
      s.heap_free_bytes = heap.free_bytes + heap.cached_bytes;
      s.heap_free_blocks = heap.free_blocks + heap.cached_blocks;
      s.heap_top_free_bytes = state_.heap.top_free_bytes();
    }
    const auto large = state_.large.stats();
    s.variant = kName;
    s.mapped_bytes = large.mapped_bytes;
    s.mapped_objects = large.mapped_objects;
    s.peak_mapped_bytes = large.peak_mapped_bytes;
    return s;
  }

  static const char* check_heap(const void** where) {
    Guard guard(state_.lock);
    return state_.heap.check(where);
  }

  static void prepare_fork() { state_.lock.lock(); }
  static void after_fork_in_parent() { state_.lock.unlock(); }
  static void after_fork_in_child() { state_.lock.reset_after_fork(); }

 private:
  // The one lock, skipped while the process has a single thread.
  using Guard = platform::LockUnlessSingleThreaded<atomics::Spinlock>;

  // The power-of-two block for a request, or 0 when it belongs on the large-object path.
  static std::size_t block_for(std::size_t bytes) {
    if (bytes > kLargeBlockBytes) return 0;
    const std::size_t block =
        allocator::class_size(allocator::class_of(bytes + allocator::Block::kHeaderBytes));
    return block < kLargeBlockBytes ? block : 0;
  }

  static bool is_large(const void* p) {
    return allocator::LargeObjects::is_large(allocator::Block::of_payload(const_cast<void*>(p)));
  }

  static void* allocate_large(std::size_t bytes, std::size_t alignment) {
    allocator::Block* b = state_.large.allocate(bytes, alignment);
    return b != nullptr ? b->payload() : nullptr;
  }

  [[gnu::always_inline]] static void release_small(allocator::Block* b, const char* call) {
    Guard guard(state_.lock);
    if (!b->live()) {
      guard.unlock_now();
      allocator::report_misuse(call, "double free of", b->payload());
    }
    // Only a free block this big can be the top worth trimming: one compare in the common case.
    const allocator::Block* merged = state_.heap.deallocate(b);
    if (merged->size() >= kTrimThresholdBytes &&
        state_.heap.top_free_bytes() >= kTrimThresholdBytes) [[unlikely]] {
      const allocator::ErrnoPreserved saved;
      state_.heap.trim(kTrimKeepBytes);
    }
  }

  // In place when the block shrinks or a free neighbour (right, then left) makes room;
  // otherwise a new block, the copy made outside the lock.
  static void* reallocate_small(allocator::Block* b, std::size_t bytes) {
    void* p = b->payload();
    const std::size_t block = block_for(bytes);
    if (block == 0) return move_to(allocate_large(bytes, 16), p, bytes);
    allocator::Block* fresh;
    {
      Guard guard(state_.lock);
      if (!b->live()) {
        guard.unlock_now();
        allocator::report_misuse("realloc", "freed pointer", p);
      }
      if (block <= b->size()) {
        state_.heap.shrink_in_place(b, block);
        return p;
      }
      if (state_.heap.grow_in_place(b, block)) return p;
      if (allocator::Block* merged = state_.heap.grow_into_neighbours(b, block)) {
        return merged->payload();
      }
      fresh = state_.heap.allocate(block);
    }
    return move_to(fresh != nullptr ? fresh->payload() : nullptr, p, bytes);
  }

  // Copies what fits of `old` into `fresh` and frees `old`; nullptr (old intact) if the
  // allocation of `fresh` failed.
  static void* move_to(void* fresh, void* old, std::size_t bytes) {
    if (fresh == nullptr) return nullptr;
    const std::size_t old_bytes = usable_size(old);
    std::memcpy(fresh, old, old_bytes < bytes ? old_bytes : bytes);
    deallocate(old, "realloc");
    return fresh;
  }

  static inline constinit GlobalSpinlockState state_{};
};

static_assert(allocator::AllocatorCore<GlobalSpinlock>);

}  // namespace polymalloc::variants
