#!/usr/bin/env bash
# Runs one of glibc's malloc tests with a polymalloc variant as the process's malloc:
#   run_glibc_test.sh TEST LIBRARY VARIANT
# The test's own driver forks it, enforces its timeout and exits 0 when it passes. An
# UNSUPPORTED result (77) fails here: every test on the list runs under glibc's own malloc.
set -uo pipefail
test=$1
library=$PWD/$2
variant=$3
name=${test##*/}

# The loader must really preload the library for this program, or a pass would be glibc's.
loaded=$(LD_PRELOAD=$library LD_TRACE_LOADED_OBJECTS=1 "$test")
if ! grep -qF "$library" <<<"$loaded"; then
  echo "FAIL: the loader does not preload $library into $name" >&2
  exit 1
fi
LD_PRELOAD=$library "$test"
rc=$?
case $rc in
  0) echo "PASS: $name with $variant" ;;
  77) echo "FAIL: $name reports UNSUPPORTED with $variant (it runs under glibc's own malloc)" >&2 ;;
  *) echo "FAIL: $name with $variant (exit status $rc)" >&2 ;;
esac
exit $((rc == 0 ? 0 : 1))
