"""The one list of polymalloc's variants, and the macros that generate per-variant targets."""

load("@rules_cc//cc:defs.bzl", "cc_binary")
load("//bazel:polymalloc.bzl", "generated_source", "pm_cc_benchmark", "pm_cc_binary", "pm_cc_library", "pm_cc_test")
load("//bazel:static_library.bzl", "static_library")
load("//bazel:version.bzl", "soname")

# Every variant, in one place. A variant is `implemented` once variants/<name>/BUILD.bazel
# defines its core (a type meeting allocator::AllocatorCore) and calls variant_package(),
# which generates the rest from it.
#   test_env: environment the cross-variant tests and the comparisons run the variant with.
#   signal_safe serves large and numerous requests only with mmap enabled (its static arena
#   alone is 2 MiB); its arena-only behaviour has tests of its own.
VARIANTS = {
    "global_spinlock": struct(issue = 3, implemented = True, test_env = {}),
    "partitioned": struct(issue = 4, implemented = True, test_env = {}),
    "signal_safe": struct(
        issue = 5,
        implemented = True,
        test_env = {"POLYMALLOC_SIGNAL_SAFE_MMAP": "1"},
    ),
}

DEFAULT_VARIANT = "global_spinlock"

IMPLEMENTED_VARIANTS = [name for name, v in VARIANTS.items() if v.implemented]

# Each implemented variant's LD_PRELOAD-able library.
VARIANT_LIBRARIES = {
    name: "//variants/%s:libpolymalloc_%s.so" % (name, name)
    for name in IMPLEMENTED_VARIANTS
}

def variant_cc_test(name, deps = [], variant_target = "under_test", env = {}, **kwargs):
    """One test per implemented variant, named <name>_<variant>; test_suite <name> holds all.

    variant_target: which of the variant's generated targets the test links: "under_test"
    (the prefixed API as kUnderTest) or "process_malloc" (the variant as the process's
    malloc). The test reads the variant's name from $POLYMALLOC_EXPECTED_VARIANT.
    """
    if variant_target not in ["under_test", "process_malloc"]:
        fail("variant_cc_test: variant_target must be under_test or process_malloc")
    tests = []
    for variant in IMPLEMENTED_VARIANTS:
        target = variant if variant_target == "process_malloc" else variant_target
        pm_cc_test(
            name = "%s_%s" % (name, variant),
            deps = deps + ["//variants/%s:%s" % (variant, target)],
            env = dict(VARIANTS[variant].test_env, POLYMALLOC_EXPECTED_VARIANT = variant, **env),
            **kwargs
        )
        tests.append(":%s_%s" % (name, variant))
    native.test_suite(name = name, tests = tests)

def variant_cc_fuzzer(name, srcs, corpus, deps = [], **kwargs):
    """Per implemented variant: <name>_<variant>, a libFuzzer binary (clang only: build it with
    --config=fuzz; tagged manual, so //... leaves it out), and <name>_corpus_test_<variant>,
    which runs the same target over `corpus` (a filegroup of inputs) with any compiler and
    sanitizer;
    test_suite <name>_corpus_test holds those."""
    tests = []
    for variant in IMPLEMENTED_VARIANTS:
        variant_deps = deps + ["//variants/%s:under_test" % variant]
        pm_cc_binary(
            name = "%s_%s" % (name, variant),
            srcs = srcs,
            deps = variant_deps,
            tags = ["manual"],
            **kwargs
        )
        pm_cc_test(
            name = "%s_corpus_test_%s" % (name, variant),
            srcs = srcs,
            args = ["$(rootpaths %s)" % corpus],
            data = [corpus],
            deps = variant_deps + ["//testing:fuzz_corpus_main"],
            env = VARIANTS[variant].test_env,
            gtest = False,
            **kwargs
        )
        tests.append(":%s_corpus_test_%s" % (name, variant))
    native.test_suite(name = name + "_corpus_test", tests = tests)

def _variant_sh_tests(name, srcs, libraries, program = None, env = {}, data = [], **kwargs):
    """One sh_test per implemented variant, run as `srcs[0] [PROGRAM] LIBRARY VARIANT`, where
    LIBRARY is libraries[variant], a label, with the variant's test_env and `env`;
    test_suite <name> holds them all."""
    leading = ["$(rootpath %s)" % program] if program else []
    tests = []
    for variant in IMPLEMENTED_VARIANTS:
        library = libraries[variant]
        native.sh_test(
            name = "%s_%s" % (name, variant),
            srcs = srcs,
            args = leading + ["$(rootpath %s)" % library, variant],
            data = ([program] if program else []) + [library] + data,
            env = dict(VARIANTS[variant].test_env, **env),
            **kwargs
        )
        tests.append(":%s_%s" % (name, variant))
    native.test_suite(name = name, tests = tests)

