#!/usr/bin/env bash
# Installs polymalloc under a prefix, as a distribution package lays it out:
#   PREFIX/include/polymalloc/{polymalloc.h,version.h}
#   PREFIX/lib/libpolymalloc_<variant>.so.X.Y.Z, its .so.X (the SONAME) and .so links, .a
#   PREFIX/lib/libpolymalloc.so -> the default variant
#   PREFIX/lib/pkgconfig/polymalloc-<variant>.pc, polymalloc.pc (the default variant)
#   PREFIX/lib/cmake/polymalloc/polymalloc-config.cmake and polymalloc-config-version.cmake
#
# Users run it through Bazel, which supplies everything but the prefix:
#   ./bazelw run //:install -- --prefix DIR      (DIR is created if missing; relative to
#                                                  where bazelw was run)
set -euo pipefail

usage() {
  echo "usage: ./bazelw run //:install -- --prefix DIR" >&2
  echo "  installs polymalloc's header, libraries, pkg-config and CMake files under DIR" >&2
  exit 2
}
die() {
  echo "install: $*" >&2
  exit 1
}

# What //:install passes (BUILD.bazel), then the user's arguments.
version="" default="" prefix="" templates="" headers=() libraries=()
while (($#)); do
  case "$1" in
    --version | --default | --templates | --header | --library | --prefix)
      (($# >= 2)) || { echo "install: $1 needs a value" >&2; usage; }
      case "$1" in
        --version) version=$2 ;;
        --default) default=$2 ;;
        --templates) templates=$2 ;;
        --header) headers+=("$2") ;;
        --library) libraries+=("$2") ;;  # VARIANT=SHARED_OBJECT:ARCHIVE
        --prefix) prefix=$2 ;;
      esac
      shift 2
      ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    -h | --help) usage ;;
    *) echo "install: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ -n $prefix ]] || { echo "install: --prefix DIR is required" >&2; usage; }
[[ $version =~ ^([0-9]+)\.[0-9]+\.[0-9]+$ ]] || die "not a MAJOR.MINOR.PATCH version: '$version'"
major=${BASH_REMATCH[1]}
[[ -n $default && -d $templates && ${#headers[@]} -gt 0 && ${#libraries[@]} -gt 0 ]] ||
  die "run it as ./bazelw run //:install -- --prefix DIR (it needs the files Bazel builds)"

# A relative prefix is relative to where the user ran bazelw, not to Bazel's runfiles.
[[ $prefix == /* ]] || prefix="${BUILD_WORKING_DIRECTORY:-$PWD}/$prefix"
if [[ -e $prefix && ! -d $prefix ]]; then
  die "--prefix $prefix exists and is not a directory"
fi
mkdir -p "$prefix" 2>/dev/null || die "cannot create --prefix $prefix"
[[ -w $prefix ]] || die "--prefix $prefix is not writable"
prefix=$(cd "$prefix" && pwd -P)

# $1 template -> $2 file, with @NAME@ replaced from the remaining NAME=VALUE arguments.
fill() {
  local template=$1 out=$2 expressions=()
  shift 2
  for pair in "$@"; do
    local value=${pair#*=}
    value=${value//\\/\\\\}
    value=${value//|/\\|}
    value=${value//&/\\&}
    expressions+=(-e "s|@${pair%%=*}@|${value}|g")
  done
  sed "${expressions[@]}" "$template" >"$out.tmp"
  if grep -q '@[A-Z_]*@' "$out.tmp"; then
    rm -f "$out.tmp"
    die "$template: a placeholder was left unfilled"
  fi
  mv "$out.tmp" "$out"
}

include="$prefix/include/polymalloc" lib="$prefix/lib"
mkdir -p "$include" "$lib/pkgconfig" "$lib/cmake/polymalloc"
for header in "${headers[@]}"; do
  install -m 644 "$header" "$include/"
done

variants=()
for spec in "${libraries[@]}"; do
  variant=${spec%%=*} files=${spec#*=}
  shared=${files%%:*} archive=${files#*:}
  [[ -f $shared && -f $archive ]] || die "missing library files for $variant: $files"
  name="libpolymalloc_${variant}"
  install -m 755 "$shared" "$lib/$name.so.$version"
  ln -sfn "$name.so.$version" "$lib/$name.so.$major"
  ln -sfn "$name.so.$major" "$lib/$name.so"
  install -m 644 "$archive" "$lib/$name.a"
  fill "$templates/polymalloc.pc.in" "$lib/pkgconfig/polymalloc-$variant.pc" \
    PREFIX="$prefix" NAME="polymalloc-$variant" VARIANT="$variant" VERSION="$version" \
    LIBRARY="polymalloc_$variant"
  variants+=("$variant")
done
[[ " ${variants[*]} " == *" $default "* ]] || die "the default variant '$default' was not built"

ln -sfn "libpolymalloc_${default}.so.$version" "$lib/libpolymalloc.so"
fill "$templates/polymalloc.pc.in" "$lib/pkgconfig/polymalloc.pc" \
  PREFIX="$prefix" NAME="polymalloc" VARIANT="$default" VERSION="$version" LIBRARY="polymalloc"
fill "$templates/polymalloc-config.cmake.in" "$lib/cmake/polymalloc/polymalloc-config.cmake" \
  VARIANTS="${variants[*]}" DEFAULT_VARIANT="$default" VERSION="$version" VERSION_MAJOR="$major"
fill "$templates/polymalloc-config-version.cmake.in" \
  "$lib/cmake/polymalloc/polymalloc-config-version.cmake" VERSION="$version" VERSION_MAJOR="$major"

echo "install: polymalloc $version (${variants[*]}; default $default) installed under $prefix"
echo "install: link with pkg-config polymalloc-<variant> or CMake find_package(polymalloc)"
