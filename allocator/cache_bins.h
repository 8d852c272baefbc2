// The bins of a per-thread cache: one LIFO stack of free blocks per cached class, with a
// capacity, in front of a shared pool. Both caches are these bins behind a different guard:
// ThreadCaches (thread_cache.h, a thread-local state) for the locked heaps, ReentrantCaches
// (reentrant_cache.h: an operation holds the cache, a nested handler finds none) for the
// lock-free pool.
//
// A bin is a stack of pointers in an array of slots that the cache's owner provides (as
// tcmalloc's per-CPU slabs are), not a list linked through the blocks: a push or a pop is a
// pointer compared and moved, and no link lies in memory the client may still write to. What
// a use after free writes is caught instead by a guard: a cached block's first payload word
// holds a fixed pattern, which pop() checks before the block is handed out again. Bins for a
// pool that tells a cached block from a live one by a key (the heaps: their headers read in
// use for both) also keep the key, the process secret, in the second word, where free() reads
// it (the second, not the first: a client's last writes before free() are likelier to the
// first, and a load of a word a narrower store just wrote waits for that store). Blocks leave
// the bins as a BlockChain linked through Block::next_in_list (safe-linked).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/secret.h"
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

// Where the bins of CacheBins<Map, kBins, ...> keep their blocks: each bin's capacity (at most
// kBinBytes, and kMaxBinCount blocks, at least 2) and first slot.
template <class Map, unsigned kBins>
struct BinLayout {
  static constexpr std::size_t kBinBytes = std::size_t{64} << 10;
  static constexpr std::uint32_t kMaxBinCount = 64;
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
  static constexpr auto kFirstSlot = [] {
    std::array<std::uint32_t, kBins + 1> first{};
    for (unsigned i = 0; i < kBins; ++i) first[i + 1] = first[i] + kCapacity[i];
    return first;
  }();
  static constexpr std::uint32_t kSlotCount = kFirstSlot[kBins];
};

// Bins for the first kBins classes of size map Map. A bin holds at most kBinBytes (and at
// most kMaxBinCount blocks, at least 2), and moves half of that to or from the pool at a time:
// a program that holds a batch of 32 blocks of up to 2 KiB at a time runs in its cache.
//
// Bins without slots (before attach()) or closed (before open(), after close()) take no
// block: a push fails and a pop of an empty bin finds nothing, so the fast paths need no
// test of the cache's state. Behind them is one spare bin, index kBins, that never takes a
// block: bin_of_block() sends a block whose size is no cached class there, so free() pushes
// without testing the index and the failed push is its slow path.
template <class Map, unsigned kBins, bool kKeyed = false>
class CacheBins {
 public:
  // Whether cached blocks carry the key (the pool tells cached blocks by it).
  static constexpr bool kCarriesKey = kKeyed;
  // A cached block's first word: a pattern, not a secret (the client may read it later), that
  // fits a sign-extended 32-bit immediate (one instruction to store or compare).
  static constexpr std::uintptr_t kGuard = 0x66726565;  // "free"
  using Layout = BinLayout<Map, kBins>;
  static constexpr std::size_t kBinBytes = Layout::kBinBytes;
  static constexpr std::uint32_t kMaxBinCount = Layout::kMaxBinCount;
  // The big slot takes blocks above the bins' classes up to this size, and this many threads
  // at most hold one at a time: together they keep at most 8 MiB.
  static constexpr std::size_t kBigSlotMaxBlock = std::size_t{512} << 10;
  static constexpr std::uint32_t kBigSlotCredits = 16;
  static constexpr unsigned kBinCount = kBins;
  static_assert(kBins >= 1 && kBins <= Map::kClasses);
  // The largest block the bins keep.
  static constexpr std::size_t kMaxBlock = Map::block_size(kBins - 1);
  static_assert(kMaxBlock <= kTableBlockBytes, "bin_of_block() is one table load");

  static constexpr std::uint32_t capacity(unsigned i) { return Layout::kCapacity[i]; }
  static constexpr std::uint32_t batch(unsigned i) { return capacity(i) / 2; }

