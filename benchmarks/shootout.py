"""The shootout: every variant against glibc and the peers, on every workload, in one run.

Workloads: the Google Benchmark microbenchmarks and multi-threaded workloads (through
compare.py's interleaved runner) and memsim replays of genrandms traces, each replay in a
fresh process with the allocator LD_PRELOADed (glibc: none). Allocators run interleaved,
rotated every round; medians and same-round ratios to glibc are reported.
"""

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the interleaved Google Benchmark runner)

# genrandms profiles: name -> arguments. "quick" runs use the first two.
TRACE_PROFILES = {
    "trace_small_uniform": ["--ops", "1m", "--slots", "20000", "--max-size", "512"],
    "trace_mixed_power_law": ["--ops", "1m", "--slots", "50000", "--max-size", "1m",
                              "--distribution", "power-law", "--realloc-share", "0.2"],
    "trace_threads_4": ["--ops", "2m", "--slots", "50000", "--max-size", "16k",
                        "--distribution", "power-law", "--threads", "4"],
    "trace_large_blocks": ["--ops", "200k", "--slots", "2000", "--min-size", "64k",
                           "--max-size", "8m"],
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", action="append", default=[], metavar="BINARY",
                        help="a Google Benchmark binary measuring the process's malloc")
    parser.add_argument("--genrandms", required=True)
    parser.add_argument("--memsim", required=True)
    parser.add_argument("--allocator", action="append", default=[], metavar="NAME=LIBRARY")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--allocators", help="comma-separated subset of the allocators")
    parser.add_argument("--only", help="regular expression: the workloads to run")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter runs")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 2)")
    parser.add_argument("--out", help="directory for CSV and JSON results")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1, not %d" % args.rounds)
    if args.only is not None:
        try:
            re.compile(args.only)
        except re.error as e:
            parser.error("--only: not a regular expression (%s): %r" % (e, args.only))
    for spec in args.env:
        name, sep, _ = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            parser.error("--env wants NAME=VALUE, not %r" % spec)
    return parser, args


def replay(memsim, trace, library, extra_env):
    """One memsim run in a fresh process: its JSON, or None (with the reason printed)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(extra_env)
    if library:
        env["LD_PRELOAD"] = library
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        result = subprocess.run([memsim, "--allocator", "system", "--json", out.name, trace],
                                env=env, capture_output=True, text=True)
        if result.returncode != 0:
            print("\nshootout: memsim on %s under %s failed: %s" % (
                trace, library or "glibc", result.stderr.strip()[-300:]), file=sys.stderr)
            return None
        return json.load(open(out.name))


def make_traces(genrandms, profiles, directory):
    """{profile: trace path}, generated once (seeded: the same traces every run)."""
    traces = {}
    for name, arguments in profiles.items():
        path = os.path.join(directory, name + ".trace")
        subprocess.run([genrandms, "--seed", "1"] + arguments + ["--output", path], check=True)
        traces[name] = path
    return traces


def measure_traces(memsim, traces, allocators, rounds, extra_env):
    """{profile: {allocator: [memsim JSON + round]}}, interleaved and rotated per round."""
    results = {t: {name: [] for name, _ in allocators} for t in traces}
    total = rounds * len(traces) * len(allocators)
    done = 0
    for round_index in range(rounds):
        for profile, path in traces.items():
            shift = round_index % len(allocators)
            for name, library in allocators[shift:] + allocators[:shift]:
                done += 1
                compare.progress("round %d/%d  %-28s %-16s [%d/%d]" % (
                    round_index + 1, rounds, profile, name, done, total))
                entry = replay(memsim, path, library, extra_env)
                if entry is not None:
                    entry["round"] = round_index
                    results[profile][name].append(entry)
    compare.progress("")
    return results


def summarise_traces(results, baseline):
    """{profile: {allocator: {"seconds", "ratio", "peak_rss_bytes", "fragmentation"}}}; ratio is
    the median same-round speed-up over the baseline (baseline seconds / these seconds)."""
    summary = {}
    for profile, by_allocator in results.items():
        base = {e["round"]: e["seconds"] for e in by_allocator[baseline]}
        summary[profile] = {}
        for name, entries in by_allocator.items():
            ratios = [base[e["round"]] / e["seconds"] for e in entries
                      if e["round"] in base and e["seconds"] > 0]
            summary[profile][name] = {
                "seconds": compare.median_of(entries, "seconds"),
                "ratio": statistics.median(ratios) if ratios else None,
                "peak_rss_bytes": compare.median_of(entries, "peak_rss_bytes"),
                "fragmentation": compare.median_of(entries, "fragmentation"),
                "runs": len(entries),
            }
    return summary
