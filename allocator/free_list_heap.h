// A heap of boundary-tagged blocks over any page source, with segregated free lists: one
// doubly linked list per size up to 1 KiB, then four per doubling (kExactListMax, list_of()),
// and a bitmap of non-empty lists. Allocation takes the smallest of the first few blocks of
// the smallest non-empty list that fits (find_listed()) and splits off the rest; release
// coalesces with both neighbours. Every operation is O(1) (bounded scans, no address-sorted
// list walk). Not synchronised: callers lock.
//
// In front of the coalescing lists sit quick lists, as in dlmalloc's fastbins: deallocate()
// parks a freed block of an exact small class (up to kQuickMaxBlock) on a LIFO list of its
// class without coalescing, and allocate() of that class takes it back first. Coalescing is
// deferred, not lost: the quick lists are consolidated (every parked block released into the
// coalescing lists) before the heap grows, before trim(), and when a list reaches its cap.
//
// Memory is a chain of regions (one per non-contiguous grow of the source; a reserved range
// only ever has one): [region block][blocks ...][fence]. The region block and the fence are
// permanently in use, so coalescing never leaves a region.
//
// The free block that ends the newest region, the top (dlmalloc's "wilderness"), is on no
// list: it is a free block like any other (boundary tags, date, statistics), but requests take
// it only when no list has a block that fits, and a block at its left grows into it (or it
// shrinks and grows with the region) by rewriting its header alone, with no list to fix up. A
// buffer growing by realloc at the top of the heap, and the heap's own growth and trim, cost
// what they cost on glibc's heap top.
//
// Under ASan, free payloads are poisoned and handed-out payloads unpoisoned; the heap's own
// code runs unchecked because its links and headers live inside free memory.
#pragma once

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <utility>

#include "allocator/block.h"
#include "allocator/decay.h"
#include "allocator/sanitizer.h"
#include "allocator/size_class.h"
#include "allocator/size_map.h"
#include "allocator/statistics.h"
#include "platform/platform.h"

namespace polymalloc::allocator {

// QuickMaxBlock: the largest block the quick lists take (kNoQuickLists: none, for a heap
// that has thread caches in front doing that job).
inline constexpr std::size_t kNoQuickLists = 0;
inline constexpr std::size_t kDefaultQuickMaxBlock = std::size_t{8} << 10;

// Whether an allocation may grow the heap, or must fit in the free memory it has (a caller
// with several heaps tries them all that way before it grows one).
enum class Growth { kAllowed, kNone };

template <platform::PageSource Source, std::size_t QuickMaxBlock = kDefaultQuickMaxBlock>
class FreeListHeap {
 public:
  // Minimum bytes requested from the source at a time, to keep system calls rare.
  static constexpr std::size_t kGrowthBytes = std::size_t{256} << 10;

  struct Stats {
    std::size_t committed_bytes = 0;  // obtained from the source and not given back
    std::size_t free_bytes = 0;       // in free blocks
    std::size_t free_blocks = 0;
    std::size_t peak_committed_bytes = 0;
    std::size_t cached_bytes = 0;  // parked on quick lists (free to the client, not coalesced)
    std::size_t cached_blocks = 0;
    std::size_t released_bytes = 0;  // the inner pages of free blocks, given back
  };

  // Blocks up to this size (exact power-of-two classes) use the quick lists.
  static constexpr std::size_t kQuickMaxBlock = QuickMaxBlock;  // default: requests to 8176 B
  static constexpr unsigned kQuickMaxClass =
      QuickMaxBlock >= kMinBlock ? static_cast<unsigned>(std::bit_width(QuickMaxBlock) - 1)
                                 : kMinClass;
  // Free blocks this big are dated when they become free (decay.h), in the word after their
  // links, and their inner pages (past that word) may be released.
  static constexpr std::size_t kDatedBlock = Decay::kDatedBlockBytes;
  // Blocks of a list examined for the best fit: of the request's own list, before a larger
  // list is split, and of that larger list, for its smallest block.
  static constexpr unsigned kFitScanLimit = 16;
  // Free blocks examined for one that holds an aligned payload where it lies: at most this
  // many per list, and this many in all.
  static constexpr unsigned kAlignedFitScanPerList = 8;
  static constexpr unsigned kAlignedFitScanLimit = 512;

  // The free lists: one per size up to kExactListMax (every block on such a list is the same
  // size, so the smallest non-empty list that fits is the best fit and no small request
  // splits a bigger block while a hole of its own size is free: the holes that a trace of
  // mixed small sizes leaves are reused as glibc's small bins reuse them), then four per
  // doubling (2^p, 2^p + 2^(p-2), ...), so that the first non-empty list that fits holds
  // blocks within a quarter of the best fit's size. (With one list per doubling, a request
  // of 9 KiB split whatever block came first on the 16-32 KiB list, often the one a later
  // 16 KiB request needed, and the heap grew for it.) A bitmap of the non-empty lists finds
  // the next one in a word or a few.
  static constexpr std::size_t kExactListMax = 1024;
  static constexpr unsigned kExactLists = (kExactListMax - kMinBlock) / 16 + 1;
  static constexpr unsigned kFirstPowerShift = std::bit_width(kExactListMax) - 1;  // 2^10
  static constexpr unsigned kListsPerDoubling = 4;
  static constexpr unsigned kListCount = kExactLists + (64 - kFirstPowerShift) * kListsPerDoubling;
  static constexpr unsigned kBitmapWords = (kListCount + 63) / 64;
  // Blocks this big are what a small request splits first when its exact lists are empty
  // (find_for_small()).
  static constexpr std::size_t kSmallSplitFloor = std::size_t{2} << 10;

  // The list of a free block of `size` bytes (a multiple of 16, >= kMinBlock).
  [[gnu::always_inline]] static constexpr unsigned list_of(std::size_t size) {
    if (size <= kExactListMax) return static_cast<unsigned>((size - kMinBlock) >> 4);
    const unsigned p = static_cast<unsigned>(std::bit_width(size)) - 1;  // 2^p <= size
    const unsigned quarter = static_cast<unsigned>(size >> (p - 2)) & 3;
    return kExactLists + (p - kFirstPowerShift) * kListsPerDoubling + quarter;
  }
  // The smallest block list k holds.
  static constexpr std::size_t list_floor(unsigned k) {
    if (k < kExactLists) return kMinBlock + 16 * std::size_t{k};
    const unsigned p = (k - kExactLists) / kListsPerDoubling + kFirstPowerShift;
    const std::size_t quarter = (k - kExactLists) % kListsPerDoubling;
    const std::size_t floor = (std::size_t{1} << p) + (quarter << (p - 2));
    return floor > kExactListMax ? floor : kExactListMax + 16;
  }
  static_assert(list_of(kExactListMax + 16) == kExactLists);
  static_assert(list_floor(list_of(std::size_t{9} << 10)) == (std::size_t{8} << 10));
  static_assert(list_of(std::size_t{10} << 10) == list_of(std::size_t{9} << 10) + 1);
  static_assert(list_of(~std::size_t{15}) == kListCount - 1);
  // A quick list holding this many bytes (or one block, for a class this big or bigger) is
  // full: a small class's is consolidated before it takes another block, and a block of a
  // big class that finds its list full coalesces at once.
  static constexpr std::size_t kQuickCapBytes = std::size_t{64} << 10;
  // A block growing by realloc that must move takes the top (allocate_at_top()) from this
  // size up: a buffer of a page or more that grew once will likely grow again, and smaller
  // ones are better off in the holes a best fit finds them.
  static constexpr std::size_t kMinTopGrowerBlock = std::size_t{4} << 10;

