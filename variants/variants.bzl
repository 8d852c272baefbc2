"""The one list of polymalloc's variants, and the macros that generate per-variant targets."""

load("//bazel:polymalloc.bzl", "pm_cc_benchmark", "pm_cc_test")

# Every variant, in one place. A variant is `implemented` once variants/<name>/ provides:
#   //variants/<name>:<name>       the library that defines malloc & co. (alwayslink)
#   //variants/<name>:under_test   header "variants/under_test.h" naming the variant's
#                                  prefixed API type, for the generated tests/benchmarks
VARIANTS = {
    "global_spinlock": struct(issue = 3, implemented = False),
    "partitioned": struct(issue = 4, implemented = False),
    "signal_safe": struct(issue = 5, implemented = False),
}

DEFAULT_VARIANT = "global_spinlock"

IMPLEMENTED_VARIANTS = [name for name, v in VARIANTS.items() if v.implemented]

def variant_cc_test(name, deps = [], **kwargs):
    """One test per implemented variant, named <name>_<variant>; test_suite <name> holds all."""
    tests = []
    for variant in IMPLEMENTED_VARIANTS:
        pm_cc_test(
            name = "%s_%s" % (name, variant),
            deps = deps + ["//variants/%s:under_test" % variant],
            **kwargs
        )
        tests.append(":%s_%s" % (name, variant))
    native.test_suite(name = name, tests = tests)

def variant_cc_benchmark(name, deps = [], **kwargs):
    """One benchmark binary per implemented variant, named <name>_<variant>."""
    for variant in IMPLEMENTED_VARIANTS:
        pm_cc_benchmark(
            name = "%s_%s" % (name, variant),
            deps = deps + ["//variants/%s:under_test" % variant],
            **kwargs
        )

def _missing_variant_impl(ctx):
    fail(("\npolymalloc: --//variants:allocator=%s is not built yet (issue #%d).\n" +
          "Implemented variants: %s.") % (
        ctx.attr.variant,
        ctx.attr.issue,
        ", ".join(IMPLEMENTED_VARIANTS) or "none yet",
    ))

# Stands in for a variant that does not exist: analysing it fails with a message that says
# which variant is missing, never a placeholder allocator.
missing_variant = rule(
    implementation = _missing_variant_impl,
    attrs = {
        "variant": attr.string(mandatory = True),
        "issue": attr.int(mandatory = True),
    },
)

def variant_libraries():
    """config_settings for each variant, and `selected` that follows the flag."""
    choices = {}
    for name, v in VARIANTS.items():
        native.config_setting(
            name = "is_" + name,
            flag_values = {":allocator": name},
            visibility = ["//:__pkg__"],
        )
        if v.implemented:
            choices[":is_" + name] = "//variants/%s:%s" % (name, name)
        else:
            missing_variant(name = name + "_missing", variant = name, issue = v.issue, tags = ["manual"])
            choices[":is_" + name] = ":%s_missing" % name
    # Reached only through //:malloc (manual: a wildcard must not analyse a missing variant).
    native.alias(
        name = "selected",
        actual = select(choices),
        tags = ["manual"],
        visibility = ["//:__pkg__"],
    )
