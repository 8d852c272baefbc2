// The ABA-safe stack chosen by --//atomics:stack_aba=llsc_emulation (included as
// "atomics/default_stack.h").
#pragma once

#include "atomics/llsc_stack.h"

namespace polymalloc::atomics {

using DefaultStack = LlscStack;

}  // namespace polymalloc::atomics
