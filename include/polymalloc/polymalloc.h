/* polymalloc's public API: what it adds to the standard malloc family (malloc, free, calloc,
 * realloc, posix_memalign, aligned_alloc, malloc_usable_size, malloc_trim, mallinfo2 and the
 * rest, which <stdlib.h> and <malloc.h> declare). Valid C (C99 on) and C++.
 *
 * A program gets polymalloc as its malloc by linking one variant's library
 * (-lpolymalloc_<variant>, pkg-config polymalloc-<variant>, CMake polymalloc::<variant>, or
 * Bazel's @polymalloc//:malloc) or by LD_PRELOAD; these functions are then polymalloc's.
 * Every function here is thread-safe. */
#ifndef POLYMALLOC_POLYMALLOC_H_
#define POLYMALLOC_POLYMALLOC_H_

#include <polymalloc/version.h>
#include <stddef.h>

#if defined(__cplusplus)
#define POLYMALLOC_NOTHROW noexcept
extern "C" {
#else
#define POLYMALLOC_NOTHROW
#endif

/* The version of the library the program runs on, "MAJOR.MINOR.PATCH" (compare with
 * POLYMALLOC_VERSION_STRING, the version of this header). */
const char* polymalloc_version(void) POLYMALLOC_NOTHROW;

/* The name of the variant the program runs on: "global_spinlock", "partitioned" or
 * "signal_safe". */
const char* polymalloc_variant(void) POLYMALLOC_NOTHROW;

/* Walks the whole heap and checks every invariant it can: NULL if it is consistent, else a
 * one-line description of the first problem, and (if `where` is not NULL) *where = the
 * address it concerns. It takes the allocator's locks: not for signal handlers. */
const char* polymalloc_check_heap(const void** where) POLYMALLOC_NOTHROW;

/* ---- What the process holds, and giving it back: every variant ---- */

/* 1 and *value = the property's current value for a known `name`, else 0 (*value untouched).
 * Cheap enough to poll: it reads counters, takes no lock a malloc or free waits on, walks
 * nothing and allocates nothing. The names (docs/settings.md says more):
 *   generic.current_allocated_bytes  bytes in blocks the program holds (with their headers)
 *   generic.heap_size                bytes obtained from the OS and not given back
 *   polymalloc.heap_free_bytes       free bytes in the heaps, still resident (caches included)
 *   polymalloc.thread_cache_bytes    free bytes held in threads' caches
 *   polymalloc.mapped_bytes          bytes of large blocks that are mappings of their own
 *   polymalloc.mapping_cache_bytes   bytes of freed mappings kept for reuse
 *   polymalloc.arena_kept_bytes      bytes of free large-block arena slices kept for reuse
 *   polymalloc.released_bytes        bytes of free heap blocks whose pages went back
 *   polymalloc.metadata_bytes        bytes mapped for the allocator's own bookkeeping
 *   polymalloc.partitions            independently locked heaps (partitioned's partitions) */
int polymalloc_get_numeric_property(const char* name, size_t* value) POLYMALLOC_NOTHROW;

/* Gives everything free that can go back to the OS back: the caller's thread cache, the
 * heaps' free tops and free pages, the cached mappings (other threads' caches stay theirs). */
void polymalloc_release_free_memory(void) POLYMALLOC_NOTHROW;

/* Writes the statistics to `fd`: the text summary (json == 0) or one JSON object (json != 0)
 * with the variant, version, pid, in_use_bytes, every property above and the breakdown of
 * where the memory goes. Allocates nothing. 0, or -1 with errno set (EBADF). The same is
 * written at exit with POLYMALLOC_STATS=1 or =json (to POLYMALLOC_STATS_FILE, %p = pid). */
int polymalloc_write_stats(int fd, int json) POLYMALLOC_NOTHROW;

/* Writes the sampling heap profile to `path` (created or truncated): the blocks in use that
 * were sampled, scaled up to estimates of all in-use objects and bytes by call stack, in
 * gperftools' heap-profile format, followed by the process's memory map, so that
 * `google-pprof --text PROGRAM FILE` reads it. Sampling is on when the environment variable
 * POLYMALLOC_PROFILE_SAMPLE is set to a mean interval in bytes (524288 is tcmalloc's); with
 * POLYMALLOC_PROFILE_FILE (%p = pid) the profile is also written at exit. Allocates nothing.
 * 0, or -1 with errno set: EINVAL (no path), ENOTSUP (sampling is off), or open's and write's
 * errors. */
int polymalloc_dump_heap_profile(const char* path) POLYMALLOC_NOTHROW;

/* signal_safe only (defined by libpolymalloc_signal_safe alone; a program that calls them
 * links only with that variant). Both are async-signal-safe. */

/* From now on, once the static arena is spent, fresh memory comes from mmap, and requests of
 * about 1 MiB and more are served (each as its own mapping). The environment variable
 * POLYMALLOC_SIGNAL_SAFE_MMAP=1 does the same from the start. */
void polymalloc_signal_safe_enable_mmap(void) POLYMALLOC_NOTHROW;

/* 1 if malloc and free are lock-free in this build (double-width CAS), 0 if they are
 * 1-lock-free (the load-linked emulation) or use the lock-table fallback. */
int polymalloc_signal_safe_is_lock_free(void) POLYMALLOC_NOTHROW;

#if defined(__cplusplus)
} /* extern "C" */
#endif

#endif /* POLYMALLOC_POLYMALLOC_H_ */
