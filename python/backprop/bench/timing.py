"""How the runner measures, and what it records about the machine.

calibrate and seconds_per_call: the timing loop; take_turns: the tools of a case timed in
rounds, one timing of each per round. import_time: `import backprop` in fresh
interpreters. load_average and cpu_name: the machine. load_blas, blas_report (threadpoolctl)
and environment_note: which BLAS libraries run, with which kernel, and whether
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE override OpenBLAS's choice.
"""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import backprop as bp
from backprop_core import blas_source
from backprop_core._blas import _gemm_floor

OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# -- timing ------------------------------------------------------------------------------------


def calibrate(fn: Callable[[], object], min_seconds: float) -> int:
    """After two warm-up calls, how many calls of fn last about min_seconds."""
    fn()
    start = time.perf_counter()
    fn()
    one = max(time.perf_counter() - start, 1e-9)
    return max(1, int(min_seconds / one))


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    """One timing: mean seconds per call over `calls` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def take_turns(
    calls: dict[str, tuple[Callable[[], object], int]],
    rounds: int,
    before: Callable[[str], object],
) -> dict[str, list[float]]:
    """Time every tool once per round, in turn, `rounds` times; calls: tool -> (fn, calls per
    timing). before(tool) runs before each timing, untimed (pauses, thread settings). A change
    in the machine's load during the rounds hits every tool alike, and round i's figures form
    a pair (paired ratios). Returns tool -> seconds per call, one per round."""
    times: dict[str, list[float]] = {tool: [] for tool in calls}
    for _ in range(rounds):
        for tool, (fn, n) in calls.items():
            before(tool)
            times[tool].append(seconds_per_call(fn, n))
    return times


def import_time(runs: int) -> dict[str, float]:
    """Median over fresh interpreters of the time `import backprop` takes inside each, and
    of each subprocess's whole wall time (with and without the import).

    As an installed package runs it: from cached bytecode (pip compiles it at install). The
    subprocesses may write it (PYTHONDONTWRITEBYTECODE is dropped from their environment) and
    a first, untimed import does, so that an editable tree is timed like a wheel."""
    code = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run(module: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", code.format(module)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return float(out.stdout.strip())

    run("backprop")
    inner, wall, numpy_alone = [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        inner.append(run("backprop"))
        wall.append(time.perf_counter() - start)
        numpy_alone.append(run("numpy"))
    return {
        "import_seconds": statistics.median(inner),
        "process_wall_seconds": statistics.median(wall),
        "numpy_import_seconds": statistics.median(numpy_alone),
        "runs": runs,
    }


# -- the machine -------------------------------------------------------------------------------


def load_average() -> str | None:
    """The 1, 5 and 15-minute load averages (Linux), to judge how quiet the machine was."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- BLAS --------------------------------------------------------------------------------------


def load_blas() -> None:
    """The library fetches its BLAS (numpy's or scipy's) on first use: fetch it now, and load
    scipy's too (scikit-learn uses it), so that reports and thread limits see both."""
    # loading scipy's OpenBLAS is the point here, at this moment, not at import of the runner
    importlib.import_module("scipy.linalg.cython_blas")
    _gemm_floor([], 0)


def blas_report() -> list[dict[str, Any]]:
    """The BLAS/OpenMP libraries loaded by numpy, scipy and torch (threadpoolctl)."""
    try:
        # optional (the bench extra): without it the libraries are reported as unknown
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    load_blas()
    rows = []
    for info in threadpool_info():
        path = str(info.get("filepath", ""))
        owners = {
            "numpy.libs": "numpy",
            "scipy.libs": "scipy",
            "torch": "torch",
            "scikit_learn": "sklearn",
        }
        owner = next((o for key, o in owners.items() if key in path), "?")
        rows.append(
            {
                "owner": owner,
                "user_api": info.get("user_api"),
                "library": info.get("internal_api"),
                "version": info.get("version"),
                "kernel": info.get("architecture"),
                "threads": info.get("num_threads"),
                "file": os.path.basename(path),
            }
        )
    torch = sys.modules.get("torch")
    if torch is not None:  # torch links its BLAS (MKL) statically: threadpoolctl cannot see it
        config = torch.__config__.show()
        blas = next((w for w in config.replace(",", " ").split() if w.startswith("BLAS_INFO=")), "")
        capability = next(
            (
                line.split(":", 1)[1].strip()
                for line in config.splitlines()
                if "CPU capability" in line
            ),
            None,
        )
        rows.append(
            {
                "owner": "torch",
                "user_api": "blas",
                "library": blas.partition("=")[2] or "?",
                "version": torch.__version__,
                "kernel": capability,
                "threads": "1 or 2 (set per tool)",
                "file": "(linked into libtorch)",
            }
        )
    return rows


def environment_note(libraries: list[dict[str, Any]] | None = None) -> str:
    """The report's environment note. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, read when OpenBLAS
    loads, make it run another kernel or blocking than it picks for this CPU, so when either
    is set the note says so, names the kernel each loaded OpenBLAS runs (from `libraries`,
    blas_report's rows; None leaves the kernels out), and tells how to measure without them.
    """
    overrides = [f"{v}={os.environ[v]}" for v in OPENBLAS_OVERRIDES if v in os.environ]
    if not overrides:
        return "environment: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are not set"
    running = ""
    if libraries is not None:
        kernels = [
            f"{b['owner']}'s OpenBLAS {b['version']}: {b['kernel']} kernel"
            for b in libraries
            if b["library"] == "openblas"
        ]
        if kernels:
            running = f" ({'; '.join(kernels)})"
        elif libraries:
            running = " (no OpenBLAS is loaded)"
        else:
            running = " (kernel unknown: threadpoolctl is not installed)"
    return (
        f"environment: NOTE: {' and '.join(overrides)} {'is' if len(overrides) == 1 else 'are'} "
        "set, so OpenBLAS runs the kernel or blocking they choose instead of the one it picks "
        f"for this CPU{running}, and the figures are for that setting.\n"
        "  To measure without them: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
        "python -m backprop.bench ... (same options)"
    )


def machine(modules: tuple[str, ...]) -> dict[str, Any]:
    """A report's description of the run: date, CPU, Python, the versions of backprop, numpy
    and those of `modules` that are loaded, the BLAS libraries and the environment note."""
    blas = blas_report()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "backprop": bp.__version__,
        "numpy": np.__version__,
        "versions": {
            m: getattr(sys.modules[m], "__version__", "?") for m in modules if m in sys.modules
        },
        "blas": blas,
        "backprop_blas": blas_source(),
        "environment": environment_note(blas),
    }
