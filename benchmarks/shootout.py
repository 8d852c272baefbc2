"""The shootout: every polymalloc variant against glibc and the peers, on every workload, in one
interleaved run.

Workloads:
  micro     single_thread_benchmark: malloc/free pairs by size, realloc growth, aligned
  threads   threaded_benchmark: pairs, producer/consumer, larson at 1, 2 and 2xCPU threads
  trace     memsim replaying genrandms traces (generated once per run, seeded)
  program   memsim replaying traces of python3, sqlite3 and git, recorded at the start of the
            run with the trace recorder

Every workload runs in a fresh process per allocator (glibc as is, every other allocator
through LD_PRELOAD), round after round, in an order shuffled afresh for each round and
workload (seeded, so a run repeats its order), so that a noisy machine does not decide the
result: no allocator always runs in the same place, or right after the same other one (a
rotation, A B C then B C A, keeps who follows whom, so whatever one run leaves behind for the
next always falls on the same allocator). Reported: the median over rounds of each
allocator's speed as a ratio to glibc's in the same round (higher is faster), and its median
peak RSS. The generated traces end with an idle phase (memsim --idle-ms): every block freed,
IDLE_MS of sleep, one more malloc and free of 1 MiB
(a slow path in every allocator); the RSS after it shows what each allocator gives
back once a spike is over (polymalloc's timed release, POLYMALLOC_RELEASE_DELAY_MS, is 1000 ms
by default).
"""

import argparse
import csv
import datetime
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# genrandms profiles, name -> arguments (seeded: the same trace on every run and machine).
TRACE_PROFILES = {
    "trace_small_uniform": ["--ops", "1m", "--slots", "20000", "--max-size", "512"],
    "trace_mixed_power_law": ["--ops", "1m", "--slots", "50000", "--max-size", "1m",
                              "--distribution", "power-law", "--realloc-share", "0.2"],
    "trace_threads_4": ["--ops", "2m", "--slots", "50000", "--max-size", "16k",
                        "--distribution", "power-law", "--threads", "4"],
    # 5k operations only: every block is touched, so the replay costs seconds (page faults)
    # for every allocator.
    "trace_large_blocks": ["--ops", "5k", "--slots", "256", "--min-size", "64k",
                           "--max-size", "4m"],
}

# The idle phase of the generated traces: longer than polymalloc's default release delay
# (1000 ms) by more than the coarse clock's step.
IDLE_MS = 1500
# The default seed of the order the allocators run in, shuffled per round and workload
# (measure(); --seed).
ROUND_ORDER_SEED = 1

# Seconds a single run may take before it counts as hung (and failed).
RUN_TIMEOUT = 300

MIB = 1024.0 * 1024.0

# Memory overhead is reported only for workloads that hold at least this much at their peak.
MIN_LIVE_BYTES = 256 * 1024


class Workload:
    """One thing measured once per allocator per round: a command, and how to read its
    result ({"rate": per second, "peak_rss_bytes": ...}) from its output."""

    def __init__(self, name, group, command, unit, threads=None, json_out=None):
        self.name = name
        self.group = group
        self.command = command
        self.unit = unit
        self.threads = threads
        self.json_out = json_out  # memsim writes its result here; None: stdout is the JSON

    def read_result(self, stdout):
        if self.json_out is None:
            return benchmark_result(stdout)
        return memsim_result(self.json_out)


def benchmark_result(stdout):
    entries = json.loads(stdout)["benchmarks"]
    if not entries:
        raise ValueError("the benchmark ran nothing")
    entry = entries[0]
    if entry.get("error_occurred"):
        raise ValueError(entry.get("error_message", "the benchmark reported an error"))
    return {"rate": entry["items_per_second"], "peak_rss_bytes": entry.get("peak_rss_bytes"),
            "overhead": overhead(entry.get("rss_growth_bytes"), entry.get("peak_live_bytes"))}


def memsim_result(path):
    with open(path) as f:
        result = json.load(f)
    if result["failures"]:
        raise ValueError("%d allocations were refused" % result["failures"])
    return {"rate": result["operations"] / result["seconds"],
            "peak_rss_bytes": result["peak_rss_bytes"],
            "idle_rss_bytes": result.get("rss_after_idle_bytes"),
            "overhead": overhead(result["rss_growth_bytes"], result["peak_live_bytes"])}


