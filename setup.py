"""Build script: only the Cython extensions. Metadata and tool config live in pyproject.toml.

Environment toggles:
  BACKPROP_CYTHON_DEBUG=1   bounds checks and debug asserts in the kernels
  BACKPROP_CYTHON_TRACE=1   line tracing, for coverage of the .pyx files
  BACKPROP_NATIVE=1         -march=native (local builds only; wheels stay portable)
  BACKPROP_ASAN=1           AddressSanitizer (-O1 -g); used by scripts/asan.sh, never for wheels
"""

import os
import sys

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - only hit outside PEP 517 builds
    sys.exit("backprop-core needs Cython>=3.0 to build: pip install 'Cython>=3.0'")

MODULES = ["_blas", "_checks", "_dense", "_activations", "_losses", "_optim", "_executor"]

DEBUG = os.environ.get("BACKPROP_CYTHON_DEBUG") == "1"
TRACE = os.environ.get("BACKPROP_CYTHON_TRACE") == "1"
NATIVE = os.environ.get("BACKPROP_NATIVE") == "1"
ASAN = os.environ.get("BACKPROP_ASAN") == "1"

compile_args = ["-O3"] if sys.platform != "win32" else ["/O2"]
if NATIVE:
    compile_args.append("-march=native")
link_args = []
if ASAN:  # -O1 after -O3 wins: ASan's reports stay readable at little cost
    compile_args += ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"]
    link_args = ["-fsanitize=address"]
macros = [("CYTHON_TRACE_NOGIL", "1")] if TRACE else []

extensions = [
    Extension(
        f"backprop_core.{name}",
        [f"backprop_core/{name}.pyx"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        define_macros=macros,
        # dlopen/dlsym (numpy's BLAS, _blas.pyx) live in libdl before glibc 2.34
        libraries=["dl"] if name == "_blas" and sys.platform.startswith("linux") else [],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": False,
            "initializedcheck": DEBUG,
            "nonecheck": False,
            "cdivision": True,
            "embedsignature": True,
            "binding": True,
            "linetrace": TRACE,
        },
    ),
)
