// The ABA-safe stack chosen by --//atomics:stack_aba=lock_table (included as
// "atomics/default_stack.h").
#pragma once

#include "atomics/lock_table.h"
#include "atomics/versioned_stack.h"

namespace polymalloc::atomics {

using DefaultStack = VersionedStack<LockTableDoubleCas>;

}  // namespace polymalloc::atomics
