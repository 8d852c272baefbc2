// Full checking (--//allocator:checks=full): an AllocatorCore that wraps another and adds
// what is too costly for the default build, as a decorator any variant can be built with.
//
//   - Guards around every block: 16 bytes below the client's bytes hold its requested size
//     and its offset in the inner block, both XORed with a per-block key (the address mixed
//     with a per-process secret), and 8 bytes of the key follow the last requested byte. An
//     underflow, an overflow past the requested size (not just past the block), or a free of
//     a block freed before is told on free(), realloc() and malloc_usable_size().
//   - Junk: freed bytes are filled with 0xdf, so a use after free reads junk, not stale data.
//   - A heap check (the inner core's check_heap) every POLYMALLOC_CHECK_INTERVAL calls
//     (1024 by default; 0 turns it off).
//   - Reports that name the damaged block, its size and what was wrong with it.
//
// Layout of an inner block: [inner bookkeeping: 24][pad: 8][guard: size, offset][client
// bytes][tail: 8]. The first 24 bytes are left to the inner core, which keeps a free block's
// list links and its decay date there, so a freed block's guard survives and marks it freed.
// Over-aligned blocks put the client's bytes at the alignment instead (at least 64), with the
// guard just below.
#pragma once

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "allocator/block.h"
#include "allocator/core.h"
#include "allocator/report.h"
#include "allocator/settings.h"
#include "atomics/atomics.h"
#include "platform/os.h"

namespace polymalloc::allocator {

// What the inner core keeps in the payload of a free block: its list links and the date it
// was freed (decay); the guard must lie past it.
inline constexpr std::size_t kInnerFreeBookkeeping =
    sizeof(Block) - Block::kHeaderBytes + sizeof(std::uint64_t);
// Where the client's bytes start in a plain inner block under full checks: past that and the
// 16-byte guard, at a power of two (over-aligned blocks double it until it is the alignment).
inline constexpr std::size_t kCheckedClientOffset = std::bit_ceil(kInnerFreeBookkeeping + 16);

template <OwnershipAwareCore Inner>
class CheckedCore {
 public:
  static constexpr const char* kName = Inner::kName;
  static constexpr std::size_t kOffset = kCheckedClientOffset;
  static constexpr std::size_t kTailBytes = 8;
  static constexpr std::size_t kOverhead = kOffset + kTailBytes;
  static constexpr unsigned char kJunk = 0xdf;
  // Freed blocks are junk-filled up to this much (bigger ones are unmapped anyway).
  static constexpr std::size_t kMaxJunkBytes = std::size_t{1} << 20;
  static constexpr std::size_t kMaxOffset = std::size_t{1} << 40;  // the largest alignment

  static void* allocate(std::size_t n) {
    if (n > SIZE_MAX - kOverhead) return fail();
    count_call("malloc");
    return guard(Inner::allocate(n + kOverhead), kOffset, n);
  }

  static void* allocate_zeroed(std::size_t n) {
    if (n > SIZE_MAX - kOverhead) return fail();
    count_call("calloc");
    return guard(Inner::allocate_zeroed(n + kOverhead), kOffset, n);
  }

  static void* allocate_aligned(std::size_t alignment, std::size_t n) {
    const std::size_t offset = alignment > kOffset ? alignment : kOffset;
    if (n > SIZE_MAX - offset - kTailBytes) return fail();
    count_call("memalign");
    return guard(Inner::allocate_aligned(alignment, n + offset + kTailBytes), offset, n);
  }

  static void deallocate(void* p, const char* call) {
    count_call(call);
    const Guard g = checked(p, call);
    void* inner = static_cast<unsigned char*>(p) - g.offset;
    store_word(p, -2, kFreedSize ^ key(p));  // a second free finds this mark
    std::memset(p, kJunk, g.bytes < kMaxJunkBytes ? g.bytes : kMaxJunkBytes);
    Inner::deallocate(inner, call);
  }

  // Always moves (copies into a fresh block and frees the old one): a stale pointer to the
  // old block is then a use after free that the junk shows.
  static void* reallocate(void* p, std::size_t n) {
    checked(p, "realloc");  // first: a damaged or freed block is realloc's misuse
    return move_to_fresh<CheckedCore>(allocate(n), p, n);
  }

  // The requested size: the tail guard starts right after it.
  static std::size_t usable_size(const void* p) {
    return checked(const_cast<void*>(p), "malloc_usable_size").bytes;
  }

  static bool trim(std::size_t pad) { return Inner::trim(pad); }
  static Statistics statistics(Detail detail = Detail::kTotals) {
    return Inner::statistics(detail);
  }
  static const char* check_heap(const void** where) { return Inner::check_heap(where); }
  static void prepare_fork() { Inner::prepare_fork(); }
  static void after_fork_in_parent() { Inner::after_fork_in_parent(); }
  static void after_fork_in_child() { Inner::after_fork_in_child(); }

 private:
  struct Guard {
    std::size_t bytes;   // requested
    std::size_t offset;  // of the client's bytes in the inner block
  };

  static constexpr std::size_t kFreedSize = ~std::size_t{0};

