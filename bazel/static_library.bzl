"""static_library: one archive holding a cc_library and everything it depends on, as a
package's libfoo.a does (Bazel 4 has no cc_static_library; a cc_library's own archive holds
only its own sources' objects)."""

load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

def _static_library_impl(ctx):
    archives = []
    for linker_input in ctx.attr.library[CcInfo].linking_context.linker_inputs.to_list():
        for library in linker_input.libraries:
            # Position-independent when there is a choice: the archive may be linked into a
            # shared object as well as into an executable.
            archive = library.pic_static_library or library.static_library
            if archive != None:
                archives.append(archive)
    if not archives:
        fail("static_library: %s has no static archive to merge" % ctx.attr.library.label)
    out = ctx.actions.declare_file(ctx.label.name)
    toolchain = find_cpp_toolchain(ctx)

    # ar's MRI script: a new archive, every member of each input added (alwayslink `.lo`
    # archives are ar archives too), written out.
    script = ctx.actions.declare_file(ctx.label.name + ".mri")
    ctx.actions.write(script, "".join(
        ["CREATE %s\n" % out.path] +
        ["ADDLIB %s\n" % a.path for a in archives] +
        ["SAVE\n", "END\n"],
    ))
    ctx.actions.run_shell(
        inputs = depset([script] + archives, transitive = [toolchain.all_files]),
        outputs = [out],
        command = '"$1" -M < "$2"',
        arguments = [toolchain.ar_executable, script.path],
        mnemonic = "StaticLibrary",
        progress_message = "Merging %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

static_library = rule(
    implementation = _static_library_impl,
    attrs = {
        "library": attr.label(mandatory = True, providers = [CcInfo]),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
    },
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    incompatible_use_toolchain_transition = True,
)
