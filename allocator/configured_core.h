// The core a variant is built as: its own, inside CheckedCore when the build says
// --//allocator:checks=full, and inside MemcheckCore (outermost) when it says
// --//allocator:valgrind=on. Chosen by type from the build settings, not by #ifdef.
#pragma once

#include <type_traits>

#include "allocator/checked_core.h"
#include "allocator/checks_setting.h"
#include "allocator/core.h"
#include "allocator/memcheck_selection.h"

namespace polymalloc::allocator {

template <OwnershipAwareCore Core>
using Configured = WithMemcheck<std::conditional_t<kFullChecks, CheckedCore<Core>, Core>>;

}  // namespace polymalloc::allocator
