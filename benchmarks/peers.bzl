"""The peer allocators from Debian's packages that the comparisons preload (the shootout,
the instruction counts, the misuse suite), by name."""

SYSTEM_PEER_LIBRARIES = {
    "tcmalloc": "@system_libs//:libtcmalloc",
    "jemalloc": "@system_libs//:libjemalloc",
    "mimalloc": "@system_libs//:libmimalloc",
}
