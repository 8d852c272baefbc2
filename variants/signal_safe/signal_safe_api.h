/* signal_safe's own C API, beyond malloc's: enabling mmap and asking whether the build is
 * lock-free (the counterparts of libatomic_ops' AO_malloc_enable_mmap and
 * AO_MALLOC_IS_LOCK_FREE). Both are async-signal-safe. C and C++. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* From now on, once the static arena is spent, fresh memory comes from mmap, and requests
 * of about 1 MiB and more are served (each as its own mapping). Setting the environment
 * variable POLYMALLOC_SIGNAL_SAFE_MMAP=1 does the same from the start. */
void polymalloc_signal_safe_enable_mmap(void);

/* 1 if malloc and free are lock-free in this build (double-width CAS), 0 if they are
 * 1-lock-free (load-linked emulation) or rely on the lock-table fallback. */
int polymalloc_signal_safe_is_lock_free(void);

#ifdef __cplusplus
}
#endif
