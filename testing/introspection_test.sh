#!/bin/bash
# The runtime API from a program nobody here wrote: python3, with a polymalloc variant
# preloaded, asks it through ctypes what it holds (polymalloc_get_numeric_property while it
# allocates and frees 64 MiB), gives memory back (polymalloc_release_free_memory), reads
# glibc's malloc_info() while it holds 20 MB, and writes the statistics as JSON on demand and
# at exit (POLYMALLOC_STATS=json, POLYMALLOC_STATS_FILE with %p), which must parse.
#   introspection_test.sh LIBRARY VARIANT
set -euo pipefail

if [[ $# -ne 2 || ! -f "$1" ]]; then
  echo "usage: $0 LIBRARY VARIANT (LIBRARY must be an existing shared object)" >&2
  exit 2
fi
library=$(realpath "$1")
variant=$2
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/introspection.XXXXXX")
trap 'rm -rf "$work"' EXIT

LD_PRELOAD="$library" POLYMALLOC_STATS=json POLYMALLOC_STATS_FILE="$work/exit.%p.json" \
  /usr/bin/python3 - "$variant" "$work" <<'PY'
import ctypes, json, os, sys, xml.etree.ElementTree as ET

variant, work = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None)
get = libc.polymalloc_get_numeric_property
get.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)]
get.restype = ctypes.c_int
libc.polymalloc_variant.restype = ctypes.c_char_p
failures = []

def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)

def prop(name):
    value = ctypes.c_size_t(0)
    assert get(name.encode(), ctypes.byref(value)) == 1, "unknown property " + name
    return value.value

MiB = 1 << 20
check(libc.polymalloc_variant().decode() == variant, "runs on " + variant)
value = ctypes.c_size_t(12345)
check(get(b"generic.no_such_property", ctypes.byref(value)) == 0 and value.value == 12345,
      "an unknown name answers 0 and leaves the value alone")
names = ["generic.current_allocated_bytes", "generic.heap_size", "polymalloc.heap_free_bytes",
         "polymalloc.thread_cache_bytes", "polymalloc.mapped_bytes",
         "polymalloc.mapping_cache_bytes", "polymalloc.arena_kept_bytes",
         "polymalloc.released_bytes",
         "polymalloc.metadata_bytes", "polymalloc.partitions"]
for name in names:
    prop(name)
check(prop("polymalloc.metadata_bytes") > 0, "metadata is counted")

# 64 MiB in 1024 blocks of 64 KiB: requests of 64 KiB less the 16-byte header, so that the
# block is exactly a class of every variant (Python's own objects would round up a class).
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
before = prop("generic.current_allocated_bytes")
blocks = [libc.malloc(64 * 1024 - 16) for _ in range(1024)]
check(all(blocks), "1024 mallocs of 64 KiB - 16 succeed")
for b in blocks:
    libc.memset(b, 1, 64 * 1024 - 16)
grown = prop("generic.current_allocated_bytes") - before
# Whole blocks: in the default build 64 MiB, give or take what the interpreter itself
# allocated and freed meanwhile (up to 0.25 MiB net freed, measured on global_spinlock, which
# has no caches to hold what Python frees: so the slack of 1 MiB, under the 16 blocks that a
# counter missing one block in 64 would lose); with --//allocator:checks=full each block
# carries 72 bytes of guards, which moves the request up a class, and no variant rounds a
# request up by more than twice.
check(63 * MiB <= grown <= 2 * 64 * MiB + MiB,
      "current_allocated_bytes grew by the 64 MiB allocated (%.2f MiB)" % (grown / MiB))
check(prop("generic.heap_size") >= prop("generic.current_allocated_bytes"),
      "heap_size covers what is allocated")
for b in blocks:
    libc.free(b)
left = prop("generic.current_allocated_bytes") - before
check(abs(left) < MiB, "and fell back after the frees (%.2f MiB left)" % (left / MiB))
held, free = prop("generic.heap_size"), prop("polymalloc.heap_free_bytes")
libc.polymalloc_release_free_memory()
after, free_after = prop("generic.heap_size"), prop("polymalloc.heap_free_bytes")
# What stays resident is free blocks too small to give a page back, and the first page of
# each freed block of a class (signal_safe keeps its pooled blocks' headers mapped).
check(free_after < 8 * MiB and after <= held,
      "release_free_memory left little free and resident: heap_size %.2f -> %.2f MiB, "
      "resident free %.2f -> %.2f MiB" % (held / MiB, after / MiB, free / MiB, free_after / MiB))

# malloc_info while 20 MB are held: polymalloc's figures, in glibc's shape.
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
hold = bytearray(20 * 1000 * 1000)
path = os.path.join(work, "malloc_info.xml")
stream = libc.fopen(path.encode(), b"w")
check(libc.malloc_info(0, stream) == 0, "malloc_info(0, stream) succeeds")
check(libc.malloc_info(1, stream) == -1 and ctypes.get_errno() in (0, 22),
      "malloc_info(1, stream) is refused")
libc.fclose(stream)
root = ET.parse(path).getroot()
check(root.tag == "malloc" and root.get("version") == "1", "malloc_info is glibc's XML")
system = [int(e.get("size")) for e in root.findall("system") if e.get("type") == "current"]
mmap = [int(e.get("size")) for e in root.findall("total") if e.get("type") == "mmap"]
check(system and system[0] >= 20 * 1000 * 1000,
      "malloc_info's system total covers the 20 MB held (%s)" % system)
