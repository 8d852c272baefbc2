// Timed release (decay): free memory the allocator keeps goes back to the OS once it has sat
// unused for POLYMALLOC_RELEASE_DELAY_MS milliseconds (-1: never; 0: at once), in the spirit
// of jemalloc's dirty_decay_ms and mimalloc's purge delay. There is no background thread: the
// allocator's slow paths that free, refill or map tick the clock, and a tick that finds a
// release due runs it, so an idle process gives its memory back on its next such call. Free
// memory is dated when it becomes free: a heap's free block of kDatedBlockBytes or more, a
// cached mapping, a pooled block of two pages or more. Both read the vDSO's coarse clock (a
// few loads, no system call; it lags by at most a scheduler tick, which a delay in
// milliseconds can take); a fast path reads no clock at all.
#pragma once

#include <cstdint>

#include "allocator/settings.h"
#include "atomics/atomics.h"
#include "platform/os.h"

namespace polymalloc::allocator {

class Decay {
 public:
  // The delay's default (settings.cc: 1000 ms) is long enough that a program's steady churn
  // reuses its free memory instead of faulting it in again, short enough that an idle
  // service's RSS comes down within seconds (docs/design.md has the measurements behind it).
  static constexpr std::int64_t kNever = -1;
  // A heap's free blocks this big are dated (and their inner pages released when they age),
  // and freeing one is a slow path that ticks: two pages.
  static constexpr std::size_t kDatedBlockBytes = std::size_t{8} << 10;

  // The delay: POLYMALLOC_RELEASE_DELAY_MS (settings.h), read once.
  static std::int64_t delay_ms() { return Settings::value(Setting::kReleaseDelayMs); }

  // A slow path's tick: reads the clock, and returns true (and the time) when a release is
  // due: a quarter of the delay has passed since the last one (at most a second), for one of
  // the threads that tick then. Never with the delay at -1 or 0 (0 releases on free).
  static bool due(std::uint64_t* now) {
    const std::int64_t delay = delay_ms();
    if (delay <= 0) return false;
    const std::uint64_t t = platform::os_coarse_ms();
    std::uint64_t last = atomics::load_relaxed(&last_release_ms_);
    const std::uint64_t interval = static_cast<std::uint64_t>(delay < 4000 ? delay / 4 : 1000);
    if (t - last < interval) return false;
    if (!atomics::cas_relaxed(&last_release_ms_, last, t)) return false;
    *now = t;
    return true;
  }

  // For tests: forget the delay read (so the next call reads the environment again).
  static void reread_for_tests() { Settings::forget_for_tests(); }

 private:
  static inline constinit std::uint64_t last_release_ms_ = 0;
};

}  // namespace polymalloc::allocator
