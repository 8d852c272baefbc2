#!/bin/bash
# instruction_count end to end on glibc and one variant (a short count), and its argument
# checks. Arguments: the target's own (the allocators and pair_loop).
set -uo pipefail
tool=(/usr/bin/python3 benchmarks/instruction_count.py "$@")
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("${tool[@]}" --allocators glibc,tcmalloc,partitioned --sizes 64 --short 3200 --long 6400) ||
  fail "the count failed"
echo "$out"
for loop in recycle batch; do
  row=$(grep -E "^\| $loop \| 64 \|" <<<"$out" | head -1)
  [[ -n "$row" ]] || fail "no $loop row"
  # Three figures, each a plausible count of instructions per pair.
  read -r -a figures <<<"$(tr -d '|*' <<<"$row" | awk '{print $3, $4, $5}')"
  ((${#figures[@]} == 3)) || fail "$loop row has ${#figures[@]} figures: $row"
  for f in "${figures[@]}"; do
    ((f >= 10 && f <= 2000)) || fail "implausible count $f in: $row"
  done
done
grep -q "Ratio to the best of tcmalloc" <<<"$out" || fail "no ratio table"

expect_usage_error() {
  local err
  err=$("${tool[@]}" "$@" 2>&1 >/dev/null)
  [[ $? == 2 ]] || fail "'$*' did not exit 2"
  grep -q "instruction_count: " <<<"$err" || fail "'$*' said no reason: $err"
}
expect_usage_error --allocators nosuch
expect_usage_error --sizes 64,x
expect_usage_error --short 3200 --long 3200
expect_usage_error --short 100
echo PASS