  template <class... Args>
  constexpr explicit FreeListHeap(Args&&... args) : source_(std::forward<Args>(args)...) {}
  FreeListHeap(const FreeListHeap&) = delete;
  FreeListHeap& operator=(const FreeListHeap&) = delete;

  // An in-use block of at least `block_bytes` (a multiple of 16, >= kMinBlock), or nullptr:
  // with errno = ENOMEM when the source cannot grow, untouched when growth was not allowed.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* allocate(
      std::size_t block_bytes, Growth growth = Growth::kAllowed) {
    if (is_quick_size(block_bytes)) {
      if (Block* cached = unpark(class_of(block_bytes))) return cached;
    }
    return allocate_from_lists(block_bytes, growth);
  }

  // allocate() without the quick lists: first fit from the coalescing lists (after the quick
  // lists are consolidated, if that is what it takes), then growth.
  [[gnu::noinline]] POLYMALLOC_UNCHECKED_BY_ASAN Block* allocate_from_lists(
      std::size_t block_bytes, Growth growth = Growth::kAllowed) noexcept {
    if (block_bytes < kMinBlock) block_bytes = kMinBlock;  // keeps list_of() in range
    Block* b = find_free(block_bytes);
    if (b == nullptr && stats().cached_blocks != 0) [[unlikely]] {
      consolidate();
      b = find_free(block_bytes);
    }
    if (b == nullptr && growth == Growth::kAllowed) [[unlikely]]
      b = find_free_after_growing(block_bytes);
    return b != nullptr ? carve(b, block_bytes) : nullptr;
  }

  // The size of b (a block the client holds) if it may park on a quick list, else 0: an
  // exact small class whose left neighbour is in use. A block beside free memory coalesces
  // instead: parked, it would stand in that memory (a parked block is in use to its
  // neighbours) and split it into holes too small for what follows. (memsim, RSS growth /
  // live, global_spinlock: trace_small_uniform 2.37 -> 1.76, trace_mixed_power_law 1.96 ->
  // 1.54, trace_threads_4 3.31 -> 2.06.) The size is read with kPrevFree, which makes it no
  // power of two, so that one test covers both. The exception is the newest block
  // allocate_aligned() handed out: its free neighbour is likely the lead its alignment left,
  // and the next aligned request of its size takes it back (unpark_aligned()).
  POLYMALLOC_HOT_PATH std::size_t parking_size(const Block* b) const {
    const std::size_t size = b->size_flags & ~Block::kInUse;
    if (is_quick_size(size)) [[likely]]
      return size;
    if (b == newest_aligned_ && is_quick_size(b->size())) return b->size();
    return 0;
  }

  // Whether a block of `size` bytes is an exact class the quick lists take (a power of two
  // up to kQuickMaxBlock; 0 is none).
  static constexpr bool is_quick_size(std::size_t size) {
    return size - 1 < kQuickMaxBlock && (size & (size - 1)) == 0;
  }

