#!/bin/sh
# Run the Python bindings' pytest suite against a libeelsvae build.
#
#   bindings/python/run_tests.sh BUILD_DIR [pytest arguments…]
#
# BUILD_DIR is a meson build directory (its lib/libeelsvae.so is used) or the
# path of a libeelsvae shared object itself.  The interpreter is
# $EELSVAE_PYTHON, else /usr/bin/python3.  Exit status 77 (meson's "skipped")
# when that interpreter, NumPy or pytest is missing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [pytest arguments...]" >&2
    exit 2
fi
target=$1
shift

if [ -f "$target" ]; then
    library=$target
else
    library=$target/lib/libeelsvae.so
    if [ ! -e "$library" ]; then
        library=$(find "$target" -name 'libeelsvae.so*' -type f 2>/dev/null | head -n 1)
    fi
fi
if [ -z "$library" ] || [ ! -e "$library" ]; then
    echo "run_tests.sh: no libeelsvae.so under $target" >&2
    exit 1
fi
library=$(cd "$(dirname "$library")" && pwd)/$(basename "$library")

python=${EELSVAE_PYTHON:-}
[ -n "$python" ] || python=/usr/bin/python3
if ! [ -x "$python" ] && ! command -v "$python" >/dev/null 2>&1; then
    echo "run_tests.sh: skipped: no Python interpreter $python" >&2
    exit 77
fi
for module in numpy pytest; do
    if ! "$python" -c "import $module" >/dev/null 2>&1; then
        echo "run_tests.sh: skipped: $python cannot import $module (Debian: python3-$module)" >&2
        exit 77
    fi
done

# A library built with -Db_sanitize=address,undefined needs the sanitizer
# runtimes loaded first into the (uninstrumented) interpreter; leak checking
# is off because CPython's own allocations would be reported.
if ldd "$library" 2>/dev/null | grep -q 'libasan'; then
    preload=$(ldd "$library" | awk '/libasan|libubsan/ {print $3}' | tr '\n' ' ')
    LD_PRELOAD="$preload${LD_PRELOAD:+ $LD_PRELOAD}"
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
    export LD_PRELOAD ASAN_OPTIONS
fi

EELSVAE_LIBRARY=$library
EELSVAE_SOURCE_DIR=${EELSVAE_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH}
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PYTHONDONTWRITEBYTECODE=1            # leave no __pycache__ in the source tree
export EELSVAE_LIBRARY EELSVAE_SOURCE_DIR PYTHONPATH OMP_NUM_THREADS PYTHONDONTWRITEBYTECODE

cd "$here"
exec "$python" -m pytest -q -p no:cacheprovider "$here/tests" "$@"
