#!/usr/bin/env bash
# Build backprop_core with AddressSanitizer and run the test suite against that build.
#
#   scripts/asan.sh                      # the whole suite (about 2-3x slower than usual)
#   scripts/asan.sh -x tests/core/test_kernels.py   # pytest arguments replace "-q tests"
#
# The sanitized extensions are built from a copy of backprop_core/ in $ASAN_BUILD_DIR
# (default build/asan), so the normal in-place build is left alone. Python itself is not
# instrumented: libasan is LD_PRELOADed into it (it must come first in the library list),
# PYTHONMALLOC=malloc sends every allocation through ASan's allocator, and leak detection
# is off (CPython keeps objects alive until exit by design). Any heap overflow or
# use-after-free in the kernels aborts the run; ASan's reports (in $ASAN_BUILD_DIR/reports)
# are printed at the end and the exit status is non-zero. The RSS tests skip themselves
# (ASan's quarantine keeps freed memory resident).
#
# Needs: gcc or clang with libasan, and a Python with the test extras and Cython
# (PYTHON=/path/to/python to choose it; default python3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
OUT=${ASAN_BUILD_DIR:-$ROOT/build/asan}
CC=${CC:-gcc}

LIBASAN=$("$CC" -print-file-name=libasan.so)
if [[ ! -e "$LIBASAN" ]]; then
    echo "asan.sh: $CC has no libasan.so (install libasan / gcc's sanitizer runtime)" >&2
    exit 2
fi

echo "== building backprop_core with -fsanitize=address in $OUT"
mkdir -p "$OUT/src/backprop_core"
cp -p "$ROOT/setup.py" "$OUT/src/"
for f in "$ROOT"/backprop_core/*; do  # sources and headers; not the normal build's output
    case "$f" in *.so | *.c | *.pyd | */__pycache__) ;; *) cp -p "$f" "$OUT/src/backprop_core/" ;; esac
done
(cd "$OUT/src" && CC="$CC" BACKPROP_ASAN=1 "$PYTHON" setup.py -q build_ext --inplace)

# `import backprop_core` must find the sanitized build, never the checkout's own: pytest runs
# from the repository root with the current directory dropped from sys.path (and
# --import-mode=importlib adds no test directories to it).
# libstdc++ is preloaded too: without it ASan's __cxa_throw interceptor aborts the first time
# a C++ extension (matplotlib's ft2font) throws. Reports go to files, because pytest's output
# capture would swallow a report printed by a dying process.
LIBSTDCXX=$("$CC" -print-file-name=libstdc++.so)
export LD_PRELOAD="$LIBASAN:$LIBSTDCXX${LD_PRELOAD:+:$LD_PRELOAD}"
REPORTS="$OUT/reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:log_path=$REPORTS/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export PYTHONMALLOC=malloc
export PYTHONPATH="$OUT/src:$ROOT/python"
cd "$ROOT"
[[ $# -eq 0 ]] && set -- -q -p no:cacheprovider tests
status=0
"$PYTHON" -c '
import sys
sys.path.remove("") if "" in sys.path else None
import backprop_core, backprop, pytest
assert backprop_core.__file__.startswith(sys.argv[1]), backprop_core.__file__
print("== testing", backprop_core.__file__, "with", backprop.__file__, flush=True)
sys.exit(pytest.main(sys.argv[2:]))
' "$OUT/src" "$@" || status=$?
if compgen -G "$REPORTS/asan.*" > /dev/null; then
    echo "== AddressSanitizer reports:" >&2
    for report in "$REPORTS"/asan.*; do
        echo "--- $report" >&2
        head -n 40 "$report" >&2
    done
    [[ $status -ne 0 ]] || status=3
fi
echo "== asan.sh: exit status $status"
exit $status
