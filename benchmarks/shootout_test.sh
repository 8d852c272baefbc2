#!/bin/bash
# The shootout end to end, small: one round of a few workloads of every group under glibc,
# the AO_malloc peer and two variants, with --out; then the argument checks. Its arguments
# are the shootout target's (binaries, libraries, peers, variants).
set -uo pipefail
cd "${TEST_SRCDIR}/polymalloc"
shootout=(/usr/bin/python3 benchmarks/shootout.py "$@")
out="${TEST_TMPDIR}/out"
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

"${shootout[@]}" --rounds 1 --min-time 0.01 --allocators glibc,ao_malloc,signal_safe,partitioned \
  --only '^(pair/64|larson/threads:2|trace_small_uniform|program_sqlite3)$' --out "$out" \
  >"${TEST_TMPDIR}/table.txt" 2>"${TEST_TMPDIR}/stderr.txt"
status=$?
cat "${TEST_TMPDIR}/table.txt"
[[ $status == 0 ]] || fail "the shootout exited $status: $(tail -5 "${TEST_TMPDIR}/stderr.txt")"
if grep -q failed "${TEST_TMPDIR}/stderr.txt" "${TEST_TMPDIR}/table.txt"; then
  fail "a run failed: $(grep failed "${TEST_TMPDIR}/stderr.txt")"
fi

# The table: both halves, every workload asked for, glibc's ratio to itself 1 (the first
# pair/64 row is the speed table's).
for row in "pair/64" "larson/threads:2" "trace_small_uniform" "program_sqlite3" "geometric mean"; do
  [[ $(grep -c "^$row " "${TEST_TMPDIR}/table.txt") -ge 1 ]] || fail "no table row for $row"
done
grep -q '^Speed: median ratio to glibc' "${TEST_TMPDIR}/table.txt" || fail "no speed table"
grep -q '^Peak RSS' "${TEST_TMPDIR}/table.txt" || fail "no memory table"
awk '/^pair\/64 / { exit ($2 ~ /^1\.00/) ? 0 : 1 }' "${TEST_TMPDIR}/table.txt" ||
  fail "glibc's ratio to itself is not 1.00"

# The files: a CSV row per workload and allocator with a rate and a peak RSS, the JSON, the
# markdown table and the plots.
[[ $(grep -c ',items/s,\|,ops/s,' "$out/results.csv") == 16 ]] || fail "results.csv: not 16 rows"
if awk -F, 'NR > 1 && ($6 == "" || $8 == "") { exit 1 }' "$out/results.csv"; then :; else
  fail "results.csv has a row without a rate or a peak RSS"
fi
/usr/bin/python3 -c "import json, sys; d = json.load(open(sys.argv[1])); \
  assert len(d['summary']) == 4 and len(d['allocators']) == 4 and d['seed'] == 1" \
  "$out/results.json" ||
  fail "results.json is not the summary of 4 workloads under 4 allocators, with seed 1"
grep -q '^| workload | glibc | ao_malloc | partitioned | signal_safe |' "$out/table.md" ||
  fail "table.md has no markdown table"
for plot in speed memory threads; do
  grep -q '<svg' "$out/$plot.svg" 2>/dev/null || fail "no $plot.svg"
done

# Bad arguments: a message saying what was wrong, exit 2, nothing run.
expect_usage_error() {
  local expected="$1"
  shift
  local message
  message=$("${shootout[@]}" "$@" 2>&1 >/dev/null)
  local status=$?
  [[ $status == 2 ]] || fail "$* exited $status, not 2"
  grep -q -- "$expected" <<<"$message" || fail "$*: no '$expected' in: $message"
}
expect_usage_error "unknown nosuch" --allocators glibc,nosuch
expect_usage_error "not a regular expression" --only '('
expect_usage_error "matches no workload" --only '^nothing$'
expect_usage_error "at least 1" --rounds 0
expect_usage_error "non-negative whole number, not 'x1'" --seed x1
expect_usage_error "non-negative whole number, not '-3'" --seed -3
expect_usage_error "give one" --profile
expect_usage_error "NAME=LIBRARY" --allocator noequals
expect_usage_error "unrecognized arguments: --no-such-option" --no-such-option

# --help: the usage on stdout, exit 0.
help=$(/usr/bin/python3 benchmarks/shootout.py --help 2>&1)
status=$?
[[ $status == 0 ]] || fail "--help exited $status, not 0"
grep -q "^usage: shootout" <<<"$help" || fail "--help printed no usage: $help"

# A peer whose library is missing is reported and skipped, not a crash.
"${shootout[@]}" --rounds 1 --min-time 0.01 --only '^pair/64$' --allocators glibc,ghost \
  --allocator ghost=/nonexistent/libghost.so >"${TEST_TMPDIR}/ghost.txt" 2>&1 ||
  fail "a missing peer library stopped the run"
grep -q "skipping ghost: its library /nonexistent/libghost.so is missing" \
  "${TEST_TMPDIR}/ghost.txt" || fail "the missing library was not reported"

# --sampled: a sampled twin of each variant and of the peers with a profiler of their own,
# measured, and the line of what sampling costs each; jemalloc only at a power of two.
"${shootout[@]}" --rounds 1 --min-time 0.01 --only '^pair/64$' --sampled 512k \
  --allocators glibc,tcmalloc,jemalloc,partitioned >"${TEST_TMPDIR}/sampled.txt" 2>&1 ||
  fail "the sampled run failed: $(tail -5 "${TEST_TMPDIR}/sampled.txt")"
for twin in tcmalloc+sampled jemalloc+sampled partitioned+sampled; do
  grep -q "^workload .* $twin" "${TEST_TMPDIR}/sampled.txt" || fail "no $twin column"
done
grep -Eq "^Sampled speed / unsampled speed .*tcmalloc [0-9.]+, jemalloc [0-9.]+, \
partitioned [0-9.]+$" "${TEST_TMPDIR}/sampled.txt" || fail "no sampling cost line"
"${shootout[@]}" --rounds 1 --min-time 0.01 --only '^pair/64$' --sampled 300k \
  --allocators glibc,jemalloc >"${TEST_TMPDIR}/sampled300k.txt" 2>&1 ||
  fail "the 300k sampled run failed"
grep -q "no jemalloc+sampled: jemalloc samples only at a power of two bytes, not 307200" \
  "${TEST_TMPDIR}/sampled300k.txt" || fail "jemalloc's rate limit was not said"
expect_usage_error "wants a size in bytes" --sampled 12q

((failures == 0)) && echo PASS
exit $((failures > 0))
