// partitioned: the free-list machinery split into partitions, each a LockedHeap over its own
// slice of one address-space reservation, so that threads stop queueing on one lock. A thread
// has a home partition and takes another free one when its home is busy; a block always goes
// back to the partition whose slice holds it (found from its address in constant time), so
// neighbours still coalesce. Blocks are rounded to four classes per doubling. Thread caches
// in front serve the classes up to 32 KiB without a lock and move blocks to and from the
// partitions in batches. Meets allocator::AllocatorCore.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "allocator/allocator.h"
#include "atomics/atomics.h"
#include "platform/platform.h"
#include "variants/partitioned/partitions_setting.h"

namespace polymalloc::variants {

inline constexpr unsigned kMaxPartitions = 64;
static_assert(kConfiguredPartitions >= 0 && kConfiguredPartitions <= int{kMaxPartitions},
              "--//variants/partitioned:partitions must be 0 (one per CPU) up to 64");

// No quick lists: the thread caches already defer coalescing, and a second layer of parked
// blocks would only hold memory back.
using PartitionHeap = allocator::LockedHeap<platform::ReservedRange, allocator::kNoQuickLists>;

// The partitions (at namespace level, so that it is complete where Partitions defines its
// constinit instance).
struct PartitionTable {
  atomics::Spinlock setup_lock;
  std::uint32_t count = 0;  // partitions in use; published (release) once they are set up
  PartitionHeap heaps[kMaxPartitions];
};

// The table whose partition i tags its pages i + 1 in `pages`.
template <std::size_t... I>
constexpr PartitionTable partition_table(platform::PageMap* pages, std::index_sequence<I...>) {
  return PartitionTable{{}, 0, {PartitionHeap(pages, static_cast<std::uint16_t>(I + 1))...}};
}

class Partitions {
 public:
  static constexpr const char* kName = "partitioned";
  using Heap = PartitionHeap;
  // Four classes per doubling: the thread caches make many classes cheap, and the finer
  // rounding is what keeps memory overhead at or below glibc's.
  using Classes = allocator::QuarterPowerClasses;
  using Caches = allocator::ThreadCaches<Partitions, Classes>;
  using ThreadCache = Caches::ThreadCache;
  // A free area of address space found for all partitions together and shared out among
  // them as places to grow into (nothing is reserved there until a partition grows).
  static constexpr std::size_t kAreaBytes = std::size_t{64} << 30;
  static constexpr std::size_t kMinimumShareBytes = std::size_t{16} << 20;

  // Partitions to set up: the build setting, or one per CPU the process may run on.
  static unsigned partitions_wanted() {
    const unsigned n =
        kConfiguredPartitions > 0 ? unsigned(kConfiguredPartitions) : platform::cpu_count();
    return n < 1 ? 1 : n > kMaxPartitions ? kMaxPartitions : n;
  }
  // Partitions set up so far (0 before the first allocation).
  static unsigned partition_count() { return atomics::load_acquire(&table_.count); }
  // Partition i (< partition_count()), and the one the calling thread tries first.
  static Heap& partition(unsigned i) { return table_.heaps[i]; }
  static unsigned home_partition() { return platform::thread_number() % partition_count(); }

  [[gnu::always_inline]] static allocator::Block* allocate(std::size_t block) {
    if (block <= allocator::kCacheMaxBlock) [[likely]] {
      if (ThreadCache* cache = Caches::mine()) [[likely]] {
        const unsigned i = Classes::index_of(block);
        if (allocator::Block* b = cache->pop(i)) [[likely]]
          return b;
        return refill(*cache, i);
      }
    }
    return allocate_uncached(block);
  }

  static allocator::Block* allocate_aligned(std::size_t block, std::size_t alignment) {
    return allocate_somewhere(
        [block, alignment](auto& heap) { return heap.allocate_aligned(block, alignment); });
  }

  // One lookup: the page's tag names the partition.
  [[gnu::always_inline]] static Heap* owner_of(const void* p) {
    const std::uint16_t tag = pages_.get(p);
    return tag != 0 ? &table_.heaps[tag - 1] : nullptr;
  }

