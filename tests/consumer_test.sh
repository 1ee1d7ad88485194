#!/usr/bin/env bash
# C and C++ consumers from outside the source tree.
#
#   consumer_test.sh installed  BUILD_DIR SOURCE_DIR
#     Installs BUILD_DIR (meson install --destdir --tags runtime,devel: the
#     library, headers, .pc file and programs) into a temporary directory,
#     points a copy of its eelsvae.pc at it, and then, using nothing but
#     pkg-config to find the library:
#       1. compiles each public header alone as C11 and as C++17 with
#          -Wall -Wextra -pedantic -Werror (self-contained, warning-free);
#       2. builds tests/consumer/consumer.c with `pkg-config --cflags --libs
#          eelsvae` and runs it against the installed shared object;
#       3. builds tests/cxx_headers.cpp (C++17) the same way and runs it;
#       4. builds the meson project tests/consumer with dependency('eelsvae')
#          found by pkg-config and runs its test;
#       5. deletes the installed shared object and links consumer.c with
#          `pkg-config --static --cflags --libs eelsvae` against libeelsvae.a
#          (its own dependencies may stay shared), checks that the program
#          does not need libeelsvae.so, and runs it. (Meson's prefer_static
#          would link OpenBLAS and HDF5 statically too, which Debian's .pc
#          files do not support: libgfortran.a needs libquadmath.)
#
#   consumer_test.sh subproject BUILD_DIR SOURCE_DIR
#     Copies tests/consumer into a temporary project with SOURCE_DIR linked as
#     subprojects/eelsvae, and builds and runs it with
#     dependency('eelsvae', fallback : …) forced to the fallback, then with
#     subproject('eelsvae').get_variable('eelsvae_dep'). This compiles the
#     library once more: about a minute on two cores.
#
# Exits 77 (skipped) when meson, pkg-config or a C compiler is missing; the
# C++ steps are skipped, saying so, when there is no C++ compiler.
# Environment: CC, CXX, MESON (default: cc, c++, meson), EELSVAE_CONSUMER_JOBS
# (ninja -j for the subproject build, default 2), KEEP=1 keeps the temporary
# directory.
set -euo pipefail

mode=${1:-}
build=${2:-}
src=${3:-}
if [[ -z "$mode" || -z "$build" || -z "$src" ]]; then
  echo "usage: $0 installed|subproject BUILD_DIR SOURCE_DIR" >&2
  exit 2
fi
build=$(cd "$build" && pwd)
src=$(cd "$src" && pwd)

# meson test points LD_LIBRARY_PATH at the build tree; a consumer must find
# the library the way a user's program would, so each step sets its own.
unset LD_LIBRARY_PATH

CC=${CC:-cc}
CXX=${CXX:-c++}
MESON=${MESON:-meson}
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
have "$MESON" || skip "meson not found"
have pkg-config || skip "pkg-config not found"
have "$CC" || skip "no C compiler ($CC)"
have_cxx=1
have "$CXX" || have_cxx=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/eelsvae-consumer.XXXXXX")
if [[ "${KEEP:-0}" == 1 ]]; then echo "keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi

# A library built with sanitizers needs consumers built with them too (the
# runtime must come first), and an unsanitized consumer could not load it.
san_flags=()
meson_san=()
if readelf -d "$build/lib/libeelsvae.so" 2>/dev/null | grep 'libasan' >/dev/null; then
  san_flags=(-fsanitize=address,undefined)
  meson_san=(-Db_sanitize=address,undefined -Db_lundef=false)
fi
warn=(-Wall -Wextra -pedantic -Werror)