  // The bin of a block of `size` bytes (at most kMaxBlock), or of `granules` 16-byte granules:
  // its class, or the spare bin.
  [[gnu::always_inline]] static unsigned bin_of_block(std::size_t size) {
    return kBinOfGranule[size >> 4];
  }
  [[gnu::always_inline]] static unsigned bin_of_granules(std::size_t granules) {
    return kBinOfGranule[granules];
  }

  // The slots of all bins together, which the cache's owner keeps for as long as the bins
  // use them (attach()).
  static constexpr std::uint32_t kSlotCount = Layout::kSlotCount;
  using Slots = std::array<Block*, kSlotCount>;

  constexpr CacheBins() = default;

  // Gives the (empty) bins their slots, and chooses the key first; they stay closed. (Out of
  // line: inlined into a thread-local cache's set-up, GCC 12's -fsanitize=undefined tests
  // `this` against null on flags another comparison left, and reports a null `this`.)
  [[gnu::noinline]] void attach(Slots* slots) {
    choose_process_secret();
    key_ = process_secret();
    slots_ = slots->data();
    for (unsigned i = 0; i < kBins; ++i) {
      Block** first = slots_ + Layout::kFirstSlot[i];
      atomics::store_relaxed(&bins_[i].bottom, first);
      atomics::store_relaxed(&bins_[i].top, first);
      bins_[i].limit = first;
      bins_[i].max = Layout::kCapacity[i];
    }
  }
  // The slots the bins use (nullptr before attach()).
  const Slots* slots() const { return reinterpret_cast<const Slots*>(slots_); }

  // Takes the slots back from the emptied bins, which are left without (nullptr if they had
  // none).
  Slots* detach() {
    Slots* slots = reinterpret_cast<Slots*>(slots_);
    for (Bin& bin : bins_) bin = Bin{};
    slots_ = nullptr;
    open_ = false;
    key_ = 0;
    newest_aligned_ = nullptr;
    return slots;
  }

  // Lets the bins take blocks up to their sizes (max_count()), or stops them (the blocks they
  // hold stay until taken).
  void open() {
    for (unsigned i = 0; i < kBins; ++i) bins_[i].limit = bins_[i].bottom + bins_[i].max;
    open_ = true;
  }
  void close() {
    for (unsigned i = 0; i < kBins; ++i) bins_[i].limit = bins_[i].bottom;
    open_ = false;
  }

  // The most blocks bin i takes while open: its capacity, unless its owner sized it down.
  std::uint32_t max_count(unsigned i) const { return bins_[i].max; }
  // Sizes bin i to take at most n blocks (0 to capacity(i)): the oldest of those above n now
  // come back as a chain, for the caller to free. (Out of line, as attach() is: inlined into
  // the thread-local cache's set-up, GCC 12's -fsanitize=undefined reports a null `this`.)
  [[gnu::noinline]] POLYMALLOC_UNCHECKED_BY_ASAN BlockChain resize(unsigned i, std::uint32_t n) {
    Bin& bin = bins_[i];
    bin.max = n;
    if (open_) bin.limit = bin.bottom + n;
    const std::uint32_t held = count(i);
    return held > n ? take_oldest(i, held - n) : BlockChain{};
  }

