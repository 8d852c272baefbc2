// The core a variant is built as: its own, or inside CheckedCore when the build says
// --//allocator:checks=full. Chosen by type from the build setting's constant, not by #ifdef.
#pragma once

#include <type_traits>

#include "allocator/checked_core.h"
#include "allocator/checks_setting.h"
#include "allocator/core.h"

namespace polymalloc::allocator {

template <OwnershipAwareCore Core>
using Configured = std::conditional_t<kFullChecks, CheckedCore<Core>, Core>;

}  // namespace polymalloc::allocator