  // Takes back a block the client holds (live()): parked on its quick list when it is an
  // exact small class, otherwise released into the coalescing lists. Returns the free block
  // that now holds its memory (where the top may have grown), or nullptr when it was only
  // parked.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* deallocate(Block* b) {
    if (const std::size_t size = parking_size(b); size != 0) {
      const unsigned k = class_of(size);
      if (quick_list_full(k)) [[unlikely]] {
        // A big class's list holds one block: another one simply coalesces.
        return size < kQuickCapBytes ? consolidate_then_park(b, k) : release(b);
      }
      park(b, k);
      return nullptr;
    }
    return release(b);
  }

  // Parks b (a block the client holds) on its quick list if it is an exact small class and
  // the list has room; false (nothing done) otherwise, and deallocate() takes it.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH bool try_park(Block* b) {
    const std::size_t size = parking_size(b);
    if (size == 0) return false;
    const unsigned k = class_of(size);
    if (quick_list_full(k)) [[unlikely]]
      return false;
    park(b, k);
    return true;
  }

  // Releases every block parked on the quick lists into the coalescing lists.
  POLYMALLOC_UNCHECKED_BY_ASAN void consolidate() {
    for (unsigned k = kMinClass; k <= kQuickMaxClass; ++k) {
      while (Block* b = unpark(k)) release(b);
    }
  }

  // An in-use block of at least `block_bytes` whose payload is `alignment`-aligned (a power
  // of two above 16), or nullptr with errno = ENOMEM. The unused lead and tail are freed.
  POLYMALLOC_UNCHECKED_BY_ASAN Block* allocate_aligned(std::size_t block_bytes,
                                                       std::size_t alignment,
                                                       Growth growth = Growth::kAllowed) {
    if (block_bytes > SIZE_MAX / 4 || alignment > SIZE_MAX / 4) {
      errno = ENOMEM;
      return nullptr;
    }
    if (Block* parked = unpark_aligned(block_bytes, alignment)) {
      newest_aligned_ = parked;
      return parked;
    }
    // A free block that holds an aligned payload where it lies, else one big enough to hold
    // one wherever it lies (which a fragmented heap may have to grow for).
    Block* b = find_aligned_fit(block_bytes, alignment);
    b = b != nullptr ? carve(b, b->size())
                     : allocate(block_bytes + alignment + kMinBlock, growth);
    if (b == nullptr) return nullptr;
    const auto payload = reinterpret_cast<std::uintptr_t>(b->payload());
    if (payload % alignment != 0) {
      const std::uintptr_t aligned = aligned_payload_in(b, alignment);
      const std::size_t lead = aligned - payload;
      Block* moved = new_header_at(reinterpret_cast<unsigned char*>(b) + lead,
                                   (b->size() - lead) | Block::kInUse);
      b->set_size_flags(lead | Block::kInUse | (b->size_flags & Block::kPrevFree));
      release(b);
      b = moved;
    }
    split_tail(b, block_bytes);
    unpoison_live(b->payload(), b->size() - Block::kHeaderBytes);
    newest_aligned_ = b;
    return b;
  }

  // Returns an in-use block; it merges with free neighbours on both sides. Returns the free
  // block that now holds its memory.
  [[gnu::noinline]] POLYMALLOC_UNCHECKED_BY_ASAN Block* release(Block* b) noexcept {
    const std::size_t size = b->size();
    Block* right = b->right();
    const std::size_t right_free = right->in_use() ? 0 : right->size();
    if (b->prev_free()) {
      Block* left = b->left();
      const std::size_t total = left->size() + size + right_free;
      const std::uint64_t freed = merged_date(total, size, left, right_free != 0 ? right : nullptr);
      if (right_free != 0) unlink(right);
      refile(left, left, total, freed);
      left->right()->add_flags(Block::kPrevFree);
      poison_free(b, size + right_free);
      return left;
    }
    if (right_free != 0) {
      const std::size_t total = size + right_free;
      const std::uint64_t freed = merged_date(total, size, nullptr, right);
      refile(right, b, total, freed);  // b takes right's place on its list
      poison_free(b->payload(), size + right_free - Block::kHeaderBytes);
      return b;
    }
    make_free(b, size);
    return b;
  }

  // Makes `b` at least `new_bytes` by taking the front of a free right neighbour. What is left
  // of the neighbour stays free with its date, and takes its place on its list when it still
  // belongs there (a buffer growing into the free top moves no list and reads no clock).
  // Never moves `b`; false (nothing changed) if the neighbour is too small.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH bool grow_in_place(Block* b,
                                                                      std::size_t new_bytes) {
    const std::size_t size = b->size();
    if (new_bytes <= size) return true;
    Block* right = b->right();
    if (right->in_use() || size + right->size() < new_bytes) return false;
    set_size_keep_flags(b, size + take_front(right, new_bytes - size));
    unpoison_live(b->payload(), b->size() - Block::kHeaderBytes);
    return true;
  }

  // grow_in_place() for its commonest case, written out so that it stays lean: b (smaller
  // than `new_bytes`) lies just below the free top, which has no released pages and keeps at
  // least a minimum block after giving b what it lacks. The top stays off the lists, as old
  // as it was. False (nothing changed) in any other case, for grow_in_place() to decide.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH bool grow_into_top(Block* b,
                                                                      std::size_t new_bytes) {
    const std::size_t size = b->size();
    Block* right = b->right();
    const std::size_t right_flags = right->size_flags;
    if ((right_flags & (Block::kInUse | Block::kReleased)) != 0) return false;
    const std::size_t right_size = Block::size_in(right_flags);
    if (size + right_size < new_bytes + kMinBlock || !ends_region(right, right_size)) return false;
    const std::size_t rest = size + right_size - new_bytes;
    const std::uint64_t freed = rest >= kDatedBlock ? freed_at(right) : 0;     // read before the
    Block* tail = Block::at(reinterpret_cast<unsigned char*>(b) + new_bytes);  // tail's header
    unpoison_live(tail, Block::kHeaderBytes);
    shrink_top_from_front(new_bytes - size, tail, rest, freed);
    set_size_keep_flags(b, new_bytes);
    unpoison_live(b->payload(), new_bytes - Block::kHeaderBytes);
    return true;
  }

  // Makes `b` at least `new_bytes` when it ends the newest region (or only a free block lies
  // between it and the region's end), by growing the region where the source can extend it
  // in place: a growing buffer at the top stays put, as on glibc's sbrk heap, and only the
  // pages it touches fault in. False (nothing changed) if the source cannot extend there, or
  // if a free block elsewhere holds `new_bytes`: the caller moves b there instead, as glibc's
  // realloc takes free memory before it grows the heap.
  POLYMALLOC_UNCHECKED_BY_ASAN bool grow_at_top(Block* b, std::size_t new_bytes) {
    if (top_ == nullptr || find_listed(new_bytes) != nullptr) return false;
    const Block* fence = fence_of(top_);
    Block* right = b->right();
    const std::size_t right_free = right->in_use() ? 0 : right->size();
    if (right != fence && (right_free == 0 || right->right() != fence)) return false;
    const std::size_t missing = new_bytes - b->size() - right_free;
    const std::uintptr_t end = top_->end;
    if (!grow(missing) || top_->end == end) return false;  // a new region: b cannot use it
    return grow_in_place(b, new_bytes);
  }

  // A block of `block_bytes` (at least kMinTopGrowerBlock) carved from the front of the free
  // block that ends the newest region, for a block growing by realloc that cannot grow where
  // it lies: it lands where it can go on growing in place (into the rest of that free block,
  // then by grow_at_top()), as a growing buffer does at the top of glibc's heap. nullptr if
  // the request is smaller or the region does not end in a free block that big.
  POLYMALLOC_UNCHECKED_BY_ASAN Block* allocate_at_top(std::size_t block_bytes) {
    if (block_bytes < kMinTopGrowerBlock || top_ == nullptr) return nullptr;
    Block* fence = fence_of(top_);
    if (!fence->prev_free()) return nullptr;
    Block* f = fence->left();
    return f->size() >= block_bytes ? carve(f, block_bytes) : nullptr;
  }

  // Makes room for `new_bytes` by merging `b` with a free left neighbour (and a free right
  // one, if there is one) and moving b's payload down to the merged block. Returns the merged
  // in-use block, or nullptr (nothing changed) if the neighbours are not free or too small.
  POLYMALLOC_UNCHECKED_BY_ASAN Block* grow_into_neighbours(Block* b, std::size_t new_bytes) {
    if (!b->prev_free()) return nullptr;
    Block* left = b->left();
    Block* right = b->right();
    const std::size_t right_free = right->in_use() ? 0 : right->size();
    const std::size_t total = left->size() + b->size() + right_free;
    if (total < new_bytes) return nullptr;
    const std::size_t old_payload = b->size() - Block::kHeaderBytes;
    unlink(left);
    if (right_free != 0) unlink(right);
    left->set_size_flags(total | Block::kInUse);  // left of a free block is always in use
    left->right()->clear_flags(Block::kPrevFree);
    unpoison_live(left->payload(), total - Block::kHeaderBytes);
    std::memmove(left->payload(), b->payload(), old_payload);
    split_tail(left, new_bytes);
    unpoison_live(left->payload(), left->size() - Block::kHeaderBytes);
    return left;
  }

  // Shrinks an in-use block to `new_bytes`, returning the tail (if big enough to be a block).
  POLYMALLOC_UNCHECKED_BY_ASAN void shrink_in_place(Block* b, std::size_t new_bytes) {
    split_tail(b, new_bytes);
  }

  // Free bytes at the top of the newest region (what trim() could give back).
  POLYMALLOC_UNCHECKED_BY_ASAN std::size_t top_free_bytes() const {
    const Block* top = top_free_block();
    return top != nullptr ? top->size() : 0;
  }

  // Tells the OS that the whole pages inside free blocks of at least `min_bytes` are not
  // needed (they stay committed and read back as zero). Returns the bytes released.
  POLYMALLOC_UNCHECKED_BY_ASAN std::size_t release_free_pages(std::size_t min_bytes) {
    return release_aged(UINT64_MAX, min_bytes);
  }

  // Decay: releases the inner pages of every free block (of at least kDatedBlock bytes, or
  // `min_bytes`) that became free at or before `cutoff_ms` and still holds them; the quick
  // lists are consolidated first, as parked blocks hold memory too. Returns the bytes released.
  POLYMALLOC_UNCHECKED_BY_ASAN std::size_t release_aged(std::uint64_t cutoff_ms,
                                                        std::size_t min_bytes = kDatedBlock) {
    consolidate();
    const unsigned first = list_of(min_bytes > kMinBlock ? min_bytes : kMinBlock);
    std::size_t released = 0;
    for (unsigned k = first; k < kListCount; ++k) {
      for (Block* b = lists_[k]; b != nullptr; b = b->next()) {
        released += release_if_aged(b, cutoff_ms);
      }
    }
    Block* top = top_free_block();
    if (top != nullptr && list_of(top->size()) >= first)
      released += release_if_aged(top, cutoff_ms);
    return released;
  }

  // Releases the inner pages of free block b if they are still held and b became free at or
  // before `cutoff_ms` (or is too small to be dated); the bytes released. (A member, not a
  // lambda: it reads b's date in poisoned free memory, which only unchecked code may.)
  POLYMALLOC_UNCHECKED_BY_ASAN std::size_t release_if_aged(Block* b, std::uint64_t cutoff_ms) {
    if (b->size_flags & Block::kReleased) return 0;
    if (b->size() >= kDatedBlock && freed_at(b) > cutoff_ms) return 0;
    return release_pages_of(b);
  }

  // The bytes of free blocks whose inner pages went back (and have not been used since).
  std::size_t released_bytes() const { return stats_.released_bytes; }
  // The same, counted block by block (check() compares the two).
  POLYMALLOC_UNCHECKED_BY_ASAN std::size_t released_bytes_walked() const {
    std::size_t released = 0;
    for (unsigned k = list_of(2 * kMinBlock); k < kListCount; ++k) {
      for (const Block* b = lists_[k]; b != nullptr; b = b->next()) {
        if (b->size_flags & Block::kReleased) released += inner_pages(b).second;
      }
    }
    const Block* top = top_free_block();
    if (top != nullptr && (top->size_flags & Block::kReleased)) released += inner_pages(top).second;
    return released;
  }

  // Releases the inner pages of free block b now (decay at once: a delay of 0).
  POLYMALLOC_UNCHECKED_BY_ASAN std::size_t release_pages_of(Block* b) {
    const auto [start, bytes] = inner_pages(b);
    if (bytes == 0 || !platform::os_release_pages(reinterpret_cast<void*>(start), bytes)) {
      return 0;
    }
    b->set_size_flags(b->size_flags | Block::kReleased);
    stats_.released_bytes += bytes;
    return bytes;
  }

  // Decay of the top: if the free top of the newest region became free at or before
  // `cutoff_ms`, all of it beyond `keep` goes back to the source. Returns the bytes.
  POLYMALLOC_UNCHECKED_BY_ASAN std::size_t trim_aged(std::uint64_t cutoff_ms, std::size_t keep) {
    consolidate();
    Block* top = top_free_block();
    if (top == nullptr || top->size() < kDatedBlock || freed_at(top) > cutoff_ms) return 0;
    return trim(keep);
  }

  // Gives the free memory at the top of the newest region back to the source, keeping at
  // least `keep` bytes free there. Returns the number of bytes given back.
  POLYMALLOC_UNCHECKED_BY_ASAN std::size_t trim(std::size_t keep) {
    consolidate();
    Block* last = top_free_block();
    if (last == nullptr) return 0;
    const std::size_t size = last->size();
    const std::size_t page = platform::page_size();
    std::size_t bytes = size > keep ? (size - keep) & ~(page - 1) : 0;
    if (bytes != size && size - bytes < kMinBlock) bytes = bytes >= page ? bytes - page : 0;
    if (bytes == 0) return 0;
    unlink(last);
    if (!source_.shrink(bytes)) {
      make_free(last, size);
      return 0;
    }
    top_->end -= bytes;
    stats_.committed_bytes -= bytes;
    // The new fence's left neighbour is in use, or `last` (freed below).
    new_header_at(fence_of(top_), Block::kInUse);
    if (size != bytes) make_free(last, size - bytes);
    return bytes;
  }

  bool contains(const void* p) const { return source_.contains(p); }
  // contains() for a caller that holds the heap's lock (as every other call here does): a
  // source may answer it faster then.
  bool contains_locked(const void* p) const {
    if constexpr (requires { source_.contains_locked(p); }) return source_.contains_locked(p);
    return source_.contains(p);
  }

  // Whether the boundary tags around b, a block the client says is live, agree (a buffer
  // overflow that wrote over b's header, or a pointer into the middle of a block, breaks
  // them): its right neighbour lies in the heap and does not take b for free, and a free
  // left neighbour is where b's prev_size says and that big. The same checks as glibc's
  // free() ("invalid size", "corrupted size vs. prev_size"). b is 16-byte aligned in the heap
  // (contains(b)).
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH bool tags_agree(const Block* b) const {
    const auto address = reinterpret_cast<std::uintptr_t>(b);
    const std::size_t header = b->size_flags;
    const std::uintptr_t right = address + Block::size_in(header);
    // One compare catches a size of 0 and one that wraps; contains() the rest, asked only
    // when the right neighbour lies on another 4 KiB page than b (whose page is the heap's).
    if (right <= address) [[unlikely]]
      return false;
    if (((right ^ address) >> 12) != 0 && !contains_locked(reinterpret_cast<const void*>(right)))
        [[unlikely]]
      return false;
    if (Block::at(reinterpret_cast<void*>(right))->prev_free()) [[unlikely]]
      return false;
    return (header & Block::kPrevFree) == 0 || left_tags_agree(b);
  }

  // The figures (under the lock); those of the quick lists are counted from them (not kept
  // on every call).
  Stats stats() const {
    Stats s = counters();
    for (unsigned k = kMinClass; k <= kQuickMaxClass; ++k) {
      s.cached_blocks += quick_count_[k];
      s.cached_bytes += std::size_t{quick_count_[k]} << k;
    }
    return s;
  }
  // The figures the lock holder keeps as counters, which may be read without the lock (each
  // on its own: a reader may see one before an update and the next after it). Blocks parked
  // on the quick lists are not among them: they count as in use here.
  Stats counters() const {
    Stats s;
    s.committed_bytes = stats_.committed_bytes;
    s.free_bytes = stats_.free_bytes;
    s.free_blocks = stats_.free_blocks;
    s.peak_committed_bytes = stats_.peak_committed_bytes;
    s.released_bytes = stats_.released_bytes;
    return s;
  }
  Source& source() { return source_; }
  // Whether the heap, once it has committed kHugePagesFromBytes, grows to huge-page
  // boundaries and advises what it adds for transparent huge pages: POLYMALLOC_HUGE_PAGES,
  // unless set.
  void set_huge_pages(bool on) { huge_pages_.set(on ? 1 : 0); }

  // Walks every region and free list; nullptr if the heap is consistent, otherwise a
  // description of the first inconsistency found (and *where, if given, its address).
  POLYMALLOC_UNCHECKED_BY_ASAN const char* check(const void** where = nullptr) const;

  // Adds where this heap's committed memory goes to b (statistics.h), walking every block.
  // Blocks parked on quick lists are cached; a thread cache's blocks count as live here.
  POLYMALLOC_UNCHECKED_BY_ASAN void add_breakdown(MemoryBreakdown& b) const;

 private:
  // The first block of every region: in use forever, it records the region's extent.
  struct RegionInfo {
    std::size_t prev_size;
    std::size_t size_flags;
    RegionInfo* previous;  // the region grown before this one, or nullptr
    std::uintptr_t end;    // one past the fence
  };
  static_assert(sizeof(RegionInfo) == kMinBlock);

  POLYMALLOC_UNCHECKED_BY_ASAN static Block* fence_of(const RegionInfo* r) {
    return Block::at(reinterpret_cast<void*>(r->end - Block::kHeaderBytes));
  }
  // tags_agree()'s check of a free left neighbour.
  [[gnu::noinline]] POLYMALLOC_UNCHECKED_BY_ASAN bool left_tags_agree(const Block* b) const {
    const auto address = reinterpret_cast<std::uintptr_t>(b);
    if (b->prev_size == 0 || b->prev_size > address) return false;
    const Block* left = const_cast<Block*>(b)->left();
    return contains(left) && left->size() == b->prev_size && !left->in_use();
  }

  // A free block's dating word, and the whole pages inside it past that word.
  POLYMALLOC_UNCHECKED_BY_ASAN static std::uint64_t& freed_at(const Block* b) {
    return *reinterpret_cast<std::uint64_t*>(reinterpret_cast<std::uintptr_t>(b) + sizeof(Block));
  }
  POLYMALLOC_UNCHECKED_BY_ASAN static std::pair<std::uintptr_t, std::size_t> inner_pages(
      const Block* b) {
    const std::size_t page = platform::page_size();
    const auto address = reinterpret_cast<std::uintptr_t>(b);
    const std::uintptr_t first = (address + sizeof(Block) + 8 + page - 1) & ~(page - 1);
    const std::uintptr_t last = (address + b->size()) & ~(page - 1);
    return {first, last > first ? last - first : 0};
  }
  // (A coarse clock read, a few loads: only blocks this big pay it, on their way into the
  // free lists.)
  POLYMALLOC_UNCHECKED_BY_ASAN static void date(Block* b, std::size_t size) {
    if (size >= kDatedBlock) freed_at(b) = platform::os_coarse_ms();
  }

  // The free block just below the newest region's fence, or nullptr.
  POLYMALLOC_UNCHECKED_BY_ASAN Block* top_free_block() const {
    if (top_ == nullptr) return nullptr;
    Block* fence = fence_of(top_);
    return fence->prev_free() ? fence->left() : nullptr;
  }
  static Block* first_block_of(RegionInfo* r) {
    return Block::at(reinterpret_cast<unsigned char*>(r) + kMinBlock);
  }

  // Quick lists: singly linked through next_in_list, the block marked kCached.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH void park(Block* b, unsigned k) {
    b->add_flags(Block::kCached);
    b->set_next(quick_[k]);
    quick_[k] = b;
    ++quick_count_[k];
    poison_free(b->payload(), class_size(k) - Block::kHeaderBytes);
  }

  // A full quick list: everything parked goes into the coalescing lists, then b is parked.
  // Returns the top block if consolidation freed one (so the caller can trim), else nullptr.
  [[gnu::noinline]] POLYMALLOC_UNCHECKED_BY_ASAN Block* consolidate_then_park(Block* b,
                                                                              unsigned k) noexcept {
    consolidate();
    park(b, k);
    return top_free_block();
  }

  // (For a class of kQuickCapBytes or more, one parked block fills the list.)
  POLYMALLOC_HOT_PATH bool quick_list_full(unsigned k) const {
    return (std::size_t{quick_count_[k]} << k) >= kQuickCapBytes;
  }

  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* unpark(unsigned k) {
    Block* b = quick_[k];
    if (b == nullptr) return nullptr;
    quick_[k] = b->next();
    --quick_count_[k];
    b->clear_flags(Block::kCached);
    unpoison_live(b->payload(), class_size(k) - Block::kHeaderBytes);
    return b;
  }

  // The newest block parked for an exact class of `block_bytes`, if its payload is aligned as
  // asked, else nullptr. A freed aligned block of an exact class parks there, so a program
  // that allocates aligned objects of one size over and over takes its last one back, as an
  // allocation of the class does, instead of carving one with a lead and a tail to free.
  POLYMALLOC_UNCHECKED_BY_ASAN Block* unpark_aligned(std::size_t block_bytes,
                                                     std::size_t alignment) {
    if (!is_quick_size(block_bytes)) return nullptr;
    const unsigned k = class_of(block_bytes);
    const Block* newest = quick_[k];
    if (newest == nullptr ||
        (reinterpret_cast<std::uintptr_t>(newest) + Block::kHeaderBytes) % alignment != 0) {
      return nullptr;
    }
    return unpark(k);
  }

  // The slow path of allocate(): grow the source.
  POLYMALLOC_UNCHECKED_BY_ASAN Block* find_free_after_growing(std::size_t block_bytes) {
    if (!grow(block_bytes)) return nullptr;
    return find_free(block_bytes);
  }

  // Where an aligned payload starts in block b: its own payload if aligned, else the first
  // aligned address that leaves a lead of at least kMinBlock (a block of its own) before it.
  static std::uintptr_t aligned_payload_in(const Block* b, std::size_t alignment) {
    const auto payload = reinterpret_cast<std::uintptr_t>(b) + Block::kHeaderBytes;
    if (payload % alignment == 0) return payload;
    return (payload + kMinBlock + alignment - 1) & ~(alignment - 1);
  }

  // A free block (still on its list) that holds a payload of `block_bytes` aligned to
  // `alignment` where it lies, smallest lists first, among the first kAlignedFitScanPerList
  // blocks of each list big enough to hold one with a lead (kAlignedFitScanLimit in all);
  // nullptr if none of them does. An aligned request then reuses the holes a fragmented heap
  // has, rather than growing it for a block of the request plus the alignment (which every
  // aligned request that misses costs a growth step, kGrowthBytes, of memory that
  // fragments in turn). The limit per list matters: a small block rarely holds a payload
  // aligned to 4 KiB, and a heap's many small holes must not use up the search before the
  // lists whose blocks likely do (a trace with 0.1 % of its requests 4 KiB-aligned grew
  // global_spinlock's heap to 2.3x its live bytes that way).
  POLYMALLOC_UNCHECKED_BY_ASAN Block* find_aligned_fit(std::size_t block_bytes,
                                                       std::size_t alignment) const {
    unsigned scanned = 0;
    // Non-empty lists only, by the bitmap: walking the empty ones (some 280 lists) was most of
    // an aligned request's cost.
    for (unsigned k =
             first_nonempty_list_from(list_of(block_bytes + kMinBlock + Block::kHeaderBytes));
         k < kListCount; k = first_nonempty_list_from(k + 1)) {
      unsigned in_list = 0;
      for (Block* f = lists_[k]; f != nullptr && in_list < kAlignedFitScanPerList;
           f = f->next(), ++in_list) {
        if (++scanned > kAlignedFitScanLimit) return nullptr;
        if (holds_aligned(f, block_bytes, alignment)) return f;
      }
    }
    Block* top = top_free_block();
    return top != nullptr && holds_aligned(top, block_bytes, alignment) ? top : nullptr;
  }

  // Whether free block f holds a block of `block_bytes` whose payload is `alignment`-aligned
  // where it lies (aligned_payload_in()).
  POLYMALLOC_UNCHECKED_BY_ASAN static bool holds_aligned(const Block* f, std::size_t block_bytes,
                                                         std::size_t alignment) {
    const std::uintptr_t end = reinterpret_cast<std::uintptr_t>(f) + f->size();
    return aligned_payload_in(f, alignment) - Block::kHeaderBytes + block_bytes <= end;
  }

  // A free block of at least `block_bytes` (still on its list, or the top), or nullptr: from
  // the lists first, the top last.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* find_free(std::size_t block_bytes) const {
    if (Block* listed = find_listed(block_bytes)) return listed;
    Block* top = top_free_block();
    return top != nullptr && top->size() >= block_bytes ? top : nullptr;
  }

  // A free block on the lists of at least `block_bytes`, or nullptr.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* find_listed(
      std::size_t block_bytes) const {
    // Every block on a list above the request's own is big enough, and on an exact list so is
    // every block of its own. A list above those may also hold blocks that fit: the best of
    // the first few there that fit (an exact fit ends the search) is taken first, which keeps
    // holes from piling up when many sizes share a list.
    const unsigned own = list_of(block_bytes > kMinBlock ? block_bytes : kMinBlock);
    if (list_floor(own) < block_bytes) {
      Block* best = nullptr;
      unsigned scanned = 0;
      for (Block* b = lists_[own]; b != nullptr && scanned < kFitScanLimit;
           b = b->next(), ++scanned) {
        const std::size_t size = b->size();
        if (size < block_bytes || (best != nullptr && size >= best->size())) continue;
        best = b;
        if (size == block_bytes) break;
      }
      if (best != nullptr) return best;
      return smallest_early_in_first_nonempty(own + 1);
    }
    if (own < kExactLists) return find_for_small(own);
    return smallest_early_in_first_nonempty(own);
  }

  // The smallest of the first kFitScanLimit blocks of the first non-empty list from k on
  // (every one of them big enough), or nullptr. Its head would do, but a list above the exact
  // ones spans a quarter of a doubling: splitting its smallest block leaves the bigger ones
  // whole for the requests that need them. (memsim, RSS growth / live, partitioned, five seeds
  // of trace_mixed_power_law: 1.64 -> 1.57 on average, glibc 1.42.)
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* smallest_early_in_first_nonempty(
      unsigned k) const {
    const unsigned j = first_nonempty_list_from(k);
    if (j >= kListCount) return nullptr;
    Block* best = lists_[j];
    if (j < kExactLists) return best;  // one size
    unsigned scanned = 1;
    for (Block* b = best->next(); b != nullptr && scanned < kFitScanLimit;
         b = b->next(), ++scanned) {
      if (b->size() < best->size()) best = b;
    }
    return best;
  }

  // A small request's block when its own exact list is empty: the smallest exact list above,
  // else a block of kSmallSplitFloor or more, and a block of 1-2 KiB only when there is no
  // bigger one. What a small request leaves of a 1-2 KiB block is a hole under 1 KiB, while
  // the block whole would serve a request of its own size. (memsim, partitioned, RSS growth
  // / live: uniform trace 1.66 -> 1.57, 4-thread trace 2.77 -> 2.70, medians of 3-6 runs.)
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* find_for_small(unsigned own) const {
    Block* first = first_nonempty_from(own);
    if (first == nullptr || list_of(first->size()) < kExactLists) return first;
    Block* big = first_nonempty_from(list_of(kSmallSplitFloor));
    return big != nullptr ? big : first;
  }

  // The head of the first non-empty list from k on, or nullptr.
  POLYMALLOC_HOT_PATH Block* first_nonempty_from(unsigned k) const {
    const unsigned j = first_nonempty_list_from(k);
    return j < kListCount ? lists_[j] : nullptr;
  }

  // The first non-empty list from k on, or kListCount.
  POLYMALLOC_HOT_PATH unsigned first_nonempty_list_from(unsigned k) const {
    for (unsigned w = k / 64; w < kBitmapWords; ++w) {
      const std::uint64_t bits = w == k / 64 ? nonempty_[w] >> (k % 64) << (k % 64) : nonempty_[w];
      if (bits != 0) return 64 * w + static_cast<unsigned>(std::countr_zero(bits));
    }
    return kListCount;
  }

  // Turns the front of free block `f` into an in-use block of `block_bytes`; the rest stays
  // free and takes f's place on its list when it still belongs there (no relinking).
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* carve(Block* f, std::size_t block_bytes) {
    // In use (a free block's kReleased does not come along): the left of a free block is.
    f->set_size_flags(take_front(f, block_bytes) | Block::kInUse);
    unpoison_live(f->payload(), f->size() - Block::kHeaderBytes);
    return f;
  }

  // Takes the first `bytes` of free block `f` off the free lists and returns how many it took:
  // `bytes`, with the rest (kMinBlock or more) still free, as old as f and in f's place on its
  // list when it still belongs there (no relinking); or all of f, when less would be left.
  // The caller writes the header of what it took (f's, for the front of f).
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH std::size_t take_front(Block* f,
                                                                          std::size_t bytes) {
    const std::size_t size = f->size();
    if (size - bytes < kMinBlock) {
      unlink(f);
      f->right()->clear_flags(Block::kPrevFree);
      return size;
    }
    const std::size_t rest = size - bytes;
    const std::uint64_t freed = rest >= kDatedBlock ? freed_at(f) : 0;
    // refile() reads all of f before it writes the rest's header, which may overlap f's links
    // when `bytes` is small (so it is not written here first).
    Block* tail = Block::at(reinterpret_cast<unsigned char*>(f) + bytes);
    unpoison_live(tail, Block::kHeaderBytes);  // marks the header's bytes; writes none
    if (ends_region(f, size) && (f->size_flags & Block::kReleased) == 0) [[likely]] {
      shrink_top_from_front(bytes, tail, rest, freed);
    } else {
      refile(f, tail, rest, freed);
    }
    return bytes;
  }

  // refile() of the top (with no released pages) that gave its first `taken` bytes away to
  // its last `rest` at `tail`: it stays the top, off the lists, as old as it was. The path of
  // a buffer growing into the top and of a block carved from it, which asks nothing twice.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH void shrink_top_from_front(
      std::size_t taken, Block* tail, std::size_t rest, std::uint64_t freed) {
    stats_.free_bytes -= taken;
    tail->set_size_flags(rest);
    Block::at(reinterpret_cast<unsigned char*>(tail) + rest)->prev_size = rest;
    if (rest >= kDatedBlock) freed_at(tail) = freed;
  }

  // Replaces free block `from` on the free lists by `to` (the same block, or one that now
  // covers its memory) with `new_size` bytes, dated `freed` if it is big enough to be dated,
  // and writes to's boundary tag. When the size stays in the same list, `to` simply takes
  // from's place: no bitmap or head change; when both are the top, only its header changes.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH void refile(Block* from, Block* to,
                                                               std::size_t new_size,
                                                               std::uint64_t freed) {
    const std::size_t old_size = from->size();
    const bool was_top = ends_region(from, old_size);
    const bool top = ends_region(to, new_size);
    // A new header has no kReleased: from's released pages (if any) stop counting.
    const std::size_t released = from->size_flags & Block::kReleased ? inner_pages(from).second : 0;
    const unsigned k = was_top || top ? 0 : list_of(old_size);  // (the lists keep no top)
    if (was_top && top) {
      stats_.released_bytes -= released;
      stats_.free_bytes += new_size - old_size;
      to->set_size_flags(new_size);
    } else if (was_top || top || list_of(new_size) != k) {
      unlink(from);
      to->set_size_flags(new_size);
      link(to);
    } else {
      stats_.released_bytes -= released;
      stats_.free_bytes += new_size - old_size;
      Block* next = from->next();
      Block* prev = from->prev();
      to->set_size_flags(new_size);
      to->set_next(next);
      to->set_prev(prev);
      if (prev != nullptr) {
        prev->set_next(to);
      } else {
        lists_[k] = to;
      }
      if (next != nullptr) next->set_prev(to);
    }
    to->right()->prev_size = new_size;
    if (new_size >= kDatedBlock) freed_at(to) = freed;
  }

  // The date of a free block of `total` bytes merged from a block of `size` freed now and its
  // free neighbours (either may be null): that of its biggest part, where the freed block and
  // any part too small to carry a date count as freed now (0 for a whole too small to be
  // dated). Most of the pages are that part's, and their age is what decay should see: a
  // small block that joins a big one which has sat free leaves its age alone (otherwise a
  // trickle of small frees would keep a big free block young for ever, and it would never go
  // back), and a big block freed now makes the whole young. Reads the clock only when the
  // biggest part was freed now.
  POLYMALLOC_UNCHECKED_BY_ASAN static std::uint64_t merged_date(std::size_t total, std::size_t size,
                                                                const Block* left,
                                                                const Block* right) {
    if (total < kDatedBlock) return 0;
    const Block* biggest = nullptr;  // nullptr: the block freed now
    std::size_t biggest_size = size;
    for (const Block* part : {left, right}) {
      if (part != nullptr && part->size() > biggest_size)
        biggest = part, biggest_size = part->size();
    }
    if (biggest != nullptr && biggest_size >= kDatedBlock) return freed_at(biggest);
    return platform::os_coarse_ms();
  }

  // Cuts an in-use block down to `bytes`, freeing the tail if it can be a block of its own.
  POLYMALLOC_UNCHECKED_BY_ASAN void split_tail(Block* b, std::size_t bytes) {
    const std::size_t rest = b->size() - bytes;
    if (rest < kMinBlock) return;
    set_size_keep_flags(b, bytes);
    release(new_header_at(b->right(), rest | Block::kInUse));
  }

  POLYMALLOC_UNCHECKED_BY_ASAN static void set_size_keep_flags(Block* b, std::size_t size) {
    b->set_size_flags(size | (b->size_flags & Block::kFlags));
  }

  // Writes a fresh header (whose bytes may lie in poisoned free memory) and returns it.
  POLYMALLOC_UNCHECKED_BY_ASAN static Block* new_header_at(void* address, std::size_t size_flags) {
    unpoison_live(address, Block::kHeaderBytes);
    Block* b = Block::at(address);
    b->set_size_flags(size_flags);
    return b;
  }

  // Makes [b, b + size) one free block whose left neighbour is in use, and files it.
  POLYMALLOC_UNCHECKED_BY_ASAN void make_free(Block* b, std::size_t size) {
    b->set_size_flags(size);
    Block* right = b->right();
    right->prev_size = size;
    right->add_flags(Block::kPrevFree);
    date(b, size);
    link(b);
    poison_free(b->payload(), size - Block::kHeaderBytes);
  }

  // Whether a free block at b of `size` bytes ends the newest region: the top, kept off the
  // lists. (Asked before the region's end moves, of the size b has or is about to have.)
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH bool ends_region(const Block* b,
                                                                    std::size_t size) const {
    return reinterpret_cast<std::uintptr_t>(b) + size + Block::kHeaderBytes == top_->end;
  }

  // Files free block b: on its list, or as the top. (Counted either way, its released pages
  // too: a block moved between lists keeps its header.)
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH void link(Block* b) {
    stats_.free_bytes += b->size();
    ++stats_.free_blocks;
    if (b->size_flags & Block::kReleased) [[unlikely]]
      stats_.released_bytes += inner_pages(b).second;
    if (ends_region(b, b->size())) return;
    const unsigned k = list_of(b->size());
    b->set_prev(nullptr);
    b->set_next(lists_[k]);
    if (lists_[k] != nullptr) lists_[k]->set_prev(b);
    lists_[k] = b;
    nonempty_[k / 64] |= std::uint64_t{1} << (k % 64);
  }

  // Takes free block b (with its size intact) off its list, or off the top; its released
  // pages (if any) stop counting until it is linked again with kReleased.
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH void unlink(Block* b) {
    stats_.free_bytes -= b->size();
    --stats_.free_blocks;
    if (b->size_flags & Block::kReleased) [[unlikely]]
      stats_.released_bytes -= inner_pages(b).second;
    if (ends_region(b, b->size())) return;
    const unsigned k = list_of(b->size());
    if (b->prev() != nullptr) {
      b->prev()->set_next(b->next());
    } else {
      lists_[k] = b->next();
      if (lists_[k] == nullptr) nonempty_[k / 64] &= ~(std::uint64_t{1} << (k % 64));
    }
    if (b->next() != nullptr) b->next()->set_prev(b->prev());
  }

  // Adds at least `block_bytes` of free space from the source.
  POLYMALLOC_UNCHECKED_BY_ASAN bool grow(std::size_t block_bytes) {
    const std::size_t overhead = kMinBlock + Block::kHeaderBytes;  // region block + fence
    if (block_bytes > SIZE_MAX / 2) {
      errno = ENOMEM;
      return false;
    }
    std::size_t bytes = platform::round_up_to_page(
        block_bytes + overhead > kGrowthBytes ? block_bytes + overhead : kGrowthBytes);
    void* start = nullptr;
    if (grows_by_huge_pages()) {
      const std::size_t to_boundary = to_huge_page_boundary(bytes);
      start = source_.grow(to_boundary);
      if (start != nullptr) {
        bytes = to_boundary;
        platform::os_advise_huge(start, bytes);
      }
    }
    if (start == nullptr) start = source_.grow(bytes);
    if (start == nullptr) return false;
    stats_.committed_bytes += bytes;
    if (stats_.committed_bytes > stats_.peak_committed_bytes) {
      stats_.peak_committed_bytes.set(stats_.committed_bytes);
    }
    const auto address = reinterpret_cast<std::uintptr_t>(start);
    if (top_ != nullptr && address == top_->end) {
      extend_top_region(bytes);
    } else {
      add_region(address, bytes);
    }
    return true;
  }

  POLYMALLOC_UNCHECKED_BY_ASAN bool grows_by_huge_pages() const {
    return top_ != nullptr && stats_.committed_bytes >= kHugePagesFromBytes &&
           huge_pages_.get() != 0;
  }
  // `bytes` and more, so that the newest region, grown by that in place, ends on a huge page.
  POLYMALLOC_UNCHECKED_BY_ASAN std::size_t to_huge_page_boundary(std::size_t bytes) const {
    return platform::round_up_to_huge_page(top_->end + bytes) - top_->end;
  }

  // The old fence becomes the start of a free block covering the new memory. The old top,
  // which ends the region no more, goes on a list first, and joins the new top as it is freed.
  POLYMALLOC_UNCHECKED_BY_ASAN void extend_top_region(std::size_t bytes) {
    Block* old_fence = fence_of(top_);
    Block* old_top = top_free_block();
    if (old_top != nullptr) unlink(old_top);
    top_->end += bytes;
    if (old_top != nullptr) link(old_top);
    new_header_at(fence_of(top_), Block::kInUse);
    old_fence->set_size_flags(bytes | Block::kInUse | (old_fence->size_flags & Block::kPrevFree));
    release(old_fence);
  }

  // A region of its own (the source could not extend the newest one): the old region's top
  // goes on a list, as any free block of an older region is.
  POLYMALLOC_UNCHECKED_BY_ASAN void add_region(std::uintptr_t address, std::size_t bytes) {
    Block* old_top = top_free_block();
    if (old_top != nullptr) unlink(old_top);
    auto* region = reinterpret_cast<RegionInfo*>(address);
    region->prev_size = 0;
    region->size_flags = kMinBlock | Block::kInUse;  // not yet visible to anyone
    region->previous = top_;
    region->end = address + bytes;
    top_ = region;
    if (old_top != nullptr) link(old_top);
    new_header_at(fence_of(region), Block::kInUse);
    release(new_header_at(first_block_of(region),
                          (bytes - kMinBlock - Block::kHeaderBytes) | Block::kInUse));
  }

  Source source_;
  LocalSetting<Setting::kHugePages> huge_pages_;
  Block* lists_[kListCount] = {};
  Block* quick_[kQuickMaxClass + 1] = {};
  // (Plain counts, read under the lock only: park() and unpark() are global_spinlock's fast
  // path, where counts a reader without the lock could read cost 9-12 instructions a pair.)
  std::uint32_t quick_count_[kQuickMaxClass + 1] = {};
  const Block* newest_aligned_ = nullptr;  // (parking_size(); only compared)
  std::uint64_t nonempty_[kBitmapWords] = {};
  RegionInfo* top_ = nullptr;
  // The figures (Stats, less what the quick lists count), readable without the lock.
  struct Counters {
    atomics::SingleWriterCounter<std::size_t> committed_bytes;
    atomics::SingleWriterCounter<std::size_t> free_bytes;
    atomics::SingleWriterCounter<std::size_t> free_blocks;
    atomics::SingleWriterCounter<std::size_t> peak_committed_bytes;
    atomics::SingleWriterCounter<std::size_t> released_bytes;
  };
  Counters stats_;
};

