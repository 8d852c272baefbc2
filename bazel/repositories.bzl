"""Repository rules that map Debian's packages into an offline Bazel 4.2.3 workspace."""

def _require(rctx, path, package):
    p = rctx.path(path)
    if not p.exists:
        fail("polymalloc: %s is missing; install Debian's '%s' (./bazelw does it)" % (path, package))
    return p

def _debian_rules_cc_impl(rctx):
    """Copies Debian's rules_cc 0.0.4 and makes it load on Bazel 4.2.3.

    Two files load `use_cpp_toolchain`, which 4.2.3's @bazel_tools lacks; the toolchain
    type label it returns is written in its place.
    """
    src = _require(rctx, rctx.attr.path, "bazel-rules-cc")
    result = rctx.execute(["cp", "-R", str(src) + "/.", "."])
    if result.return_code != 0:
        fail("polymalloc: copying rules_cc failed: " + result.stderr)
    for f in [
        "cc/private/rules_impl/compiler_flag.bzl",
        "cc/private/rules_impl/cc_flags_supplier.bzl",
    ]:
        text = rctx.read(f)
        text = text.replace(', "use_cpp_toolchain")', ")")
        text = text.replace("use_cpp_toolchain()", '["@bazel_tools//tools/cpp:toolchain_type"]')
        rctx.file(f, text)

debian_rules_cc = repository_rule(
    implementation = _debian_rules_cc_impl,
    attrs = {"path": attr.string(default = "/usr/share/bazel/rules/cc")},
    local = True,
)

def _multiarch_libdir(rctx):
    result = rctx.execute(["gcc", "-print-multiarch"])
    triple = result.stdout.strip()
    if result.return_code != 0 or not triple:
        fail("polymalloc: 'gcc -print-multiarch' failed; is g++ installed?")
    return "/usr/lib/" + triple

def _system_libraries_impl(rctx):
    """Links chosen headers and libraries of /usr into one repository with a given BUILD file."""
    libdir = _multiarch_libdir(rctx)
    for header, package in rctx.attr.headers.items():
        rctx.symlink(_require(rctx, "/usr/include/" + header, package), "include/" + header)
    for lib, package in rctx.attr.libs.items():
        rctx.symlink(_require(rctx, libdir + "/" + lib, package), "lib/" + lib)
    rctx.symlink(rctx.attr.build_file, "BUILD.bazel")

system_libraries = repository_rule(
    implementation = _system_libraries_impl,
    attrs = {
        "headers": attr.string_dict(doc = "path under /usr/include -> Debian package"),
        "libs": attr.string_dict(doc = "file in the multiarch lib dir -> Debian package"),
        "build_file": attr.label(allow_single_file = True),
    },
    local = True,
)

def _coverage_tools_impl(rctx):
    """Offline stand-in for @remote_coverage_tools: enough for `bazel test`.

    `bazel coverage` needs the real tools, which are not packaged by Debian; these
    fail loudly instead of pretending to merge coverage.
    """
    rctx.file("unavailable.sh", "#!/bin/sh\necho 'polymalloc: bazel coverage tools are not available offline' >&2\nexit 1\n", executable = True)
    rctx.file("BUILD.bazel", """
package(default_visibility = ["//visibility:public"])
sh_binary(name = "coverage_report_generator", srcs = ["unavailable.sh"])
sh_binary(name = "lcov_merger", srcs = ["unavailable.sh"])
""")

offline_coverage_tools = repository_rule(implementation = _coverage_tools_impl)

def polymalloc_rule_repositories():
    """The Bazel rule sets polymalloc loads, from Debian's packages. A workspace that depends
    on @polymalloc calls this from its WORKSPACE (see examples/downstream/)."""
    debian_rules_cc(name = "rules_cc")
    native.local_repository(name = "rules_java", path = "/usr/share/bazel/rules/java")
    native.local_repository(name = "bazel_skylib", path = "/usr/share/bazel/tools/skylib")
    native.local_repository(name = "platforms", path = "/usr/share/bazel/tools/platforms")
