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

// Classes of 2^kStepsLog2 steps per doubling: a block b with 2^p < b <= 2^(p+1) rounds up to
// a multiple of 2^(p-kStepsLog2), class size 2^p + j·2^(p-kStepsLog2) for j = 1 … 2^kStepsLog2.
// The arithmetic of QuarterPowerClasses (two) and FinerClassesAbove (its own), written once.
template <unsigned kStepsLog2>
struct StepsPerDoubling {
  static constexpr unsigned kSteps = 1u << kStepsLog2;
  [[gnu::always_inline]] static constexpr std::size_t round_up(std::size_t b) {
    const std::size_t step = std::size_t{1} << (std::bit_width(b - 1) - 1 - kStepsLog2);
    return (b + step - 1) & ~(step - 1);
  }
  // p, where 2^p < s <= 2^(p+1).
  [[gnu::always_inline]] static constexpr unsigned doubling_of(std::size_t s) {
    return static_cast<unsigned>(std::bit_width(s - 1)) - 1;
  }
  // j, for class size s in doubling p.
  [[gnu::always_inline]] static constexpr unsigned step_of(std::size_t s, unsigned p) {
    return static_cast<unsigned>((s - (std::size_t{1} << p)) >> (p - kStepsLog2));
  }
  static constexpr std::size_t size_at(unsigned p, unsigned j) {
    return (std::size_t{1} << p) + std::size_t{j} * (std::size_t{1} << (p - kStepsLog2));
  }
};

// Four classes per doubling, as in tcmalloc-style allocators: 32, 48, 64, then 2^p + j·2^(p-2)
// for j = 1..4 (80, 96, 112, 128, 160 …). At most 25 % rounding.
struct QuarterPowerClasses {
  using Steps = StepsPerDoubling<2>;
  [[gnu::always_inline]] static constexpr std::size_t round_up(std::size_t b) {
    if (b <= 64) return b <= kMinBlock ? kMinBlock : (b + 15) & ~std::size_t{15};
    return Steps::round_up(b);
  }
  static constexpr bool is_class_size(std::size_t s) {
    return s >= kMinBlock && s % 16 == 0 && round_up(s) == s;
  }
  [[gnu::always_inline]] static constexpr unsigned index_of(std::size_t s) {
    if (s <= 64) return static_cast<unsigned>(s / 16 - 2);
    const unsigned p = Steps::doubling_of(s);
    return 3 + (p - 6) * Steps::kSteps + (Steps::step_of(s, p) - 1);
  }
  static constexpr std::size_t size_of(unsigned i) {
    if (i < 3) return kMinBlock + 16 * std::size_t{i};
    return Steps::size_at(6 + (i - 3) / Steps::kSteps, (i - 3) % Steps::kSteps + 1);
  }
};

// QuarterPowerClasses and one class more above each power of two from 256 B to 16 KiB, halfway
// to the next quarter: 2^p + 2^(p-3) (288, 576, 1152, 2304, 4608 …). Programs ask most for a
// power of two, or one plus a small header of their own: with polymalloc's header such a block
// is just above the power, where the quarter classes round it by up to 25 % (a 4096-byte
// request's 4112-byte block was a 5120-byte class, sqlite's 4368-byte pages too; now both
// are 4608: 12 % and 5 %). Used by partitioned.
struct SnugQuarterPowerClasses {
  using Quarter = QuarterPowerClasses;
  // The powers with a snug class: 256 B to 16 KiB (past that, blocks are classified by
  // arithmetic rather than a table load, and the quarter classes' is the cheaper).
  static constexpr unsigned kFirstSnugPower = 8;
  static constexpr unsigned kLastSnugPower = 14;
  static constexpr unsigned kSnugClasses = kLastSnugPower - kFirstSnugPower + 1;
  static constexpr std::size_t kSnugFloor = std::size_t{1} << kFirstSnugPower;
  static constexpr std::size_t kSnugCeiling = std::size_t{2} << kLastSnugPower;