  static void* fail() {
    errno = ENOMEM;
    return nullptr;
  }

  // The per-block key: the client address mixed with the per-process secret.
  static std::uintptr_t key(const void* p) {
    std::uintptr_t s = atomics::load_relaxed(&secret_);
    if (s == 0) {
      s = platform::os_random_word();
      atomics::store_relaxed(&secret_, s);  // every thread computes the same value
    }
    return (reinterpret_cast<std::uintptr_t>(p) ^ s) * 0x9e3779b97f4a7c15u;
  }

  static std::uintptr_t load_word(const void* p, std::ptrdiff_t index) {
    std::uintptr_t w;
    std::memcpy(&w, static_cast<const std::uintptr_t*>(p) + index, sizeof(w));
    return w;
  }
  static void store_word(void* p, std::ptrdiff_t index, std::uintptr_t w) {
    std::memcpy(static_cast<std::uintptr_t*>(p) + index, &w, sizeof(w));
  }

  // Writes the guards around the client's `bytes` at `offset` in inner block `inner`.
  static void* guard(void* inner, std::size_t offset, std::size_t bytes) {
    if (inner == nullptr) return nullptr;
    void* p = static_cast<unsigned char*>(inner) + offset;
    const std::uintptr_t k = key(p);
    store_word(p, -2, bytes ^ k);
    store_word(p, -1, offset ^ std::rotl(k, 17));
    std::memcpy(static_cast<unsigned char*>(p) + bytes, &k, kTailBytes);
    return p;
  }

  // The guard of live block p, checked; a damaged or freed one is reported as `call`'s.
  // Nothing is read before the inner core says the memory below p is its own.
  static Guard checked(void* p, const char* call) {
    auto* bytes_at = static_cast<unsigned char*>(p);
    if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) report_misuse(call, "invalid pointer", p);
    if (!guard_is_readable(bytes_at)) report_unreadable(call, bytes_at);
    const std::uintptr_t k = key(p);
    const std::size_t bytes = load_word(p, -2) ^ k;
    const std::size_t offset = load_word(p, -1) ^ std::rotl(k, 17);
    if (bytes == kFreedSize && offset_is_sound(offset)) {
      report_misuse(call, freed_block_problem(call), p);
    }
    if (!offset_is_sound(offset) || reinterpret_cast<std::uintptr_t>(p) < offset ||
        !Inner::owns(bytes_at - offset) || !fits(bytes, offset, bytes_at - offset)) {
      report_misuse(call, "corrupted header of", p);  // the guard: an underflow, or not a block
    }
    std::uintptr_t tail;
    std::memcpy(&tail, bytes_at + bytes, kTailBytes);
    if (tail != k) report_overflow(call, p, bytes);
    return Guard{bytes, offset};
  }

  // Whether an inner block holds p at an offset a client pointer can have (kOffset, or an
  // alignment), so that the guard just below p lies in the inner core's memory.
  static bool guard_is_readable(unsigned char* p) {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    for (std::size_t offset = kOffset; offset <= kMaxOffset && offset <= address; offset *= 2) {
      if (Inner::owns(p - offset)) return true;
    }
    return false;
  }

  // Whether `bytes` client bytes at `offset` and the tail fit in inner block `inner`.
  static bool fits(std::size_t bytes, std::size_t offset, void* inner) {
    const std::size_t usable = Inner::usable_size(inner);
    return usable >= offset + kTailBytes && bytes <= usable - offset - kTailBytes;
  }

  // A pointer with no inner memory below it: a block whose mapping a free gave back, or
  // never one of ours.
  [[noreturn, gnu::cold]] static void report_unreadable(const char* call, unsigned char* p) {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    for (std::size_t offset = kOffset; offset <= kMaxOffset && offset <= address; offset *= 2) {
      if (Inner::freed_mapping(p - offset)) report_misuse(call, freed_block_problem(call), p);
    }
    report_misuse(call, "invalid pointer", p);
  }

  static bool offset_is_sound(std::size_t offset) {
    return offset == kOffset || (offset > kOffset && std::has_single_bit(offset));
  }

  [[noreturn, gnu::cold]] static void report_overflow(const char* call, const void* p,
                                                      std::size_t bytes) {
    report_damaged_block(call, "buffer overflow: the bytes just past the end of", p, bytes);
  }

  // Every interval-th call runs the inner heap check; a failure stops the process.
  static void count_call(const char* call) {
    const std::uint64_t interval = check_interval();
    if (interval == 0) return;
    if ((atomics::fetch_add_relaxed(&calls_, std::uint64_t{1}) + 1) % interval != 0) return;
    const void* where = nullptr;
    if (const char* problem = Inner::check_heap(&where)) report_failed_check(call, problem, where);
  }

  // POLYMALLOC_CHECK_INTERVAL (settings.h; 1024 by default, 0: never).
  static std::uint64_t check_interval() {
    return static_cast<std::uint64_t>(Settings::value(Setting::kCheckInterval));
  }

  static inline constinit std::uintptr_t secret_ = 0;
  static inline constinit std::uint64_t calls_ = 0;
};

}  // namespace polymalloc::allocator