def variant_preload_test(name, srcs, **kwargs):
    """One sh_test per implemented variant, run as `srcs[0] [PROGRAM] LIBRARY VARIANT` where
    LIBRARY is the variant's LD_PRELOAD-able shared object (and PROGRAM the `program` label's
    file, if given)."""
    _variant_sh_tests(name, srcs, VARIANT_LIBRARIES, **kwargs)

def _valgrind_on_transition_impl(settings, attr):
    return {"//allocator:valgrind": "on"}

_valgrind_on_transition = transition(
    implementation = _valgrind_on_transition_impl,
    inputs = [],
    outputs = ["//allocator:valgrind"],
)

def _full_checks_transition_impl(settings, attr):
    return {"//allocator:checks": "full"}

_full_checks_transition = transition(
    implementation = _full_checks_transition_impl,
    inputs = [],
    outputs = ["//allocator:checks"],
)

def _transitioned_files_impl(ctx):
    files = ctx.attr.target[0][DefaultInfo].files
    return [DefaultInfo(files = files, runfiles = ctx.runfiles(transitive_files = files))]

# The file of `target` as <name>.so: a runfiles path of its own, so that it does not collide
# with the same target built without the transition (runfiles paths carry no configuration).
def _transitioned_copy_impl(ctx):
    files = ctx.attr.target[0][DefaultInfo].files.to_list()
    if len(files) != 1:
        fail("%s: wants a target with one file, not %d" % (ctx.label, len(files)))
    copy = ctx.actions.declare_file(ctx.label.name + ".so")
    ctx.actions.run_shell(
        inputs = files,
        outputs = [copy],
        command = "cp \"$1\" \"$2\"",
        arguments = [files[0].path, copy.path],
    )
    return [DefaultInfo(files = depset([copy]), runfiles = ctx.runfiles(files = [copy]))]

def _transitioned_build(cfg, implementation = _transitioned_files_impl):
    return rule(
        implementation = implementation,
        attrs = {
            "target": attr.label(cfg = cfg, mandatory = True),
            "_allowlist_function_transition": attr.label(
                default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
            ),
        },
    )

# The files of `target` as built with --//allocator:valgrind=on, whatever the build says.
_valgrind_build = _transitioned_build(_valgrind_on_transition)

# The file of `target` as built with --//allocator:checks=full, whatever the build says, as
# <name>.so.
_full_checks_build = _transitioned_build(_full_checks_transition, _transitioned_copy_impl)

def variant_full_checks_libraries(name):
    """Declares <name>_<variant>: each variant's LD_PRELOAD-able object built with
    --//allocator:checks=full (by a configuration transition, in any build); returns
    {variant: label}."""
    libraries = {}
    for variant in IMPLEMENTED_VARIANTS:
        library = "%s_%s" % (name, variant)
        _full_checks_build(name = library, target = VARIANT_LIBRARIES[variant])
        libraries[variant] = ":" + library
    return libraries

def variant_memcheck_test(name, srcs, program, **kwargs):
    """One sh_test per implemented variant, run as `srcs[0] PROGRAM LIBRARY VARIANT`, where
    LIBRARY is the variant's LD_PRELOAD-able object built with --//allocator:valgrind=on (by a
    configuration transition, so the test needs no flag) and PROGRAM a binary to run under it."""
    libraries = {}
    for variant in IMPLEMENTED_VARIANTS:
        library = "%s_library_%s" % (name, variant)
        _valgrind_build(name = library, target = VARIANT_LIBRARIES[variant])
        libraries[variant] = ":" + library
    _variant_sh_tests(name, srcs, libraries, program = program, **kwargs)

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

_PROLOGUE = "// Generated by variant_package() in variants/variants.bzl for %s; do not edit.\n"

