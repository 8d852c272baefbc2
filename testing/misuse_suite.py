"""What each allocator catches: runs every heap-misuse case of misuse_cases (double free,
invalid frees, realloc of a freed block, overflows and underflows, writes after free, a write
to malloc(0), a sized delete of the wrong size) at several block sizes, with each allocator
preloaded as the process's malloc, and tells apart a misuse that was reported (the process
stopped with a message, or warned and carried on), one that crashed it with no message, and one that went unnoticed.

With --require NAME=CASES (CASES: `all`, or a comma-separated list) it exits 1 if NAME did
not report each of those cases at every size: the form CI's tests use.
"""

import argparse
import os
import resource
import signal
import subprocess
import sys

SIZES = [8, 4096, 262144]
TIMEOUT_S = 30


def fail(message):
    print("misuse_suite: " + message, file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases-binary", required=True, help="the misuse_cases binary")
    parser.add_argument("--allocator", action="append", default=[], metavar="NAME=LIBRARY",
                        help="an allocator to preload (empty LIBRARY: the system malloc)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=LIBRARY")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment for every run")
    parser.add_argument("--allocators", help="comma-separated subset to run")
    parser.add_argument("--cases", help="comma-separated subset of the cases")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma-separated block sizes, 8 B to 1 GiB (default %(default)s)")
    parser.add_argument("--require", action="append", default=[], metavar="NAME=CASES",
                        help="fail unless NAME reports CASES (`all` or a list) at every size")
    parser.add_argument("--details", action="store_true",
                        help="also list each run's outcome and the first line it printed")
    args = parser.parse_args(argv)

    allocators = {}
    for spec in args.allocator + args.variant:
        name, sep, library = spec.partition("=")
        if not sep or not name:
            fail("--allocator/--variant wants NAME=LIBRARY, not %r" % spec)
        if library and not os.path.exists(library):
            fail("%s's library %s does not exist" % (name, library))
        allocators[name] = os.path.abspath(library) if library else ""
    if args.allocators:
        wanted = args.allocators.split(",")
        unknown = [w for w in wanted if w not in allocators]
        if unknown:
            fail("unknown allocator(s) %s; known: %s" % (", ".join(unknown), ", ".join(allocators)))
        allocators = {name: allocators[name] for name in wanted}
    if not allocators:
        fail("no allocator to run (--allocator NAME=LIBRARY)")

    binary = os.path.abspath(args.cases_binary)
    listed = subprocess.run([binary, "--list"], stdout=subprocess.PIPE, text=True, check=True)
    cases = listed.stdout.split()
    if args.cases:
        wanted = args.cases.split(",")
        unknown = [c for c in wanted if c not in cases]
        if unknown:
            fail("unknown case(s) %s; known: %s" % (", ".join(unknown), ", ".join(cases)))
        cases = wanted

    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        fail("--sizes wants numbers, not %r" % args.sizes)
    if not sizes or min(sizes) < 8 or max(sizes) > 1 << 30:
        fail("--sizes wants sizes from 8 to 1073741824 bytes, not %r" % args.sizes)

    environment = {}
    for spec in args.env:
        name, sep, value = spec.partition("=")
        if not sep or not name:
            fail("--env wants NAME=VALUE, not %r" % spec)
        environment[name] = value

    required = {}
    for spec in args.require:
        name, sep, listed_cases = spec.partition("=")
        if not sep or name not in allocators:
            fail("--require wants NAME=CASES for an allocator being run, not %r" % spec)
        wanted = cases if listed_cases == "all" else listed_cases.split(",")
        unknown = [c for c in wanted if c not in cases]
        if unknown:
            fail("--require %s: unknown or unselected case(s) %s" % (name, ", ".join(unknown)))
        required[name] = wanted
    return binary, allocators, cases, sizes, environment, required, args.details


def no_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_case(binary, library, case, size, environment):
    """('reported' | 'warned' | 'crashed' | 'missed' | 'hung', the first line it printed):
    warned is a message after which the program carried on."""
    env = dict(os.environ, **environment)
    env.pop("LD_PRELOAD", None)
    if library:
        env["LD_PRELOAD"] = library
    try:
        result = subprocess.run([binary, case, str(size)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace",
                                timeout=TIMEOUT_S, preexec_fn=no_core_dumps)
    except subprocess.TimeoutExpired:
        return "hung", "still running after %d s" % TIMEOUT_S
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if result.returncode == 0:
        if "survived" not in result.stdout:
            fail("%s %d under %s exited 0 without finishing: %s" % (case, size, library, first))
        return ("warned" if lines else "missed"), first
    if result.returncode == 2 and first.startswith("misuse_cases:"):
        fail("%s %d: %s" % (case, size, first))
    if lines:
        return "reported", first
    if result.returncode < 0:
        return "crashed", "killed by %s" % signal.Signals(-result.returncode).name
    return "crashed", "exit status %d with no message" % result.returncode


def cell(outcomes):
    """A table cell: yes when every size was reported, else how many were and why not."""
    reported = outcomes.count("reported") + outcomes.count("warned")
    notes = []
    for kind in ["warned", "crashed", "hung"]:
        if kind in outcomes:
            notes.append("%d %s" % (outcomes.count(kind), kind))
    if reported == len(outcomes):
        text = "yes"
    else:
        text = "%d/%d" % (reported, len(outcomes)) if reported else "no"
    return text + (" (" + ", ".join(notes) + ")" if notes else "")


def main(argv):
    binary, allocators, cases, sizes, environment, required, details = parse_args(argv)
    outcomes = {}
    for name, library in allocators.items():
        for case in cases:
            for size in sizes:
                outcome, line = run_case(binary, library, case, size, environment)
                outcomes[(name, case, size)] = outcome
                if details:
                    print("%s %s %d: %s  %s" % (name, case, size, outcome, line[:160]))
        print("misuse_suite: %s done" % name, file=sys.stderr)
    if details:
        print()

    names = list(allocators)
    print("**Misuse reported, at %s bytes (yes: at every size; n/%d: at n of them)**\n" %
          (", ".join(map(str, sizes)), len(sizes)))
    print("| case | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for case in cases:
        print("| %s | %s |" % (case, " | ".join(
            cell([outcomes[(name, case, size)] for size in sizes]) for name in names)))
    totals = [sum(outcomes[(name, case, size)] in ("reported", "warned") for case in cases for size in sizes)
              for name in names]
    print("| **reported, of %d** | %s |" % (len(cases) * len(sizes),
                                           " | ".join("**%d**" % t for t in totals)))

    missing = []
    for name, wanted in required.items():
        for case in wanted:
            for size in sizes:
                if outcomes[(name, case, size)] != "reported":
                    missing.append("%s %s at %d B: %s" % (name, case, size,
                                                          outcomes[(name, case, size)]))
    if missing:
        print("\nmisuse_suite: required cases not reported:\n  " + "\n  ".join(missing),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