# ---------------------------------------------------------------- installed
install_copy() {
  local stage=$tmp/stage
  # The library, its headers and .pc file (and the programs); not the docs.
  "$MESON" install -C "$build" --no-rebuild --tags runtime,devel --destdir "$stage" --quiet >"$tmp/install.log" 2>&1 ||
    fail "meson install: $(tail -20 "$tmp/install.log")"
  local pc
  pc=$(find "$stage" -name eelsvae.pc | head -1)
  [[ -n "$pc" ]] || fail "meson install wrote no eelsvae.pc"
  # The .pc file names the configured prefix; point it at the staged copy,
  # as a relocated install would. Variables are relative to ${prefix}, so
  # only the absolute ones move.
  mkdir -p "$tmp/pkgconfig"
  sed -E "s|^(prefix\|exec_prefix\|libdir\|includedir)=/|\1=$stage/|" "$pc" >"$tmp/pkgconfig/eelsvae.pc"
  export PKG_CONFIG_PATH=$tmp/pkgconfig
  unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
  libdir=$(pkg-config --variable=libdir eelsvae)
  includedir=$(pkg-config --variable=includedir eelsvae)
  [[ "$libdir" == "$stage"/* && -e "$libdir/libeelsvae.so" && -e "$libdir/libeelsvae.a" ]] ||
    fail "pkg-config's libdir '$libdir' does not hold the staged libeelsvae.so and .a"
  [[ "$includedir" == "$stage"/* && -f "$includedir/eelsvae/eelsvae.h" ]] ||
    fail "pkg-config's includedir '$includedir' does not hold eelsvae/eelsvae.h"
  pkg-config --exists 'eelsvae >= 0.1.0' || fail "pkg-config: eelsvae >= 0.1.0 not found"
}

check_headers_alone() {
  local h
  local headers=("$includedir"/eelsvae/*.h)
  [[ ${#headers[@]} -ge 7 ]] || fail "only ${#headers[@]} headers installed"
  for h in "${headers[@]}"; do
    h=${h##*/}
    printf '#include <eelsvae/%s>\nint main(void) { return 0; }\n' "$h" >"$tmp/alone.c"
    # shellcheck disable=SC2046
    "$CC" -std=c11 "${warn[@]}" $(pkg-config --cflags eelsvae) -c "$tmp/alone.c" -o "$tmp/alone.o" 2>"$tmp/err" ||
      fail "<eelsvae/$h> alone as C11: $(cat "$tmp/err")"
    if [[ $have_cxx == 1 ]]; then
      printf '#include <eelsvae/%s>\nint main() { return 0; }\n' "$h" >"$tmp/alone.cpp"
      # shellcheck disable=SC2046
      "$CXX" -std=c++17 "${warn[@]}" $(pkg-config --cflags eelsvae) -c "$tmp/alone.cpp" -o "$tmp/alone.o" 2>"$tmp/err" ||
        fail "<eelsvae/$h> alone as C++17: $(cat "$tmp/err")"
    fi
  done
  echo "ok: ${#headers[@]} public headers each compile alone as C11$([[ $have_cxx == 1 ]] && echo ' and C++17'), warning-free"
}

# The consumer must load the staged library, not some other copy.
check_loads_staged() {
  local exe=$1 resolved
  resolved=$(LD_LIBRARY_PATH=$libdir ldd "$exe" | awk '/libeelsvae\.so/ {print $3}')
  [[ "$resolved" == "$libdir"/* ]] || fail "$exe loads libeelsvae from '$resolved', not from $libdir"
}

run_consumer() {
  local exe=$1 work=$2
  mkdir -p "$work"
  LD_LIBRARY_PATH=$libdir "$exe" "$work" >"$tmp/run.out" 2>&1 || fail "$exe: $(tail -20 "$tmp/run.out")"
  grep -q "all checks passed" "$tmp/run.out" || fail "$exe did not finish: $(tail -20 "$tmp/run.out")"
}

pkgconfig_c() {
  # shellcheck disable=SC2046
  "$CC" -std=c11 "${warn[@]}" "${san_flags[@]}" "$src/tests/consumer/consumer.c" -o "$tmp/consumer" \
    $(pkg-config --cflags --libs eelsvae) 2>"$tmp/err" || fail "cc consumer.c \$(pkg-config --cflags --libs eelsvae): $(cat "$tmp/err")"
  check_loads_staged "$tmp/consumer"
  run_consumer "$tmp/consumer" "$tmp/work-c"
  echo "ok: C consumer built with pkg-config --cflags --libs, ran against the staged shared object"
}

pkgconfig_cxx() {
  if [[ $have_cxx == 0 ]]; then echo "skipped: C++ consumer (no C++ compiler '$CXX')"; return; fi
  # shellcheck disable=SC2046
  "$CXX" -std=c++17 "${warn[@]}" "${san_flags[@]}" "$src/tests/cxx_headers.cpp" -o "$tmp/cxx_headers" \
    $(pkg-config --cflags --libs eelsvae) 2>"$tmp/err" || fail "c++ cxx_headers.cpp \$(pkg-config --cflags --libs eelsvae): $(cat "$tmp/err")"
  check_loads_staged "$tmp/cxx_headers"
  (cd "$tmp" && LD_LIBRARY_PATH=$libdir ./cxx_headers >"$tmp/run.out" 2>&1) || fail "cxx_headers: $(tail -20 "$tmp/run.out")"
  echo "ok: C++17 consumer (every public header) built with pkg-config and ran"
}

meson_project() {  # meson_project NAME [meson setup options…]
  local name=$1
  shift
  local proj=$tmp/proj-$name bdir=$tmp/build-$name
  mkdir -p "$proj"
  cp "$src/tests/consumer/consumer.c" "$src/tests/consumer/meson.build" "$src/tests/consumer/meson_options.txt" "$proj/"
  "$MESON" setup "$bdir" "$proj" "${meson_san[@]}" "$@" >"$tmp/setup.log" 2>&1 ||
    fail "meson setup ($name): $(tail -30 "$tmp/setup.log")"
  ninja -C "$bdir" -j "${EELSVAE_CONSUMER_JOBS:-2}" >"$tmp/ninja.log" 2>&1 || fail "ninja ($name): $(tail -30 "$tmp/ninja.log")"
  LD_LIBRARY_PATH=${libdir:-} "$MESON" test -C "$bdir" --no-rebuild --print-errorlogs >"$tmp/test.log" 2>&1 ||
    fail "meson test ($name): $(tail -30 "$tmp/test.log")"
  consumer_exe=$bdir/consumer
}

meson_pkgconfig() {
  meson_project pkgconfig
  grep -q "Run-time dependency eelsvae found: YES" "$tmp/setup.log" ||
    fail "the meson consumer did not find eelsvae through pkg-config: $(grep -i eelsvae "$tmp/setup.log")"
  check_loads_staged "$consumer_exe"
  echo "ok: meson project with dependency('eelsvae') found by pkg-config built and passed its test"
}

static_link() {
  # Without the shared object, -leelsvae can only mean libeelsvae.a.
  rm -f "$libdir"/libeelsvae.so*
  # shellcheck disable=SC2046
  "$CC" -std=c11 "${warn[@]}" "${san_flags[@]}" "$src/tests/consumer/consumer.c" -o "$tmp/consumer-static" \
    $(pkg-config --static --cflags --libs eelsvae) 2>"$tmp/err" ||
    fail "cc consumer.c \$(pkg-config --static --cflags --libs eelsvae): $(cat "$tmp/err")"
  if readelf -d "$tmp/consumer-static" | grep 'NEEDED.*libeelsvae' >/dev/null; then fail "the static consumer still needs libeelsvae.so"; fi
  nm "$tmp/consumer-static" | grep ' T eelsvae_pca_fit$' >/dev/null || fail "the static consumer holds no eelsvae_pca_fit"
  run_consumer "$tmp/consumer-static" "$tmp/work-static"
  echo "ok: C consumer linked with pkg-config --static against libeelsvae.a and ran"
}

# --------------------------------------------------------------- subproject
subproject_builds() {
  # The consumer must not find an installed copy: an empty pkg-config path
  # and a forced fallback make dependency() build the subproject.
  local proj=$tmp/proj-sub bdir=$tmp/build-sub
  mkdir -p "$proj/subprojects"
  cp "$src/tests/consumer/consumer.c" "$src/tests/consumer/meson.build" "$src/tests/consumer/meson_options.txt" "$proj/"
  ln -s "$src" "$proj/subprojects/eelsvae"
  export PKG_CONFIG_PATH=
  "$MESON" setup "$bdir" "$proj" --force-fallback-for=eelsvae "${meson_san[@]}" >"$tmp/setup.log" 2>&1 ||
    fail "meson setup (subproject fallback): $(tail -30 "$tmp/setup.log")"
  # "from subproject …", or "(overridden)" once the subproject calls
  # meson.override_dependency('eelsvae', …).
  grep -E "Dependency eelsvae (from subproject subprojects/eelsvae found: YES|found: YES .*\(overridden\))" \
    "$tmp/setup.log" >/dev/null && grep "Executing subproject eelsvae" "$tmp/setup.log" >/dev/null ||
    fail "dependency('eelsvae') did not fall back to the subproject: $(grep -i eelsvae "$tmp/setup.log" | tail -5)"
  nice -n 10 ninja -C "$bdir" -j "${EELSVAE_CONSUMER_JOBS:-2}" >"$tmp/ninja.log" 2>&1 ||
    fail "ninja (subproject): $(tail -30 "$tmp/ninja.log")"
  "$MESON" test -C "$bdir" --no-rebuild --print-errorlogs >"$tmp/test.log" 2>&1 ||
    fail "meson test (subproject fallback): $(tail -30 "$tmp/test.log")"
  local resolved
  resolved=$(ldd "$bdir/consumer" | awk '/libeelsvae\.so/ {print $3}')
  [[ "$resolved" == "$bdir/subprojects/eelsvae/"* ]] ||
    fail "the subproject consumer loads libeelsvae from '$resolved', not from the subproject's build"
  echo "ok: dependency('eelsvae', fallback : ['eelsvae', 'eelsvae_dep']) built the subproject; the consumer passed"

  "$MESON" configure "$bdir" -Dhow=subproject >"$tmp/configure.log" 2>&1 ||
    fail "meson configure -Dhow=subproject: $(tail -30 "$tmp/configure.log")"
  nice -n 10 ninja -C "$bdir" -j "${EELSVAE_CONSUMER_JOBS:-2}" >"$tmp/ninja.log" 2>&1 ||
    fail "ninja (-Dhow=subproject): $(tail -30 "$tmp/ninja.log")"
  grep -q "Executing subproject eelsvae" "$bdir/meson-logs/meson-log.txt" ||
    fail "-Dhow=subproject did not execute the subproject"
  "$MESON" test -C "$bdir" --no-rebuild --print-errorlogs >"$tmp/test.log" 2>&1 ||
    fail "meson test (-Dhow=subproject): $(tail -30 "$tmp/test.log")"
  echo "ok: subproject('eelsvae').get_variable('eelsvae_dep'); the consumer passed"
}

case $mode in
  installed)
    install_copy
    check_headers_alone
    pkgconfig_c
    pkgconfig_cxx
    meson_pkgconfig
    static_link
    ;;
  subproject)
    subproject_builds
    ;;
  *) fail "unknown mode '$mode' (installed or subproject)" ;;
esac
echo "1 passed, 0 failed"
