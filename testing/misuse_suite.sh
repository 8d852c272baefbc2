#!/bin/bash
# Runs misuse_suite.py with Debian's python3 from the runfiles root, where the paths in
# the target's arguments point.
set -euo pipefail
runfiles="$0.runfiles/polymalloc"
if [[ -d "$runfiles" ]]; then cd "$runfiles"; fi
exec /usr/bin/python3 testing/misuse_suite.py "$@"
