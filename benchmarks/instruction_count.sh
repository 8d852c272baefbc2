#!/bin/bash
# Runs instruction_count.py with Debian's python3 from the runfiles root, where the paths in
# the target's arguments point.
set -euo pipefail
runfiles="$0.runfiles/polymalloc"
if [[ -d "$runfiles" ]]; then cd "$runfiles"; fi
exec /usr/bin/python3 benchmarks/instruction_count.py "$@"