  // A block of a cached class joins the caller's cache, whichever thread allocated it.
  [[gnu::always_inline]] static void release(Heap& heap, allocator::Block* b, const char* call) {
    const std::size_t header = b->size_flags_unlocked();  // its owner may flip kPrevFree
    const std::size_t size = allocator::Block::size_in(header);
    if (ThreadCache::cacheable(size)) [[likely]] {
      if (ThreadCache* cache = Caches::mine()) [[likely]] {
        if (!allocator::Block::live_in(header) || ThreadCache::is_cached(b)) [[unlikely]] {
          allocator::report_misuse(call, "double free of", b->payload());
        }
        const unsigned i = Classes::index_of(size);
        if (cache->push(b, i)) [[likely]]
          return;
        return flush_then_push(*cache, b, i);
      }
    }
    release_uncached(heap, b, call);
  }

  // realloc() of a block that sits in a cache (freed) is misuse the heap cannot see.
  static void check_not_cached(allocator::Block* b, const char* call) {
    if (ThreadCache::is_cached(b)) {
      allocator::report_misuse(call, "freed pointer", b->payload());
    }
  }

  // The caller's cache goes back first, so that its blocks can coalesce and be trimmed.
  static bool trim(std::size_t pad) {
    if (ThreadCache* cache = Caches::current()) flush_all(*cache);
    std::size_t returned = 0;
    for (unsigned i = 0, n = partition_count(); i < n; ++i) returned += table_.heaps[i].trim(pad);
    return returned != 0;
  }

  // Blocks in thread caches count as free (to the client they are).
  static void add_statistics(allocator::Statistics& s) {
    for (unsigned i = 0, n = partition_count(); i < n; ++i) table_.heaps[i].add_statistics(s);
    Caches::for_each([&s](const ThreadCache& cache) {
      s.heap_free_bytes += cache.cached_bytes();
      s.heap_free_blocks += cache.cached_blocks();
    });
  }

  // Every partition, then the caller's cache (other threads' caches are theirs to touch).
  static const char* check(const void** where) {
    for (unsigned i = 0, n = partition_count(); i < n; ++i) {
      if (const char* wrong = table_.heaps[i].check(where)) return wrong;
    }
    const ThreadCache* cache = Caches::current();
    if (cache == nullptr) return nullptr;
    return cache->check([](const allocator::Block* b) { return owner_of(b) != nullptr; }, where);
  }

  static void prepare_fork() {
    Caches::prepare_fork();
    table_.setup_lock.lock();
    for (unsigned i = 0, n = partition_count(); i < n; ++i) table_.heaps[i].prepare_fork();
  }
  static void after_fork_in_parent() {
    for (unsigned i = partition_count(); i-- > 0;) table_.heaps[i].after_fork_in_parent();
    table_.setup_lock.unlock();
    Caches::after_fork_in_parent();
  }
  static void after_fork_in_child() {
    for (unsigned i = partition_count(); i-- > 0;) table_.heaps[i].after_fork_in_child();
    table_.setup_lock.reset_after_fork();
    Caches::after_fork_in_child();
  }

  // Empties a cache into the partitions (thread exit, trim).
  static void flush_all(ThreadCache& cache) {
    for (unsigned i = 0; i < ThreadCache::kBins; ++i) release_chain(cache.take(i, 0));
  }

 private:
  // Runs allocate(heap) on one partition after another until one succeeds: first on a
  // partition that is free now (the caller's home first), then on each of the others.
  template <class Allocate>
  static allocator::Block* allocate_somewhere(Allocate allocate) {
    std::uint32_t n = partition_count();
    if (n == 0) [[unlikely]] {
      if (!set_up()) return nullptr;
      n = partition_count();
    }
    Heap& first = lock_some_partition(n);
    allocator::Block* b = allocate(first.heap());
    first.lock().unlock();
    if (b != nullptr) [[likely]]
      return b;
    for (unsigned i = 0; i < n && b == nullptr; ++i) {
      if (&table_.heaps[i] == &first) continue;
      atomics::LockGuard guard(table_.heaps[i].lock());
      b = allocate(table_.heaps[i].heap());
    }
    return b;  // nullptr: every partition failed with ENOMEM
  }

