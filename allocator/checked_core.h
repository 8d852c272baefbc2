// Full checking (--//allocator:checks=full): an AllocatorCore that wraps another and adds
// what is too costly for the default build, as a decorator any variant can be built with.
//
//   - Guards around every block: 16 bytes below the client's bytes hold its requested size
//     and its offset in the inner block, both XORed with a per-block key (the address mixed
//     with a per-process secret); the 48 bytes below those, and every byte from the end of
//     the requested size to the end of the inner block (up to kMaxCanaryBytes), are canary:
//     a pattern drawn from the key. An underflow of up to 64 bytes, an overflow anywhere up
//     to the next block (not just past the block), or a free of a block freed before is told
//     on free(), realloc(), operator delete and malloc_usable_size(). malloc(0) has no usable
//     byte: its canary starts at the first.
//   - Junk that is checked: freed bytes are filled with 0xdf (0 with POLYMALLOC_ZERO_ON_FREE
//     =1), and the freed block waits in a quarantine (quarantine.h; POLYMALLOC_QUARANTINE_
//     BYTES) before the inner core may reuse it. When it leaves, and at the first periodic
//     check after it came, its junk, guards and canaries are verified: a write after free is
//     reported before the memory is reused, naming the block and the offset of the first changed
//     byte.
//   - A sized delete whose size is not the block's is reported.
//   - A heap check (the inner core's check_heap, and the quarantine's junk) every
//     POLYMALLOC_CHECK_INTERVAL calls (1024 by default; 0 turns it off).
//   - Reports that name the damaged block, its size and what was wrong with it.
//
// Layout of an inner block: [inner bookkeeping: 24][canary: 24][guard: size, offset][client
// bytes][canary: at least 32 bytes, to the block's end]. The inner core keeps a free block's list
// links and its decay date in the first 24 bytes, so a freed block's guard survives there once it
// leaves the quarantine, and marks it freed. Over-aligned blocks put the client's bytes at the
// alignment instead (at least 64), with the canary and the guard just below. A freed block
// keeps its requested size in the canary word below the guard (the guard's size word holds
// the freed mark).
#pragma once

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "allocator/block.h"
#include "allocator/core.h"
#include "allocator/heap_profile.h"
#include "allocator/quarantine.h"
#include "allocator/report.h"
#include "allocator/settings.h"
#include "allocator/size_map.h"
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
  // The least canary past the requested size (the inner block is asked for this much more),
  // so that an overflow of up to 32 bytes lands in canary, however the class rounds.
  static constexpr std::size_t kTailBytes = 32;
  static constexpr std::size_t kOverhead = kOffset + kTailBytes;
  // Below the guard, the canary reaches down this far below the client's bytes.
  static constexpr std::size_t kLowCanaryBytes = kOffset - 16;
  static constexpr unsigned char kJunk = 0xdf;
  // Freed blocks are junk-filled up to this much, and their junk checked (bigger ones are
  // unmapped anyway); canaries past the requested size reach this far at most (a big
  // mapping's untouched slack pages stay untouched).
  static constexpr std::size_t kMaxJunkBytes = std::size_t{1} << 20;
  static constexpr std::size_t kMaxCanaryBytes = std::size_t{64} << 10;
  static constexpr std::size_t kMaxOffset = std::size_t{1} << 40;  // the largest alignment
  // Blocks the quarantine holds at most (and bytes: POLYMALLOC_QUARANTINE_BYTES), and the
  // size from which blocks skip it (as blocks in mappings of their own do, which a free
  // unmaps or caches): their junk is checked no further than kMaxJunkBytes anyway.
  static constexpr unsigned kQuarantineSlots = 1u << 14;
  static constexpr std::size_t kMaxQuarantinedBytes = kLargeBlockBytes;
  // malloc(0) is a block with no usable byte; free(NULL) does nothing (front_end.h).
  static constexpr bool kTakesZeroAndNull = true;

  static void* allocate(std::size_t n) {
    if (n > SIZE_MAX - kOverhead) return fail();
    count_call("malloc");
    return guard(Inner::allocate(n + kOverhead), kOffset, n);
  }

  // A sampled allocation (heap_profile.h), guarded as any other; the inner core records it
  // under its own payload, which is what it is freed by.
  static void* allocate_sampled(std::size_t n, std::size_t requested, const ProfileStack& stack)
    requires requires { Inner::allocate_sampled(n, requested, stack); }
  {
    if (n > SIZE_MAX - kOverhead) return fail();
    count_call("malloc");
    return guard(Inner::allocate_sampled(n + kOverhead, requested, stack), kOffset, n);
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
    if (p == nullptr) return;
    count_call(call);
    release(p, checked(p, call), call);
  }

  // operator delete(p, n): n must be the size asked for (the front end passes 0 as 1).
  static void deallocate_sized(void* p, std::size_t n, const char* call) {
    count_call(call);
    const Guard g = checked(p, call);
    if (n != g.bytes && !(g.bytes == 0 && n == 1)) {
      report_damaged_block(call, "size does not match the block of", p, g.bytes);
    }
    release(p, g, call);
  }

  // Always moves (copies into a fresh block and frees the old one): a stale pointer to the
  // old block is then a use after free that the junk shows.
  static void* reallocate(void* p, std::size_t n) {
    checked(p, "realloc");  // first: a damaged or freed block is realloc's misuse
    return move_to_fresh<CheckedCore>(allocate(n), p, n);
  }

  // The requested size: the canary starts right after it.
  static std::size_t usable_size(const void* p) {
    return checked(const_cast<void*>(p), "malloc_usable_size").bytes;
  }

  // The quarantine empties first (its blocks verified), so that its memory can go back too.
  static bool trim(std::size_t pad) {
    drain_quarantine();
    return Inner::trim(pad);
  }
  // Quarantined blocks (pool blocks under kMaxQuarantinedBytes) are free to the client,
  // though live to the inner core: they count as free and, in the breakdown, as
  // parked (with the caches' blocks), not as live.
  static Statistics statistics(Detail detail = Detail::kTotals) {
    Statistics s = Inner::statistics(detail);
    const auto q = quarantine_.stats();
    s.quarantine_bytes = q.bytes;
    s.quarantine_blocks = q.blocks;
    s.quarantine_bound = quarantine_bound();
    const std::size_t in_use = s.heap_in_use_bytes();
    s.heap_free_bytes += q.bytes < in_use ? q.bytes : in_use;
    if (s.has_breakdown) {
      MemoryBreakdown& b = s.breakdown;
      const std::size_t headers = q.blocks * Block::kHeaderBytes;
      const std::size_t usable = q.bytes - headers;
      b.live_bytes -= usable < b.live_bytes ? usable : b.live_bytes;
      b.header_bytes -= headers < b.header_bytes ? headers : b.header_bytes;
      b.live_blocks -= q.blocks < b.live_blocks ? q.blocks : b.live_blocks;
      b.cached_bytes += q.bytes;
    }
    return s;
  }
  static const char* check_heap(const void** where) { return Inner::check_heap(where); }
  static void prepare_fork() { Inner::prepare_fork(); }
  static void after_fork_in_parent() { Inner::after_fork_in_parent(); }
  static void after_fork_in_child() { Inner::after_fork_in_child(); }

  // Every quarantined block leaves now, verified (malloc_trim, and tests).
  static void drain_quarantine() {
    quarantine_.drain([](void* q) { return leave_quarantine(q, "malloc_trim"); });
  }

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

  // The canary byte at address a: byte a % 8 of the key, so that the pattern is fixed to the
  // address (a shifted copy of it does not match).
  static unsigned char canary_at(const unsigned char* a, std::uintptr_t k) {
    return static_cast<unsigned char>(k >> (8 * (reinterpret_cast<std::uintptr_t>(a) % 8)));
  }
  static void fill_canary(unsigned char* from, unsigned char* to, std::uintptr_t k) {
    for (; from < to && reinterpret_cast<std::uintptr_t>(from) % 8 != 0; ++from) {
      *from = canary_at(from, k);
    }
    for (; to - from >= 8; from += 8) std::memcpy(from, &k, 8);
    for (; from < to; ++from) *from = canary_at(from, k);
  }
  // The first byte of [from, to) that is not canary, or nullptr.
  static const unsigned char* changed_canary(const unsigned char* from, const unsigned char* to,
                                             std::uintptr_t k) {
    for (; from < to && reinterpret_cast<std::uintptr_t>(from) % 8 != 0; ++from) {
      if (*from != canary_at(from, k)) return from;
    }
    for (; to - from >= 8; from += 8) {
      std::uintptr_t w;
      std::memcpy(&w, from, 8);
      if (w != k) break;
    }
    for (; from < to; ++from) {
      if (*from != canary_at(from, k)) return from;
    }
    return nullptr;
  }
  // The first byte of [from, to) that is not `fill`, or nullptr.
  static const unsigned char* changed_fill(const unsigned char* from, const unsigned char* to,
                                           unsigned char fill) {
    for (; from < to; ++from) {
      if (*from != fill) return from;
    }
    return nullptr;
  }

  // Where the canary past `bytes` client bytes at p ends: the inner block's end, at most
  // kMaxCanaryBytes on.
  static unsigned char* canary_end(unsigned char* p, std::size_t bytes, std::size_t offset) {
    unsigned char* end = p - offset + Inner::usable_size(p - offset);
    return static_cast<std::size_t>(end - (p + bytes)) > kMaxCanaryBytes
               ? p + bytes + kMaxCanaryBytes
               : end;
  }

  // Writes the guard and the canaries around the client's `bytes` at `offset` in inner block
  // `inner`.
  static void* guard(void* inner, std::size_t offset, std::size_t bytes) {
    if (inner == nullptr) return nullptr;
    auto* p = static_cast<unsigned char*>(inner) + offset;
    const std::uintptr_t k = key(p);
    store_word(p, -2, bytes ^ k);
    store_word(p, -1, offset ^ std::rotl(k, 17));
    fill_canary(p - kLowCanaryBytes - 16, p - 16, k);
    fill_canary(p + bytes, canary_end(p, bytes, offset), k);
    return p;
  }

  // The guard of live block p, checked with its canaries; a damaged or freed one is
  // reported as `call`'s. Nothing is read before the inner core says the memory below p is
  // its own.
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
    if (changed_canary(bytes_at - kLowCanaryBytes - 16, bytes_at - 16, k) != nullptr) {
      report_damaged_block(call, "buffer underflow: the bytes just before", p, bytes);
    }
    if (changed_canary(bytes_at + bytes, canary_end(bytes_at, bytes, offset), k) != nullptr) {
      report_overflow(call, p, bytes);
    }
    return Guard{bytes, offset};
  }

  // Marks checked block p freed, fills it with junk and quarantines it (or hands it back
  // when the quarantine is off or the block is bigger than it).
  static void release(void* p, Guard g, const char* call) {
    auto* bytes_at = static_cast<unsigned char*>(p);
    const std::uintptr_t k = key(p);
    store_word(p, -2, kFreedSize ^ k);              // a second free finds this mark
    store_word(p, -3, g.bytes ^ std::rotl(k, 29));  // in the low canary: for the junk check
    const bool zero = zero_on_free();
    std::memset(p, zero ? 0 : kJunk, zero || g.bytes < kMaxJunkBytes ? g.bytes : kMaxJunkBytes);
    const std::size_t held = inner_block_bytes(bytes_at - g.offset);
    const std::size_t bound = quarantine_bound();
    if (held > bound || held >= kMaxQuarantinedBytes || !pooled(bytes_at - g.offset)) {
      Inner::deallocate(bytes_at - g.offset, call);
      return;
    }
    quarantine_.push(p, held, bound, [call](void* q) { return leave_quarantine(q, call); });
  }

  // Verifies quarantined block q and hands it to the inner core; the bytes it held.
  static std::size_t leave_quarantine(void* q, const char* call) {
    const Guard g = verify_freed(q, call);
    auto* inner = static_cast<unsigned char*>(q) - g.offset;
    const std::size_t held = inner_block_bytes(inner);
    Inner::deallocate(inner, call);
    return held;
  }

  // Whether inner block `inner` is pool memory, where the quarantine holds blocks (not a
  // mapping of its own, which a free unmaps or caches), when the inner core can tell.
  static bool pooled(void* inner) {
    if constexpr (requires { Inner::pooled(inner); }) {
      return Inner::pooled(inner);
    } else {
      return true;
    }
  }

  // What inner block `inner` holds, its header with it (as the inner core counts it in use).
  static std::size_t inner_block_bytes(void* inner) {
    return Inner::usable_size(inner) + Block::kHeaderBytes;
  }

  // A freed block (quarantined) must be as free() left it: the freed mark, its size, the
  // canaries and the junk. The first changed byte is reported as a write after free.
  static Guard verify_freed(void* q, const char* call) {
    auto* p = static_cast<unsigned char*>(q);
    const std::uintptr_t k = key(p);
    const std::size_t offset = load_word(p, -1) ^ std::rotl(k, 17);
    const std::size_t bytes = load_word(p, -3) ^ std::rotl(k, 29);
    if (load_word(p, -2) != (kFreedSize ^ k)) report_write_after_free(call, p, 0, -16);
    if (!offset_is_sound(offset) || !fits(bytes, offset, p - offset)) {
      report_write_after_free(call, p, 0, offset_is_sound(offset) ? -24 : -8);
    }
    const unsigned char* changed = changed_canary(p - kLowCanaryBytes - 16, p - 24, k);
    if (changed == nullptr) {
      const unsigned char fill = zero_on_free() ? 0 : kJunk;
      changed = changed_fill(p, p + (bytes < kMaxJunkBytes ? bytes : kMaxJunkBytes), fill);
    }
    if (changed == nullptr) changed = changed_canary(p + bytes, canary_end(p, bytes, offset), k);
    if (changed != nullptr) report_write_after_free(call, p, bytes, changed - p);
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

  // Every interval-th call runs the inner heap check, and verifies the blocks quarantined
  // since the last check (the last `interval` pushed: fewer calls than that freed fewer); a
  // failure stops the process. Every block is verified again when it leaves. (Verifying the
  // whole quarantine at every check cost 20 000 instructions per 64-byte pair.)
  static void count_call(const char* call) {
    const std::uint64_t interval = check_interval();
    if (interval == 0) return;
    if ((atomics::fetch_add_relaxed(&calls_, std::uint64_t{1}) + 1) % interval != 0) return;
    quarantine_.for_each_newest(
        interval, [call](void* q) { verify_freed(q, call); },
        [call](void* q) { return leave_quarantine(q, call); });
    const void* where = nullptr;
    if (const char* problem = Inner::check_heap(&where)) report_failed_check(call, problem, where);
  }

  // POLYMALLOC_CHECK_INTERVAL (settings.h; 1024 by default, 0: never).
  static std::uint64_t check_interval() {
    return static_cast<std::uint64_t>(Settings::value(Setting::kCheckInterval));
  }
  // POLYMALLOC_QUARANTINE_BYTES (16 MiB by default, 0: none).
  static std::size_t quarantine_bound() {
    return static_cast<std::size_t>(Settings::value(Setting::kQuarantineBytes));
  }
  // POLYMALLOC_ZERO_ON_FREE (0 by default: junk).
  static bool zero_on_free() { return Settings::value(Setting::kZeroOnFree) != 0; }

  static inline constinit std::uintptr_t secret_ = 0;
  static inline constinit std::uint64_t calls_ = 0;
  static inline constinit Quarantine<kQuarantineSlots> quarantine_{};
};

}  // namespace polymalloc::allocator
