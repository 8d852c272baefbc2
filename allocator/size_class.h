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

// Size-class policies, by arithmetic: how a variant rounds a block (header included) and how
// it numbers the classes. Both give multiples of 16, at least kMinBlock. A variant uses its
// policy through its SizeMap (size_map.h), which tabulates them.
//   round_up(b)       the class size that holds a block of b bytes (b >= 1)
//   is_class_size(s)  whether s is exactly a class size
//   index_of(s)       class size s -> 0, 1, 2 … in increasing size
//   size_of(i)        the inverse

// The classic power-of-two classes (up to 50 % rounding; blocks halve and double cleanly).
struct PowerOfTwoClasses {
  static constexpr std::size_t round_up(std::size_t b) { return class_size(class_of(b)); }
  static constexpr bool is_class_size(std::size_t s) {
    return s >= kMinBlock && is_power_of_two(s);
  }
  static constexpr unsigned index_of(std::size_t s) { return class_of(s) - kMinClass; }
  static constexpr std::size_t size_of(unsigned i) { return class_size(i + kMinClass); }
};

// Four classes per doubling, as in tcmalloc-style allocators: 32, 48, 64, then 2^p + j·2^(p-2)
// for j = 1..4 (80, 96, 112, 128, 160 …). At most 25 % rounding.
struct QuarterPowerClasses {
  static constexpr std::size_t round_up(std::size_t b) {
    if (b <= 64) return b <= kMinBlock ? kMinBlock : (b + 15) & ~std::size_t{15};
    const std::size_t step = std::size_t{1} << (std::bit_width(b - 1) - 3);  // 2^p < b <= 2^(p+1)
    return (b + step - 1) & ~(step - 1);
  }
  static constexpr bool is_class_size(std::size_t s) {
    return s >= kMinBlock && s % 16 == 0 && round_up(s) == s;
  }
  static constexpr unsigned index_of(std::size_t s) {
    if (s <= 64) return static_cast<unsigned>(s / 16 - 2);
    const unsigned p = static_cast<unsigned>(std::bit_width(s - 1) - 1);
    const unsigned j = static_cast<unsigned>((s - (std::size_t{1} << p)) >> (p - 2));
    return 3 + (p - 6) * 4 + (j - 1);
  }
  static constexpr std::size_t size_of(unsigned i) {
    if (i < 3) return kMinBlock + 16 * std::size_t{i};
    const unsigned p = 6 + (i - 3) / 4;
    return (std::size_t{1} << p) + ((i - 3) % 4 + 1) * (std::size_t{1} << (p - 2));
  }
};

}  // namespace polymalloc::allocator
