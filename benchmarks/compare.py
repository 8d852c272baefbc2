"""Runs a Google Benchmark binary that measures the process's malloc once per allocator
(glibc as is, every other allocator through LD_PRELOAD), interleaved: each round runs every
benchmark under every allocator (A B C A B C ...), in a fresh process each time, so that a
noisy machine does not decide the result. Prints, per benchmark, each allocator's median
throughput as a ratio to glibc's, and, where the benchmark reports peak live bytes, its
memory overhead (peak RSS growth over peak live bytes).

  compare.py --benchmark BINARY --allocator glibc= --allocator NAME=LIBRARY.so ...
             [--allocators a,b] [--only REGEX] [--rounds N] [--min-time S] [--json FILE]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

# Memory overhead is reported only for workloads that hold at least this much at their peak.
MIN_LIVE_BYTES = 256 * 1024


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", required=True, help="the benchmark binary")
    parser.add_argument("--allocator", action="append", default=[], metavar="NAME=LIBRARY",
                        help="an allocator and its LD_PRELOAD library (empty: the system's)")
    parser.add_argument("--allocators", help="comma-separated subset of the allocators to run")
    parser.add_argument("--only", help="regular expression: run only benchmarks it matches")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--min-time", type=float, default=0.3,
                        help="seconds each benchmark runs per round")
    parser.add_argument("--json", help="write every measurement and the medians here")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set in every run's environment (e.g. a variant's switch)")
    args = parser.parse_args(argv)
    for spec in args.env:
        name, sep, _ = spec.partition("=")
        if not sep or not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            parser.error("--env wants NAME=VALUE with NAME a variable name, not %r" % spec)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1, not %d" % args.rounds)
    if not args.min_time > 0:
        parser.error("--min-time must be positive, not %s" % args.min_time)
    if args.only is not None:
        try:
            re.compile(args.only)
        except re.error as e:
            parser.error("--only: not a regular expression (%s): %r" % (e, args.only))
    return parser, args


def allocators_to_run(parser, args):
    """[(name, library or '')], in the order given, narrowed by --allocators; libraries
    that are missing are reported and skipped."""
    known = []
    for spec in args.allocator:
        name, sep, library = spec.partition("=")
        if not sep or not name:
            parser.error("--allocator wants NAME=LIBRARY (LIBRARY empty for the system's), "
                         "not %r" % spec)
        known.append((name, library))
    names = [name for name, _ in known]
    if args.allocators:
        wanted = [n.strip() for n in args.allocators.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error("--allocators: unknown %s (known: %s)" % (", ".join(unknown),
                                                                  ", ".join(names)))
        known = [(n, lib) for n, lib in known if n in wanted]
    runnable = []
    for name, library in known:
        if library and not os.path.isfile(library):
            print("compare: skipping %s: its library %s is missing" % (name, library),
                  file=sys.stderr)
            continue
        runnable.append((name, os.path.abspath(library) if library else ""))
    if not runnable:
        parser.error("no allocator left to run")
    return runnable


def list_benchmarks(binary, only):
    out = subprocess.run([binary, "--benchmark_list_tests=true"], check=True,
                         capture_output=True, text=True).stdout
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return [n for n in names if only is None or re.search(only, n)]


def run_one(binary, benchmark, library, min_time, extra_env):
    """One fresh process: the benchmark's JSON entry, or None (with the reason printed)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(extra_env)
    if library:
        env["LD_PRELOAD"] = library
    command = [binary, "--benchmark_filter=^%s$" % re.escape(benchmark),
               "--benchmark_min_time=%g" % min_time, "--benchmark_format=json"]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        print("\ncompare: %s under %s failed (exit %d): %s" % (
            benchmark, library or "glibc", result.returncode, result.stderr.strip()[-500:]),
            file=sys.stderr)
        return None
    entries = json.loads(result.stdout)["benchmarks"]
    return entries[0] if entries else None


def progress(text):
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + text)
        sys.stderr.flush()


