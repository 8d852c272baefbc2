// libao_malloc.so: AO_malloc as the process's malloc, for LD_PRELOAD (the shootout's peer).
#include "allocator/c_api.h"
#include "benchmarks/ao_malloc_core.h"

POLYMALLOC_DEFINE_PROCESS_MALLOC(polymalloc::benchmarks::AoMallocCore,
                                 polymalloc::benchmarks::AoMallocCore)
