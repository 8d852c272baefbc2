// Thread and CPU identity, and fork hooks. Initial-exec TLS only (safe inside malloc, which
// may be called before the dynamic TLS machinery could allocate).
#pragma once

#include <cstdint>

namespace polymalloc::platform {

// A small number unique to the calling thread among live and past threads (1, 2, 3 … in
// order of first call), cheap after the first call. A fork child keeps its parent thread's.
std::uint32_t thread_number();

// The CPU the caller is running on now (may change at any moment), or 0 if unknown.
std::uint32_t current_cpu();

// Number of CPUs this process may run on (at least 1).
std::uint32_t cpu_count();

// Registers handlers around fork(): `prepare` runs in the parent before the fork (take every
// lock), `parent` after it in the parent, `child` after it in the child (release or reset
// every lock). Returns false if they could not be registered.
bool register_fork_handlers(void (*prepare)(), void (*parent)(), void (*child)());

}  // namespace polymalloc::platform