def overhead(rss_growth, peak_live):
    """Peak RSS growth over peak live bytes: what holding the workload's memory cost. Only for
    workloads that hold enough for the ratio to measure the allocator, not fixed costs."""
    if rss_growth is None or not peak_live or peak_live < MIN_LIVE_BYTES:
        return None
    return rss_growth / peak_live


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Example: ./bazelw run //benchmarks:shootout -- --quick --out $PWD/shootout")
    parser.add_argument("--single-thread-benchmark", required=True, metavar="BINARY")
    parser.add_argument("--threaded-benchmark", required=True, metavar="BINARY")
    parser.add_argument("--genrandms", required=True, metavar="BINARY")
    parser.add_argument("--memsim", required=True, metavar="BINARY")
    parser.add_argument("--trace-recorder", required=True, metavar="LIBRARY")
    parser.add_argument("--programs", required=True, metavar="DIR",
                        help="the Python and SQL inputs of the recorded programs")
    parser.add_argument("--profiler", metavar="LIBRARY", help="gperftools' libprofiler.so")
    parser.add_argument("--allocator", action="append", default=[], metavar="NAME=LIBRARY",
                        help="a peer and its LD_PRELOAD library (empty: the system's)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=LIBRARY",
                        help="a polymalloc variant (measured, and profiled by --profile)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set in every run's environment (e.g. a variant's switch)")
    parser.add_argument("--sampled", metavar="BYTES",
                        help="also run each variant, and tcmalloc and jemalloc if chosen, with "
                             "its heap profiler sampling every BYTES on average, as NAME+sampled "
                             "(512k: gperftools' rate; jemalloc's must be a power of two)")
    parser.add_argument("--allocators", metavar="LIST",
                        help="comma-separated: run only these allocators")
    parser.add_argument("--only", metavar="REGEX", help="run only the workloads it matches")
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds of short runs (about 3 minutes on 2 cores)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 3)")
    parser.add_argument("--seed", default=str(ROUND_ORDER_SEED), metavar="N",
                        help="seed of the run order, shuffled per round and workload (default "
                             "%d): runs with different seeds put each allocator after different "
                             "others" % ROUND_ORDER_SEED)
    parser.add_argument("--min-time", type=float,
                        help="seconds per benchmark run (default 0.3, quick 0.05)")
    parser.add_argument("--out", metavar="DIR",
                        help="write results.csv, results.json, table.md and SVG plots here")
    parser.add_argument("--profile", action="store_true",
                        help="also CPU-profile every variant on every workload (into --out)")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = parser.parse_args(argv)
    check_args(parser, args)
    return parser, args


def check_args(parser, args):
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.min_time is None:
        args.min_time = 0.05 if args.quick else 0.3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1, not %d" % args.rounds)
    if not re.fullmatch(r"[0-9]{1,18}", args.seed):
        parser.error("--seed wants a non-negative whole number, not %r" % args.seed)
    args.seed = int(args.seed)
    if not args.min_time > 0:
        parser.error("--min-time must be positive, not %s" % args.min_time)
    if args.only is not None:
        try:
            re.compile(args.only)
        except re.error as e:
            parser.error("--only: not a regular expression (%s): %r" % (e, args.only))
    if args.sampled is not None and not re.fullmatch(r"[1-9][0-9]*[kmg]?", args.sampled):
        parser.error("--sampled wants a size in bytes (e.g. 524288 or 512k), not %r"
                     % args.sampled)
    for spec in args.env:
        name, sep, _ = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            parser.error("--env wants NAME=VALUE with NAME a variable name, not %r" % spec)
    for flag in ("single_thread_benchmark", "threaded_benchmark", "genrandms", "memsim"):
        path = getattr(args, flag)
        if not os.access(path, os.X_OK):
            parser.error("--%s: %s is not an executable" % (flag.replace("_", "-"), path))
    for flag in ("trace_recorder",):
        if not os.path.isfile(getattr(args, flag)):
            parser.error("--trace-recorder: %s does not exist" % args.trace_recorder)
    if args.profile and not args.out:
        parser.error("--profile writes its profiles into --out DIR; give one")
    if args.profile and not (args.profiler and os.path.isfile(args.profiler)):
        parser.error("--profile needs gperftools' profiler library (--profiler), not %r"
                     % args.profiler)
    if args.out:
        args.out = user_path(args.out)


