"""Compiler options shared by every polymalloc target (never by external code)."""

# Warnings are errors in project code only; external repositories keep their own flags.
WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wnon-virtual-dtor",
]

# cmpxchg16b (double-width CAS) is part of every x86-64 CPU polymalloc supports; -mcx16
# lets both compilers inline it instead of calling libatomic.
ARCH_COPTS = select({
    "@platforms//cpu:x86_64": ["-mcx16"],
    "//conditions:default": [],
})

# Optimised builds leave out frame pointers (the toolchain asks for them), as the peers'
# builds do: a malloc/free fast path then needs no frame, and its slow paths are tail calls.
# Debugging and sanitizer builds keep them.
FRAME_COPTS = select({
    "//bazel:opt": ["-fomit-frame-pointer"],
    "//conditions:default": [],
})

COPTS = WARNINGS + ARCH_COPTS + FRAME_COPTS
