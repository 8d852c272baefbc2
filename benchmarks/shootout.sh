#!/bin/bash
# Runs shootout.py with Debian's python3 (it needs only the standard library) from the
# runfiles root, where the paths in the target's arguments point.
set -euo pipefail
runfiles="$0.runfiles/polymalloc"
if [[ -d "$runfiles" ]]; then cd "$runfiles"; fi
exec /usr/bin/python3 benchmarks/shootout.py "$@"
