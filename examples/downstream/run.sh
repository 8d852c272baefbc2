#!/bin/bash
# Builds and runs the downstream demos (demo, demo_malloc) once per variant given (default:
# the default variant), and checks that each ran on the variant asked for. CI calls this.
#   examples/downstream/run.sh [VARIANT...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bazelw=../../bazelw
variants=("$@")
((${#variants[@]})) || variants=(global_spinlock)
# signal_safe serves the demo's 8 MiB block only with mmap enabled (the others ignore this).
export POLYMALLOC_SIGNAL_SAFE_MMAP=1
for variant in "${variants[@]}"; do
  for demo in demo demo_malloc; do
    out=$("$bazelw" run --ui_event_filters=-info,-stdout,-stderr --noshow_progress \
      //:"$demo" --@polymalloc//variants:allocator="$variant")
    echo "$demo: $out"
    if ! grep -q "on polymalloc $variant [0-9.]*: .* heap consistent" <<<"$out"; then
      echo "downstream: $demo did not run on $variant" >&2
      exit 1
    fi
  done
done
"$bazelw" shutdown
