#!/bin/bash
# Soaks every variant (or those named) with testing/soak.cc's mixed multi-threaded workload
# for a set time, one after another (each ending with an idle phase that reports the RSS after
# the timed release), each as the process's malloc through LD_PRELOAD. Not a
# CI step: a run takes minutes per variant.
#
#   testing/soak.sh [--seconds N] [--threads N] [--slots N] [--idle-seconds N] [VARIANT ...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

soak_args=()
variants=()
while (($#)); do
  case "$1" in
    --seconds | --threads | --slots | --idle-seconds)
      (($# >= 2)) || { echo "soak.sh: $1 needs a value" >&2; exit 2; }
      soak_args+=("$1" "$2")
      shift 2
      ;;
    -*) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
    *) variants+=("$1"); shift ;;
  esac
done
./bazelw build //variants:variant_names >&2
mapfile -t known <bazel-bin/variants/variant_names.txt
((${#variants[@]})) || variants=("${known[@]}")
targets=(//testing:soak)
for v in "${variants[@]}"; do
  [[ " ${known[*]} " == *" $v "* ]] || { echo "soak.sh: no variant '$v' (${known[*]})" >&2; exit 2; }
  targets+=("//variants/$v:libpolymalloc_$v.so")
done
./bazelw build -c opt "${targets[@]}" >&2

failed=()
for v in "${variants[@]}"; do
  echo "=== $v"
  if ! POLYMALLOC_SIGNAL_SAFE_MMAP=1 LD_PRELOAD="$PWD/bazel-bin/variants/$v/libpolymalloc_$v.so" \
    bazel-bin/testing/soak "${soak_args[@]}"; then
    failed+=("$v")
  fi
done
((${#failed[@]} == 0)) || { echo "soak.sh: failed: ${failed[*]}" >&2; exit 1; }
echo "soak.sh: every variant passed"
