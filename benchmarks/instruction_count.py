"""Instructions per malloc+free pair, counted with callgrind, for every variant and every peer:
the noise-free figure on shared machines. For each allocator, size and loop (recycle one
block; batches of 32 freed LIFO), pair_loop runs twice under `valgrind --tool=callgrind` with
the allocator preloaded, at LONG and SHORT pairs, and the figure is the difference of the two
totals divided by the difference of the pair counts, so that start-up cancels out.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

SIZES = [16, 64, 256, 1024]
LOOPS = ["recycle", "batch"]
PEERS = ["tcmalloc", "jemalloc", "mimalloc"]


def fail(message):
    print("instruction_count: " + message, file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair-loop", required=True, help="the pair_loop binary")
    parser.add_argument("--allocator", action="append", default=[], metavar="NAME=LIBRARY",
                        help="a peer (empty LIBRARY: the system malloc)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=LIBRARY")
    parser.add_argument("--optional", action="append", default=[], metavar="NAME=LIBRARY",
                        help="measured only when --allocators names it (the full-checks builds)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment for every run")
    parser.add_argument("--allocators", help="comma-separated subset to measure")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma-separated request sizes (default %(default)s)")
    parser.add_argument("--short", type=int, default=100000, help="pairs in the short run")
    parser.add_argument("--long", type=int, default=300000, help="pairs in the long run")
    args = parser.parse_args(argv)
    allocators = {}
    optional = set()
    for option, specs in [("--allocator", args.allocator), ("--variant", args.variant),
                          ("--optional", args.optional)]:
        for spec in specs:
            name, sep, library = spec.partition("=")
            if not sep or not name:
                fail("%s wants NAME=LIBRARY, not %r" % (option, spec))
            allocators[name] = os.path.abspath(library) if library else ""
            if option == "--optional":
                optional.add(name)
    if not args.allocators:
        allocators = {name: library for name, library in allocators.items()
                      if name not in optional}
    else:
        wanted = args.allocators.split(",")
        unknown = [w for w in wanted if w not in allocators]
        if unknown:
            fail("unknown allocator(s) %s; known: %s" % (", ".join(unknown), ", ".join(allocators)))
        allocators = {name: allocators[name] for name in wanted}
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        fail("--sizes wants numbers, not %r" % args.sizes)
    if not sizes or min(sizes) <= 0:
        fail("--sizes wants positive numbers")
    if args.short <= 0 or args.long <= args.short or args.short % 32 or args.long % 32:
        fail("--short and --long must be multiples of 32 with 0 < short < long")
    environment = {}
    for spec in args.env:
        name, sep, value = spec.partition("=")
        if not sep or not name:
            fail("--env wants NAME=VALUE, not %r" % spec)
        environment[name] = value
    return args, allocators, sizes, environment


def total_instructions(pair_loop, library, pairs, size, loop, environment):
    """The program's instruction total under callgrind (valgrind itself preloads the library)."""
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "callgrind.out")
        env = dict(os.environ, **environment)
        env.pop("LD_PRELOAD", None)
        if library:
            env["LD_PRELOAD"] = library
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, pair_loop,
             str(pairs), str(size), loop],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            fail("pair_loop %d %d %s failed under %s:\n%s" %
                 (pairs, size, loop, library or "glibc", result.stderr[-2000:]))
        with open(out) as f:
            for line in f:
                match = re.match(r"summary: (\d+)", line)
                if match:
                    return int(match.group(1))
    fail("callgrind wrote no summary")


def main(argv):
    args, allocators, sizes, environment = parse_args(argv)
    if shutil.which("valgrind") is None:
        fail("valgrind is not installed (./bazelw installs it)")
    pair_loop = os.path.abspath(args.pair_loop)
    counts = {}
    for name, library in allocators.items():
        if library and not os.path.exists(library):
            print("instruction_count: %s's library %s is missing; skipped" % (name, library),
                  file=sys.stderr)
            continue
        for size in sizes:
            for loop in LOOPS:
                short = total_instructions(pair_loop, library, args.short, size, loop, environment)
                long = total_instructions(pair_loop, library, args.long, size, loop, environment)
                counts[(name, size, loop)] = (long - short) / (args.long - args.short)
        print("instruction_count: %s done" % name, file=sys.stderr)
    measured = [name for name in allocators if (name, sizes[0], LOOPS[0]) in counts]
    print("**Instructions per malloc+free pair (callgrind; %d - %d pairs; * fewest)**\n" %
          (args.long, args.short))
    print("| loop | size | " + " | ".join(measured) + " |")
    print("|---|---:|" + "---:|" * len(measured))
    for loop in LOOPS:
        for size in sizes:
            row = [counts[(name, size, loop)] for name in measured]
            best = min(row)
            cells = ["%.0f%s" % (v, "*" if v == best else "") for v in row]
            print("| %s | %d | %s |" % (loop, size, " | ".join(cells)))
    peers = [p for p in PEERS if p in measured]
    variants = [name for name in measured if name not in PEERS and name != "glibc"]
    if peers and variants:
        print("\n**Ratio to the best of %s (lower is fewer instructions)**\n" % ", ".join(peers))
        print("| loop | size | " + " | ".join(variants) + " |")
        print("|---|---:|" + "---:|" * len(variants))
        for loop in LOOPS:
            for size in sizes:
                best = min(counts[(p, size, loop)] for p in peers)
                print("| %s | %d | %s |" % (loop, size, " | ".join(
                    "%.2f" % (counts[(v, size, loop)] / best) for v in variants)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
