// Bounded exponential backoff for spin loops: pause 1, 2, 4 … kMaxSpins times, then yield
// the CPU on every further round so that a preempted lock holder can run.
#pragma once

#include <sched.h>

#include <cstdint>

#include "atomics/cpu.h"

namespace polymalloc::atomics {

class Backoff {
 public:
  static constexpr std::uint32_t kMaxSpins = 1024;

  void pause() {
    if (spins_ <= kMaxSpins) {
      for (std::uint32_t i = 0; i < spins_; ++i) cpu_pause();
      spins_ *= 2;
    } else {
      sched_yield();  // async-signal-safe: a plain system call
    }
  }
  bool saturated() const { return spins_ > kMaxSpins; }
  void reset() { spins_ = 1; }

 private:
  std::uint32_t spins_ = 1;
};

}  // namespace polymalloc::atomics
