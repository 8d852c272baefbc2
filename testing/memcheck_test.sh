#!/usr/bin/env bash
# Runs a program with planted bugs (testing/memcheck_planted_bug.cc) under valgrind's memcheck
# with a variant built with --//allocator:valgrind=on preloaded, and expects memcheck's
# reports for polymalloc's heap: the use after free (with the block freed by polymalloc), the
# leak, and the block still reachable. Usage: memcheck_test.sh PROGRAM LIBRARY VARIANT
set -euo pipefail

if (($# != 3)); then
  echo "usage: $0 PROGRAM LIBRARY VARIANT" >&2
  exit 2
fi
program=$1 library=$2 variant=$3
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# nouserintercepts: memcheck must not put its own malloc in place of the preloaded one.
status=0
POLYMALLOC_STATS=1 LD_PRELOAD="$PWD/$library" valgrind --quiet --vgdb=no \
  --soname-synonyms=somalloc=nouserintercepts --leak-check=full --show-leak-kinds=all \
  --error-exitcode=99 "$program" >"$log" 2>&1 || status=$?

fail() {
  echo "FAIL ($variant): $1" >&2
  cat "$log" >&2
  exit 1
}

((status == 99)) || fail "valgrind exited $status, not 99 (errors found)"
grep -q "^polymalloc $variant statistics" "$log" || fail "polymalloc was not the program's malloc"
freed=$(sed -nE 's/^freed (0x[0-9a-f]+)$/\1/p' "$log")
[[ -n $freed ]] || fail "the program did not run to the end"
grep -q "Invalid read of size 1" "$log" || fail "the use after free was not reported"
grep -qE "Address 0x[0-9a-f]+ is 8 bytes inside a block of size [0-9]+ free'd" "$log" ||
  fail "the read was not placed inside the freed block"
grep -A3 "free'd" "$log" | grep -q "by 0x[0-9A-F]*: free (in .*libpolymalloc_$variant" ||
  fail "the block was not freed by polymalloc's free"
grep -qE "[0-9]+ bytes in 1 blocks are definitely lost in loss record" "$log" ||
  fail "the leak was not reported"
(($(grep -c "are definitely lost" "$log") == 1)) || fail "more than the one leak was reported"
grep -qE "[0-9]+ bytes in 1 blocks are still reachable in loss record" "$log" ||
  fail "the reachable block was not counted"
if grep -E "Invalid (read|write)|uninitialised|Mismatched" "$log" | grep -vq "Invalid read of size 1"; then
  fail "memcheck reported more than the planted bugs"
fi
echo "PASS ($variant): memcheck found the use after free and the leak in polymalloc's heap"
