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

template <platform::PageSource Source, std::size_t QuickMaxBlock = kDefaultQuickMaxBlock>
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
  using Heap = FreeListHeap<Source, QuickMaxBlock>;

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

  // Runs f(Heap&) under the lock and returns what it returns.
  template <class F>
  [[gnu::always_inline]] auto locked(F f) {
    Guard guard(lock_);
    return f(heap_);
  }

  // The same if no other thread holds the lock now: true and *result set, or false (f not
  // run). A caller with several heaps to choose from takes one that is free.
  template <class F, class R>
  bool try_locked(F f, R* result) {
    if (platform::process_is_single_threaded()) {
      *result = f(heap_);
      return true;
    }
    if (!lock_.try_lock()) return false;
    *result = f(heap_);
    lock_.unlock();
    return true;
  }

  // The two calls a heap without a cache in front makes on every malloc and free, written
  // out so that they stay lean: a single-threaded process takes no lock and runs them
  // inline; a multi-threaded one calls their locked form. Everything that is not a
  // quick-list hit is out of line.
  [[gnu::always_inline]] Block* allocate(std::size_t block) {
    if (!platform::process_is_single_threaded()) [[unlikely]]
      return allocate_locked(block);
    return heap_.allocate(block);
  }

  // Frees a block of this heap; a block the client does not hold is reported as `call`'s
  // double free, one whose boundary tags disagree as a corrupted header. The top is trimmed
  // once enough of it is free. Returns whether b was parked on a quick list (where it is
  // cached, not free: nothing that decay could release).
  [[gnu::always_inline]] bool release(Block* b, const char* call) {
    if (!platform::process_is_single_threaded()) [[unlikely]]
      return release_locked(b, call);
    return release_held(b, call, false);
  }

  // Runs f(release) under the lock, where release(b, call) frees block b as release() does:
  // many blocks for one lock acquisition.
  template <class F>
  void releasing(F f) {
    Guard guard(lock_);
    f([this, &guard](Block* b, const char* call) {
      release_checked(b, call, [&guard] { guard.unlock_now(); });
    });
  }

  // Resizes live block b to `block` bytes in place (shrinking, or growing into a free
  // neighbour on the right, or at the top of the heap by growing the heap, then into the
  // left one) and returns the payload's address, which moves when the left neighbour took
  // part; nullptr if it cannot (or `block` is 0: a large block), and the caller moves it.
  // A buffer growing into the free top (the path of a doubling vector) takes the lean way;
  // the rest is out of line. (Inline: the caller's realloc path then needs one frame.)
  [[gnu::always_inline]] void* resize_in_place(Block* b, std::size_t block) {
    Guard guard(lock_);
    check_held(b, "realloc", "freed pointer", [&guard] { guard.unlock_now(); });
    if (block > b->size() && heap_.grow_into_top(b, block)) [[likely]]
      return b->payload();
    return resize_held(b, block);
  }

 private:
  // resize_in_place() with the lock held and b checked, but for the lean way.
  [[gnu::noinline]] void* resize_held(Block* b, std::size_t block) {
    if (block == 0) return nullptr;
    if (block <= b->size()) {
      heap_.shrink_in_place(b, block);
      return b->payload();
    }
    if (heap_.grow_in_place(b, block) || heap_.grow_at_top(b, block)) return b->payload();
    if (Block* merged = heap_.grow_into_neighbours(b, block)) return merged->payload();
    return nullptr;
  }

 public:
  // The adaptive trim threshold, as glibc's follows its mmap threshold: once blocks of
  // `bytes` come from the heaps instead of mappings (ClassCore's heap threshold rose to
  // them), the free top keeps that much and goes back only past twice that, so that a
  // program replacing such blocks does not hand their pages back and fault them in again.
  // Decay still trims a top that sat free past the delay to kTrimKeepBytes.
  static void keep_blocks_of(std::size_t bytes) {
    std::size_t seen = atomics::load_relaxed(&kept_block_bytes_);
    while (bytes > seen && !atomics::cas_relaxed(&kept_block_bytes_, seen, bytes)) {
    }
  }

  // What the free top keeps when it is trimmed after a block of `freed` bytes joined it:
  // kTrimKeepBytes, or that block, or one block of the heap threshold's size (keep_blocks_of),
  // whichever is biggest. It is trimmed once it holds more than that by kTrimThresholdBytes -
  // kTrimKeepBytes, or by the heap threshold's size.
  static std::size_t trim_keep_bytes(std::size_t freed) {
    const std::size_t kept_block = atomics::load_relaxed(&kept_block_bytes_);
    const std::size_t keep = freed > kTrimKeepBytes ? freed : kTrimKeepBytes;
    return kept_block > keep ? kept_block : keep;
  }
  static std::size_t trim_at_bytes(std::size_t freed) {
    return trim_keep_bytes(freed) + trim_margin_bytes();
  }
  static std::size_t trim_margin_bytes() {
    const std::size_t kept_block = atomics::load_relaxed(&kept_block_bytes_);
    const std::size_t margin = kTrimThresholdBytes - kTrimKeepBytes;
    return kept_block > margin ? kept_block : margin;
  }

  // malloc_trim(): the free top beyond `pad` goes back, and the whole free pages inside
  // large free blocks are released. Returns the bytes handed back either way.
  std::size_t trim(std::size_t pad) {
    Guard guard(lock_);
    const std::size_t returned = heap_.trim(pad);
    return returned + heap_.release_free_pages(2 * platform::page_size());
  }

  // Decay: the inner pages of free blocks freed at or before `cutoff_ms` go back, and a free
  // top that old is trimmed to kTrimKeepBytes. Returns the bytes released.
  std::size_t release_aged(std::uint64_t cutoff_ms) {
    Guard guard(lock_);
    std::size_t released = heap_.trim_aged(cutoff_ms, kTrimKeepBytes);
    return released + heap_.release_aged(cutoff_ms);
  }

  // Adds this heap's figures to s.
  void add_statistics(Statistics& s) {
    Guard guard(lock_);
    const auto heap = heap_.stats();
    s.heap_committed_bytes += heap.committed_bytes;
    s.heap_peak_committed_bytes += heap.peak_committed_bytes;
    s.heap_free_bytes += heap.free_bytes + heap.cached_bytes;
    s.heap_free_blocks += heap.free_blocks + heap.cached_blocks;
    s.heap_top_free_bytes += heap_.top_free_bytes();
    s.released_bytes += heap_.released_bytes();
  }

  // The same without the lock: the heap's counters as they are (each is read atomically;
  // they may be a moment apart), no top, and blocks parked on quick lists counted in use.
  void add_counters(Statistics& s) const {
    const auto heap = heap_.counters();
    s.heap_committed_bytes += heap.committed_bytes;
    s.heap_peak_committed_bytes += heap.peak_committed_bytes;
    s.heap_free_bytes += heap.free_bytes + heap.cached_bytes;
    s.heap_free_blocks += heap.free_blocks + heap.cached_blocks;
    s.released_bytes += heap.released_bytes;
  }

  void add_breakdown(MemoryBreakdown& b) {
    Guard guard(lock_);
    heap_.add_breakdown(b);
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

  [[gnu::noinline]] Block* allocate_locked(std::size_t block) noexcept {
    lock_.lock();
    Block* b = heap_.allocate(block);
    lock_.unlock();
    return b;
  }

  [[gnu::noinline]] bool release_locked(Block* b, const char* call) noexcept {
    lock_.lock();
    return release_held(b, call, true);
  }

  // release() with the lock held (if `locked`), which it lets go.
  [[gnu::always_inline]] bool release_held(Block* b, const char* call, bool locked) {
    if (!b->live() || !heap_.tags_agree(b)) [[unlikely]]
      report_not_held(b, call, "double free of", locked);
    if (!heap_.try_park(b)) [[unlikely]] {
      release_unparked(b, locked);
      return false;
    }
    if (locked) lock_.unlock();
    return true;
  }

  // release()'s misuse report: the lock (if `locked`) goes first, then check_held() says
  // what is wrong.
  [[gnu::noinline, gnu::cold]] void report_not_held(const Block* b, const char* call,
                                                    const char* if_freed, bool locked) noexcept {
    if (locked) lock_.unlock();
    check_held(b, call, if_freed, [] {});
    report_misuse(call, "corrupted header of", const_cast<Block*>(b)->payload());
  }

  // release() of a block the quick lists do not take: into the coalescing lists, then the
  // lock (if `locked`) goes.
  [[gnu::noinline]] void release_unparked(Block* b, bool locked) noexcept {
    const std::size_t size = b->size();
    if (Block* merged = heap_.deallocate(b)) {
      if (Decay::delay_ms() == 0) {  // decay at once: the inner pages go back as it is freed
        const ErrnoPreserved saved;
        heap_.release_pages_of(merged);
      }
      trim_if_worth_it(merged, size);
    }
    if (locked) lock_.unlock();
  }

  template <class Unlock>
  [[gnu::always_inline]] void release_checked(Block* b, const char* call, Unlock unlock) {
    check_held(b, call, "double free of", unlock);
    const std::size_t size = b->size();
    if (Block* merged = heap_.deallocate(b)) [[unlikely]]
      trim_if_worth_it(merged, size);
  }

  // After a block of `freed` bytes went into the coalescing lists (as `merged`): the top
  // goes back once enough of it is free, keeping trim_keep_bytes(); only a free block this
  // big can be the top worth trimming.
  [[gnu::noinline]] void trim_if_worth_it(const Block* merged, std::size_t freed) noexcept {
    const std::size_t keep = trim_keep_bytes(freed);
    const std::size_t trim_at = keep + trim_margin_bytes();
    if (merged->size() >= trim_at && heap_.top_free_bytes() >= trim_at) {
      const ErrnoPreserved saved;
      heap_.trim(keep);
    }
  }

  // Bytes of the biggest blocks the heaps serve in place of mappings (0 until one is freed).
  static inline constinit std::size_t kept_block_bytes_ = 0;

  atomics::Spinlock lock_;
  Heap heap_;
};

}  // namespace polymalloc::allocator
