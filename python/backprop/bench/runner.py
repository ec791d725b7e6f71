"""The command line: parse_args, run (time the chosen tools on the chosen cases and return the
report) and main (run, print, and write the --json and --plot files)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import backprop as bp
from backprop_core import blas_source

from .cases import CASES, fit_batches, make_data
from .report import fmt_time, plot, print_report, shape, write_json
from .timing import (
    blas_report,
    calibrate,
    cpu_name,
    environment_note,
    import_time,
    load_average,
    load_blas,
    seconds_per_call,
)
from .tools import BUILDERS, POOLS, TOOL_TITLES, TOOLS, Step, available, build_ours, settle

DESCRIPTION = (
    "Side-by-side timing of one training step: this library, plain NumPy, PyTorch, scikit-learn."
)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the chosen tools on the chosen cases; the report --json writes (see main)."""
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for c in cases:
        if c not in CASES:
            raise SystemExit(f"--cases: unknown case {c!r}; choose from {','.join(CASES)}")
    for t in tools:
        if t not in TOOLS:
            raise SystemExit(f"--tools: unknown tool {t!r}; choose from {','.join(TOOLS)}")
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 7)
    min_seconds = 0.01 if args.quick else 0.1
    settle_s = 0.0 if args.threads == 1 else 0.2  # one thread per BLAS: no idle pollers
    skipped: list[dict[str, str]] = []
    for t in tools:
        why = available(t)
        if why is not None:
            skipped.append({"tool": t, "case": "*", "reason": why})
    runnable = [t for t in tools if not any(s["tool"] == t for s in skipped)]

    # which kernels run is left to the report: finding out loads scipy's OpenBLAS, which would
    # then sit in the process during the timings, unlike in a run without the variables
    print(environment_note(), flush=True)
    load_before = load_average()
    if args.threads is not None:
        try:
            # optional (the bench extra): only --threads needs it
            from threadpoolctl import threadpool_limits
        except ImportError:
            raise SystemExit("--threads needs threadpoolctl (pip install threadpoolctl)") from None
        load_blas()  # so that the limit reaches it too

        threadpool_limits(args.threads, user_api="blas")  # for the rest of this process
    results: list[dict[str, Any]] = []
    for name in cases:
        case = CASES[name]
        data = make_data(case, fit_batches(case, args.quick))
        build_ours(case, data)  # data.init: the initial weights every tool starts from
        case_repeat = min(repeat, 3) if name == "XL" else repeat
        steps: dict[str, Step] = {}
        calls: dict[str, int] = {}
        # grouped by thread pool (see POOLS); listed in TOOLS order below
        order = sorted(runnable, key=lambda t: POOLS[t])
        for tool in order:
            if tool == "sklearn" and name == "XL":
                skipped.append({"tool": tool, "case": name, "reason": "not run on XL (too slow)"})
                continue
            settle(tool, settle_s)
            steps[tool] = BUILDERS[tool](case, data)
            calls[tool] = calibrate(steps[tool].call, min_seconds)
        # round-robin: a change in the machine's load during a case hits every tool alike
        times: dict[str, list[float]] = {tool: [] for tool in steps}
        for _ in range(case_repeat):
            for tool, step in steps.items():
                settle(tool, settle_s)
                times[tool].append(seconds_per_call(step.call, calls[tool]) / step.steps)
        for tool in (t for t in TOOLS if t in steps):
            step = steps[tool]
            seconds = statistics.median(times[tool])
            results.append(
                {
                    "case": name,
                    "tool": tool,
                    "seconds": seconds,
                    "calls_per_timing": calls[tool],
                    "repeats": case_repeat,
                    "steps_per_call": step.steps,
                }
            )
            print(f"  {name:>2} {TOOL_TITLES[tool]:<26} {fmt_time(seconds):>10}", flush=True)
        del steps
    imp = import_time(3 if args.quick else 7) if not args.no_import_time else None
    blas = blas_report()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "backprop": bp.__version__,
        "numpy": np.__version__,
        "versions": {
            m: getattr(sys.modules[m], "__version__", "?")
            for m in ("scipy", "torch", "sklearn")
            if m in sys.modules
        },
        "blas": blas,
        "backprop_blas": blas_source(),
        "environment": environment_note(blas),
        "dtype": "float32",
        "repeat": repeat,
        "min_seconds_per_timing": min_seconds,
        "blas_threads_limit": args.threads,
        "pause_between_thread_pools_seconds": settle_s,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    return shape(meta, cases, runnable, results, skipped, imp, args.threads)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m backprop.bench", description=DESCRIPTION)
    p.add_argument("--cases", default="T,S,M,L,XL", help="comma-separated, from T,S,M,L,XL")
    p.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated, from {','.join(TOOLS)}"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timings per figure (default 7; 3 with --quick; at most 3 on XL)",
    )
    p.add_argument("--quick", action="store_true", help="short timings and a smaller fit epoch")
    p.add_argument("--json", metavar="PATH", help="save the figures as JSON")
    p.add_argument("--plot", metavar="PATH.png", help="save a log-scale bar chart")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit every BLAS (numpy's, scipy's) to this many threads (default: as loaded)",
    )
    p.add_argument("--no-import-time", action="store_true", help="skip the import-time check")
    args = p.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    report = run(args)
    print_report(report)
    if args.json:
        write_json(report, args.json)
        print(f"\nwrote {args.json}")
    if args.plot:
        try:
            plot(report, args.plot)
            print(f"wrote {args.plot}")
        except ImportError:
            print(
                "skipped --plot: matplotlib is not installed (pip install 'backprop-core[bench]')"
            )
