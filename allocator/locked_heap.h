// A free-list heap behind its own spinlock, with the operations the heap-based variants run
// under that lock: allocation, release with the misuse check and top trimming, realloc in
// place, trim, statistics, heap check and the fork hooks. global_spinlock has one of these;
// partitioned has one per partition.
#pragma once

#include <cstddef>
#include <utility>

#include "allocator/block.h"
#include "allocator/errno_preserved.h"
#include "allocator/free_list_heap.h"
#include "allocator/report.h"
#include "allocator/statistics.h"
#include "atomics/atomics.h"
#include "platform/platform.h"

namespace polymalloc::allocator {

template <platform::PageSource Source, std::size_t QuickMaxBlock = std::size_t{8} << 10>
class LockedHeap {
 public:
  // Once the top of the heap has this much more free than it keeps, the rest goes back. It
  // keeps kTrimKeepBytes, or the block just freed if that is bigger: a program that frees and
  // allocates one big block in a loop must not hand its pages back and fault them in again
  // every time (heap blocks are under 1 MiB, bigger ones are mappings, so this keeps less).
  static constexpr std::size_t kTrimThresholdBytes = std::size_t{512} << 10;
  static constexpr std::size_t kTrimKeepBytes = std::size_t{128} << 10;

  // Holds the lock for its scope, skipped while the process is single-threaded.
  using Guard = platform::LockUnlessSingleThreaded<atomics::Spinlock>;

  constexpr LockedHeap() : heap_() {}  // not explicit: arrays of heaps value-initialise
  template <class... Args>
  constexpr explicit LockedHeap(Args&&... args) : heap_(std::forward<Args>(args)...) {}
  LockedHeap(const LockedHeap&) = delete;
  LockedHeap& operator=(const LockedHeap&) = delete;

  // Lock-free: whether p lies in this heap's committed memory.
  bool contains(const void* p) const { return heap_.contains(p); }

  // Where the heap's page source should start, before its first allocation (the source's
  // place(): a share of an area of address space the caller found free).
  void place(void* start, std::size_t bytes) {
    Guard guard(lock_);
    heap_.source().place(start, bytes);
  }

  atomics::Spinlock& lock() { return lock_; }
  // The heap itself, for a caller holding lock() (e.g. to hand a source its range).
  FreeListHeap<Source, QuickMaxBlock>& heap() { return heap_; }

  [[gnu::always_inline]] Block* allocate(std::size_t block) {
    Guard guard(lock_);
    return heap_.allocate(block);
  }
  Block* allocate_aligned(std::size_t block, std::size_t alignment) {
    Guard guard(lock_);
    return heap_.allocate_aligned(block, alignment);
  }

  // Frees a block of this heap; a block the client does not hold is reported as `call`'s
  // double free. The top is trimmed once enough of it is free.
  [[gnu::always_inline]] void release(Block* b, const char* call) {
    Guard guard(lock_);
    release_checked(b, call, [&guard] { guard.unlock_now(); });
  }

  // For a caller that holds lock() itself (and so chooses which heap to lock, or keeps one
  // locked across several blocks).
  [[gnu::always_inline]] Block* allocate_held(std::size_t block) { return heap_.allocate(block); }
  [[gnu::always_inline]] void release_held(Block* b, const char* call) {
    release_checked(b, call, [this] { lock_.unlock(); });
  }

  // Resizes live block b to `block` bytes in place (shrinking, or growing into a free
  // neighbour on the right, then the left) and returns the payload's address, which moves
  // when the left neighbour took part. Otherwise allocates a fresh block from this heap into
  // *fresh (nullptr if that failed) and returns nullptr; the caller copies outside the lock.
  void* resize_or_allocate(Block* b, std::size_t block, Block** fresh) {
    Guard guard(lock_);
    check_held(b, "realloc", "freed pointer", [&guard] { guard.unlock_now(); });
    if (block <= b->size()) {
      heap_.shrink_in_place(b, block);
      return b->payload();
    }
    if (heap_.grow_in_place(b, block)) return b->payload();
    if (Block* merged = heap_.grow_into_neighbours(b, block)) return merged->payload();
    *fresh = heap_.allocate(block);
    return nullptr;
  }

  // malloc_trim(): the free top beyond `pad` goes back, and the whole free pages inside
  // large free blocks are released. Returns the bytes handed back either way.
  std::size_t trim(std::size_t pad) {
    Guard guard(lock_);
    const std::size_t returned = heap_.trim(pad);
    return returned + heap_.release_free_pages(2 * platform::page_size());
  }

  // Adds this heap's figures to s.
  void add_statistics(Statistics& s) {
    Guard guard(lock_);
    const auto& heap = heap_.stats();
    s.heap_committed_bytes += heap.committed_bytes;
    s.heap_peak_committed_bytes += heap.peak_committed_bytes;
    s.heap_free_bytes += heap.free_bytes + heap.cached_bytes;
    s.heap_free_blocks += heap.free_blocks + heap.cached_blocks;
    s.heap_top_free_bytes += heap_.top_free_bytes();
  }

  const char* check(const void** where) {
    Guard guard(lock_);
    return heap_.check(where);
  }

  void prepare_fork() { lock_.lock(); }
  void after_fork_in_parent() { lock_.unlock(); }
  void after_fork_in_child() { lock_.reset_after_fork(); }

 private:
  // The lock is released (`unlock`) before a misuse report, so that nothing the abort path
  // runs can deadlock on it.
  //
  // Reports `call`'s misuse unless the client holds b (else `if_freed`) and its boundary
  // tags agree with its neighbours (else a corrupted header).
  template <class Unlock>
  [[gnu::always_inline]] void check_held(const Block* b, const char* call, const char* if_freed,
                                         Unlock unlock) {
    void* payload = const_cast<Block*>(b)->payload();
    if (!b->live()) [[unlikely]] {
      unlock();
      report_misuse(call, if_freed, payload);
    }
    if (!heap_.tags_agree(b)) [[unlikely]] {
      unlock();
      report_misuse(call, "corrupted header of", payload);
    }
  }

  template <class Unlock>
  [[gnu::always_inline]] void release_checked(Block* b, const char* call, Unlock unlock) {
    check_held(b, call, "double free of", unlock);
    const std::size_t keep = b->size() > kTrimKeepBytes ? b->size() : kTrimKeepBytes;
    const std::size_t trim_at = keep + kTrimThresholdBytes - kTrimKeepBytes;
    // Only a free block this big can be the top worth trimming: one compare in the common case.
    const Block* merged = heap_.deallocate(b);
    if (merged->size() >= trim_at && heap_.top_free_bytes() >= trim_at) [[unlikely]] {
      const ErrnoPreserved saved;
      heap_.trim(keep);
    }
  }

  atomics::Spinlock lock_;
  FreeListHeap<Source, QuickMaxBlock> heap_;
};

}  // namespace polymalloc::allocator
