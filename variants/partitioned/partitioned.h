// partitioned: the free-list machinery split into partitions, each a LockedHeap over its own
// reserved range, so that threads stop queueing on one lock. A thread has a home partition
// and takes another free one when its home is busy; a block always goes back to the
// partition whose pages hold it (found from its address in constant time), so neighbours
// still coalesce. Blocks are rounded to four classes per doubling (sixteen past 32 KiB). Thread
// caches in front serve the classes up to 32 KiB without a lock and move blocks to and from the
// partitions in batches. Meets allocator::AllocatorCore.
#pragma once

#include <bit>
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

// Past the thread caches, 2^4 classes per doubling (FinerClassesAbove). Mean RSS growth ÷
// peak live over eight seeds of trace_mixed_power_law (memsim): four per doubling 1.41,
// eight 1.38, sixteen 1.35, thirty-two 1.36 (glibc 1.40). A buffer grown by realloc in
// 64-byte steps to 64 KiB changes class more often: 89 → 91 instructions a realloc; a
// malloc/free pair past 32 KiB, 193 → 195 (the class's arithmetic).
inline constexpr unsigned kHeapClassStepsLog2 = 4;
// Where they start: the thread caches' largest class (32 KiB).
inline constexpr unsigned kHeapClassesFromLog2 =
    static_cast<unsigned>(std::bit_width(allocator::kCacheMaxBlock)) - 1;
static_assert(allocator::kCacheMaxBlock == std::size_t{1} << kHeapClassesFromLog2);

class Partitions {
 public:
  // Four classes per doubling, and one more just above each power of two to 16 KiB: the
  // thread caches make many classes cheap, and the finer rounding is what keeps memory
  // overhead near glibc's. Past the caches' 32 KiB, sixteen per doubling.
  using Map =
      allocator::SizeMap<allocator::FinerClassesAbove<allocator::SnugQuarterPowerClasses,
                                                      kHeapClassesFromLog2, kHeapClassStepsLog2>>;
  using Heap = PartitionHeap;
  static constexpr bool kCachesInFront = true;
  static constexpr bool kOneHeap = false;
  // A free area of address space found for all partitions together and shared out among
  // them as places to grow into (nothing is reserved there until a partition grows).
  static constexpr std::size_t kAreaBytes = std::size_t{64} << 30;
  static constexpr std::size_t kMinimumShareBytes = std::size_t{16} << 20;

  // Partitions to set up: POLYMALLOC_PARTITIONS, else the build setting, else one per CPU
  // the process may use (its affinity and cgroup CPU quota: platform::cpu_count()).
  static unsigned partitions_wanted() {
    const bool built = kConfiguredPartitions > 0;
    const std::int64_t n = allocator::Settings::value(
        allocator::Setting::kPartitions,
        built ? std::int64_t{kConfiguredPartitions} : std::int64_t{platform::cpu_count()},
        built ? allocator::SettingSource::kBuildFlag : allocator::SettingSource::kDefault);
    return n < 1 ? 1 : n > kMaxPartitions ? kMaxPartitions : static_cast<unsigned>(n);
  }
  // The partition count's setting, read now (the start-up lists it).
  static void read_settings() { partitions_wanted(); }
  // Partitions set up so far (0 before the first allocation).
  static unsigned partition_count() { return atomics::load_acquire(&table_.count); }
  // Partition i (< partition_count()), and the one the calling thread tries first.
  static Heap& partition(unsigned i) { return table_.heaps[i]; }
  static unsigned home_partition() { return platform::thread_number() % partition_count(); }

  // One lookup: the page's tag names the partition.
  [[gnu::always_inline]] static Heap* owner_of(const void* p) {
    const std::uint16_t tag = pages_.get(p);
    return tag != 0 ? &table_.heaps[tag - 1] : nullptr;
  }
  static Heap& heap_of_owned(const void* p) { return *owner_of(p); }

  // Runs f on a partition that is free now (the caller's home first), and on each of the
  // others in turn while f fails; waits (for its home) only when all are busy.
  template <class F>
  static allocator::Block* with_some_heap(F f) {
    std::uint32_t n = partition_count();
    if (n == 0) [[unlikely]] {
      if (!set_up()) return nullptr;
      n = partition_count();
    }
    const std::uint32_t home = home_partition();
    allocator::Block* b = nullptr;
    std::uint32_t tried = n;  // the partition f ran on
    for (std::uint32_t i = 0; i < n; ++i) {
      if (table_.heaps[(home + i) % n].try_locked(f, &b)) {
        tried = (home + i) % n;
        break;
      }
    }
    if (tried == n) {
      b = table_.heaps[home].locked(f);
      tried = home;
    }
    for (std::uint32_t i = 0; i < n && b == nullptr; ++i) {
      if (i != tried) b = table_.heaps[i].locked(f);
    }
    return b;  // nullptr: every partition failed with ENOMEM
  }

  template <class F>
  static allocator::Block* with_home_heap(F f) {
    if (partition_count() == 0 && !set_up()) [[unlikely]]
      return nullptr;
    return table_.heaps[home_partition()].locked(f);
  }

  template <class F>
  static void for_each_heap(F f) {
    for (unsigned i = 0, n = partition_count(); i < n; ++i) f(table_.heaps[i]);
  }

  static void prepare_fork() {
    table_.setup_lock.lock();
    for (unsigned i = 0, n = partition_count(); i < n; ++i) table_.heaps[i].prepare_fork();
  }
  static void after_fork_in_parent() {
    for (unsigned i = partition_count(); i-- > 0;) table_.heaps[i].after_fork_in_parent();
    table_.setup_lock.unlock();
  }
  static void after_fork_in_child() {
    for (unsigned i = partition_count(); i-- > 0;) table_.heaps[i].after_fork_in_child();
    table_.setup_lock.reset_after_fork();
  }

 private:
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
    // free() finds the partition of a block in the area with one flat lookup (if the window
    // cannot be mapped, the page map's leaves answer, a little slower).
    static_assert(kAreaBytes <= platform::PageMap::kWindowBytes);
    pages_.set_window(start);
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

struct PartitionedConfig;
using Partitioned = allocator::ClassCore<PartitionedConfig>;

struct PartitionedConfig {
  static constexpr const char* kName = "partitioned";
  using Map = Partitions::Map;
  using Caches = allocator::ThreadCaches<Partitioned, Map>;
  using Pool = allocator::HeapPool<Partitions>;
};

static_assert(allocator::OwnershipAwareCore<Partitioned>);

}  // namespace polymalloc::variants