def variant_package(core, core_header, core_type):
    """Generates a variant's public targets from its core, for the package's variant:

      :prefixed                   polymalloc_<variant>_malloc … (prefixed_api.h), to hold
                                  several variants and the system malloc in one process
      :<variant>                  the process's malloc, operator new/delete, __libc_* (alwayslink)
      :libpolymalloc_<variant>.so the same as an LD_PRELOAD-able shared object, with the
                                  SONAME libpolymalloc_<variant>.so.<MAJOR>
      :libpolymalloc_<variant>.a  the same as one static archive (for //:install)
      :under_test                 "variants/under_test.h": kUnderTest, the prefixed ApiTable

    core: the cc_library defining core_type (in core_header).
    """
    variant = native.package_name().split("/")[-1]
    if variant not in VARIANTS:
        fail("variant_package: '%s' is not in VARIANTS (variants/variants.bzl)" % variant)
    prefix = "polymalloc_%s_" % variant
    prologue = _PROLOGUE % variant
    generated_source(
        name = "prefixed_api_h",
        out = "prefixed_api.h",
        content = prologue + """#pragma once

#include "allocator/c_api.h"

POLYMALLOC_DECLARE_PREFIXED_API({prefix})

namespace polymalloc::variants {{
inline constexpr allocator::ApiTable {variant}_api =
    POLYMALLOC_PREFIXED_API_TABLE("{variant}", {prefix});
}}  // namespace polymalloc::variants
""".format(prefix = prefix, variant = variant),
    )
    generated_source(
        name = "prefixed_api_cc",
        out = "prefixed_api.cc",
        content = prologue + """#include "variants/{variant}/prefixed_api.h"
#include "allocator/configured_core.h"
#include "{header}"

POLYMALLOC_DEFINE_PREFIXED_API({prefix}, ::polymalloc::allocator::Configured<{core_type}>)
""".format(variant = variant, header = core_header, prefix = prefix, core_type = core_type),
    )
    generated_source(
        name = "process_malloc_cc",
        out = "process_malloc.cc",
        content = prologue + """#include "allocator/c_api.h"
#include "allocator/configured_core.h"
#include "{header}"

POLYMALLOC_DEFINE_PROCESS_MALLOC({core_type}, ::polymalloc::allocator::Configured<{core_type}>)
""".format(header = core_header, core_type = core_type),
    )
    generated_source(
        name = "under_test_h",
        out = "under_test/variants/under_test.h",
        content = prologue + """#pragma once

#include "variants/{variant}/prefixed_api.h"

namespace polymalloc::testing {{
inline constexpr const allocator::ApiTable& kUnderTest = variants::{variant}_api;
}}  // namespace polymalloc::testing
""".format(variant = variant),
    )
    pm_cc_library(
        name = "prefixed",
        srcs = ["prefixed_api.cc"],
        hdrs = ["prefixed_api.h"],
        visibility = ["//visibility:public"],
        deps = [core, "//allocator"],
    )
    pm_cc_library(
        name = variant,
        srcs = ["process_malloc.cc"],
        alwayslink = True,
        visibility = ["//visibility:public"],
        deps = [core, "//allocator", "//include:polymalloc_h"],
    )
    static_library(
        name = "libpolymalloc_%s.a" % variant,
        library = ":" + variant,
        visibility = ["//visibility:public"],
    )
    cc_binary(
        name = "libpolymalloc_%s.so" % variant,
        linkshared = True,
        linkopts = [
            "-Wl,--version-script=$(location //variants:exports.map)",
            "-Wl,-soname,%s" % soname("libpolymalloc_%s.so" % variant),
        ],
        additional_linker_inputs = ["//variants:exports.map"],
        visibility = ["//visibility:public"],
        deps = [":" + variant],
    )
    pm_cc_library(
        name = "under_test",
        hdrs = ["under_test/variants/under_test.h"],
        strip_include_prefix = "under_test",
        visibility = ["//testing:__subpackages__", "//benchmarks:__subpackages__"],
        deps = [":prefixed"],
    )

def all_variants_library():
    """//variants:all, every implemented variant's prefixed API in one table
    ("variants/all_variants.h": kAllVariants, with the environment each runs with in the
    cross-variant tests), and //variants:variant_names, their names a line each, for tools
    that take a variant by name (memsim, the soak script): a new variant reaches them from
    VARIANTS alone."""
    includes = "".join([
        '#include "variants/%s/prefixed_api.h"\n' % v
        for v in IMPLEMENTED_VARIANTS
    ])
    entries = "".join([
        "    VariantEntry{&%s_api, {%s}},\n" % (v, ", ".join([
            'Setting{"%s", "%s"}' % (name, value)
            for name, value in VARIANTS[v].test_env.items()
        ]))
        for v in IMPLEMENTED_VARIANTS
    ])
    generated_source(
        name = "all_variants_h",
        out = "all_variants.h",
        content = "// Generated by all_variants_library() in variants/variants.bzl; do not edit.\n" + """#pragma once

#include <cstddef>

{includes}
namespace polymalloc::variants {{

// An environment variable a variant is run with in the cross-variant tests and tools (e.g.
// signal_safe's POLYMALLOC_SIGNAL_SAFE_MMAP=1, without which it serves only its arena).
struct Setting {{
  const char* name = nullptr;
  const char* value = nullptr;
}};

struct VariantEntry {{
  const allocator::ApiTable* api;
  Setting environment[4];
}};

// Every implemented variant, in the order of VARIANTS (variants/variants.bzl).
inline constexpr VariantEntry kAllVariants[] = {{
{entries}}};
inline constexpr std::size_t kVariantCount = sizeof(kAllVariants) / sizeof(kAllVariants[0]);

}}  // namespace polymalloc::variants
""".format(includes = includes, entries = entries),
    )
    pm_cc_library(
        name = "all",
        hdrs = ["all_variants.h"],
        visibility = [
            "//benchmarks:__subpackages__",
            "//testing:__subpackages__",
        ],
        deps = ["//variants/%s:prefixed" % v for v in IMPLEMENTED_VARIANTS],
    )
    generated_source(
        name = "variant_names",
        out = "variant_names.txt",
        content = "".join([v + "\n" for v in IMPLEMENTED_VARIANTS]),
        visibility = ["//visibility:public"],
    )
