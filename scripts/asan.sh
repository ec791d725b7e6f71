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
# Needs: gcc or clang with libasan, and a Python with the test extras (PYTHON=/path/to/python
# to choose it, relative to the current directory or found on PATH; default python3). The
# build needs what pyproject.toml's [build-system] requires (Cython, setuptools): when PYTHON
# lacks them (an install with build isolation leaves them out), they are installed once into
# a build environment of the same interpreter, $ASAN_BUILD_DIR/build-env.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
# an absolute path, since the build runs in another directory; the final symlink is kept as
# it is (a virtual environment's python is a symlink whose location names the environment)
if [[ "$PYTHON" == */* ]]; then
    PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
else
    PYTHON=$(command -v "$PYTHON") || { echo "asan.sh: no $PYTHON on PATH" >&2; exit 2; }
fi
[[ -x "$PYTHON" ]] || { echo "asan.sh: PYTHON=$PYTHON is not an executable" >&2; exit 2; }
OUT=${ASAN_BUILD_DIR:-$ROOT/build/asan}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
CC=${CC:-gcc}

LIBASAN=$("$CC" -print-file-name=libasan.so)
if [[ ! -e "$LIBASAN" ]]; then
    echo "asan.sh: $CC has no libasan.so (install libasan / gcc's sanitizer runtime)" >&2
    exit 2
fi

# The build requirements: pyproject.toml's [build-system] requires ("name>=version" each).
# missing_requirements PY prints those PY lacks, one per line (all of them if it cannot tell).
read -r -d '' REQUIREMENTS_PY << 'PY' || true
import re, sys
from importlib import metadata

text = open(sys.argv[1], encoding="utf-8").read()
table = re.search(r"^\[build-system\]$(.*?)(?=^\[|\Z)", text, re.M | re.S).group(1)
requires = re.findall(r'"([^"]+)"', re.search(r"requires\s*=\s*\[(.*?)\]", table, re.S).group(1))

def numbers(version):
    return tuple(int(n) for n in re.findall(r"\d+", version)[:3])

for req in requires:
    name, _, least = (part.strip() for part in req.partition(">="))
    try:
        ok = numbers(metadata.version(name)) >= numbers(least or "0")
    except metadata.PackageNotFoundError:
        ok = False
    if not ok:
        print(req)
PY
missing_requirements() {
    if ! "$1" -c "$REQUIREMENTS_PY" "$ROOT/pyproject.toml" 2> /dev/null; then
        sed -n 's/^requires *= *\[\(.*\)\]/\1/p' "$ROOT/pyproject.toml" | grep -o '"[^"]*"' | tr -d '"'
    fi
}

BUILD_PYTHON=$PYTHON
mapfile -t MISSING < <(missing_requirements "$PYTHON")
if ((${#MISSING[@]})); then
    BUILD_PYTHON="$OUT/build-env/bin/python"
    mapfile -t STILL < <([[ -x "$BUILD_PYTHON" ]] && missing_requirements "$BUILD_PYTHON" || printf '%s\n' "${MISSING[@]}")
    if ((${#STILL[@]})); then
        echo "== $PYTHON lacks ${MISSING[*]}: installing them into $OUT/build-env"
        rm -rf "$OUT/build-env"
        "$PYTHON" -m venv "$OUT/build-env"
        "$BUILD_PYTHON" -m pip install --quiet "${MISSING[@]}"
    fi
fi

echo "== building backprop_core with -fsanitize=address in $OUT"
mkdir -p "$OUT/src/backprop_core"
cp -p "$ROOT/setup.py" "$OUT/src/"
for f in "$ROOT"/backprop_core/*; do  # sources and headers; not the normal build's output
    case "$f" in *.so | *.c | *.pyd | */__pycache__) ;; *) cp -p "$f" "$OUT/src/backprop_core/" ;; esac
done
(cd "$OUT/src" && CC="$CC" BACKPROP_ASAN=1 "$BUILD_PYTHON" setup.py -q build_ext --inplace)

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
