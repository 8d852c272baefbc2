// Block layout with boundary tags. Every block starts with a 16-byte header, so payloads are
// 16-byte aligned. A free block also holds its free-list links, and its size is repeated in
// the next block's header (prev_size), which lets free() find a free left neighbour in O(1).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "allocator/sanitizer.h"
#include "atomics/atomics.h"

namespace polymalloc::allocator {

struct Block {
  // The flag bits of size_flags: the one layout of every kind of block (sizes are multiples
  // of 16, so the low four bits are free). Two bits mean one thing in a boundary-tagged heap
  // and another in a pool without boundary tags (signal_safe's); a block is only ever one.
  //   bit 0  kInUse     allocated (or a heap's region block or fence)
  //   bit 1  kPrevFree  heap: the block to the left is free (its size is in prev_size)
  //          kShifted   pool: the second header of an aligned payload inside a block
  //          kGrowing   large block: a cached mapping it took to grow into by realloc
  //   bit 2  kMapped    a large block, a mapping of its own (LargeObjects)
  //   bit 3  kCached    heap: freed, but parked on a quick list (still "in use" as far as
  //                     its neighbours' coalescing is concerned)
  //          kReleased  pool: a free block whose inner pages went back to the OS
  //          kLent      large block: a cached mapping lent to a buffer that realloc(NULL, n)
  //                     started (LargeObjects::adopt_for_growth), counted against a bound
  static constexpr std::size_t kInUse = 1;
  static constexpr std::size_t kPrevFree = 2;
  static constexpr std::size_t kShifted = 2;
  static constexpr std::size_t kGrowing = 2;
  static constexpr std::size_t kMapped = 4;
  static constexpr std::size_t kCached = 8;
  static constexpr std::size_t kReleased = 8;
  static constexpr std::size_t kLent = 8;
  static constexpr std::size_t kFlags = 15;

  std::size_t prev_size;   // size of the left neighbour; meaningful only when kPrevFree
  std::size_t size_flags;  // size of this block (header included) | flags
  // Only while free, and stored mangled (safe-linking, as in glibc 2.32+): each link is
  // XORed with its own address shifted right by 12, so a use-after-free write or a linear
  // overflow that overwrites a link yields an address that fails the 16-byte alignment check
  // (15 times in 16) instead of steering the next allocation. Read and write them through
  // next()/prev() and set_next()/set_prev().
  std::uintptr_t next_in_list;
  std::uintptr_t prev_in_list;

  static constexpr std::size_t kHeaderBytes = 2 * sizeof(std::size_t);

  // The same questions of a header value read once (e.g. by size_flags_unlocked()).
  static std::size_t size_in(std::size_t size_flags) { return size_flags & ~kFlags; }
  static bool live_in(std::size_t size_flags) {
    return (size_flags & (kInUse | kCached)) == kInUse;
  }

  std::size_t size() const { return size_in(size_flags); }
  bool in_use() const { return (size_flags & kInUse) != 0; }
  bool prev_free() const { return (size_flags & kPrevFree) != 0; }
  // Whether the client holds this block (in use and not parked on a quick list).
  bool live() const { return live_in(size_flags); }

  // Header writes are atomic (relaxed): the owner of a live block may read its header
  // without the heap's lock (a thread cache does) while the lock holder flips the block's
  // kPrevFree bit because a neighbour changed. Writers are serialised by the heap's lock.
  void set_size_flags(std::size_t v) { atomics::store_relaxed(&size_flags, v); }
  void add_flags(std::size_t f) { set_size_flags(size_flags | f); }
  void clear_flags(std::size_t f) { set_size_flags(size_flags & ~f); }
  // The header as read without the heap's lock.
  std::size_t size_flags_unlocked() const { return atomics::load_relaxed(&size_flags); }
  // A flag set or cleared where no other thread reads the header meanwhile (a block between
  // a thread's cache and its client): one read-modify-write instruction where the CPU has
  // one, instead of a load, the change and an atomic store.
  void set_flags_unshared(std::size_t f) { size_flags |= f; }
  void clear_flags_unshared(std::size_t f) { size_flags &= ~f; }

