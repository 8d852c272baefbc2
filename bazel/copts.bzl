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

COPTS = WARNINGS + ARCH_COPTS
