// The bins of a per-thread cache: one LIFO list of free blocks per cached class, with a
// count and a capacity, in front of a shared pool. Both caches are these bins behind a
// different guard: ThreadCaches (thread_cache.h, a thread-local state) for the locked heaps,
// ReentrantCaches (reentrant_cache.h: an operation holds the cache, a nested handler finds none)
// for the lock-free pool. A bin's blocks are chained through Block::next_in_list (safe-linked), so
// a bin's oldest blocks leave as a ready-made BlockChain.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/size_map.h"
#include "atomics/atomics.h"

namespace polymalloc::allocator {

// Where a thread's cache is in its life.
enum class CacheState : std::uint32_t {
  kUnused,      // not set up yet: the next call sets it up
  kActivating,  // being set up: calls meanwhile (a signal handler, a nested malloc) go around it
  kActive,
  kRetired,  // its thread's exit handlers ran, or it could not be set up: calls go around it
};

// Whether bins start able to take blocks (open), or take none until open() (closed: a
// thread's cache before it is set up and after its thread retired it, so that the fast paths
// need no test of the cache's state; a push fails, a pop finds nothing, and both go slow).
enum class BinsStart { kOpen, kClosed };

// A free block and its class.
struct ClassBlock {
  Block* block;
  unsigned i;
};

// Bins for the first kBins classes of size map Map. A bin holds at most kBinBytes (and at
// most kMaxBinCount blocks, at least 2), and moves half of that to or from the pool at a time:
// a program that holds a batch of 32 blocks of up to 2 KiB at a time runs in its cache.
//
// Behind them is one spare bin, index kBins, whose capacity is always 0: bin_of_block() sends
// a block whose size is no cached class there, so free() pushes without testing the index
// and the failed push is its slow path.
template <class Map, unsigned kBins>
class CacheBins {
 public:
  static constexpr std::size_t kBinBytes = std::size_t{64} << 10;
  static constexpr std::uint32_t kMaxBinCount = 64;
  // The big slot takes blocks above the bins' classes up to this size, and this many threads
  // at most hold one at a time: together they keep at most 8 MiB.
  static constexpr std::size_t kBigSlotMaxBlock = std::size_t{512} << 10;
  static constexpr std::uint32_t kBigSlotCredits = 16;
  static constexpr unsigned kBinCount = kBins;
  static_assert(kBins >= 1 && kBins <= Map::kClasses);
  // The largest block the bins keep.
  static constexpr std::size_t kMaxBlock = Map::block_size(kBins - 1);
  static_assert(kMaxBlock <= kTableBlockBytes, "bin_of_block() is one table load");

  static constexpr std::uint32_t capacity(unsigned i) { return kCapacity[i]; }
  static constexpr std::uint32_t batch(unsigned i) { return capacity(i) / 2; }

  // The bin of a block of `size` bytes (at most kMaxBlock): its class, or the spare bin.
  [[gnu::always_inline]] static unsigned bin_of_block(std::size_t size) {
    return kBinOfGranule[size >> 4];
  }

  constexpr CacheBins() = default;
  constexpr explicit CacheBins(BinsStart start)
      : bins_(start == BinsStart::kOpen ? kOpenBins : std::array<Bin, kBins + 1>{}) {}

  // Lets the bins take blocks (capacities as the table says), or stops them (capacity 0; the
  // blocks they hold stay until taken).
  void open() {
    for (unsigned i = 0; i < kBins; ++i) bins_[i].capacity = kCapacity[i];
  }
  void close() {
    for (unsigned i = 0; i < kBins; ++i) bins_[i].capacity = 0;
  }

  // A block of class i, or nullptr if the bin is empty.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* pop(unsigned i) {
    Bin& bin = bins_[i];
    Block* b = bin.head;
    if (b == nullptr) [[unlikely]]
      return nullptr;
    bin.head = b->next();
    atomics::store_relaxed(&bin.count, bin.count - 1);
    return b;
  }

