#!/usr/bin/env bash
# Installs polymalloc under a fresh prefix as //:install does, checks what was installed (the
# files and links, the SONAMEs, that only the API is exported and that no GPL AO_malloc code
# is in it, that the header is C99 and C++), and builds and runs the consumers outside
# Bazel: examples/make through pkg-config, examples/cmake through find_package, a static
# link with the archive, and the default variant through polymalloc.pc. Then the install's
# argument checks. Run as: install_test.sh INSTALL_SH INSTALL_ARGS...
set -euo pipefail
install_sh=$1
shift
work=${TEST_TMPDIR:-$(mktemp -d)}
prefix="$work/prefix"
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
for tool in cc pkg-config cmake make readelf nm; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (./bazelw installs it)" >&2; exit 1; }
done

"$install_sh" "$@" --prefix "$prefix"
variants=() version="" default=""
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  case "${args[i]}" in
    --library) v=${args[i + 1]%%=*}; variants+=("$v") ;;
    --version) version=${args[i + 1]} ;;
    --default) default=${args[i + 1]} ;;
  esac
done
major=${version%%.*}
lib="$prefix/lib"

# ---- the files, the links and the SONAMEs ----
for f in include/polymalloc/polymalloc.h include/polymalloc/version.h lib/pkgconfig/polymalloc.pc \
  lib/cmake/polymalloc/polymalloc-config.cmake lib/cmake/polymalloc/polymalloc-config-version.cmake; do
  [[ -f "$prefix/$f" ]] || fail "$f was not installed"
done
for v in "${variants[@]}"; do
  name="libpolymalloc_$v"
  [[ -f "$lib/$name.so.$version" && ! -L "$lib/$name.so.$version" ]] || fail "$name.so.$version"
  [[ $(readlink "$lib/$name.so.$major") == "$name.so.$version" ]] || fail "$name.so.$major link"
  [[ $(readlink "$lib/$name.so") == "$name.so.$major" ]] || fail "$name.so link"
  [[ -f "$lib/$name.a" ]] || fail "$name.a"
  [[ -f "$lib/pkgconfig/polymalloc-$v.pc" ]] || fail "polymalloc-$v.pc"
  soname=$(readelf -d "$lib/$name.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
  [[ $soname == "$name.so.$major" ]] || fail "$name's SONAME is '$soname', not $name.so.$major"
  # Only the API: no global symbol of polymalloc's C++ namespace (nm marks local ones lowercase).
  internal=$(nm -D --defined-only "$lib/$name.so.$version" | awk '$2 ~ /[A-Z]/ && $3 ~ /^_ZN.*10polymalloc/')
  [[ -z $internal ]] || fail "$name exports internal symbols: $internal"
  for symbol in malloc free polymalloc_version polymalloc_variant __libc_malloc _Znwm; do
    nm -D --defined-only "$lib/$name.so.$version" | grep -qw "$symbol" || fail "$name does not export $symbol"
  done
  # The GPL AO_malloc peer is the benchmarks' alone.
  if nm -A "$lib/$name.so.$version" "$lib/$name.a" 2>/dev/null | grep -E ' AO_|libatomic_ops' ||
    grep -q 'AO_malloc' "$lib/$name.so.$version" "$lib/$name.a"; then
    fail "$name contains libatomic_ops' GPL allocator code"
  fi
done
[[ $(readlink "$lib/libpolymalloc.so") == "libpolymalloc_$default.so.$version" ]] ||
  fail "libpolymalloc.so does not point to the default variant $default"

# ---- the header: C99 (pedantic) and C++ ----
echo '#include <polymalloc/polymalloc.h>' >"$work/header.c"
cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" "$work/header.c" ||
  fail "the header is not C99"
c++ -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c++ -I"$prefix/include" \
  "$work/header.c" || fail "the header is not C++11"

# $1 output, $2 variant: it must name the variant and the installed version.
expect_run() {
  grep -q "on polymalloc $2 $version" <<<"$1" || fail "expected a run on $2 $version, got: $1"
  echo "$1"
}

# ---- examples/make: pkg-config, signal_safe (its default) and partitioned ----
examples="$PWD/examples"  # (in the runfiles: the sources as links)
for v in signal_safe partitioned; do
  rm -rf "$work/make"
  cp -rL "$examples/make" "$work/make"
  if PKG_CONFIG_PATH="$lib/pkgconfig" make -s -C "$work/make" VARIANT="$v" >/dev/null; then
    expect_run "$("$work/make/example")" "$v"
  else
    fail "examples/make did not build for $v"
  fi
done

# ---- examples/cmake: find_package, partitioned ----
cp -rL "$examples/cmake" "$work/cmake"
if cmake -S "$work/cmake" -B "$work/cmake/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DPOLYMALLOC_VARIANT=partitioned >"$work/cmake.log" 2>&1 &&
  cmake --build "$work/cmake/build" >>"$work/cmake.log" 2>&1; then
  expect_run "$("$work/cmake/build/example")" partitioned
else
  cat "$work/cmake.log"
  fail "examples/cmake did not build"
fi
# find_package refuses another major version.
mkdir -p "$work/cmake_v9"
cat >"$work/cmake_v9/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(v9 C)
find_package(polymalloc $((major + 9)) REQUIRED)
CMAKE
if cmake -S "$work/cmake_v9" -B "$work/cmake_v9/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
  fail "find_package(polymalloc $((major + 9))) accepted version $version"
fi

# ---- the archive: a static link, global_spinlock ----
cc -std=c99 -I"$prefix/include" -o "$work/static" "$examples/make/main.c" \
  "$lib/libpolymalloc_global_spinlock.a" -lstdc++ || fail "static link with the archive"
readelf -d "$work/static" | grep -q polymalloc && fail "the static example needs a shared polymalloc"
expect_run "$("$work/static")" global_spinlock

# ---- polymalloc.pc: the default variant ----
# shellcheck disable=SC2046
cc -std=c99 -o "$work/default" "$examples/make/main.c" \
  $(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --cflags --libs polymalloc) -Wl,-rpath,"$lib" ||
  fail "link with polymalloc.pc"
expect_run "$("$work/default")" "$default"

# ---- the install's checks of its arguments ----
# $1 what the message must say, then the arguments.
expect_refusal() {
  local want=$1 out
  shift
  if out=$("$install_sh" "$@" 2>&1); then
    fail "install accepted $*"
  elif ! grep -q -- "$want" <<<"$out"; then
    fail "install $*: expected a message with '$want', got: $out"
  fi
}
expect_refusal "--prefix DIR is required" "$@"
expect_refusal "cannot create --prefix" "$@" --prefix /proc/polymalloc-install-test
touch "$work/a_file"
expect_refusal "is not a directory" "$@" --prefix "$work/a_file"
expect_refusal "unknown argument '--prefx'" "$@" --prefx "$work/x"
expect_refusal "needs a value" "$@" --prefix

if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "PASS: installed, and built and ran the consumers"
