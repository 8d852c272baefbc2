// Layer 1's entry header: OS memory calls, page sources (reserved range, sbrk, static
// arena, mapped regions) behind the PageSource contract, thread/CPU identity and fork hooks.
#pragma once

#include "platform/mapped_regions.h"
#include "platform/os.h"
#include "platform/page_map.h"
#include "platform/page_source.h"
#include "platform/reserved_range.h"
#include "platform/sbrk_heap.h"
#include "platform/static_arena.h"
#include "platform/thread.h"

namespace polymalloc::platform {

static_assert(PageSource<ReservedRange>);
static_assert(PageSource<SbrkHeap>);
static_assert(PageSource<StaticArena<>>);
static_assert(PageSource<MappedRegions>);

}  // namespace polymalloc::platform