  // Caches b (a free block of class i); false if the bin is full.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH bool push(unsigned i, Block* b) {
    Bin& bin = bins_[i];
    const std::uint32_t count = bin.count;
    if (count >= bin.capacity) [[unlikely]]
      return false;
    Block* const head = bin.head;
    bin.head = b;
    atomics::store_relaxed(&bin.count, count + 1);
    b->set_next(head);  // last: a store into b could alias the bin, as the compiler sees it
    return true;
  }

  // Puts a chain (of at most capacity(i) blocks) into empty bin i.
  void fill(unsigned i, BlockChain chain) {
    bins_[i].head = chain.head;
    atomics::store_relaxed(&bins_[i].count, chain.count);
  }

  // Detaches the n least recently cached blocks of bin i (all when n is 0 or more than it
  // holds). The most recently freed, the likeliest to be in the CPU's cache, stay.
  POLYMALLOC_UNCHECKED_BY_ASAN BlockChain take_oldest(unsigned i, std::uint32_t n) {
    Bin& bin = bins_[i];
    if (n == 0 || n > bin.count) n = bin.count;
    if (n == 0) return {};
    Block* first = bin.head;
    if (n == bin.count) {
      bin.head = nullptr;
    } else {
      first = Block::split_after(bin.head, bin.count - n);
    }
    atomics::store_relaxed(&bin.count, bin.count - n);
    return BlockChain{first, n};
  }

  // ---- the big slot: one free block of a class above the bins' ----
  // A program that keeps replacing one big buffer (a frame, a request body) takes it straight
  // back from its thread instead of from the shared pool. The slot keeps the first block
  // freed into it until a request of its class takes it, or one of another class empties it
  // (ClassCore): a thread that frees many big blocks keeps the first, not the last, which is
  // likelier to lie at the top of a heap where it would stop a trim. It holds a block only
  // while its thread holds one of the process's few slot credits (ClassCore), which bounds
  // what all slots keep together. The block in it is a one-block chain (its link is null).

  // The block of class i in the slot, taken out; nullptr if the slot holds none of class i.
  POLYMALLOC_UNCHECKED_BY_ASAN Block* take_big(unsigned i) {
    if (big_ == nullptr || big_class_ != i) return nullptr;
    Block* b = big_;
    big_ = nullptr;
    atomics::store_relaxed(&big_bytes_, std::size_t{0});
    return b;
  }

  // Puts free block b of class i into the slot if it is empty; false if it holds a block.
  POLYMALLOC_UNCHECKED_BY_ASAN bool put_big(Block* b, unsigned i) {
    if (big_ != nullptr) return false;
    b->set_next(nullptr);
    big_ = b;
    big_class_ = i;
    atomics::store_relaxed(&big_bytes_, Map::block_size(i));
    return true;
  }

  // Empties the slot: what it held (its block is nullptr if nothing).
  POLYMALLOC_UNCHECKED_BY_ASAN ClassBlock take_any_big() {
    const ClassBlock old{big_, big_class_};
    big_ = nullptr;
    atomics::store_relaxed(&big_bytes_, std::size_t{0});
    return old;
  }

  // Whether this cache's thread holds a slot credit (ClassCore acquires and returns it).
  bool has_big_credit() const { return big_credit_; }
  void set_big_credit(bool held) { big_credit_ = held; }

  // Read by other threads (statistics) while the owner runs: counts are atomic words.
  std::uint32_t count(unsigned i) const { return atomics::load_relaxed(&bins_[i].count); }
  std::size_t cached_bytes() const {
    std::size_t bytes = atomics::load_relaxed(&big_bytes_);
    for (unsigned i = 0; i < kBins; ++i) bytes += count(i) * Map::block_size(i);
    return bytes;
  }
  std::size_t cached_blocks() const {
    std::size_t blocks = atomics::load_relaxed(&big_bytes_) != 0 ? 1 : 0;
    for (unsigned i = 0; i < kBins; ++i) blocks += count(i);
    return blocks;
  }

  // nullptr if every bin's chain is as long as its count and valid(b, i) passes for each
  // block, else what is wrong (and *where). Only the owner may.
  template <class Valid>
  POLYMALLOC_UNCHECKED_BY_ASAN const char* check(Valid valid, const void** where) const {
    for (unsigned i = 0; i < kBins; ++i) {
      std::uint32_t n = 0;
      for (const Block* b = bins_[i].head; b != nullptr; b = b->next(), ++n) {
        const char* wrong = n >= bins_[i].count ? "cache bin longer than its count" : valid(b, i);
        if (wrong != nullptr) {
          if (where != nullptr) *where = b;
          return wrong;
        }
      }
      if (n != bins_[i].count) return "cache bin shorter than its count";
    }
    if (big_ != nullptr) {
      const char* wrong =
          big_->next() != nullptr ? "big slot's block linked to another" : valid(big_, big_class_);
      if (wrong != nullptr) {
        if (where != nullptr) *where = big_;
        return wrong;
      }
    }
    return nullptr;
  }

 private:
  // The capacity is kept beside the count (one cache line, no table load on free).
  struct Bin {
    Block* head = nullptr;
    std::uint32_t count = 0;
    std::uint32_t capacity = 0;
  };

  // Looked up on every free, so a table rather than arithmetic.
  static constexpr auto kCapacity = [] {
    std::array<std::uint32_t, kBins> capacity{};
    for (unsigned i = 0; i < kBins; ++i) {
      const std::size_t by_bytes = kBinBytes / Map::block_size(i);
      capacity[i] = by_bytes > kMaxBinCount ? kMaxBinCount
                    : by_bytes < 2          ? 2
                                            : static_cast<std::uint32_t>(by_bytes);
    }
    return capacity;
  }();

  // By granule size / 16 of a block's size: its class if the bins keep it, else kBins.
  static constexpr auto kBinOfGranule = [] {
    std::array<std::uint8_t, kMaxBlock / 16 + 1> table{};
    for (std::size_t g = 0; g < table.size(); ++g) {
      const unsigned i = Map::class_of_block(16 * g);
      table[g] = static_cast<std::uint8_t>(i < kBins ? i : kBins);
    }
    return table;
  }();
  static_assert(kBins < 0xff);

  static constexpr auto kOpenBins = [] {
    std::array<Bin, kBins + 1> bins{};
    for (unsigned i = 0; i < kBins; ++i) bins[i].capacity = kCapacity[i];
    return bins;
  }();

  std::array<Bin, kBins + 1> bins_ = kOpenBins;  // and the spare, always empty and full
  Block* big_ = nullptr;
  unsigned big_class_ = 0;
  std::size_t big_bytes_ = 0;  // the slot's block's size, for other threads' statistics
  bool big_credit_ = false;
};

}  // namespace polymalloc::allocator
