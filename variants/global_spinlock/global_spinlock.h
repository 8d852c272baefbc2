// global_spinlock: the classic power-of-two allocator. One boundary-tagged, coalescing
// free-list heap over a reserved range behind one test-and-test-and-set spinlock, no thread
// cache, and blocks of 1 MiB and more as their own mappings. Meets allocator::AllocatorCore.
#pragma once

#include <cstddef>
#include <cstdint>

#include "allocator/allocator.h"
#include "platform/platform.h"

namespace polymalloc::variants {

// Every block comes from, and goes back to, the one heap. Its quick lists take every class:
// a program that frees and allocates a big block in a loop takes it straight back under the
// lock, without coalescing it and carving it again (glibc's top chunk gives it the same), and
// a big class parks one block at most, so they hold little (decay consolidates them).
class OneHeap {
 public:
  using Map = allocator::SizeMap<allocator::PowerOfTwoClasses>;
  using Heap = allocator::LockedHeap<platform::ReservedRange, Map::kMaxBlock>;
  static constexpr bool kCachesInFront = false;
  static constexpr bool kOneHeap = true;

  [[gnu::always_inline]] static Heap* owner_of(const void* p) {
    return heap_.contains(p) ? &heap_ : nullptr;
  }
  [[gnu::always_inline]] static Heap& heap_of_owned(const void*) { return heap_; }
  template <class F>
  [[gnu::always_inline]] static allocator::Block* with_some_heap(F f) {
    return heap_.locked(f);
  }
  template <class F>
  static allocator::Block* with_home_heap(F f) {
    return with_some_heap(f);  // the one heap
  }
  template <class F>
  static void for_each_heap(F f) {
    f(heap_);
  }
  static void prepare_fork() { heap_.prepare_fork(); }
  static void after_fork_in_parent() { heap_.after_fork_in_parent(); }
  static void after_fork_in_child() { heap_.after_fork_in_child(); }

 private:
  // Which pages are the heap's (its reservation may lie in several spans).
  static inline constinit platform::PageMap pages_{};
  static inline constinit Heap heap_{&pages_, std::uint16_t{1}};
};

struct GlobalSpinlockConfig {
  static constexpr const char* kName = "global_spinlock";
  using Map = OneHeap::Map;
  using Caches = allocator::NoCaches;
  using Pool = allocator::HeapPool<OneHeap>;
};

using GlobalSpinlock = allocator::ClassCore<GlobalSpinlockConfig>;

static_assert(allocator::OwnershipAwareCore<GlobalSpinlock>);

}  // namespace polymalloc::variants
