// Layer 0's entry header: word atomics with named orders, double-width CAS, LL/SC emulation,
// the ABA-safe stacks, the spinlock, the lock-table fallback and the CPU's capabilities.
#pragma once

#include "atomics/backoff.h"
#include "atomics/cpu.h"
#include "atomics/default_stack.h"
#include "atomics/double_word.h"
#include "atomics/llsc_emulation.h"
#include "atomics/llsc_stack.h"
#include "atomics/lock_table.h"
#include "atomics/native_double_cas.h"
#include "atomics/spinlock.h"
#include "atomics/stack_node.h"
#include "atomics/versioned_stack.h"
#include "atomics/word.h"

namespace polymalloc::atomics {

static_assert(AbaSafeStack<DefaultStack>);

// Whether the configured stack (and so every structure built on it) is lock-free, the
// counterpart of libatomic_ops' AO_STACK_IS_LOCK_FREE.
inline constexpr bool kStackIsLockFree = DefaultStack::kIsLockFree;

}  // namespace polymalloc::atomics
