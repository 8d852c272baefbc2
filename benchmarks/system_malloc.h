// The process's own malloc (glibc's, or whatever LD_PRELOAD put there) as an ApiTable, so
// that benchmarks and tests run the same body against it and against polymalloc's variants.
#pragma once

#include <malloc.h>
#include <stdlib.h>

#include "allocator/allocator.h"

namespace polymalloc::benchmarks {

inline constexpr allocator::ApiTable kSystemMalloc = {
    "glibc",
    &::malloc,
    &::free,
    &::calloc,
    &::realloc,
    &::reallocarray,
    &::posix_memalign,
    &::aligned_alloc,
    &::memalign,
    &::valloc,
    &::pvalloc,
    &::malloc_usable_size,
    &::malloc_trim,
    &::mallinfo2,
    &::malloc_stats,
    nullptr,
    /*statistics=*/nullptr,
};

}  // namespace polymalloc::benchmarks