template <platform::PageSource Source, std::size_t QuickMaxBlock>
POLYMALLOC_UNCHECKED_BY_ASAN void FreeListHeap<Source, QuickMaxBlock>::add_breakdown(
    MemoryBreakdown& parts) const {
  std::size_t in_blocks = 0;
  for (const RegionInfo* r = top_; r != nullptr; r = r->previous) {
    const Block* fence = fence_of(r);
    for (const Block* b = first_block_of(const_cast<RegionInfo*>(r)); b != fence;
         b = const_cast<Block*>(b)->right()) {
      const std::size_t size = b->size();
      in_blocks += size;
      if (!b->in_use()) {
        (size < kHoleBytes ? parts.hole_bytes : parts.reusable_bytes) += size;
      } else if (b->size_flags & Block::kCached) {
        parts.cached_bytes += size;
      } else {
        parts.live_bytes += size - Block::kHeaderBytes;
        parts.header_bytes += Block::kHeaderBytes;
        ++parts.live_blocks;
      }
    }
  }
  const std::size_t released = released_bytes();  // inside free blocks of two pages or more
  parts.reusable_bytes -= released;
  parts.released_bytes += released;
  parts.structure_bytes += stats_.committed_bytes - in_blocks;
}

template <platform::PageSource Source, std::size_t QuickMaxBlock>
POLYMALLOC_UNCHECKED_BY_ASAN const char* FreeListHeap<Source, QuickMaxBlock>::check(
    const void** where) const {
  auto fail = [where](const char* what, const void* at) {
    if (where != nullptr) *where = at;
    return what;
  };
  std::size_t free_blocks = 0, free_bytes = 0;
  for (RegionInfo* r = top_; r != nullptr; r = r->previous) {
    const Block* fence = fence_of(r);
    Block* b = first_block_of(r);
    bool left_free = false;
    while (b != fence) {
      const std::size_t size = b->size();
      if (size < kMinBlock || reinterpret_cast<const unsigned char*>(b) + size >
                                  reinterpret_cast<const unsigned char*>(fence)) {
        return fail("block size out of range", b);
      }
      if (b->prev_free() != left_free) return fail("prev-free flag disagrees with left block", b);
      if (!b->in_use()) {
        if (left_free) return fail("two adjacent free blocks (not coalesced)", b);
        if (b->right()->prev_size != size) return fail("boundary tag disagrees with size", b);
        ++free_blocks;
        free_bytes += size;
      }
      left_free = !b->in_use();
      b = b->right();
    }
    if (!fence->in_use() || fence->prev_free() != left_free) return fail("damaged fence", fence);
  }
  const Block* top = top_free_block();  // off the lists
  std::size_t listed = 0;
  for (unsigned k = 0; k < kListCount; ++k) {
    if ((lists_[k] != nullptr) != ((nonempty_[k / 64] >> (k % 64)) & 1))
      return fail("bitmap disagrees", lists_[k]);
    for (Block* b = lists_[k]; b != nullptr; b = b->next()) {
      if (b->in_use()) return fail("in-use block on a free list", b);
      if (list_of(b->size()) != k) return fail("free block on the wrong list", b);
      if (b == top) return fail("the top on a free list", b);
      if (b->next() != nullptr && b->next()->prev() != b) return fail("broken free-list link", b);
      if (++listed > free_blocks) return fail("free list longer than the free blocks", b);
    }
  }
  if (listed + (top != nullptr ? 1 : 0) != free_blocks) {
    return fail("free block missing from the free lists", nullptr);
  }
  std::size_t cached_blocks = 0, cached_bytes = 0;
  for (unsigned k = kMinClass; k <= kQuickMaxClass; ++k) {
    std::uint32_t count = 0;
    for (Block* b = quick_[k]; b != nullptr; b = b->next()) {
      if (!b->in_use() || (b->size_flags & Block::kCached) == 0 || b->size() != class_size(k)) {
        return fail("damaged block on a quick list", b);
      }
      if (++count > quick_count_[k]) return fail("quick list longer than its count", b);
      cached_bytes += b->size();
    }
    if (count != quick_count_[k]) return fail("quick list shorter than its count", quick_[k]);
    cached_blocks += count;
  }
  if (cached_blocks != stats().cached_blocks || cached_bytes != stats().cached_bytes) {
    return fail("quick-list statistics disagree with the lists", nullptr);
  }
  if (free_blocks != stats_.free_blocks || free_bytes != stats_.free_bytes) {
    return fail("statistics disagree with the heap", nullptr);
  }
  if (released_bytes_walked() != stats_.released_bytes) {
    return fail("released-bytes count disagrees with the heap", nullptr);
  }
  return nullptr;
}

}  // namespace polymalloc::allocator