  // The snug class above 2^p (p >= kFirstSnugPower).
  static constexpr std::size_t snug_of(unsigned p) {
    return (std::size_t{1} << p) + (std::size_t{1} << (p - 3));
  }
  // (Sizes past the snug classes first: blocks past the size map's tables are classified by
  // this arithmetic on every malloc and free of them.)
  [[gnu::always_inline]] static constexpr std::size_t round_up(std::size_t b) {
    if (b > kSnugCeiling || b <= kSnugFloor) return Quarter::round_up(b);
    const unsigned p = Quarter::Steps::doubling_of(b);  // 2^p < b <= 2^(p+1)
    return b <= snug_of(p) ? snug_of(p) : Quarter::round_up(b);
  }
  static constexpr bool is_snug(std::size_t s) {
    if (s > kSnugCeiling || s <= kSnugFloor) return false;
    return s == snug_of(static_cast<unsigned>(std::bit_width(s)) - 1);
  }
  [[gnu::always_inline]] static constexpr bool is_class_size(std::size_t s) {
    return Quarter::is_class_size(s) || is_snug(s);
  }
  // The quarter classes below s and the snug ones below s, for a class size s.
  [[gnu::always_inline]] static constexpr unsigned index_of(std::size_t s) {
    if (s > kSnugCeiling) return Quarter::index_of(s) + kSnugClasses;
    if (s <= kSnugFloor) return Quarter::index_of(s);
    const unsigned p = static_cast<unsigned>(std::bit_width(s)) - 1;  // 2^p <= s
    if (is_snug(s)) return Quarter::index_of(std::size_t{1} << p) + 1 + (p - kFirstSnugPower);
    return Quarter::index_of(s) + (p - kFirstSnugPower) + (s > (std::size_t{1} << p) ? 1 : 0);
  }
  static constexpr std::size_t size_of(unsigned i) {
    unsigned q = 0;
    for (unsigned n = 0;; ++q, ++n) {
      const std::size_t s = Quarter::size_of(q);
      if (n == i) return s;
      if (s >= kSnugFloor && s < kSnugCeiling && is_power_of_two(s) && ++n == i) {
        return snug_of(static_cast<unsigned>(std::bit_width(s)) - 1);
      }
    }
  }
};

// Base's classes up to 2^kFloorLog2 (one of them), then 2^kStepsLog2 classes per doubling
// past it: 2^p + j·2^(p-kStepsLog2) for j = 1 … 2^kStepsLog2. Blocks past the thread caches
// come from a coalescing heap, which carves any size: there a class is only how much a
// block is rounded, with no bin of cached blocks per class to pay for. Used by partitioned,
// past its thread caches' 32 KiB, with sixteen per doubling (at most 6.25 % rounding, where
// the quarter classes rounded Python's 320 KB buffers up to 384 KiB).
template <class Base, unsigned kFloorLog2, unsigned kStepsLog2>
struct FinerClassesAbove {
  using Steps = StepsPerDoubling<kStepsLog2>;
  static constexpr std::size_t kFloor = std::size_t{1} << kFloorLog2;
  static constexpr unsigned kFloorIndex = Base::index_of(kFloor);
  static_assert(Base::is_class_size(kFloor), "the floor is one of Base's classes");
  static_assert(kStepsLog2 + 4 <= kFloorLog2, "every class a multiple of 16 B");

  [[gnu::always_inline]] static constexpr std::size_t round_up(std::size_t b) {
    return b <= kFloor ? Base::round_up(b) : Steps::round_up(b);
  }
  [[gnu::always_inline]] static constexpr bool is_class_size(std::size_t s) {
    if (s <= kFloor) return Base::is_class_size(s);
    return s % 16 == 0 && round_up(s) == s;
  }
  // Past the floor: the floor's index, the classes of each doubling from the floor to s's,
  // and s's step in its own.
  [[gnu::always_inline]] static constexpr unsigned index_of(std::size_t s) {
    if (s <= kFloor) return Base::index_of(s);
    const unsigned p = Steps::doubling_of(s);
    return kFloorIndex + (p - kFloorLog2) * Steps::kSteps + Steps::step_of(s, p);
  }
  static constexpr std::size_t size_of(unsigned i) {
    if (i <= kFloorIndex) return Base::size_of(i);
    const unsigned k = i - kFloorIndex - 1;
    return Steps::size_at(kFloorLog2 + k / Steps::kSteps, k % Steps::kSteps + 1);
  }
};

}  // namespace polymalloc::allocator
