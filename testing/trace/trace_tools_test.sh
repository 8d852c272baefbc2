#!/bin/bash
# genrandms and memsim end to end: the same seed gives the same trace; generated traces
# (single- and multi-threaded, every operation kind) replay with --verify on every variant
# and on the system malloc; malformed traces and bad arguments fail with a message that
# says where and what.
#   trace_tools_test.sh GENRANDMS MEMSIM VARIANT_NAMES (a file: every variant, a line each)
set -euo pipefail
genrandms=$1
memsim=$2
mapfile -t variants <"$3"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/trace.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}

# Reproducible: same arguments and seed, same bytes; another seed, another trace.
"$genrandms" --seed 7 --ops 20000 --slots 500 --max-size 64k >"$work/a.trace"
"$genrandms" --seed 7 --ops 20000 --slots 500 --max-size 64k --output "$work/b.trace"
"$genrandms" --seed 8 --ops 20000 --slots 500 --max-size 64k >"$work/c.trace"
cmp -s "$work/a.trace" "$work/b.trace" || fail "the same seed gave different traces"
cmp -s "$work/a.trace" "$work/c.trace" && fail "different seeds gave the same trace"
grep -q '=c' "$work/a.trace" || fail "no calloc in the trace"
grep -q '=a' "$work/a.trace" || fail "no aligned allocation in the trace"
grep -q '=r' "$work/a.trace" || fail "no realloc in the trace"

"$genrandms" --seed 3 --ops 30000 --slots 2000 --min-size 1 --max-size 2m \
  --distribution power-law --threads 4 --realloc-share 0.2 >"$work/threads.trace"
grep -q '^3@' "$work/threads.trace" || fail "no operation of thread 3 in a 4-thread trace"

for allocator in "${variants[@]}" system; do
  for trace in a threads; do
    if out=$("$memsim" --allocator "$allocator" --verify --json "$work/$allocator.$trace.json" \
      "$work/$trace.trace" 2>&1); then
      grep -q '"failures": 0' "$work/$allocator.$trace.json" ||
        fail "$trace on $allocator: JSON does not report zero failures"
      echo "ok   $trace on $allocator: $(head -1 <<<"$out")"
    else
      fail "$trace on $allocator: $out"
    fi
  done
done

# --breakdown: where a variant's memory goes at the replay's peak live bytes (taken within 1/32
# of that peak), with the request and the rounding split; none for the system malloc, and
# none without the option.
for allocator in "${variants[@]}" system; do
  json="$work/$allocator.breakdown.json"
  if ! out=$("$memsim" --allocator "$allocator" --breakdown --json "$json" "$work/a.trace" 2>&1); then
    fail "breakdown on $allocator: $out"
  fi
  if python3 - "$json" "$allocator" <<'PY'; then
import json, sys
r = json.load(open(sys.argv[1]))
b = r["breakdown_at_peak"]
if sys.argv[2] == "system":
    sys.exit(0 if b is None else 1)
peak = r["peak_live_bytes"]
ok = (peak * 31 // 32 <= b["requested_bytes"] <= peak and b["live_blocks"] > 0
      and b["header_bytes"] == 16 * b["live_blocks"] and b["requested_bytes"] + b["rounding_bytes"] > 0)
sys.exit(0 if ok else 1)
PY
    echo "ok   breakdown on $allocator: $(grep 'at peak live' <<<"$out" || echo none)"
  else
    fail "breakdown on $allocator: $(cat "$json")"
  fi
done
grep -q '"breakdown_at_peak": null' "$work/${variants[0]}.a.json" ||
  fail "a breakdown without --breakdown: $(cat "$work/${variants[0]}.a.json")"

# The idle phase: with a short release delay, what the trace held goes back before memsim
# reads the RSS after its idle time, so that figure is a number below the peak.
"$genrandms" --seed 5 --ops 2000 --slots 64 --min-size 64k --max-size 2m >"$work/large.trace"
for allocator in "${variants[@]}"; do
  json="$work/$allocator.idle.json"
  if out=$(POLYMALLOC_RELEASE_DELAY_MS=50 "$memsim" --allocator "$allocator" --idle-ms 300 \
    --json "$json" "$work/large.trace" 2>&1); then
    if python3 - "$json" <<'PY'; then
