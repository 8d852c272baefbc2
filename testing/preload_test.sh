#!/bin/bash
# Real programs nobody here wrote, run on a polymalloc shared object through LD_PRELOAD:
# python3, sqlite3, perl, git and the C compiler driver each do real work, and their output
# must match a run under glibc's malloc. POLYMALLOC_STATS=1 proves the preload took effect.
#   preload_test.sh LIBRARY VARIANT
set -euo pipefail

if [[ $# -ne 2 || ! -f "$1" ]]; then
  echo "usage: $0 LIBRARY VARIANT (LIBRARY must be an existing shared object)" >&2
  exit 2
fi
library=$(realpath "$1")
variant=$2
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/preload.XXXXXX")
trap 'rm -rf "$work"' EXIT
export HOME=$work GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8 TZ=UTC

failures=0

# run NAME FUNCTION: runs FUNCTION (in a subshell, in a fresh directory) under glibc and
# then with polymalloc preloaded into every program it starts, and compares their output.
run() {
  local name=$1
  shift
  local out
  for allocator in glibc polymalloc; do
    rm -rf "$work/$allocator" && mkdir -p "$work/$allocator" && cd "$work/$allocator"
    out="$work/$name.$allocator"
    if [[ $allocator == glibc ]]; then
      if ! ("$@") >"$out" 2>"$out.err"; then
        echo "FAIL $name: exits non-zero under glibc"
        tail -20 "$out.err"
        failures=$((failures + 1))
        return
      fi
    else
      if ! (export LD_PRELOAD="$library" POLYMALLOC_STATS=1 && "$@") >"$out" 2>"$out.err"; then
        echo "FAIL $name: exits non-zero under polymalloc ($variant)"
        tail -20 "$out.err"
        failures=$((failures + 1))
        return
      fi
      if ! grep -q "^polymalloc $variant statistics" "$out.err"; then
        echo "FAIL $name: no polymalloc statistics on stderr, so the preload did not happen"
        failures=$((failures + 1))
        return
      fi
    fi
  done
  if cmp -s "$work/$name.glibc" "$work/$name.polymalloc"; then
    echo "ok   $name ($(wc -c <"$work/$name.glibc") bytes of output agree)"
  else
    echo "FAIL $name: output differs from glibc's"
    diff "$work/$name.glibc" "$work/$name.polymalloc" | head -20
    failures=$((failures + 1))
  fi
}

python_work() {
  /usr/bin/python3 - <<'PY'
import hashlib, json, re, collections
words = [("w%d" % (i * 7919 % 10007)) * (1 + i % 13) for i in range(60000)]
counts = collections.Counter(w[:5] for w in words)
blob = json.dumps({"counts": counts.most_common(50), "sorted": sorted(words)[:2000]})
again = json.loads(blob)
matches = sum(1 for w in words if re.fullmatch(r"w(\d+)\1*", w))
big = [bytes(range(256)) * (i % 300) for i in range(3000)]
print(len(blob), len(again["sorted"]), matches, hashlib.sha256(b"".join(big)).hexdigest())
PY
}

sqlite_work() {
  /usr/bin/sqlite3 db.sqlite <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
INSERT INTO t SELECT i, printf('name-%07d', i * 7919 % 50000), i * 0.5 FROM n;
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(value), min(name), max(name) FROM t;
SELECT substr(name, 1, 7) AS prefix, count(*), round(avg(value), 3) FROM t GROUP BY prefix ORDER BY prefix LIMIT 10;
UPDATE t SET name = name || '-x' WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
VACUUM;
SELECT count(*), group_concat(id) FROM (SELECT id FROM t WHERE name LIKE '%-x' ORDER BY name LIMIT 20);
SQL
}

perl_work() {
  /usr/bin/perl -e '
    my %h; for my $i (1 .. 200000) { $h{"key" . ($i * 7919 % 100003)} .= chr(65 + $i % 26) }
    my @k = sort { length($h{$b}) <=> length($h{$a}) || $a cmp $b } keys %h;
    my $s = join ",", map { sprintf "%s=%s", $_, substr($h{$_}, 0, 5) } @k[0 .. 20];
    (my $t = $s x 50) =~ s/key(\d+)/K$1/g;
    print scalar(@k), " ", length($t), " ", $s, "\n";'
}

git_work() {
  export GIT_AUTHOR_NAME=polymalloc GIT_AUTHOR_EMAIL=test@example.invalid
  export GIT_COMMITTER_NAME=polymalloc GIT_COMMITTER_EMAIL=test@example.invalid
  export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
  /usr/bin/git init -q -b main repo && cd repo
  for i in $(seq 1 12); do
    seq "$i" 3 3000 | sed "s/^/line $i: /" >"file$((i % 4)).txt"
    /usr/bin/git add -A && /usr/bin/git commit -q -m "commit $i"
  done
  /usr/bin/git log --stat --format='%H %s' >../log.txt
  head -60 ../log.txt
  /usr/bin/git gc -q
  /usr/bin/git diff HEAD~5 HEAD | sha256sum
  /usr/bin/git rev-list --all --objects | wc -l
}

compiler_work() {
  cat >prog.c <<'C'
#include <stdio.h>
#include <stdlib.h>
struct node { struct node* next; int value; };
int main(void) {
  struct node* list = NULL;
  for (int i = 0; i < 100000; ++i) {
    struct node* n = malloc(sizeof *n);
    n->value = i * 7919 % 1000;
    n->next = list;
    list = n;
  }
  long sum = 0;
  while (list) { struct node* next = list->next; sum += list->value; free(list); list = next; }
  printf("%ld\n", sum);
  return 0;
}
C
  /usr/bin/gcc -O2 -Wall -o prog prog.c && ./prog
}

run python3 python_work
run sqlite3 sqlite_work
run perl perl_work
run git git_work
run cc compiler_work

if [[ $failures -ne 0 ]]; then
  echo "$failures program(s) failed on $variant"
  exit 1
fi
echo "all programs agree with glibc on $variant"