  // A block of class i, or nullptr if the bin is empty. A block whose guard was overwritten
  // (written to after it was freed) stops the process before it is handed out.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* pop(unsigned i) {
    Bin& bin = bins_[i];
    Block** const top = bin.top;
    if (top == bin.bottom) [[unlikely]]
      return nullptr;
    atomics::store_relaxed(&bin.top, top - 1);
    return unguarded(top[-1]);
  }

  // pop(), of the newest block only, and only if `fits` (called with its address, not reading
  // its memory) says so; nullptr otherwise.
  template <class Fits>
  POLYMALLOC_UNCHECKED_BY_ASAN Block* pop_if(unsigned i, Fits fits) {
    Bin& bin = bins_[i];
    Block** const top = bin.top;
    if (top == bin.bottom || !fits(static_cast<const Block*>(top[-1]))) return nullptr;
    atomics::store_relaxed(&bin.top, top - 1);
    return unguarded(top[-1]);
  }

  // Caches b (a free block of class i); false if the bin is full, or (keyed bins) if b may
  // bear the key already: a block freed twice goes to the slow path, which reports it. Only
  // the key's top byte is compared (Block::key_byte()); a live block whose data matches it
  // goes to the slow path too, which compares the whole key and caches it (push_live()).
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH bool push(unsigned i, Block* b) {
    if (kKeyed && b->key_byte() == Block::top_byte_of(key_)) [[unlikely]]
      return false;
    return push_live(i, b);
  }

  // Caches b, a block the caller found live (for keyed bins: its whole key word compared);
  // false if the bin is full.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH bool push_live(unsigned i, Block* b) {
    Bin& bin = bins_[i];
    Block** const top = bin.top;
    if (top >= bin.limit) [[unlikely]]
      return false;
    *top = b;
    atomics::store_relaxed(&bin.top, top + 1);
    guard(b);
    return true;
  }

  // Puts a chain (of at most capacity(i) blocks) into empty open bin i; its head comes out
  // first.
  POLYMALLOC_UNCHECKED_BY_ASAN void fill(unsigned i, BlockChain chain) {
    Bin& bin = bins_[i];
    Block** const top = bin.bottom + chain.count;
    Block** slot = top;
    for (Block *b = chain.head, *next; b != nullptr; b = next) {
      next = b->next();
      *--slot = b;
      guard(b);
    }
    atomics::store_relaxed(&bin.top, top);
  }

  // Detaches the n least recently cached blocks of bin i (all when n is 0 or more than it
  // holds), as a chain from the newest of them to the oldest, their guards checked. The most
  // recently freed, the likeliest to be in the CPU's cache, stay.
  POLYMALLOC_UNCHECKED_BY_ASAN BlockChain take_oldest(unsigned i, std::uint32_t n) {
    Bin& bin = bins_[i];
    const auto count = static_cast<std::uint32_t>(bin.top - bin.bottom);
    if (n == 0 || n > count) n = count;
    if (n == 0) return {};
    Block* head = nullptr;
    for (Block** slot = bin.bottom; slot < bin.bottom + n; ++slot) {
      Block* b = unguarded(*slot);
      b->set_next(head);
      head = b;
    }
    for (Block** slot = bin.bottom + n; slot < bin.top; ++slot) *(slot - n) = *slot;
    atomics::store_relaxed(&bin.top, bin.top - n);
    return BlockChain{head, n};
  }

  // ---- the big slot: one free block of a class above the bins' ----
  // A program that keeps replacing one big buffer (a frame, a request body) takes it straight
  // back from its thread instead of from the shared pool. The slot keeps the first block
  // freed into it until a request of its class takes it, or one of another class empties it
  // (ClassCore): a thread that frees many big blocks keeps the first, not the last, which is
  // likelier to lie at the top of a heap where it would stop a trim. It holds a block only
  // while its thread holds one of the process's few slot credits (ClassCore), which bounds
  // what all slots keep together. The block in it is guarded (and keyed) as a bin's are.

  // The block of class i in the slot, taken out; nullptr if the slot holds none of class i.
  POLYMALLOC_UNCHECKED_BY_ASAN Block* take_big(unsigned i) {
    if (big_ == nullptr || big_class_ != i) return nullptr;
    return unguarded(empty_big_slot());
  }

  // Puts free block b of class i into the slot if it is empty; false if it holds a block.
  POLYMALLOC_UNCHECKED_BY_ASAN bool put_big(Block* b, unsigned i) {
    if (big_ != nullptr) return false;
    guard(b);
    big_ = b;
    big_class_ = i;
    atomics::store_relaxed(&big_bytes_, Map::block_size(i));
    return true;
  }

  // Empties the slot: what it held as a one-block chain (empty if nothing), and its class.
  POLYMALLOC_UNCHECKED_BY_ASAN BlockChain take_big_chain(unsigned* i) {
    *i = big_class_;
    Block* b = empty_big_slot();
    if (b == nullptr) return {};
    unguarded(b)->set_next(nullptr);
    return BlockChain{b, 1};
  }

  // Whether this cache's thread holds a slot credit (ClassCore acquires and returns it).
  bool has_big_credit() const { return big_credit_; }
  void set_big_credit(bool held) { big_credit_ = held; }

  // ---- the newest aligned block: a hint for ClassCore::may_cache() ----
  void note_aligned(const Block* b) { newest_aligned_ = b; }
  bool is_newest_aligned(const Block* b) const { return b == newest_aligned_; }

  // Read by other threads (statistics) while the owner runs: the indices are atomic words.
  std::uint32_t count(unsigned i) const {
    Block** const top = atomics::load_relaxed(&bins_[i].top);
    Block** const bottom = atomics::load_relaxed(&bins_[i].bottom);
    // (0 while another thread attaches the bins)
    return top > bottom ? static_cast<std::uint32_t>(top - bottom) : 0;
  }
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

  // nullptr if every bin is within its capacity, every block in it guarded (and keyed) and
  // valid(b, i) passes for each, else what is wrong (and *where). Only the owner may.
  template <class Valid>
  POLYMALLOC_UNCHECKED_BY_ASAN const char* check(Valid valid, const void** where) const {
    for (unsigned i = 0; i < kBins; ++i) {
      const Bin& bin = bins_[i];
      if (bin.top < bin.bottom || bin.top - bin.bottom > Layout::kCapacity[i]) {
        return "cache bin beyond its capacity";
      }
      for (Block* const* slot = bin.bottom; slot < bin.top; ++slot) {
        if (const char* wrong = check_one(valid, *slot, i, where)) return wrong;
      }
    }
    if (big_ != nullptr) return check_one(valid, big_, big_class_, where);
    return nullptr;
  }

 private:
  // A bin is the slots [bottom, top) (the top one the newest), and takes blocks while top is
  // below limit (bottom + capacity when open, bottom when closed). Pointers, not indices: a
  // push or pop is then one compare and one move of top, with no base to add.
  struct Bin {
    Block** top = nullptr;
    Block** limit = nullptr;
    Block** bottom = nullptr;
    std::uint32_t max = 0;  // blocks it takes while open (limit - bottom then)
    std::uint32_t unused = 0;  // (32 bytes: the index scales by a shift)
  };

  Block* empty_big_slot() {
    Block* b = big_;
    big_ = nullptr;
    atomics::store_relaxed(&big_bytes_, std::size_t{0});
    return b;
  }

  // b, entering a bin or the slot: its guard (and key) written.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH void guard(Block* b) const {
    b->set_guard_word(kGuard);
    if (kKeyed) b->set_key_word(key_);
  }
  // b, leaving a bin or the slot: its guard checked (a use after free that changed it stops
  // the process) and its key cleared (a client never sees the secret).
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* unguarded(Block* b) const {
    if (b->guard_word() != kGuard) [[unlikely]]
      Block::report_overwritten_guard(b);
    if (kKeyed) b->set_key_word(0);
    return b;
  }

  template <class Valid>
  POLYMALLOC_UNCHECKED_BY_ASAN const char* check_one(Valid& valid, const Block* b, unsigned i,
                                                     const void** where) const {
    const char* wrong = b->guard_word() != kGuard               ? "cached block written to after it was freed"
                        : kKeyed && b->key_word() != key_ ? "cached block without its key"
                                                          : valid(b, i);
    if (wrong != nullptr && where != nullptr) *where = b;
    return wrong;
  }

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

  std::array<Bin, kBins + 1> bins_{};  // and the spare, always empty and full
  Block** slots_ = nullptr;
  bool open_ = false;
  std::uintptr_t key_ = 0;  // (keyed) the process secret, kept where the fast paths have it
  Block* big_ = nullptr;
  unsigned big_class_ = 0;
  std::size_t big_bytes_ = 0;  // the slot's block's size, for other threads' statistics
  bool big_credit_ = false;
  const Block* newest_aligned_ = nullptr;  // only compared, never read through
};

// How a cache's bins are sized when they keep their capacities: a miss takes, and an overflow
// sends back, half a bin at a time, and there is nothing to review. (ThreadCaches sizes its
// bins to use instead.)
template <class Bins>
struct FixedBinSizes {
  static std::uint32_t missed(const Bins&, unsigned i) { return Bins::batch(i); }
  static std::uint32_t overflowed(const Bins&, unsigned i) { return Bins::batch(i); }
  static bool review_due(const Bins&) { return false; }
  template <class Give>
  static void review(Bins&, Give) {}
};

}  // namespace polymalloc::allocator
