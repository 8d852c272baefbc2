// Power-of-two size classes, as in the classic design: a request plus its block header is
// rounded up to a power of two, 32 bytes at least. Class k holds blocks of 2^k bytes.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace polymalloc::allocator {

inline constexpr unsigned kMinClass = 5;  // 32 B, header included
inline constexpr std::size_t kMinBlock = std::size_t{1} << kMinClass;
inline constexpr unsigned kClassCount = 64;  // enough for any size_t

// Smallest class whose blocks hold `block_bytes` (header included). block_bytes >= 1.
constexpr unsigned class_of(std::size_t block_bytes) {
  if (block_bytes <= kMinBlock) return kMinClass;
  return static_cast<unsigned>(std::bit_width(block_bytes - 1));
}

// x is a power of two (x & (x - 1) rather than std::has_single_bit, which compiles to a
// libgcc popcount call on baseline x86-64).
constexpr bool is_power_of_two(std::size_t x) { return x != 0 && (x & (x - 1)) == 0; }

constexpr std::size_t class_size(unsigned size_class) { return std::size_t{1} << size_class; }

// Class whose free list a free block of `block_bytes` (any multiple of 16, >= kMinBlock)
// lives in: the largest class not larger than the block, so every block on list k can
// serve any request of class k.
constexpr unsigned list_of(std::size_t block_bytes) {
  return static_cast<unsigned>(std::bit_width(block_bytes) - 1);
}

// A request of `user_bytes` plus a header of `header_bytes`, or 0 when that overflows.
constexpr std::size_t block_bytes_for(std::size_t user_bytes, std::size_t header_bytes) {
  if (user_bytes > SIZE_MAX - header_bytes) return 0;
  return user_bytes + header_bytes;
}

}  // namespace polymalloc::allocator
