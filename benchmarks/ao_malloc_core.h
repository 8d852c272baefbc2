// libatomic_ops' AO_malloc as an AllocatorCore, so that allocator/'s front end turns it into a
// complete malloc (calloc, realloc, aligned allocation, errno, overflow checks) and the
// shootout can LD_PRELOAD it like every other peer (libao_malloc.so). AO_malloc has only
// AO_malloc/AO_free; the core puts a 16-byte header before each block with what the rest
// needs. The library is GPL: this is a benchmark peer, never part of polymalloc.
#pragma once

#include <errno.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "allocator/core.h"
#include "allocator/statistics.h"
#include "benchmarks/ao_malloc_adapter.h"

namespace polymalloc::benchmarks {

class AoMallocCore {
 public:
  static constexpr const char* kName = "ao_malloc";

  static void* allocate(std::size_t n) { return place(n, kHeaderBytes); }
  static void* allocate_zeroed(std::size_t n) {
    void* p = allocate(n);
    if (p != nullptr) std::memset(p, 0, n);  // AO_malloc reuses blocks without clearing
    return p;
  }
  static void* allocate_aligned(std::size_t alignment, std::size_t n) {
    return place(n, alignment);
  }
  static void deallocate(void* p, const char*) {
    const int saved = errno;
    ao_free(header(p).base);
    errno = saved;
  }
  static void* reallocate(void* p, std::size_t n) {
    const std::size_t now = header(p).bytes;
    if (n <= now && n >= now / 2) return p;  // shrinking by less than half keeps the block
    return allocator::move_to_fresh<AoMallocCore>(allocate(n), p, n);
  }
  static std::size_t usable_size(const void* p) { return header(p).bytes; }

  // AO_malloc keeps no statistics, has no heap check and never gives memory back; it takes
  // no locks that a fork could orphan.
  static bool trim(std::size_t) { return false; }
  static allocator::Statistics statistics(allocator::Detail = allocator::Detail::kTotals) {
    allocator::Statistics s;
    s.variant = kName;
    return s;
  }
  static const char* check_heap(const void**) { return nullptr; }
  static void prepare_fork() {}
  static void after_fork_in_parent() {}
  static void after_fork_in_child() {}

 private:
  struct Header {
    void* base;         // what AO_malloc returned
    std::size_t bytes;  // what the client asked for
  };
  static constexpr std::size_t kHeaderBytes = 16;
  static_assert(sizeof(Header) == kHeaderBytes);

  // Debian's libatomic_ops 7.6.14 never returns from AO_malloc for requests from 32761 to
  // 65528 bytes (its largest class, whose blocks fill a whole chunk: it maps a 64 KiB chunk,
  // finds no block in it and tries again, forever). Such requests are raised to the first
  // size AO_malloc serves by its own large-object path (a mapping per block).
  static constexpr std::size_t kHangsFrom = 32761;
  static constexpr std::size_t kHangsTo = 65528;

  static Header& header(const void* p) {
    return *reinterpret_cast<Header*>(reinterpret_cast<std::uintptr_t>(p) - kHeaderBytes);
  }

  // n bytes at `alignment` (at least 16) with a header before them, inside one AO block;
  // AO_malloc's blocks are at least 8-aligned, so alignment + 8 bytes of slack suffice.
  static void* place(std::size_t n, std::size_t alignment) {
    const std::size_t slack = alignment + 8;
    if (n > SIZE_MAX - slack) return out_of_memory();
    std::size_t request = n + slack;
    if (request >= kHangsFrom && request <= kHangsTo) request = kHangsTo + 1;
    void* base = ao_malloc(request);
    if (base == nullptr) return out_of_memory();
    const std::uintptr_t user =
        (reinterpret_cast<std::uintptr_t>(base) + kHeaderBytes + alignment - 1) & ~(alignment - 1);
    void* p = reinterpret_cast<void*>(user);
    header(p) = {base, n};
    return p;
  }
  static void* out_of_memory() {
    errno = ENOMEM;
    return nullptr;
  }
};
static_assert(allocator::AllocatorCore<AoMallocCore>);

}  // namespace polymalloc::benchmarks
