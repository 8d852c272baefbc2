"""Project macros: every polymalloc C++ target goes through these, so that shared compiler
options and the sanitizer opt-out convention are applied in one place."""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")
load("//bazel:copts.bzl", "COPTS")
load("@bazel_skylib//rules:common_settings.bzl", "BuildSettingInfo")

_SANITIZERS = ["asan", "tsan", "ubsan"]

def _opt_out_tags(sanitizer_opt_outs):
    """Turns {"tsan": "reason"} into the tag no_tsan; every opt-out must give its reason."""
    tags = []
    for sanitizer, reason in sanitizer_opt_outs.items():
        if sanitizer not in _SANITIZERS:
            fail("sanitizer_opt_outs: unknown sanitizer '%s' (one of %s)" % (sanitizer, _SANITIZERS))
        if len(reason.strip()) < 10:
            fail("sanitizer_opt_outs: '%s' needs a real reason, not '%s'" % (sanitizer, reason))
        tags.append("no_" + sanitizer)
    return tags

def pm_cc_library(name, copts = [], visibility = None, **kwargs):
    cc_library(name = name, copts = COPTS + copts, visibility = visibility, **kwargs)

def pm_cc_binary(name, copts = [], visibility = None, sanitizer_opt_outs = {}, tags = [], **kwargs):
    cc_binary(
        name = name,
        copts = COPTS + copts,
        visibility = visibility,
        tags = tags + _opt_out_tags(sanitizer_opt_outs),
        **kwargs
    )

def pm_cc_test(name, copts = [], deps = [], sanitizer_opt_outs = {}, tags = [], gtest = True, **kwargs):
    """A test; GoogleTest (with main) unless gtest = False.

    sanitizer_opt_outs: {"tsan": "why this test cannot run under tsan"}.
    """
    cc_test(
        name = name,
        copts = COPTS + copts,
        deps = deps + (["@com_google_googletest//:gtest_main"] if gtest else []),
        tags = tags + _opt_out_tags(sanitizer_opt_outs),
        **kwargs
    )

def pm_cc_benchmark(name, copts = [], deps = [], tags = [], **kwargs):
    """A Google Benchmark binary, built with optimisation whatever the config (a benchmark
    of -O0 code measures nothing useful). `bazel run` it; it is not a test."""
    cc_binary(
        name = name,
        copts = COPTS + ["-O2"] + copts,
        deps = deps + ["@system_libs//:benchmark"],
        tags = tags + ["benchmark"],
        **kwargs
    )

def _setting_header_impl(ctx):
    value = ctx.attr.setting[BuildSettingInfo].value
    if ctx.attr.values:
        if value not in ctx.attr.values:
            fail("%s=%s: expected one of %s" % (ctx.attr.setting.label, value, ", ".join(ctx.attr.values.keys())))
        value = ctx.attr.values[value]
    ctx.actions.write(ctx.outputs.out, (
        "// Generated from the build setting %s; do not edit.\n" +
        "#pragma once\n\nnamespace %s {\ninline constexpr %s %s = %s;\n}  // namespace %s\n"
    ) % (ctx.attr.setting.label, ctx.attr.namespace, ctx.attr.type, ctx.attr.constant, value, ctx.attr.namespace))

# A header declaring one C++ constant whose value is a build setting's, so that a flag reaches
# the code as a typed constant rather than a -D define: an int_flag's value as is, or a
# string_flag's through `values` (the setting's value -> the C++ expression).
setting_header = rule(
    implementation = _setting_header_impl,
    attrs = {
        "setting": attr.label(mandatory = True, providers = [BuildSettingInfo]),
        "namespace": attr.string(mandatory = True),
        "type": attr.string(default = "int"),
        "constant": attr.string(mandatory = True),
        "values": attr.string_dict(),
        "out": attr.output(mandatory = True),
    },
)

def _generated_source_impl(ctx):
    ctx.actions.write(ctx.outputs.out, ctx.attr.content)
    files = depset([ctx.outputs.out])
    return [DefaultInfo(files = files, runfiles = ctx.runfiles(transitive_files = files))]

# A source file whose text is computed here (no shell, no template files to keep in step).
generated_source = rule(
    implementation = _generated_source_impl,
    attrs = {
        "content": attr.string(mandatory = True),
        "out": attr.output(mandatory = True),
    },
)
