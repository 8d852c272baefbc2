#!/bin/bash
# Speed against memory for POLYMALLOC_RELEASE_DELAY_MS: memsim replays the shootout's two
# generated traces (trace_mixed_power_law, trace_large_blocks) on every variant at each delay,
# with the idle phase (--idle-ms 1500), 3 runs each, and prints the medians: operations per
# second, peak RSS, and RSS after the idle phase. docs/design.md's table of the default delay
# comes from it. Not a CI step: about ten minutes on 2 cores.
#
#   benchmarks/release_delay_sweep.sh [DELAY ...]     (default: 0 100 1000 10000 -1)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

delays=("$@")
((${#delays[@]})) || delays=(0 100 1000 10000 -1)
for d in "${delays[@]}"; do
  [[ $d =~ ^(-1|[0-9]+)$ ]] || { echo "release_delay_sweep.sh: '$d' is not a delay in ms (or -1)" >&2; exit 2; }
done
./bazelw build -c opt //testing/trace:memsim //testing/trace:genrandms //variants:variant_names >&2
mapfile -t variants <bazel-bin/variants/variant_names.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
genrandms=bazel-bin/testing/trace/genrandms
memsim=bazel-bin/testing/trace/memsim
# The shootout's profiles (benchmarks/shootout.py, TRACE_PROFILES), seeded the same way.
"$genrandms" --seed 1 --ops 1m --slots 50000 --max-size 1m --distribution power-law \
  --realloc-share 0.2 --output "$work/mixed_power_law.trace"
"$genrandms" --seed 1 --ops 5k --slots 256 --min-size 64k --max-size 4m \
  --output "$work/large_blocks.trace"

for trace in mixed_power_law large_blocks; do
  for variant in "${variants[@]}"; do
    for delay in "${delays[@]}"; do
      for run in 1 2 3; do
        POLYMALLOC_SIGNAL_SAFE_MMAP=1 POLYMALLOC_RELEASE_DELAY_MS=$delay "$memsim" \
          --allocator "$variant" --idle-ms 1500 --json "$work/$run.json" \
          "$work/$trace.trace" >/dev/null
      done
      /usr/bin/python3 - "$trace" "$variant" "$delay" "$work"/{1,2,3}.json <<'PY'
import json, statistics, sys
trace, variant, delay, *files = sys.argv[1:]
runs = [json.load(open(f)) for f in files]
median = lambda key: statistics.median(r[key] for r in runs)
rate = statistics.median(r["operations"] / r["seconds"] for r in runs)
print("%-16s %-16s delay %6s: %10.0f ops/s  peak RSS %7.1f MiB  after idle %7.1f MiB" % (
    trace, variant, delay, rate, median("peak_rss_bytes") / 2**20,
    median("rss_after_idle_bytes") / 2**20))
PY
    done
  done
done