  // The paths around the thread cache, out of line so that the cached paths stay small.
  [[gnu::noinline]] static allocator::Block* allocate_uncached(std::size_t block) {
    return allocate_somewhere([block](auto& heap) { return heap.allocate(block); });
  }
  [[gnu::noinline]] static void release_uncached(Heap& heap, allocator::Block* b,
                                                 const char* call) {
    heap.release(b, call);
  }

  // Locks and returns the caller's home partition if it is free, else the first free one
  // after it; only when all are busy does it wait, for its home.
  static Heap& lock_some_partition(std::uint32_t n) {
    const std::uint32_t home = home_partition();
    for (std::uint32_t i = 0; i < n; ++i) {
      Heap& heap = table_.heaps[(home + i) % n];
      if (heap.lock().try_lock()) return heap;
    }
    table_.heaps[home].lock().lock();
    return table_.heaps[home];
  }

  // An empty bin: one block for the caller and up to a batch more into the cache, from one
  // partition under one lock.
  [[gnu::noinline]] static allocator::Block* refill(ThreadCache& cache, unsigned i) {
    const std::size_t block = Classes::size_of(i);
    return allocate_somewhere([&cache, i, block](auto& heap) {
      allocator::Block* first = heap.allocate(block);
      if (first == nullptr) return first;
      const int saved_errno = errno;  // running short after the first block is not a failure
      for (std::uint32_t n = 1; n < ThreadCache::batch(i); ++n) {
        allocator::Block* b = heap.allocate(block);
        if (b == nullptr) break;
        if (b->size() != block || !cache.push(b, i)) {
          heap.deallocate(b);
          break;
        }
      }
      errno = saved_errno;
      return first;
    });
  }

  // A full bin: half of it goes back to the partitions, then b joins it.
  [[gnu::noinline]] static void flush_then_push(ThreadCache& cache, allocator::Block* b,
                                                unsigned i) {
    release_chain(cache.take(i, ThreadCache::batch(i)));
    cache.push(b, i);
  }

  // Frees a chain of blocks (linked through next_in_list) into their partitions, taking each
  // partition's lock once for all of its blocks in the chain.
  POLYMALLOC_UNCHECKED_BY_ASAN static void release_chain(allocator::Block* chain) {
    while (chain != nullptr) {
      Heap& heap = *owner_of(chain);
      allocator::Block* others = nullptr;
      heap.lock().lock();
      for (allocator::Block *b = chain, *next; b != nullptr; b = next) {
        next = b->next();
        if (owner_of(b) == &heap) {
          heap.release_held(b, "free");
        } else {
          b->set_next(others);
          others = b;
        }
      }
      heap.lock().unlock();
      chain = others;
    }
  }

  // First allocation: finds a free area of address space and gives each partition an equal
  // share of it to grow into (the area is not kept reserved: each partition reserves its
  // share as it grows, so address space stays in proportion to use).
  [[gnu::noinline]] static bool set_up() {
    atomics::LockGuard guard(table_.setup_lock);
    if (table_.count != 0) return true;
    const unsigned n = partitions_wanted();
    std::size_t bytes = 0;
    auto* start = static_cast<unsigned char*>(
        platform::reserve_at_most(kAreaBytes, n * kMinimumShareBytes, &bytes));
    if (start == nullptr) {
      errno = ENOMEM;
      return false;
    }
    platform::os_unmap(start, bytes);
    const std::size_t share = bytes / n / kMinimumShareBytes * kMinimumShareBytes;
    for (unsigned i = 0; i < n; ++i) table_.heaps[i].place(start + i * share, share);
    atomics::store_release(&table_.count, std::uint32_t{n});
    return true;
  }

  // Which partition's pages each page is.
  static inline constinit platform::PageMap pages_{};
  static inline constinit PartitionTable table_ =
      partition_table(&pages_, std::make_index_sequence<kMaxPartitions>());
};

using Partitioned = allocator::HeapCore<Partitions>;

static_assert(allocator::OwnershipAwareCore<Partitioned>);

}  // namespace polymalloc::variants
