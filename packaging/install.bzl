"""What //:install is given by Bazel (install.sh takes the prefix from the user): the version,
the default variant, the templates, the headers and every variant's libraries. The install
test runs the script with the same arguments."""

load("//bazel:version.bzl", "VERSION")
load("//variants:variants.bzl", "DEFAULT_VARIANT", "IMPLEMENTED_VARIANTS", "VARIANT_LIBRARIES")

_HEADERS = ["//include:polymalloc/polymalloc.h", "//include:version_h"]
_TEMPLATES = "//packaging:templates"

def _archive(variant):
    return "//variants/%s:libpolymalloc_%s.a" % (variant, variant)

INSTALL_ARGS = [
    "--version",
    VERSION,
    "--default",
    DEFAULT_VARIANT,
    "--templates",
    "packaging",
] + [
    "--header $(rootpath %s)" % h
    for h in _HEADERS
] + [
    "--library %s=$(rootpath %s):$(rootpath %s)" % (v, VARIANT_LIBRARIES[v], _archive(v))
    for v in IMPLEMENTED_VARIANTS
]

INSTALL_DATA = _HEADERS + [_TEMPLATES] + [
    VARIANT_LIBRARIES[v]
    for v in IMPLEMENTED_VARIANTS
] + [_archive(v) for v in IMPLEMENTED_VARIANTS]
