"""glibc's own malloc tests (malloc/ in Debian's glibc-source), run with each variant as the
process's malloc. Every test file of that folder is either run or left out here, with the
reason; the repository rule that builds them fails on a file this list does not name, so a
newer glibc's new tests cannot slip by unclassified. The tests' code stays in the Debian
package (LGPL): the project keeps only this list and its build glue."""

# Tests that apply to any malloc: they use only the public API.
GLIBC_MALLOC_TESTS = [
    "mallocbug",
    "tst-calloc",
    "tst-free-errno",
    "tst-mallinfo2",
    "tst-malloc",
    "tst-malloc-fork-deadlock",
    "tst-malloc-stats-cancellation",
    "tst-malloc-thread-exit",
    "tst-malloc-thread-fail",
    "tst-malloc-too-large",
    "tst-malloc_info",
    "tst-mallocalign1",
    "tst-mallocfork",
    "tst-mallocfork2",
    "tst-mallocfork3",
    "tst-memalign",
    "tst-obstack",
    "tst-posix_memalign",
    "tst-pvalloc",
    "tst-pvalloc-fortify",
    "tst-realloc",
    "tst-reallocarray",
    "tst-trim1",
    "tst-valloc",
]

_INTERPOSE = "links a malloc of its own, which would replace the one under test"
_INTERPOSE_PART = "part of the tst-interpose-* tests, which link a malloc of their own"
_TCACHE = "glibc's tcache (its per-thread cache) and its double-free detection"

# Test files not run, and why: each tests glibc's malloc internals, not the malloc contract.
GLIBC_MALLOC_TESTS_LEFT_OUT = {
    "tst-alloc_buffer": "glibc's internal alloc_buffer API, not malloc",
    "tst-compathooks-off": "glibc's removed __malloc_hook family (libc_malloc_debug.so)",
    "tst-compathooks-on": "glibc's removed __malloc_hook family (libc_malloc_debug.so)",
    "tst-dynarray": "glibc's internal dynarray, not malloc",
    "tst-dynarray-at-fail": "glibc's internal dynarray, not malloc",
    "tst-dynarray-fail": "glibc's internal dynarray, not malloc",
    "tst-interpose-aux": _INTERPOSE_PART,
    "tst-interpose-aux-nothread": _INTERPOSE_PART,
    "tst-interpose-aux-thread": _INTERPOSE_PART,
    "tst-interpose-skeleton": _INTERPOSE_PART,
    "tst-interpose-nothread": _INTERPOSE,
    "tst-interpose-static-nothread": _INTERPOSE,
    "tst-interpose-static-thread": _INTERPOSE,
    "tst-interpose-thread": _INTERPOSE,
    "tst-malloc-backtrace": "writes glibc's chunk size field below a freed chunk and expects " +
                            "glibc's corruption report with a backtrace",
    "tst-malloc-check": "MALLOC_CHECK_=3, glibc's checking mode",
    "tst-malloc-tcache-leak": _TCACHE,
    "tst-malloc-usable": "MALLOC_CHECK_=3: expects the exact usable sizes of glibc's checking mode",
    "tst-malloc-usable-tunables": "GLIBC_TUNABLES=glibc.malloc.check=3, glibc's checking mode",
    "tst-mallocstate": "malloc_get_state/malloc_set_state, removed from glibc's API",
    "tst-mallopt": "mallopt, glibc's tuning interface",
    "tst-mtrace": "mtrace, glibc's allocation trace (hooks)",
    "tst-mxfast": "GLIBC_TUNABLES for glibc's fastbins and tcache",
    "tst-safe-linking": "the pointer mangling of glibc's tcache and fastbins",
    "tst-scratch_buffer": "glibc's internal scratch_buffer, not malloc",
    "tst-tcfree1": _TCACHE,
    "tst-tcfree2": _TCACHE,
    "tst-tcfree3": _TCACHE,
}

# Files of glibc's support/ (the tests' harness) that are not built: each needs glibc's
# internal headers or is a template that other files include.
SUPPORT_FILES_LEFT_OUT = [
    "support_capture_subprocess",
    "support_descriptors",
    "support_path_support_time64",
    "support_quote_blob_main",
    "support_small_stack_thread_attribute",
    "support_socket_so_timestamp_time64",
    "support_stack_alloc",
    "support_test_compare_string_main",
    "test-driver",
    "timespec-add",
    "timespec-sub",
    "xclone",
    "xreadlink",
]
