// Layer 2's entry header: the shared allocator parts (size classes, boundary-tagged blocks,
// the free-list heap and its locked form, the large-object path, statistics and reports,
// the cache bins and both caches, the heap pool, and the one class-based core) and the front end that turns a variant's core into the malloc API
// (core.h, front_end.h, c_api.h), and the full-checks decorator the build may wrap a core in
// (checked_core.h, configured_core.h).
#pragma once

#include "allocator/block.h"
#include "allocator/c_api.h"
#include "allocator/cache_bins.h"
#include "allocator/checked_core.h"
#include "allocator/class_core.h"
#include "allocator/class_stacks.h"
#include "allocator/configured_core.h"
#include "allocator/core.h"
#include "allocator/decay.h"
#include "allocator/errno_preserved.h"
#include "allocator/free_list_heap.h"
#include "allocator/front_end.h"
#include "allocator/heap_pool.h"
#include "allocator/introspection.h"
#include "allocator/large_objects.h"
#include "allocator/locked_heap.h"
#include "allocator/reentrant_cache.h"
#include "allocator/report.h"
#include "allocator/sanitizer.h"
#include "allocator/secret.h"
#include "allocator/settings.h"
#include "allocator/size_class.h"
#include "allocator/size_map.h"
#include "allocator/statistics.h"
#include "allocator/thread_cache.h"