def measure(binary, benchmarks, allocators, rounds, min_time, extra_env):
    """{benchmark: {allocator: [entries]}}, interleaved round by round."""
    results = {b: {name: [] for name, _ in allocators} for b in benchmarks}
    total = rounds * len(benchmarks) * len(allocators)
    done = 0
    for round_index in range(rounds):
        for benchmark in benchmarks:
            # Rotate the order every round, so that no allocator always runs first.
            shift = round_index % len(allocators)
            for name, library in allocators[shift:] + allocators[:shift]:
                done += 1
                progress("round %d/%d  %-36s %-16s [%d/%d]" % (
                    round_index + 1, rounds, benchmark, name, done, total))
                entry = run_one(binary, benchmark, library, min_time, extra_env)
                if entry is not None:
                    entry["round"] = round_index
                    results[benchmark][name].append(entry)
    progress("")
    return results


def median_of(entries, key):
    values = [e[key] for e in entries if key in e]
    return statistics.median(values) if values else None


def paired_ratio(entries, baseline_entries):
    """Median over rounds of this allocator's rate over the baseline's in the same round:
    runs of one round are close in time, so machine-wide slow phases cancel out."""
    baseline = {e["round"]: e["items_per_second"] for e in baseline_entries
                if e.get("items_per_second")}
    ratios = [e["items_per_second"] / baseline[e["round"]] for e in entries
              if e.get("items_per_second") and e["round"] in baseline]
    return statistics.median(ratios) if ratios else None


def summarise(results, baseline_name):
    """{benchmark: {allocator: {"items_per_second", "ratio", "memory_overhead", "runs"}}}:
    medians, and the median paired ratio to the baseline allocator."""
    summary = {}
    for benchmark, by_allocator in results.items():
        summary[benchmark] = {}
        for name, entries in by_allocator.items():
            rate = median_of(entries, "items_per_second")
            ratio = paired_ratio(entries, by_allocator[baseline_name])
            live = median_of(entries, "peak_live_bytes")
            rss = median_of(entries, "rss_growth_bytes")
            # Below this much live memory the ratio measures fixed costs, not the workload.
            overhead = rss / live if live and rss is not None and live >= MIN_LIVE_BYTES else None
            summary[benchmark][name] = {"items_per_second": rate, "ratio": ratio,
                                        "memory_overhead": overhead, "runs": len(entries)}
    return summary


def print_table(summary, names):
    baseline = names[0]
    width = max(12, max(len(n) for n in names) + 2)
    print("Throughput: median Mops/s (median ratio to %s within a round); memory: peak RSS "
          "growth / peak live bytes; * best ratio per row" % baseline)
    print("%-34s" % "benchmark" + "".join("%*s" % (width + 10, n) for n in names))
    for benchmark, row in summary.items():
        ratios = {n: row[n]["ratio"] for n in names}
        best = max((r for r in ratios.values() if r), default=None)
        cells = []
        for n in names:
            r = row[n]["items_per_second"]
            if r is None:
                cells.append("%*s" % (width + 10, "failed"))
                continue
            ratio = "(%.2f)" % ratios[n] if ratios[n] is not None else ""
            mark = "*" if ratios[n] == best else " "
            cells.append("%*s" % (width + 10, "%.1f %s%s" % (r / 1e6, ratio, mark)))
        print("%-34s" % benchmark + "".join(cells))
        overheads = {n: row[n]["memory_overhead"] for n in names}
        if any(v is not None for v in overheads.values()):
            print("%-34s" % "  memory" + "".join(
                "%*s" % (width + 10, "%.2f" % v if v is not None else "-")
                for v in overheads.values()))


def main(argv):
    parser, args = parse_args(argv)
    if not os.access(args.benchmark, os.X_OK):
        parser.error("--benchmark: %s is not an executable" % args.benchmark)
    allocators = allocators_to_run(parser, args)
    benchmarks = list_benchmarks(args.benchmark, args.only)
    if not benchmarks:
        parser.error("--only %r matches no benchmark" % args.only)
    extra_env = dict(spec.split("=", 1) for spec in args.env)
    results = measure(args.benchmark, benchmarks, allocators, args.rounds, args.min_time,
                      extra_env)
    summary = summarise(results, allocators[0][0])
    print_table(summary, [name for name, _ in allocators])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "runs": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
