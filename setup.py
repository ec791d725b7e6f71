"""Build script: only the Cython extensions. Metadata and tool config live in pyproject.toml.

Environment toggles:
  BACKPROP_CYTHON_DEBUG=1   bounds checks and debug asserts in the kernels
  BACKPROP_CYTHON_TRACE=1   line tracing, for coverage of the .pyx files
  BACKPROP_NATIVE=1         -march=native (local builds only; wheels stay portable)
  BACKPROP_ASAN=1           AddressSanitizer (-O1 -g); used by scripts/asan.sh, never for wheels
  BACKPROP_DEBUG_INFO=1     keep debug info (-g) and symbols; by default the extensions are
                            release builds: -g0 (Python's own CFLAGS carry -g) and stripped at link
  BACKPROP_BUILD_JOBS=N     compile N extensions at a time (default: one per CPU)
  BACKPROP_SIMD=avx512f|avx2|default
                            compile only that clone of the element-wise kernels (backprop_core/
                            _simd.h) instead of all three chosen at load time: for testing each
                            instruction-set path on one machine (CI), never for wheels. A clone the
                            CPU lacks crashes with SIGILL (avx512f, avx2)
"""

import glob
import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - only hit outside PEP 517 builds
    sys.exit("backprop-core needs Cython>=3.0 to build: pip install 'Cython>=3.0'")

MODULES = [
    "_blas", "_checks", "_dense", "_activations", "_losses", "_optim", "_executor"
]

DEBUG = os.environ.get("BACKPROP_CYTHON_DEBUG") == "1"
TRACE = os.environ.get("BACKPROP_CYTHON_TRACE") == "1"
NATIVE = os.environ.get("BACKPROP_NATIVE") == "1"
ASAN = os.environ.get("BACKPROP_ASAN") == "1"
DEBUG_INFO = os.environ.get("BACKPROP_DEBUG_INFO") == "1" or ASAN
SIMD = os.environ.get("BACKPROP_SIMD", "")
if SIMD not in ("", "avx512f", "avx2", "default"):
    sys.exit(f"BACKPROP_SIMD={SIMD!r}: expected avx512f, avx2 or default")
if SIMD and NATIVE:  # -march=native would put native instructions in the "default" clone too
    sys.exit("BACKPROP_SIMD and BACKPROP_NATIVE exclude each other")
JOBS = int(os.environ.get("BACKPROP_BUILD_JOBS") or os.cpu_count() or 1)
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# -fno-math-errno: sqrt() need not set errno (nothing reads it), so that GCC and clang vectorise
# the optimizers' square roots (else each is a scalar sqrt with a call for negative input);
# -fno-trapping-math: no code reads the floating-point exception flags, so that GCC may turn
# a float comparison's branch into a select and vectorise the loop (the clamps of the
# softmax's exp below AVX-512; _simd.h). The results are the same IEEE values either way
compile_args = (
    ["-O3", "-fno-math-errno", "-fno-trapping-math"] if sys.platform != "win32" else ["/O2"]
)
if NATIVE:
    compile_args.append("-march=native")
link_args = []
if not DEBUG_INFO and sys.platform != "win32":  # MSVC: no debug info without /Zi anyway
    compile_args.append("-g0")  # after sysconfig's CFLAGS (-g): the last one wins
    if sys.platform.startswith("linux"):
        link_args.append("-s")  # no symbol table either (the kernels are static functions)
if ASAN:  # -O1 after -O3 wins: ASan's reports stay readable at little cost
    compile_args += ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"]
    link_args = ["-fsanitize=address"]
macros = [("CYTHON_TRACE_NOGIL", "1")] if TRACE else []
if SIMD:
    macros.append(("BP_SIMD_ONLY_" + SIMD.upper(), "1"))
# dlopen/dlsym/dlclose (numpy's BLAS, _blas.pyx) live in libdl before glibc 2.34, and are bound
# to their old symbol versions there (see _blas.pyx), so that the wheel runs on glibc >= 2.17.
# On glibc >= 2.34, -ldl finds only an empty libdl.a: name libdl.so.2 itself, so that older
# glibc loads it with the module.
dl_link_args = ["-Wl,--no-as-needed,-l:libdl.so.2"] if GLIBC else []

extensions = [
    Extension(
        f"backprop_core.{name}",
        [f"backprop_core/{name}.pyx"],
        extra_compile_args=compile_args,
        extra_link_args=link_args + (dl_link_args if name == "_blas" else []),
        define_macros=macros,
        libraries=["dl"] if name == "_blas" and sys.platform.startswith("linux") else [],
        # the headers the modules include: a change to one rebuilds them
        depends=sorted(glob.glob("backprop_core/*.h")),
    )
    for name in MODULES
]


DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "cdivision": True,
    "embedsignature": True,
    "binding": True,
    "linetrace": TRACE,
}


class BuildExt(build_ext):
    """build_ext compiling JOBS extensions at a time (threads; `-j N` still overrides), from C
    that Cython generates here, JOBS modules at a time (processes): only a build cythonizes,
    not the sdist or the metadata steps of a PEP 517 build."""

    def finalize_options(self):
        if self.parallel is None:
            self.parallel = JOBS
        super().finalize_options()

    def run(self):
        generated = cythonize(self.extensions, nthreads=JOBS, force=bool(self.force),
                              compiler_directives=DIRECTIVES)
        sources = {ext.name: ext.sources for ext in generated}
        for ext in self.extensions:  # the same objects: setuptools has annotated them
            ext.sources = sources[ext.name]
        super().run()


setup(cmdclass={"build_ext": BuildExt}, ext_modules=extensions)
