// The read-modify-writes of the lock-free large-block parts (the mapping cache, the slice
// arena, LargeObjects' counters), with the lock prefix left out while the process has one
// thread, as glibc's malloc once did with its catomic_ operations. A locked instruction costs
// some twenty cycles; a doubling buffer in signal_safe made about fifteen of them on every
// malloc and free of its mapping. Without the prefix, each is still one instruction, so a
// signal handler that interrupts the thread sees it done or not begun: the parts stay
// lock-free and async-signal-safe. Each operation decides on its own; a thread created later
// starts after everything done so far (pthread_create orders it), and from then on every
// operation is atomic.
#pragma once

#include "atomics/atomics.h"
#include "platform/platform.h"

namespace polymalloc::allocator::solo {

[[gnu::always_inline]] inline bool alone() { return platform::process_is_single_threaded(); }

// clang-format off
template <class T> [[gnu::always_inline]] inline T fetch_add_relaxed(T* p, T v) { return alone() ? atomics::fetch_add_local(p, v) : atomics::fetch_add_relaxed(p, v); }
template <class T> [[gnu::always_inline]] inline T fetch_sub_relaxed(T* p, T v) { return alone() ? atomics::fetch_sub_local(p, v) : atomics::fetch_sub_relaxed(p, v); }
template <class T> [[gnu::always_inline]] inline T fetch_or_acq_rel(T* p, T v) { return alone() ? atomics::fetch_or_local(p, v) : atomics::fetch_or_acq_rel(p, v); }
template <class T> [[gnu::always_inline]] inline T fetch_and_acq_rel(T* p, T v) { return alone() ? atomics::fetch_and_local(p, v) : atomics::fetch_and_acq_rel(p, v); }
template <class T> [[gnu::always_inline]] inline bool cas_acq_rel(T* p, T& expected, T desired) { return alone() ? atomics::cas_local(p, expected, desired) : atomics::cas_acq_rel(p, expected, desired); }
template <class T> [[gnu::always_inline]] inline bool cas_relaxed(T* p, T& expected, T desired) { return alone() ? atomics::cas_local(p, expected, desired) : atomics::cas_relaxed(p, expected, desired); }
// clang-format on

}  // namespace polymalloc::allocator::solo
