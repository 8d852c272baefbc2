#!/bin/bash
# The heap profiler end to end, on a variant preloaded: a program that leaks 96 MiB from one
# function and keeps 8 MiB from another, sampled at tcmalloc's 512 KiB, and google-pprof
# --text must put at least 80 % of the in-use bytes on the leaking function and next to none
# on the code that freed what it allocated (the profile written at exit, and on demand).
# Sampling every allocation while a library is loaded (malloc under the loader's lock) must
# not hang, nor, on signal_safe, sampling in signal handlers that interrupt malloc; a dump
# with profiling off fails with ENOTSUP; the settings' mistakes are named.
#   heap_profile_test.sh PROGRAM LIBRARY VARIANT
set -euo pipefail

if [[ $# -ne 3 || ! -x "$1" || ! -f "$2" ]]; then
  echo "usage: $0 PROGRAM LIBRARY VARIANT (an executable and an existing shared object)" >&2
  exit 2
fi
program=$(realpath "$1")
library=$(realpath "$2")
variant=$3
dlopen_library=$(realpath testing/libprofile_dlopen_library.so)
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/heap_profile.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0

# google-pprof keeps its temporary files at /tmp/pprof<pid>. Tests that run at once in PID
# namespaces of their own share /tmp and the same small pids, and overwrite each other's
# files (a report then comes out with bare addresses). A copy of the script keeps them in
# this test's own directory.
pprof="$work/google-pprof"
sed "s|\"/tmp/pprof|\"$work/pprof|" "$(command -v google-pprof)" >"$pprof"
chmod +x "$pprof"
grep -q "\"$work/pprof" "$pprof" || { echo "google-pprof keeps its files elsewhere now"; exit 1; }

fail() {
  echo "FAIL ($variant): $*"
  failures=$((failures + 1))
}

# check_profile NAME FILE: pprof's report of FILE puts >= 80 % on leak_96_mib, some on
# keep_8_mib, and its total is near the 104 MiB held.
check_profile() {
  local name=$1 file=$2 report
  if [[ ! -s $file ]]; then
    fail "$name: no profile at $file"
    return
  fi
  report=$("$pprof" --text "$program" "$file" 2>"$work/pprof.err") || {
    fail "$name: google-pprof failed: $(tail -3 "$work/pprof.err")"
    return
  }
  echo "--- $name ($variant):"
  head -6 <<<"$report"
  local total leak keep
  total=$(sed -nE 's/^Total: ([0-9.]+) MB$/\1/p' <<<"$report")
  leak=$(awk '$NF == "leak_96_mib" { sub("%", "", $2); print $2 }' <<<"$report")
  keep=$(awk '$NF == "keep_8_mib" { sub("%", "", $2); print $2 }' <<<"$report")
  if [[ -z $total || -z $leak || -z $keep ]]; then
    fail "$name: the report names no total, leak_96_mib or keep_8_mib"
    return
  fi
  awk -v t="$total" 'BEGIN { exit !(t >= 70 && t <= 150) }' ||
    fail "$name: the profile's total is $total MB, not near the 104 MiB held"
  awk -v l="$leak" 'BEGIN { exit !(l >= 80) }' ||
    fail "$name: leak_96_mib holds $leak % of the in-use bytes, under 80 %"
  awk -v k="$keep" 'BEGIN { exit !(k > 1 && k < 20) }' ||
    fail "$name: keep_8_mib holds $keep %, not near its 8 MiB in 104"
  # Everything else was freed (the churn), or is a few small blocks of the runtime's, which a
  # sample or two at most would show: a sample that outlived its block shows here.
  local others
  others=$(awk 'NR > 1 && $NF != "leak_96_mib" && $NF != "keep_8_mib" { sub("%", "", $2); s += $2 }
                END { print s + 0 }' <<<"$report")
  awk -v o="$others" 'BEGIN { exit !(o <= 3) }' ||
    fail "$name: $others % of the in-use bytes are on functions that hold none (freed blocks' samples)"
}

# 1. At exit, to POLYMALLOC_PROFILE_FILE with %p.
POLYMALLOC_PROFILE_SAMPLE=512k POLYMALLOC_PROFILE_FILE="$work/exit.%p" LD_PRELOAD=$library \
  "$program" leak || fail "the leaking program exits $?"
profiles=("$work"/exit.*)
if [[ ${#profiles[@]} -ne 1 ]]; then
  fail "at exit: ${#profiles[@]} profiles written, not one"
else
  check_profile "at exit" "${profiles[0]}"
  # The call graph, drawn (graphviz's dot, which ./bazelw installs).
  "$pprof" --svg "$program" "${profiles[0]}" >"$work/graph.svg" 2>"$work/svg.err" &&
    grep -q "<svg" "$work/graph.svg" && grep -q "leak_96_mib" "$work/graph.svg" ||
    fail "google-pprof --svg drew no graph naming leak_96_mib: $(tail -2 "$work/svg.err")"
fi

# 2. On demand, through polymalloc_dump_heap_profile().
POLYMALLOC_PROFILE_SAMPLE=524288 LD_PRELOAD=$library "$program" dump "$work/demand" \
  2>"$work/demand.err" || fail "the dumping program exits $?: $(cat "$work/demand.err")"
check_profile "on demand" "$work/demand"
grep -q "without POLYMALLOC_PROFILE_FILE" "$work/demand.err" ||
  fail "sampling without POLYMALLOC_PROFILE_FILE is not said at exit"

# 3. Every allocation sampled while the loader holds its lock, in a constructor and after.
if ! POLYMALLOC_PROFILE_SAMPLE=1 POLYMALLOC_PROFILE_FILE="$work/dlopen" LD_PRELOAD=$library \
  timeout 120 "$program" dlopen "$dlopen_library"; then
  fail "sampling everything across dlopen: exit status $? (124: it hung)"
fi
[[ -s $work/dlopen ]] || fail "sampling everything across dlopen wrote no profile"

# signal_safe: sampling every allocation in signal handlers that interrupt malloc (and its
# sampling), while the interrupted thread goes on.
if [[ $variant == signal_safe ]]; then
  if ! POLYMALLOC_PROFILE_SAMPLE=1 POLYMALLOC_PROFILE_FILE="$work/signals" LD_PRELOAD=$library \
    timeout 120 "$program" signals; then
    fail "sampling everything in signal handlers: exit status $? (124: it hung)"
  fi
  [[ -s $work/signals ]] || fail "sampling in signal handlers wrote no profile"
fi

# 4. Off: a dump on demand says so.
LD_PRELOAD=$library "$program" off || fail "a dump with profiling off did not fail with ENOTSUP ($?)"

# 5. A value that is not a size is named, and profiling stays off.
POLYMALLOC_PROFILE_SAMPLE=lots LD_PRELOAD=$library "$program" off 2>"$work/bad.err" ||
  fail "with a malformed POLYMALLOC_PROFILE_SAMPLE, profiling is not off ($?)"
grep -q "POLYMALLOC_PROFILE_SAMPLE" "$work/bad.err" ||
  fail "a malformed POLYMALLOC_PROFILE_SAMPLE is not named: $(cat "$work/bad.err")"

if ((failures != 0)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "PASS ($variant)"
