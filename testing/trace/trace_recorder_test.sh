#!/bin/bash
# The recorder on real programs: python3 running a small script, a multi-threaded program
# (cross-thread frees, every allocation kind), and a python3 that forks. Each recorded trace
# must parse, end with `e`, and replay to the end with --verify on every variant and on the
# system malloc; the threaded one must name several threads; the fork child must have its own
# trace.
#   trace_recorder_test.sh RECORDER MEMSIM DEMO VARIANT_NAMES (a file: a variant a line)
set -euo pipefail
recorder=$(realpath "$1")
memsim=$2
demo=$3
mapfile -t variants <"$4"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/recorder.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}

record() {  # record NAME COMMAND...: runs COMMAND with the recorder into $work/NAME.trace
  local name=$1
  shift
  POLYMALLOC_TRACE_FILE="$work/$name.trace" LD_PRELOAD="$recorder" "$@" >"$work/$name.out" 2>&1 ||
    fail "$name: the program failed under the recorder: $(tail -3 "$work/$name.out")"
}

replays_everywhere() {  # replays_everywhere TRACE [ENDED]: ENDED=no for a process that _exits
  local trace=$1 ended=${2:-yes}
  [[ -s $trace ]] || { fail "$trace is missing or empty"; return; }
  [[ $ended == no || $(tail -1 "$trace") == e ]] || fail "$trace does not end with e"
  for allocator in "${variants[@]}" system; do
    if out=$("$memsim" --allocator "$allocator" --verify "$trace" 2>&1); then
      echo "ok   $(basename "$trace") on $allocator: $(head -1 <<<"$out" | sed 's/.* on [a-z_]*: //')"
    else
      fail "$(basename "$trace") on $allocator: $out"
    fi
  done
}

record python /usr/bin/python3 -c '
import json, collections
words = collections.Counter(("w%d" % (i * 7919 % 3000)) for i in range(60000))
big = ["x" * (600 + i % 4000) for i in range(3000)]  # beyond pymalloc: real mallocs
data = {k: [v, str(v) * 3] for k, v in words.items()}
text = json.dumps(data, sort_keys=True)
print(len(text), sum(len(x) for x in sorted(data)))'
replays_everywhere "$work/python.trace"
lines=$(grep -c . "$work/python.trace")
((lines > 3000)) || fail "python3 recorded only $lines lines"

record threads "$demo"
replays_everywhere "$work/threads.trace"
threads=$(grep -oE '^[0-9]+@' "$work/threads.trace" | sort -u | wc -l)
((threads >= 4)) || fail "the threaded program's trace names only $threads other threads"
grep -q '=c3\*' "$work/threads.trace" || fail "no calloc recorded"
grep -q '=a64:' "$work/threads.trace" || fail "no posix_memalign recorded"
grep -q '=r' "$work/threads.trace" || fail "no realloc recorded"

record fork /usr/bin/python3 -c '
import os
blocks = [bytearray(100 + i) for i in range(2000)]
pid = os.fork()
if pid == 0:
    more = [bytearray(50 + i) for i in range(3000)]
    del blocks[::2]
    os._exit(0)
os.waitpid(pid, 0)
print("parent done")'
children=("$work"/fork.trace.*)
if [[ ${#children[@]} -ne 1 || ! -f ${children[0]} ]]; then
  fail "the fork child wrote no trace of its own (found: ${children[*]})"
else
  replays_everywhere "${children[0]}" no
  grep -qE '^[0-9]+=1[0-9]{2}$' "${children[0]}" || fail "the child's trace lacks the inherited blocks"
fi
replays_everywhere "$work/fork.trace"

if ((failures)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "all recorder checks passed"