  // The free-list links, demangled; a link that does not demangle to a 16-byte-aligned
  // address (or null) was overwritten, and the process stops with a one-line report.
  // (Inlined: GCC otherwise calls them out of line from the heaps' list walks, which cost
  // partitioned's replay of the uniform trace 2 % of its instructions.)
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* next() const {
    return checked(demangle(next_in_list, &next_in_list));
  }
  POLYMALLOC_UNCHECKED_BY_ASAN POLYMALLOC_HOT_PATH Block* prev() const {
    return checked(demangle(prev_in_list, &prev_in_list));
  }
  POLYMALLOC_UNCHECKED_BY_ASAN void set_next(Block* b) { next_in_list = mangle(b, &next_in_list); }
  POLYMALLOC_UNCHECKED_BY_ASAN void set_prev(Block* b) { prev_in_list = mangle(b, &prev_in_list); }
  // The next link without the check, for lock-free readers that may read a link while
  // another thread reuses the block (their CAS then fails and the value is discarded).
  POLYMALLOC_UNCHECKED_BY_ASAN Block* next_unchecked() const {
    return demangle(next_in_list, &next_in_list);
  }
  // The link words as plain values, for a cached block (cache_bins.h): the first holds a
  // pattern a write after free would change, the second the cache's key.
  POLYMALLOC_UNCHECKED_BY_ASAN std::uintptr_t guard_word() const { return next_in_list; }
  POLYMALLOC_UNCHECKED_BY_ASAN void set_guard_word(std::uintptr_t v) { next_in_list = v; }
  POLYMALLOC_UNCHECKED_BY_ASAN std::uintptr_t key_word() const { return prev_in_list; }
  POLYMALLOC_UNCHECKED_BY_ASAN void set_key_word(std::uintptr_t v) { prev_in_list = v; }
  // The key word's most significant byte, read alone: a one-byte load lies inside whatever
  // store last wrote its byte, so it takes its value from a store still in flight, where a
  // word load waits for a client's narrower store to the word to reach the cache.
  POLYMALLOC_UNCHECKED_BY_ASAN std::uint8_t key_byte() const { return top_byte_of(prev_in_list); }
  // A word's most significant byte, loaded alone.
  POLYMALLOC_UNCHECKED_BY_ASAN static std::uint8_t top_byte_of(const std::uintptr_t& word) {
    constexpr std::size_t kAt = std::endian::native == std::endian::little ? sizeof(word) - 1 : 0;
    return reinterpret_cast<const unsigned char*>(&word)[kAt];
  }
  // The second link's word as a plain value (a batch length), unmangled.
  POLYMALLOC_UNCHECKED_BY_ASAN std::uintptr_t aux_word() const { return prev_in_list; }
  POLYMALLOC_UNCHECKED_BY_ASAN void set_aux_word(std::uintptr_t v) { prev_in_list = v; }

  // Cuts a list linked through next() after its first `keep` blocks (at least 1, fewer than
  // the list holds) and returns the rest.
  POLYMALLOC_UNCHECKED_BY_ASAN static Block* split_after(Block* head, std::uint32_t keep) {
    Block* last_kept = head;
    for (; keep > 1; --keep) last_kept = last_kept->next();
    Block* rest = last_kept->next();
    last_kept->set_next(nullptr);
    return rest;
  }

  void* payload() { return reinterpret_cast<unsigned char*>(this) + kHeaderBytes; }
  // Address arithmetic only (p may be any value a caller passed, even null).
  static Block* of_payload(void* p) {
    return reinterpret_cast<Block*>(reinterpret_cast<std::uintptr_t>(p) - kHeaderBytes);
  }
  Block* right() { return at(reinterpret_cast<unsigned char*>(this) + size()); }
  Block* left() { return at(reinterpret_cast<unsigned char*>(this) - prev_size); }
  static Block* at(void* address) { return static_cast<Block*>(address); }

 private:
  static std::uintptr_t mangle(const Block* b, const std::uintptr_t* where) {
    return reinterpret_cast<std::uintptr_t>(b) ^ (reinterpret_cast<std::uintptr_t>(where) >> 12);
  }
  static Block* demangle(std::uintptr_t stored, const std::uintptr_t* where) {
    return reinterpret_cast<Block*>(stored ^ (reinterpret_cast<std::uintptr_t>(where) >> 12));
  }
  static Block* checked(Block* b) {
    if ((reinterpret_cast<std::uintptr_t>(b) & kFlags) != 0) [[unlikely]] {
      report_corrupted_link(b);
    }
    return b;
  }
  [[noreturn, gnu::cold]] static void report_corrupted_link(const Block* b);

 public:
  // A cached block whose guard word changed: it was written to after it was freed.
  [[noreturn, gnu::cold]] static void report_overwritten_guard(const Block* b);
};

static_assert(sizeof(Block) == 32, "the smallest block holds a header and two links");

// A chain of free blocks through next_in_list, and its length.
struct BlockChain {
  Block* head = nullptr;
  std::uint32_t count = 0;
};

}  // namespace polymalloc::allocator
