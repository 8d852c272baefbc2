"""polymalloc's version, in one place: the public header's POLYMALLOC_VERSION_* macros and
polymalloc_version(), every shared library's SONAME and file name, and the installed
pkg-config and CMake files all come from here. Bump it (and CHANGELOG.md) on a release:
MAJOR when the ABI breaks (the SONAME changes with it), MINOR for additions, PATCH for fixes."""

VERSION_MAJOR = 0
VERSION_MINOR = 1
VERSION_PATCH = 0

VERSION = "%d.%d.%d" % (VERSION_MAJOR, VERSION_MINOR, VERSION_PATCH)

def soname(library):
    """The SONAME of shared library `library` (e.g. libpolymalloc_partitioned.so)."""
    return "%s.%d" % (library, VERSION_MAJOR)
