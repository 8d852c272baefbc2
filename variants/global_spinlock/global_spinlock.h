// global_spinlock: the classic power-of-two allocator. One boundary-tagged, coalescing
// free-list heap over the reserved range behind one test-and-test-and-set spinlock, and
// blocks of 1 MiB and more as their own mappings. Meets allocator::AllocatorCore.
#pragma once

#include <cstddef>
#include <cstdint>

#include "allocator/allocator.h"
#include "platform/platform.h"

namespace polymalloc::variants {

// Every block comes from, and goes back to, the one heap.
class OneHeap {
 public:
  static constexpr const char* kName = "global_spinlock";
  using Heap = allocator::LockedHeap<platform::ReservedRange>;
  using Classes = allocator::PowerOfTwoClasses;

  [[gnu::always_inline]] static allocator::Block* allocate(std::size_t block) {
    return heap_.allocate(block);
  }
  static allocator::Block* allocate_aligned(std::size_t block, std::size_t alignment) {
    return heap_.allocate_aligned(block, alignment);
  }
  [[gnu::always_inline]] static Heap* owner_of(const void* p) {
    return heap_.contains(p) ? &heap_ : nullptr;
  }
  [[gnu::always_inline]] static void release(Heap& heap, allocator::Block* b, const char* call) {
    heap.release(b, call);
  }
  static void check_not_cached(allocator::Block*, const char*) {}  // nothing is cached
  static bool trim(std::size_t pad) { return heap_.trim(pad) != 0; }
  static void add_statistics(allocator::Statistics& s) { heap_.add_statistics(s); }
  static const char* check(const void** where) { return heap_.check(where); }
  static void prepare_fork() { heap_.prepare_fork(); }
  static void after_fork_in_parent() { heap_.after_fork_in_parent(); }
  static void after_fork_in_child() { heap_.after_fork_in_child(); }

 private:
  // Which pages are the heap's (its reservation may lie in several spans).
  static inline constinit platform::PageMap pages_{};
  static inline constinit Heap heap_{&pages_, std::uint16_t{1}};
};

using GlobalSpinlock = allocator::HeapCore<OneHeap>;

static_assert(allocator::OwnershipAwareCore<GlobalSpinlock>);

}  // namespace polymalloc::variants
