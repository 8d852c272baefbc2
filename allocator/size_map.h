// The one size map of a class policy: a request becomes {class index, block size} or "large"
// once per call, with one table load for the common sizes, and every other fact about the
// classes (how many there are, the largest, the class of a block's size) is derived here from
// the policy (size_class.h) and two constants, kLargeBlockBytes and kTableBlockBytes, as
// jemalloc's sc.h derives its classes. Caches, pools, quick lists and the large path all take
// the class from here; nothing else rounds a request by arithmetic of its own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/size_class.h"

namespace polymalloc::allocator {

// Blocks this big (header included, rounded to their class) are mappings of their own, in
// every variant.
inline constexpr std::size_t kLargeBlockBytes = std::size_t{1} << 20;

// A buffer of at least this many bytes that realloc(NULL, n) starts will likely grow (the C
// idiom of a growing array): the heaps place it at their top, where it grows in place, and a
// pool without coalescing lends it a cached mapping to grow into (class_core.h's
// allocate_to_grow(), LargeObjects::adopt_for_growth()).
inline constexpr std::size_t kGrowingBufferBytes = std::size_t{4} << 10;

// A heap that has committed this much takes what it adds next in transparent huge pages,
// where POLYMALLOC_HUGE_PAGES allows: a big heap then faults its memory in 2 MiB at a time.
// Below it, small pages: at 32 MiB global_spinlock's RSS growth ÷ live on
// trace_mixed_power_law (a 70 MB heap) went from 1.90 to 2.21 (memory touched sparsely then
// is resident in whole 2 MiB pages), at 64 MiB to 1.99, at 128 MiB it stays 1.90; the
// page faults on trace_large_blocks (a 360 MB heap) fall from 96 k to 19 k, 27 k and 43 k.
inline constexpr std::size_t kHugePagesFromBytes = std::size_t{128} << 20;

// Requests whose block is at most this big are classified by one table load (2 KiB of table
// per direction); bigger ones by the policy's arithmetic.
inline constexpr std::size_t kTableBlockBytes = std::size_t{32} << 10;

template <class Classes>
class SizeMap {
 public:
  using Policy = Classes;
  static constexpr std::size_t kHeaderBytes = Block::kHeaderBytes;

  // The classes: every class size below kLargeBlockBytes, indices 0 … kClasses-1.
  static constexpr unsigned kClasses = [] {
    unsigned i = 0;
    while (Classes::size_of(i) < kLargeBlockBytes) ++i;
    return i;
  }();
  static constexpr std::size_t kMaxBlock = Classes::size_of(kClasses - 1);
  // The largest request a class serves; a bigger one (or one that overflows) is large.
  static constexpr std::size_t kMaxRequest = kMaxBlock - kHeaderBytes;
  // Returned by class_of_block() for a size that is not a class size.
  static constexpr unsigned kNotAClass = 0xff;
  static_assert(kClasses < kNotAClass);

  // How many classes have blocks of at most `block` bytes (the classes a cache of blocks up
  // to that size keeps: 0 … classes_up_to(block) - 1).
  static constexpr unsigned classes_up_to(std::size_t block) {
    unsigned n = 0;
    while (n < kClasses && Classes::size_of(n) <= block) ++n;
    return n;
  }

  // Requests of up to kTableRequest bytes take one load.
  static constexpr std::size_t kTableRequest = kTableBlockBytes - kHeaderBytes;

  // The class of a request of 1 … kMaxRequest bytes.
  [[gnu::always_inline]] static unsigned class_of(std::size_t bytes) {
    if (bytes <= kTableRequest) [[likely]]
      return kByRequestGranule[(bytes + 15) >> 4];
    return index_of_block(bytes + kHeaderBytes);
  }

  // The class for any request (0 included, served as 1), or kClasses when it is large.
  // (Inlined, as block_for() is: out of line, every slow path and realloc pays a call.)
  [[gnu::always_inline]] static unsigned class_or_large(std::size_t bytes) {
    if (bytes - 1 >= kMaxRequest) return bytes == 0 ? 0 : kClasses;
    return class_of(bytes);
  }

  // The block size (header included) of class i < kClasses.
  [[gnu::always_inline]] static constexpr std::size_t block_size(unsigned i) {
    return kBlockSize[i];
  }

  // The class whose block size `size` is exactly (a header's size), or kNotAClass.
  [[gnu::always_inline]] static constexpr unsigned class_of_block(std::size_t size) {
    if (size <= kTableBlockBytes) [[likely]]
      return kByBlockGranule[size >> 4];
    if (size > kMaxBlock || !Classes::is_class_size(size)) return kNotAClass;
    return index_of_block(size);
  }

  // The block for a request: its class size, or 0 when the request is large. Requests of 0
  // bytes are served as 1.
  [[gnu::always_inline]] static std::size_t block_for(std::size_t bytes) {
    const unsigned i = class_or_large(bytes);
    return i < kClasses ? block_size(i) : 0;
  }

 private:
  // (Inlined: past the tables, free() and malloc() of a big class pay for it on every call.)
  [[gnu::always_inline]] static constexpr unsigned index_of_block(std::size_t block) {
    return Classes::index_of(Classes::round_up(block));
  }

  static constexpr auto kBlockSize = [] {
    std::array<std::size_t, kClasses> table{};
    for (unsigned i = 0; i < kClasses; ++i) table[i] = Classes::size_of(i);
    return table;
  }();

  // By granule g = ceil(request / 16): the class of a request whose block is 16·g + 16.
  static constexpr auto kByRequestGranule = [] {
    std::array<std::uint8_t, kTableRequest / 16 + 1> table{};
    for (std::size_t g = 0; g < table.size(); ++g) {
      table[g] = static_cast<std::uint8_t>(index_of_block(16 * g + kHeaderBytes));
    }
    return table;
  }();

  // By granule g = size / 16 of a block's size: its class, or kNotAClass.
  static constexpr auto kByBlockGranule = [] {
    std::array<std::uint8_t, kTableBlockBytes / 16 + 1> table{};
    for (std::size_t g = 0; g < table.size(); ++g) {
      const std::size_t size = 16 * g;
      table[g] = Classes::is_class_size(size) ? static_cast<std::uint8_t>(index_of_block(size))
                                              : static_cast<std::uint8_t>(kNotAClass);
    }
    return table;
  }();
};

}  // namespace polymalloc::allocator