check(mmap and mmap[0] + system[0] > 0 and root.find("heap") is not None,
      "malloc_info has the heap and the mappings")
del hold

# The statistics on demand, as JSON and as text.
with open(os.path.join(work, "demand.json"), "w") as out:
    check(libc.polymalloc_write_stats(out.fileno(), 1) == 0, "write_stats(fd, json) succeeds")
with open(os.path.join(work, "demand.json")) as f:
    stats = json.load(f)
check(stats["variant"] == variant and stats["pid"] == os.getpid(), "the JSON names the process")
check(all(isinstance(stats[n], int) for n in names + ["in_use_bytes"]),
      "the JSON has every property as a number")
with open(os.path.join(work, "demand.txt"), "w") as out:
    libc.polymalloc_write_stats(out.fileno(), 0)
with open(os.path.join(work, "demand.txt")) as f:
    first = f.readline()
check(first == "polymalloc %s statistics (pid %d)\n" % (variant, os.getpid()),
      "the text names the process: " + first.strip())
check(libc.polymalloc_write_stats(-1, 1) == -1, "write_stats(-1, ...) is refused")
with open(os.path.join(work, "pid"), "w") as f:
    f.write(str(os.getpid()))
sys.exit(1 if failures else 0)
PY

# At exit: POLYMALLOC_STATS=json into POLYMALLOC_STATS_FILE, %p the pid.
pid=$(cat "$work/pid")
if [[ ! -f "$work/exit.$pid.json" ]]; then
  echo "FAIL no statistics at exit in exit.$pid.json: $(ls "$work")"
  exit 1
fi
/usr/bin/python3 -m json.tool "$work/exit.$pid.json" >/dev/null
grep -q "\"variant\": \"$variant\"" "$work/exit.$pid.json"
grep -q '"breakdown"' "$work/exit.$pid.json"
echo "ok   POLYMALLOC_STATS=json at exit parses (exit.$pid.json)"

# A value POLYMALLOC_STATS does not take: one line naming it, and no statistics.
err=$(LD_PRELOAD="$library" POLYMALLOC_STATS=yes /usr/bin/python3 -c 'pass' 2>&1 >/dev/null)
if [[ $err != *"POLYMALLOC_STATS=yes is not 0, 1, text or json; using 0"* ]]; then
  echo "FAIL POLYMALLOC_STATS=yes: expected a warning naming it, got: $err"
  exit 1
fi
echo "ok   POLYMALLOC_STATS=yes is named in a warning"

# A mistyped name gets a warning naming the closest known one.
err=$(LD_PRELOAD="$library" POLYMALLOC_STAT=1 /usr/bin/python3 -c 'pass' 2>&1 >/dev/null)
if [[ $err != *"polymalloc: unknown setting POLYMALLOC_STAT (did you mean POLYMALLOC_STATS?)"* ]]; then
  echo "FAIL POLYMALLOC_STAT=1: expected a warning naming it, got: $err"
  exit 1
fi
echo "ok   POLYMALLOC_STAT=1 (a typo) is named, with the closest known name"

# POLYMALLOC_VERBOSE=1: the variant, the version and every setting with its source.
err=$(LD_PRELOAD="$library" POLYMALLOC_VERBOSE=1 POLYMALLOC_RELEASE_DELAY_MS=250 \
  /usr/bin/python3 -c 'pass' 2>&1 >/dev/null)
for want in "polymalloc: $variant " "POLYMALLOC_RELEASE_DELAY_MS = 250 (environment)" \
  "POLYMALLOC_MAPPING_CACHE_BYTES = 67108864 (default)" "POLYMALLOC_VERBOSE = 1 (environment)"; do
  if [[ $err != *"$want"* ]]; then
    echo "FAIL POLYMALLOC_VERBOSE=1: no '$want' in: $err"
    exit 1
  fi
done
echo "ok   POLYMALLOC_VERBOSE=1 lists the settings"

# signal_safe as the process malloc maps memory by default (python3 needs more than the
# static arena); POLYMALLOC_SIGNAL_SAFE_MMAP=0 keeps it to the arena.
big='b = bytearray(32 << 20); print(len(b))'
if ! out=$(env -u POLYMALLOC_SIGNAL_SAFE_MMAP LD_PRELOAD="$library" /usr/bin/python3 -c "$big" 2>&1); then
  echo "FAIL 32 MiB in python3 with the default settings: $out"
  exit 1
fi
echo "ok   32 MiB in python3 with the default settings"
if [[ $variant == signal_safe ]]; then
  if out=$(LD_PRELOAD="$library" POLYMALLOC_SIGNAL_SAFE_MMAP=0 /usr/bin/python3 -c "$big" 2>&1); then
    echo "FAIL POLYMALLOC_SIGNAL_SAFE_MMAP=0 still mapped 32 MiB: $out"
    exit 1
  fi
  [[ $out == *MemoryError* ]] || { echo "FAIL expected a MemoryError, got: $out"; exit 1; }
  echo "ok   POLYMALLOC_SIGNAL_SAFE_MMAP=0 keeps signal_safe to its arena (MemoryError)"
fi
