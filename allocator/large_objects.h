// The large-object path: each big block is its own anonymous mapping, resized with mremap
// and unmapped on free. Lock-free (the counters are atomic), so every variant can share it.
//
// A large block carries the usual 16-byte header just below its payload: size_flags holds
// the mapping's length with kMapped | kInUse, and prev_size the distance from the mapping's
// start to the header (non-zero only for over-aligned blocks).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "atomics/atomics.h"
#include "platform/platform.h"

namespace polymalloc::allocator {

// Blocks (header included, rounded to their class) this big are mappings of their own, in
// every variant.
inline constexpr std::size_t kLargeBlockBytes = std::size_t{1} << 20;

// The block for a request under the size-class policy Classes (header included, rounded to
// its class), or 0 when it belongs on the large-object path.
template <class Classes>
std::size_t class_block_for(std::size_t bytes) {
  if (bytes > kLargeBlockBytes) return 0;
  const std::size_t block = Classes::round_up(bytes + Block::kHeaderBytes);
  return block < kLargeBlockBytes ? block : 0;
}

class LargeObjects {
 public:
  static constexpr std::size_t kMapped = 4;  // Block flag: the block is a mapping of its own

  struct Stats {
    std::size_t mapped_bytes = 0;
    std::size_t mapped_objects = 0;
    std::size_t peak_mapped_bytes = 0;
  };

  static bool is_large(const Block* b) { return (b->size_flags & kMapped) != 0; }

  // A block whose payload holds `bytes` and is `alignment`-aligned (a power of two, at
  // least 16), or nullptr with errno = ENOMEM.
  Block* allocate(std::size_t bytes, std::size_t alignment = 16) {
    const std::size_t slack = alignment > 16 ? alignment : 0;
    if (bytes > SIZE_MAX / 2 || slack > SIZE_MAX / 4) return fail();
    const std::size_t length = platform::round_up_to_page(bytes + Block::kHeaderBytes + slack);
    auto* start = static_cast<unsigned char*>(platform::os_map(length));
    if (start == nullptr) return nullptr;
    const auto payload =
        (reinterpret_cast<std::uintptr_t>(start) + Block::kHeaderBytes + alignment - 1) &
        ~(alignment - 1);
    const auto header = payload - Block::kHeaderBytes;
    const std::size_t page = platform::page_size();
    const std::size_t lead = (header - reinterpret_cast<std::uintptr_t>(start)) & ~(page - 1);
    const std::size_t used = platform::round_up_to_page(payload + bytes) -
                             reinterpret_cast<std::uintptr_t>(start) - lead;
    // Whole pages before the header's page and after the payload go straight back.
    if (lead != 0) platform::os_unmap(start, lead);
    if (lead + used < length) platform::os_unmap(start + lead + used, length - lead - used);
    Block* b = Block::at(reinterpret_cast<void*>(header));
    b->prev_size = header - reinterpret_cast<std::uintptr_t>(start) - lead;
    b->set_size_flags(used | kMapped | Block::kInUse);
    count(+1, used);
    return b;
  }

  // Bytes usable from the payload to the end of the mapping.
  static std::size_t usable_size(const Block* b) {
    return b->size() - b->prev_size - Block::kHeaderBytes;
  }

  void release(Block* b) {
    count(-1, b->size());
    platform::os_unmap(mapping_of(b), b->size());
  }

  // Resizes with mremap (which may move the mapping, keeping the payload's page offset).
  // nullptr with errno = ENOMEM and `b` untouched on failure.
  Block* resize(Block* b, std::size_t bytes) {
    if (bytes > SIZE_MAX / 2) return fail();
    const std::size_t old_length = b->size();
    const std::size_t offset = b->prev_size;  // read now: b may move
    const std::size_t length = platform::round_up_to_page(offset + Block::kHeaderBytes + bytes);
    if (length == old_length) return b;
    auto* start =
        static_cast<unsigned char*>(platform::os_remap(mapping_of(b), old_length, length));
    if (start == nullptr) return nullptr;
    Block* moved = Block::at(start + offset);
    moved->set_size_flags(length | kMapped | Block::kInUse);
    atomics::fetch_add_relaxed(&mapped_bytes_, length - old_length);  // wraps when shrinking
    note_peak();
    return moved;
  }

  Stats stats() const {
    return {atomics::load_relaxed(&mapped_bytes_), atomics::load_relaxed(&mapped_objects_),
            atomics::load_relaxed(&peak_mapped_bytes_)};
  }

 private:
  static Block* fail() {
    errno = ENOMEM;
    return nullptr;
  }
  static void* mapping_of(Block* b) { return reinterpret_cast<unsigned char*>(b) - b->prev_size; }

  void count(int objects, std::size_t bytes) {
    atomics::fetch_add_relaxed(&mapped_objects_, static_cast<std::size_t>(objects));
    atomics::fetch_add_relaxed(&mapped_bytes_, objects > 0 ? bytes : 0 - bytes);
    if (objects > 0) note_peak();
  }

  void note_peak() {
    const std::size_t now = atomics::load_relaxed(&mapped_bytes_);
    std::size_t peak = atomics::load_relaxed(&peak_mapped_bytes_);
    while (now > peak && !atomics::cas_relaxed(&peak_mapped_bytes_, peak, now)) {
    }
  }

  std::size_t mapped_bytes_ = 0;
  std::size_t mapped_objects_ = 0;
  std::size_t peak_mapped_bytes_ = 0;
};

}  // namespace polymalloc::allocator