import json, sys
r = json.load(open(sys.argv[1]))
idle = r["rss_after_idle_bytes"]
sys.exit(0 if isinstance(idle, int) and 0 < idle < r["peak_rss_bytes"] else 1)
PY
      echo "ok   idle phase on $allocator: $(tail -1 <<<"$out")"
    else
      fail "idle phase on $allocator: RSS after idle is not below the peak: $(cat "$json")"
    fi
  else
    fail "idle phase on $allocator: $out"
  fi
done

# expect_error DESCRIPTION PATTERN COMMAND...: the command must fail and say PATTERN.
expect_error() {
  local what=$1 pattern=$2
  shift 2
  local out
  if out=$("$@" 2>&1); then
    fail "$what: succeeded"
  elif ! grep -q -- "$pattern" <<<"$out"; then
    fail "$what: message '$out' does not match '$pattern'"
  else
    echo "ok   $what: ${out%%$'\n'*}"  # the first line (a pipe into head could SIGPIPE echo)
  fi
}
printf '0=100\n1=200\n# fine so far\n1=x7\n' >"$work/bad.trace"
expect_error "malformed line" "bad.trace:4: expected a size" "$memsim" "$work/bad.trace"
printf '0=100\n5\n' >"$work/empty_free.trace"
expect_error "free of an empty slot" "empty_free.trace:2: frees slot 5, which is empty" \
  "$memsim" "$work/empty_free.trace"
printf '0=100\n0=c1*8\n' >"$work/occupied.trace"
expect_error "calloc into an occupied slot" "occupied.trace:2: allocates into slot 0" \
  "$memsim" "$work/occupied.trace"
expect_error "missing trace file" "cannot read" "$memsim" "$work/missing.trace"
expect_error "unknown allocator" "is not ${variants[0]}" "$memsim" --allocator dlmalloc "$work/a.trace"
expect_error "bad idle time" "--idle-ms wants milliseconds" "$memsim" --idle-ms -5 "$work/a.trace"
expect_error "bad size suffix" "is not a size" "$genrandms" --max-size 12q
expect_error "min above max" "larger than --max-size" "$genrandms" --min-size 10 --max-size 5
expect_error "bad share" "fraction between 0 and 1" "$genrandms" --calloc-share 1.5
expect_error "bad distribution" "is not uniform or power-law" "$genrandms" --distribution zipf
expect_error "unknown flag" "unknown argument" "$genrandms" --bogus 1
expect_error "unknown flag without a value" "unknown argument '--bogus'" "$genrandms" --bogus
expect_error "memsim's unknown option" "unknown option '--bogus'" "$memsim" --bogus "$work/a.trace"

# --help: the usage on stdout and exit 0; an unknown option: exit 2.
for tool in "$memsim" "$genrandms"; do
  name=$(basename "$tool")
  if out=$("$tool" --help 2>/dev/null) && grep -q "^usage: $name" <<<"$out"; then
    echo "ok   $name --help: exit 0 with its usage"
  else
    fail "$name --help: exit $? with '$out'"
  fi
  "$tool" --no-such-option >/dev/null 2>&1 && rc=0 || rc=$?
  ((rc == 2)) && echo "ok   $name --no-such-option: exit 2" || fail "$name --no-such-option: exit $rc"
done

# --json escapes what it quotes: a trace path with a quote and a backslash stays valid JSON.
quoted="$work/q\"uote\\d.trace"
cp "$work/a.trace" "$quoted"
if "$memsim" --json "$work/quoted.json" "$quoted" >/dev/null &&
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["trace"]==sys.argv[2], d["trace"]' \
    "$work/quoted.json" "$quoted"; then
  echo "ok   --json escapes a trace path with a quote and a backslash"
else
  fail "--json with a quote in the trace's path is not valid JSON: $(cat "$work/quoted.json")"
fi

if ((failures)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "all trace tool checks passed"
