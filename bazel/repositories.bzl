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

# Headers of glibc's own tree that its tests include and that build outside it as they are.
_GLIBC_TEST_SHIM_HEADERS = [
    "include/array_length.h",
    "include/intprops.h",
    "include/libc-diag.h",
    "include/libc-pointer-arith.h",
    "sysdeps/generic/malloc-alignment.h",
    "sysdeps/generic/malloc-size.h",
]

_GLIBC_TEST_COPTS = [
    "-w",
    "-O1",
    "-D_GNU_SOURCE",
    "-DTIMEOUTFACTOR=1",
    "-include",
    "limits.h",
]

def _lines(text):
    return [line for line in text.strip().split("\n") if line]

def _glibc_malloc_tests_impl(rctx):
    """glibc's malloc tests and their support library, from Debian's glibc-source tarball.

    Every file malloc/tst-*.c (and mallocbug.c) must be named in `tests` or `left_out`, so a
    newer glibc's new test cannot go unnoticed. Nothing is copied into the project.
    """
    found = rctx.execute(["sh", "-c", "ls /usr/src/glibc/glibc-*.tar.xz 2>/dev/null"])
    tarballs = _lines(found.stdout)
    if len(tarballs) != 1:
        fail("polymalloc: expected one /usr/src/glibc/glibc-*.tar.xz, found %d; install " % len(tarballs) +
             "Debian's 'glibc-source' (./bazelw does it)")
    tarball = tarballs[0]
    top = tarball.split("/")[-1][:-len(".tar.xz")]
    members = [top + "/" + m for m in ["malloc", "support", "test-skeleton.c"] + _GLIBC_TEST_SHIM_HEADERS]
    result = rctx.execute(["tar", "-xf", tarball, "--strip-components=1"] + members, timeout = 300)
    if result.return_code != 0:
        fail("polymalloc: unpacking %s failed: %s" % (tarball, result.stderr))
    for header in _GLIBC_TEST_SHIM_HEADERS:
        rctx.symlink(header, "shim/" + header.split("/")[-1])

    listed = _lines(rctx.execute(["sh", "-c", "cd malloc && ls tst-*.c mallocbug.c"]).stdout)
    files = [f[:-len(".c")] for f in listed]
    for f in files:
        if f not in rctx.attr.tests and f not in rctx.attr.left_out:
            fail("polymalloc: %s's malloc/%s.c is neither run nor left out with a reason; " % (top, f) +
                 "add it to testing/glibc_malloc_suite/suite.bzl")
    for t in rctx.attr.tests:
        if t not in files:
            fail("polymalloc: %s has no malloc/%s.c" % (top, t))

    support = _lines(rctx.execute(["sh", "-c", "cd support && ls *.c"]).stdout)
    support_srcs = ["support/" + f for f in support if f[:-len(".c")] not in rctx.attr.support_left_out]
    # Files the tests and the library include (the test driver, templates).
    textual = ["test-skeleton.c"] + ["support/" + f for f in support if "support/" + f not in support_srcs]
    # copts are tokenized like a shell's words: the quotes of a string literal are escaped.
    paths = ["-D%s_PATH=\\\"/nonexistent\\\"" % p for p in [
        "SRCDIR", "OBJDIR", "OBJDIR_ELF_LDSO", "INSTDIR", "LIBDIR", "BINDIR", "SBINDIR",
        "SLIBDIR", "ROOTSBINDIR", "COMPLOCALEDIR",
    ]]
    build = [
        "# Generated by polymalloc's glibc_malloc_tests rule from %s." % top,
        "package(default_visibility = [\"//visibility:public\"])",
        "cc_library(",
        "    name = \"support\",",
        "    srcs = %r," % support_srcs,
        "    hdrs = glob([\"support/*.h\", \"shim/*.h\"]),",
        "    textual_hdrs = %r," % textual,
        "    includes = [\".\", \"support\", \"shim\"],",
        "    copts = %r," % (_GLIBC_TEST_COPTS + paths),
        "    linkopts = [\"-lpthread\"],",
        ")",
    ]
    for t in rctx.attr.tests:
        build.append("cc_binary(name = %r, srcs = [\"malloc/%s.c\"], deps = [\":support\"], copts = %r)" %
                     (t, t, _GLIBC_TEST_COPTS))
    rctx.file("BUILD.bazel", "\n".join(build) + "\n")

glibc_malloc_tests = repository_rule(
    implementation = _glibc_malloc_tests_impl,
    attrs = {
        "tests": attr.string_list(doc = "malloc/<name>.c files to build as tests"),
        "left_out": attr.string_dict(doc = "malloc/<name>.c files not built -> why"),
        "support_left_out": attr.string_list(doc = "support/<name>.c files not built"),
    },
    local = True,
)
