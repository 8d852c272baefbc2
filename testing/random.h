// A small, fast PRNG (xorshift64*) for workloads that need many cheap random numbers, one
// generator per thread: the soak test and the threaded benchmarks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace polymalloc::testing {

class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15u + 1) {}
  std::uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545f4914f6cdd1du;
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() >> 11) % n; }

 private:
  std::uint64_t state_;
};

}  // namespace polymalloc::testing