def user_path(path):
    """A path as the user meant it: `bazel run` starts us in the runfiles tree, and says where
    the user was in BUILD_WORKING_DIRECTORY."""
    base = os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd())
    return os.path.normpath(os.path.join(base, path))


def parse_specs(parser, flag, specs):
    pairs = []
    for spec in specs:
        name, sep, library = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            parser.error("--%s wants NAME=LIBRARY (LIBRARY empty for the system's), not %r"
                         % (flag, spec))
        pairs.append((name, library))
    return pairs


def choose_allocators(parser, args):
    """[(name, library path or '', is_variant)] in the order given, narrowed by --allocators;
    an allocator whose library is missing is reported and skipped."""
    known = [(n, lib, False) for n, lib in parse_specs(parser, "allocator", args.allocator)]
    known += [(n, lib, True) for n, lib in parse_specs(parser, "variant", args.variant)]
    names = [n for n, _, _ in known]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        parser.error("allocator named twice: %s" % ", ".join(duplicates))
    if args.allocators:
        wanted = [n.strip() for n in args.allocators.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown or not wanted:
            parser.error("--allocators: unknown %s (known: %s)" % (
                ", ".join(unknown) or "(none given)", ", ".join(names)))
        known = [a for a in known if a[0] in wanted]
    chosen = []
    for name, library, is_variant in known:
        if library and not os.path.isfile(library):
            print("shootout: skipping %s: its library %s is missing" % (name, library),
                  file=sys.stderr)
            continue
        chosen.append((name, os.path.abspath(library) if library else "", is_variant))
    if args.sampled is not None:  # the twins, sampled (allocator_env() sets them up)
        chosen += sampled_twins(chosen, sample_bytes(args.sampled))
    if not chosen:
        parser.error("no allocator left to run")
    return chosen


def sample_bytes(text):
    """--sampled's size in bytes: 524288 or 512k."""
    return int(text[:-1]) << {"k": 10, "m": 20, "g": 30}[text[-1]] if text[-1] in "kmg" \
        else int(text)


def jemalloc_sampler(bytes_):
    """jemalloc's heap profiler (Debian's is built with it), sampling every 2^lg bytes."""
    return {"MALLOC_CONF": "prof:true,lg_prof_sample:%d" % (bytes_.bit_length() - 1)}


# The peers whose heap profilers the shootout can switch on: name -> (bytes -> environment).
PEER_SAMPLERS = {
    "tcmalloc": lambda bytes_: {"TCMALLOC_SAMPLE_PARAMETER": str(bytes_)},
    "jemalloc": jemalloc_sampler,
}


def sampled_twins(chosen, sampled):
    """A +sampled twin of each variant and of each peer in PEER_SAMPLERS; jemalloc only at a
    power of two, the only rates it samples at."""
    twins = []
    for name, library, is_variant in chosen:
        if not is_variant and name not in PEER_SAMPLERS:
            continue
        if name == "jemalloc" and sampled & (sampled - 1):
            print("shootout: no jemalloc+sampled: jemalloc samples only at a power of two "
                  "bytes, not %d" % sampled, file=sys.stderr)
            continue
        twins.append((name + "+sampled", library, is_variant))
    return twins


def allocator_env(name, args):
    """The environment one allocator runs with besides --env: a +sampled twin's profiler."""
    if args.sampled is None or not name.endswith("+sampled"):
        return {}
    base = name[:-len("+sampled")]
    sampler = PEER_SAMPLERS.get(base)
    if sampler is not None:
        return sampler(sample_bytes(args.sampled))
    return {"POLYMALLOC_PROFILE_SAMPLE": args.sampled}


def benchmark_workloads(binary, group, min_time):
    """The binary's benchmarks, one workload each (names without Google Benchmark's
    /real_time suffix)."""
    listing = subprocess.run([binary, "--benchmark_list_tests=true"], check=True,
                             capture_output=True, text=True).stdout
    workloads = []
    for full_name in listing.split():
        name = full_name.replace("/real_time", "")
        threads = re.search(r"/threads:(\d+)", name)
        command = [binary, "--benchmark_filter=^%s$" % re.escape(full_name),
                   "--benchmark_min_time=%g" % min_time, "--benchmark_format=json"]
        workloads.append(Workload(name, group, command, "items/s",
                                  threads=int(threads.group(1)) if threads else 1))
    return workloads


def trace_workload(name, group, memsim, trace, directory, idle_ms=None):
    result = os.path.join(directory, name + ".result.json")
    idle = ["--idle-ms", str(idle_ms)] if idle_ms is not None else []
    command = [memsim, "--allocator", "system", "--json", result] + idle + [trace]
    return Workload(name, group, command, "ops/s", json_out=result)


def generate_traces(args, wanted, directory):
    workloads = []
    for name, arguments in TRACE_PROFILES.items():
        if not wanted(name):
            continue
        path = os.path.join(directory, name + ".trace")
        progress_line("generating %s" % name)
        subprocess.run([args.genrandms, "--seed", "1"] + arguments + ["--output", path],
                       check=True, capture_output=True)
        workloads.append(trace_workload(name, "trace", args.memsim, path, directory,
                                        idle_ms=IDLE_MS))
    return workloads


def make_git_repository(directory, env):
    """A repository with 60 commits of 50 text files each, for git to pack."""
    os.makedirs(directory)
    git = ["git", "-C", directory, "-c", "user.name=shootout", "-c",
           "user.email=shootout@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], check=True, env=env)
    for commit in range(1, 61):
        for f in range(1, 51):
            first = commit * f
            lines = "".join("line %d %d\n" % (commit, n) for n in range(first, first + 301))
            with open(os.path.join(directory, "file%d.txt" % f), "w") as out:
                out.write(lines)
        subprocess.run(git + ["add", "-A"], check=True, env=env)
        subprocess.run(git + ["commit", "-q", "-m", "commit %d" % commit], check=True, env=env)


def record(name, command, trace, recorder, env, stdin=None, cwd=None):
    """Runs the command with the trace recorder; True if it succeeded and left a trace."""
    progress_line("recording %s" % name)
    recording = dict(env, LD_PRELOAD=recorder, POLYMALLOC_TRACE_FILE=trace)
    result = subprocess.run(command, env=recording, stdin=stdin, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0 or not os.path.getsize(trace):
        print("\nshootout: skipping %s: recording %s failed (exit %d): %s" % (
            name, command[0], result.returncode, result.stderr.strip()[-300:]), file=sys.stderr)
        return False
    return True


def record_programs(args, wanted, directory):
    """Traces of real programs doing real work, recorded now: python3 building an index and
    round-tripping it through JSON, sqlite3 running an orders database, git packing a
    repository's history (with two threads). A program that is not installed is skipped."""
    env = dict(os.environ, HOME=directory, GIT_CONFIG_NOSYSTEM="1")
    env.pop("LD_PRELOAD", None)
    programs = [
        ("program_python3", ["python3", os.path.join(args.programs, "python_work.py")], None),
        ("program_sqlite3", ["sqlite3", ":memory:"], os.path.join(args.programs,
                                                                  "sqlite_work.sql")),
        ("program_git", None, None),
    ]
    workloads = []
    for name, command, stdin_path in programs:
        if not wanted(name):
            continue
        executable = name.split("_", 1)[1]
        if shutil.which(executable) is None:
            print("shootout: skipping %s: %s is not installed" % (name, executable),
                  file=sys.stderr)
            continue
        trace = os.path.join(directory, name + ".trace")
        if name == "program_git":
            ok = record_git(trace, args.trace_recorder, env, directory)
        else:
            with open(stdin_path) if stdin_path else open(os.devnull) as stdin:
                ok = record(name, command, trace, args.trace_recorder, env, stdin=stdin)
        if ok:
            workloads.append(trace_workload(name, "program", args.memsim, trace, directory))
    return workloads


def record_git(trace, recorder, env, directory):
    repository = os.path.join(directory, "git-repository")
    progress_line("making a git repository to pack")
    make_git_repository(repository, env)
    objects = subprocess.run(["git", "-C", repository, "rev-list", "--objects", "--all"],
                             check=True, capture_output=True, text=True, env=env).stdout
    with tempfile.TemporaryFile("w+") as stdin:
        stdin.write(objects)
        stdin.seek(0)
        command = ["git", "-C", repository, "pack-objects", "-q", "--window=50", "--depth=50",
                   "--no-reuse-delta", "--threads=2", os.path.join(directory, "pack")]
        return record("program_git", command, trace, recorder, env, stdin=stdin)


def collect_workloads(args, directory):
    only = re.compile(args.only) if args.only else None

    def wanted(name):
        return only is None or only.search(name) is not None

    workloads = []
    for binary, group in ((args.single_thread_benchmark, "micro"),
                          (args.threaded_benchmark, "threads")):
        workloads += [w for w in benchmark_workloads(binary, group, args.min_time)
                      if wanted(w.name)]
    if args.list:
        return workloads + [Workload(n, "trace", [], "ops/s") for n in TRACE_PROFILES
                            if wanted(n)] + [
            Workload(n, "program", [], "ops/s")
            for n in ("program_python3", "program_sqlite3", "program_git") if wanted(n)]
    workloads += generate_traces(args, wanted, directory)
    workloads += record_programs(args, wanted, directory)
    progress_line("")
    return workloads


def run_workload(workload, library, extra_env, preload_extra="", profile_to=None):
    """One fresh process: {"rate", "peak_rss_bytes"}, or {"error": why}."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(extra_env)
    preload = " ".join(p for p in (library, preload_extra) if p)
    if preload:
        env["LD_PRELOAD"] = preload
    if profile_to:
        env.update(CPUPROFILE=profile_to, CPUPROFILE_FREQUENCY="1000")
    try:
        result = subprocess.run(workload.command, env=env, capture_output=True, text=True,
                                timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": "still running after %d s" % RUN_TIMEOUT}
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return {"error": "exit %d%s" % (result.returncode, (": " + lines[-1]) if lines else "")}
    try:
        return workload.read_result(result.stdout)
    except (ValueError, KeyError, OSError) as e:
        return {"error": "unreadable result: %s" % e}


def progress_line(text):
    """Rewrites the terminal's last line (only on a terminal: logs get no carriage returns)."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + text[:160])
        sys.stderr.flush()


class Progress:
    """The progress line: where the run is, and how long it has left at its pace so far."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.start = time.monotonic()

    def step(self, text):
        self.done += 1
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done) if self.done > 1 else 0
        progress_line("[%d/%d %s left] %s" % (self.done, self.total, minutes(left), text))


def minutes(seconds):
    return "%d:%02d" % (seconds // 60, seconds % 60)


def measure(workloads, allocators, rounds, extra_env, args):
    """{workload name: {allocator: [result + round]}}, interleaved, in an order shuffled per
    round and workload (--seed). Ctrl-C ends the measuring early; what was measured
    is kept."""
    results = {w.name: {name: [] for name, _, _ in allocators} for w in workloads}
    progress = Progress(rounds * len(workloads) * len(allocators))
    failures = {}
    try:
        order = random.Random(args.seed)
        for round_index in range(rounds):
            for workload in workloads:
                for name, library, _ in order.sample(allocators, len(allocators)):
                    progress.step("round %d/%d  %s  %s" % (round_index + 1, rounds,
                                                          workload.name, name))
                    result = run_workload(workload, library,
                                          dict(extra_env, **allocator_env(name, args)))
                    result["round"] = round_index
                    results[workload.name][name].append(result)
                    if "error" in result and (workload.name, name) not in failures:
                        failures[workload.name, name] = result["error"]
                        print("\nshootout: %s under %s failed: %s" % (
                            workload.name, name, result["error"]), file=sys.stderr)
            if not sys.stderr.isatty():
                print("shootout: round %d/%d done after %s" % (
                    round_index + 1, rounds, minutes(time.monotonic() - progress.start)),
                    file=sys.stderr)
    except KeyboardInterrupt:
        print("\nshootout: interrupted; the tables show what was measured so far",
              file=sys.stderr)
    progress_line("")
    return results


def summarise(workloads, results, baseline):
    """{workload: {allocator: {"rate", "ratio", "peak_rss_bytes", "runs"}}}: medians, and the
    median over rounds of rate / the baseline's rate in the same round."""
    summary = {}
    for workload in workloads:
        by_allocator = results[workload.name]
        base = {r["round"]: r["rate"] for r in by_allocator[baseline] if "rate" in r}
        summary[workload.name] = {}
        for name, runs in by_allocator.items():
            good = [r for r in runs if "rate" in r]
            ratios = [r["rate"] / base[r["round"]] for r in good if r["round"] in base]
            rss = [r["peak_rss_bytes"] for r in good if r.get("peak_rss_bytes")]
            overheads = [r["overhead"] for r in good if r.get("overhead") is not None]
            idle = [r["idle_rss_bytes"] for r in good if r.get("idle_rss_bytes")]
            summary[workload.name][name] = {
                "rate": statistics.median([r["rate"] for r in good]) if good else None,
                "ratio": statistics.median(ratios) if ratios else None,
                "peak_rss_bytes": statistics.median(rss) if rss else None,
                "overhead": statistics.median(overheads) if overheads else None,
                "idle_rss_bytes": statistics.median(idle) if idle else None,
                "runs": len(good),
                "failed_runs": len(runs) - len(good),
            }
    return summary


def geometric_mean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def table_rows(workloads, summary, names, key, best):
    """Rows of (label, [cell text]) with the best value of each row marked by '*'."""
    rows = []
    for workload in workloads:
        row = summary[workload.name]
        values = {n: row[n][key] for n in names}
        present = [v for v in values.values() if v is not None]
        if not present and key in ("overhead", "idle_rss_bytes"):
            continue  # too little memory for the ratio to mean anything, or no idle phase
        winner = best(present) if present else None
        cells = []
        for n in names:
            v = values[n]
            if v is None:
                cells.append("failed" if row[n]["failed_runs"] else "-")
            else:
                text = "%.1f" % (v / MIB) if key.endswith("_bytes") else ratio_text(v)
                cells.append(text + ("*" if v == winner and len(present) > 1 else " "))
        rows.append((workload.name, cells))
    return rows


def ratio_text(ratio):
    """Two decimals, or two significant digits below 0.1 (0.0031, not 0.00)."""
    return "%.2f" % ratio if ratio >= 0.1 else "%.2g" % ratio


def speed_rows(workloads, summary, names):
    rows = table_rows(workloads, summary, names, "ratio", max)
    means = [geometric_mean(summary[w.name][n]["ratio"] for w in workloads) for n in names]
    best = max((m for m in means if m), default=None)
    rows.append(("geometric mean", [ratio_text(m) + ("*" if m == best else " ") if m else "-"
                                    for m in means]))
    return rows


def format_table(title, names, rows, markdown=False):
    label_width = max(len(r[0]) for r in rows + [("workload", [])])
    width = max(9, max(len(n) for n in names) + 1)
    if markdown:
        lines = ["| workload | " + " | ".join(names) + " |",
                 "|---|" + "---:|" * len(names)]
        lines += ["| %s | %s |" % (label, " | ".join(c.strip() for c in cells))
                  for label, cells in rows]
        return "\n".join(["**%s**" % title, ""] + lines)
    lines = [title, "%-*s" % (label_width, "workload") + "".join(
        "%*s" % (width + 1, n) for n in names)]
    lines += ["%-*s" % (label_width, label) + "".join("%*s" % (width + 1, c) for c in cells)
              for label, cells in rows]
    return "\n".join(lines)


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if models:
            cpu = models[0]
    except OSError:
        pass
    return "%s, %d CPUs, Linux %s" % (cpu, os.cpu_count() or 1, platform.release())


def report(workloads, summary, allocators, args, started):
    names = [name for name, _, _ in allocators]
    baseline = names[0]
    header = "polymalloc shootout, %s, %s; %d rounds, %gs per benchmark run" % (
        started.strftime("%Y-%m-%d %H:%M UTC"), machine_description(), args.rounds,
        args.min_time)
    speed_title = ("Speed: median ratio to %s in the same round (higher is faster); "
                   "* fastest" % baseline)
    memory_title = "Peak RSS of the process, MiB (median; * smallest)"
    speed = speed_rows(workloads, summary, names)
    memory = table_rows(workloads, summary, names, "peak_rss_bytes", min)
    overhead_title = ("Memory overhead: peak RSS growth / peak live bytes (median; * smallest; "
                      "workloads holding %d KiB or more)" % (MIN_LIVE_BYTES // 1024))
    overheads = table_rows(workloads, summary, names, "overhead", min)
    idle_title = ("RSS after release: the trace's blocks all freed, %d ms idle, one more "
                  "1 MiB malloc/free, MiB (median; * smallest)" % IDLE_MS)
    idle = table_rows(workloads, summary, names, "idle_rss_bytes", min)
    tables = [(speed_title, speed), (memory_title, memory)]
    if idle:
        tables.append((idle_title, idle))
    if overheads:
        tables.append((overhead_title, overheads))
    cost = sampling_cost(workloads, summary, names)
    print(header)
    for title, rows in tables:
        print()
        print(format_table(title, names, rows))
    if cost:
        print()
        print(cost)
    return "\n\n".join([header] + [format_table(title, names, rows, markdown=True)
                                    for title, rows in tables] + ([cost] if cost else []))


def sampling_cost(workloads, summary, names):
    """One line: each +sampled twin's geometric-mean speed as a fraction of its unsampled
    self's, both measured against the baseline in the same rounds; None without twins."""
    parts = []
    for twin in names:
        base = twin[:-len("+sampled")]
        if not twin.endswith("+sampled") or base not in names:
            continue
        sampled = geometric_mean(summary[w.name][twin]["ratio"] for w in workloads)
        unsampled = geometric_mean(summary[w.name][base]["ratio"] for w in workloads)
        if sampled and unsampled:
            parts.append("%s %.3f" % (base, sampled / unsampled))
    if not parts:
        return None
    return ("Sampled speed / unsampled speed (geometric means of the ratios above): "
            + ", ".join(parts))


def write_outputs(out, workloads, summary, results, allocators, markdown, args, started):
    os.makedirs(out, exist_ok=True)
    names = [name for name, _, _ in allocators]
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["workload", "group", "threads", "allocator", "unit", "rate",
                         "ratio_to_" + names[0], "peak_rss_bytes", "memory_overhead",
                         "rss_after_idle_bytes", "runs", "failed_runs"])
        for w in workloads:
            for n in names:
                s = summary[w.name][n]
                writer.writerow([w.name, w.group, w.threads or "", n, w.unit, s["rate"] or "",
                                 s["ratio"] or "", s["peak_rss_bytes"] or "",
                                 s["overhead"] or "", s["idle_rss_bytes"] or "", s["runs"],
                                 s["failed_runs"]])
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"started": started.isoformat(), "machine": machine_description(),
                   "rounds": args.rounds, "seed": args.seed, "min_time": args.min_time,
                   "allocators": [{"name": n, "library": lib, "variant": v}
                                  for n, lib, v in allocators],
                   "workloads": [{"name": w.name, "group": w.group, "unit": w.unit,
                                  "threads": w.threads} for w in workloads],
                   "summary": summary, "runs": results}, f, indent=1)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(markdown + "\n")
    plot(out, workloads, summary, names)


def write_data(path, header, rows):
    with open(path, "w") as f:
        f.write("\t".join('"%s"' % h for h in header) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")


def number(value, scale=1.0):
    return "%.6g" % (value / scale) if value else "NaN"


GNUPLOT_BARS = """
reset
set terminal svg size {width},560 dynamic font "sans,11" noenhanced
set output "{svg}"
set title "{title}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set xtics rotate by -40 left nomirror
set grid ytics
set format y "%g"
set ylabel "{ylabel}"
{extra}
plot for [i=2:{columns}] "{data}" using i:xtic(1) title columnheader(i)
"""

GNUPLOT_THREADS = """
reset
set terminal svg size 1500,460 dynamic font "sans,11" noenhanced
set output "{svg}"
set multiplot layout 1,{panels} title "Throughput against threads (higher is better)"
unset key
set grid
set xlabel "threads"
set ylabel "Mops/s"
set logscale x 2
set yrange [0:*]
{plots}
unset multiplot
"""


def plot(out, workloads, summary, names):
    """SVG plots drawn by gnuplot: speed and peak RSS per workload, throughput against
    threads. Without gnuplot the data files are still written, and that is said."""
    columns = len(names) + 1
    speed = [[w.name] + [number(summary[w.name][n]["ratio"]) for n in names] for w in workloads]
    memory = [[w.name] + [number(summary[w.name][n]["peak_rss_bytes"], MIB) for n in names]
              for w in workloads]
    write_data(os.path.join(out, "speed.dat"), ["workload"] + names, speed)
    write_data(os.path.join(out, "memory.dat"), ["workload"] + names, memory)
    width = max(900, 28 * len(workloads) * len(names) // 3)
    scripts = [
        GNUPLOT_BARS.format(width=width, svg="speed.svg", data="speed.dat", columns=columns,
                            title="Speed, ratio to %s (higher is faster)" % names[0],
                            ylabel="ratio", extra="set logscale y 2"),
        GNUPLOT_BARS.format(width=width, svg="memory.svg", data="memory.dat", columns=columns,
                            title="Peak RSS (lower is better)", ylabel="MiB",
                            extra="set logscale y 2"),
    ]
    scaling = thread_scaling_plots(out, workloads, summary, names)
    if scaling:
        scripts.append(GNUPLOT_THREADS.format(svg="threads.svg", panels=len(scaling),
                                              plots="\n".join(scaling)))
    with open(os.path.join(out, "plots.gp"), "w") as f:
        f.write("\n".join(scripts))
    if shutil.which("gnuplot") is None:
        print("shootout: gnuplot is not installed (./bazelw installs it); the plots' data and "
              "script are in %s" % out, file=sys.stderr)
        return
    result = subprocess.run(["gnuplot", "plots.gp"], cwd=out, capture_output=True, text=True)
    if result.returncode != 0:
        print("shootout: gnuplot failed: %s" % result.stderr.strip()[-500:], file=sys.stderr)


def thread_scaling_plots(out, workloads, summary, names):
    """One panel per multi-threaded workload: Mops/s at each thread count, a line per
    allocator."""
    by_base = {}
    for w in workloads:
        if w.group == "threads":
            by_base.setdefault(w.name.split("/")[0], []).append(w)
    plots = []
    for index, (base, runs) in enumerate(by_base.items()):
        runs.sort(key=lambda w: w.threads)
        rows = [[str(w.threads)] + [number(summary[w.name][n]["rate"], 1e6) for n in names]
                for w in runs]
        data = "threads_%s.dat" % base
        write_data(os.path.join(out, data), ["threads"] + names, rows)
        key = "set key outside right top\n" if index == len(by_base) - 1 else ""
        plots.append('%sset title "%s"\nplot for [i=2:%d] "%s" using 1:i with linespoints '
                     'title columnheader(i)' % (key, base, len(names) + 1, data))
    return plots


def profile(args, workloads, allocators, extra_env):
    """A CPU profile of every variant on every workload (gperftools), with pprof's top
    functions beside it as text."""
    directory = os.path.join(args.out, "profiles")
    os.makedirs(directory, exist_ok=True)
    variants = [(n, lib) for n, lib, is_variant in allocators if is_variant]
    pprof = shutil.which("google-pprof") or shutil.which("pprof")
    progress = Progress(len(variants) * len(workloads))
    for name, library in variants:
        for workload in workloads:
            progress.step("profiling %s on %s" % (name, workload.name))
            stem = os.path.join(directory, "%s.%s" % (name, re.sub(r"[^\w.-]", "_",
                                                                   workload.name)))
            result = run_workload(workload, library,
                                  dict(extra_env, **allocator_env(name, args)),
                                  preload_extra=args.profiler,
                                  profile_to=stem + ".prof")
            if "error" in result or not os.path.isfile(stem + ".prof"):
                print("\nshootout: profiling %s on %s failed: %s" % (
                    name, workload.name, result.get("error", "no profile written")),
                    file=sys.stderr)
                continue
            if pprof:
                with open(stem + ".txt", "w") as text:
                    subprocess.run([pprof, "--text", "--nodecount=25", workload.command[0],
                                    stem + ".prof"], stdout=text, stderr=subprocess.DEVNULL)
    progress_line("")
    print("Profiles: %s (view one: %s --web BINARY FILE.prof; top functions in FILE.txt)" % (
        directory, pprof or "pprof"))


def main(argv):
    parser, args = parse_args(argv)
    allocators = choose_allocators(parser, args)
    extra_env = dict(spec.split("=", 1) for spec in args.env)
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="shootout.") as directory:
        workloads = collect_workloads(args, directory)
        if not workloads:
            parser.error("--only %r matches no workload (see --list)" % args.only)
        if args.list:
            for w in workloads:
                print("%-8s %s" % (w.group, w.name))
            return 0
        results = measure(workloads, allocators, args.rounds, extra_env, args)
        summary = summarise(workloads, results, allocators[0][0])
        markdown = report(workloads, summary, allocators, args, started)
        if args.out:
            write_outputs(args.out, workloads, summary, results, allocators, markdown, args,
                          started)
            if args.profile:
                profile(args, workloads, allocators, extra_env)
            print("Results: %s (results.csv, results.json, table.md, *.svg)" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
