#!/usr/bin/env bash
# ABI guard: compare libeelsvae.so against the committed baseline
# abi/libeelsvae.so.<major>.abi with libabigail (Debian: abigail-tools).
#
#   tools/abi-check.sh                 build build-abi/ (debugoptimized) and compare
#   tools/abi-check.sh BUILD_DIR       compare BUILD_DIR/lib/libeelsvae.so (needs -g;
#                                      without debug info it exits 77, "skipped")
#   tools/abi-check.sh --update [BUILD_DIR]
#                                      record the library's ABI as the baseline
#
# Exit status: 0 compatible (identical, or only additions); 1 an incompatible
# change, a soname that disagrees with the headers, or no baseline for this
# soname; 2 a usage or tool error; 77 BUILD_DIR has no debug info.
#
# Policy (CHANGELOG.md, base.h): within one soname libeelsvae.so.N symbols
# and option-struct members are only ever appended. What abidiff reports as
# removed or changed is a break, except members appended at the end of the
# struct_size structs (abi/suppressions.abignore). A deliberate break needs
#   1. abi_major bumped in meson.build (the soname) and EELSVAE_VERSION_MAJOR
#      in include/eelsvae/base.h, EELSVAE_VERSION_MINOR/PATCH reset to 0;
#   2. a new version node in lib/libeelsvae.map;
#   3. a CHANGELOG.md entry under "Changed" marked **ABI break**, saying what
#      callers must change;
#   4. tools/abi-check.sh --update, committing abi/libeelsvae.so.<N+1>.abi
#      (and removing the old baseline).
# Additions need no baseline change to pass, but record them at each release
# (tools/abi-check.sh --update) so that the next release is compared with them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
update=no
build=
for arg in "$@"; do
  case $arg in
    --update) update=yes ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "abi-check: unknown option $arg" >&2; exit 2 ;;
    *) build=$arg ;;
  esac
done
for tool in abidw abidiff readelf; do
  command -v "$tool" >/dev/null ||
    { echo "abi-check: $tool not found (apt-get install abigail-tools binutils)" >&2; exit 2; }
done

own_build=no
if [[ -z $build ]]; then
  own_build=yes
  build=${ABI_BUILD_DIR:-$root/build-abi}
  opts=(-Dbuildtype=debugoptimized -Dtests=false -Dexamples=false -Dbench=false -Ddocs=disabled)
  log=$(mktemp)
  reconfigure=()
  [[ -d $build ]] && reconfigure=(--reconfigure)
  { meson setup "${reconfigure[@]}" "$build" "$root" "${opts[@]}" && ninja -C "$build"; } >"$log" 2>&1 ||
    { cat "$log" >&2; rm -f "$log"; echo "abi-check: the build in $build failed" >&2; exit 2; }
  rm -f "$log"
fi
lib=$(readlink -f "$build/lib/libeelsvae.so" 2>/dev/null || true)
[[ -f $lib ]] || { echo "abi-check: no $build/lib/libeelsvae.so" >&2; exit 2; }
if ! readelf -S "$lib" | grep -q '\.debug_info'; then
  echo "abi-check: $lib has no debug info; configure with -Dbuildtype=debugoptimized (or run without BUILD_DIR)" >&2
  [[ $own_build == yes ]] && exit 2
  exit 77
fi

# The soname must be the one the headers announce.
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
major=$(sed -n 's/^#define EELSVAE_VERSION_MAJOR \([0-9]*\).*/\1/p' "$root/include/eelsvae/base.h")
if [[ $soname != "libeelsvae.so.$major" ]]; then
  echo "abi-check: FAIL: the soname is $soname but base.h says EELSVAE_VERSION_MAJOR $major" >&2
  exit 1
fi
baseline=$root/abi/$soname.abi

# The ABI as XML: public types only (--headers-dir; the opaque handles'
# private definitions dropped, so a changed struct eelsvae_model is no
# change at all: callers only hold pointers to it), no build paths, no
# dependency list (it changes with optional HDF5, not with the ABI), type ids
# that do not shift when a type is added, source paths relative to the tree.
current=$(mktemp)
report=$(mktemp)
trap 'rm -f "$current" "$report"' EXIT
abidw --headers-dir "$root/include/eelsvae" --drop-private-types --drop-undefined-syms --no-corpus-path \
  --no-comp-dir-path --no-show-locs --no-elf-needed --type-id-style hash --out-file "$current" "$lib"
sed -i -E "s#path='[^']*/((lib|include)/[^']*)'#path='\\1'#" "$current"

if [[ $update == yes ]]; then
  mkdir -p "$root/abi"
  install -m 644 "$current" "$baseline"
  echo "abi-check: recorded the ABI of $soname ($(grep -c '<elf-symbol ' "$baseline") symbols) in ${baseline#"$root"/}"
  exit 0
fi
if [[ ! -f $baseline ]]; then
  echo "abi-check: FAIL: no baseline ${baseline#"$root"/} for soname $soname." >&2
  echo "  A new soname is a deliberate ABI break: follow the steps at the top of tools/abi-check.sh," >&2
  echo "  then record the baseline with tools/abi-check.sh --update." >&2
  exit 1
fi

set +e
abidiff --no-show-locs --suppressions "$root/abi/suppressions.abignore" "$baseline" "$current" >"$report" 2>&1
rc=$?
set -e
if (( rc & 3 )); then
  cat "$report" >&2
  echo "abi-check: abidiff failed (status $rc)" >&2
  exit 2
fi
# "Functions changes summary: R Removed, C Changed (F filtered out), A Added functions"
count() {
  local n
  n=$(sed -n "s/^$1 changes summary: \\([0-9]*\\) Removed, \\([0-9]*\\) Changed.*/\\$2/p" "$report" | head -1)
  echo "${n:-0}"
}
removed=$(( $(count Functions 1) + $(count Variables 1) ))
changed=$(( $(count Functions 2) + $(count Variables 2) ))
if (( rc & 8 )) || (( removed > 0 )) || (( changed > 0 )); then
  cat "$report"
  echo "abi-check: FAIL: incompatible ABI change against ${baseline#"$root"/} ($removed removed, $changed changed)." >&2
  echo "  Undo it, or make a deliberate break as the top of tools/abi-check.sh describes" >&2
  echo "  (new soname, CHANGELOG entry, tools/abi-check.sh --update)." >&2
  exit 1
fi
if (( rc & 4 )); then
  cat "$report"
  echo "abi-check: OK: compatible additions against ${baseline#"$root"/}; give new symbols a new version node in"
  echo "  lib/libeelsvae.map, bump EELSVAE_VERSION_MINOR, and record them at release with tools/abi-check.sh --update."
  exit 0
fi
echo "abi-check: OK: the ABI of $soname matches ${baseline#"$root"/}"
