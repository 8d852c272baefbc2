// The ABA-safe stack chosen by --//atomics:stack_aba=double_cas (included as
// "atomics/default_stack.h").
#pragma once

#include "atomics/native_double_cas.h"
#include "atomics/versioned_stack.h"

namespace polymalloc::atomics {

using DefaultStack = VersionedStack<NativeDoubleCas>;

}  // namespace polymalloc::atomics
