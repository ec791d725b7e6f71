"""The command line: parse_args, run (time the chosen tools on the chosen cases and return the
report) and main (run, print, and write the --json and --plot files)."""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from typing import Any

from .cases import CASES, DTYPES, INFERENCE_CASES, fit_batches, make_data
from .inference import run_inference
from .report import fmt_time, plot, print_report, shape, write_json
from .sparse import run_sparse
from .timing import (
    calibrate,
    environment_note,
    import_time,
    load_average,
    load_blas,
    machine,
    take_turns,
)
from .tools import (
    BUILDERS,
    INFERENCE_TOOLS,
    POOLS,
    TOOL_TITLES,
    TOOLS,
    Step,
    build_ours,
    settle,
    split_runnable,
)

DESCRIPTION = (
    "Side-by-side timing of one training step: this library, plain NumPy, PyTorch, scikit-learn."
)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the chosen tools on the chosen cases; the report --json writes (see main).
    With --inference, the predict tools instead (backprop.bench.inference)."""
    if getattr(args, "inference", False):
        return run_inference(args)
    if [c.strip() for c in args.cases.split(",") if c.strip()] == ["sparse"]:
        return run_sparse(args)
    dtypes = [d.strip() for d in getattr(args, "dtype", "float32").split(",") if d.strip()]
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for c in cases:
        if c == "sparse":
            raise SystemExit("--cases: sparse runs alone (other tools, one epoch each)")
        if c not in CASES:
            raise SystemExit(
                f"--cases: unknown case {c!r}; choose from {','.join(CASES)}, or sparse alone"
            )
    for t in tools:
        if t not in TOOLS:
            raise SystemExit(f"--tools: unknown tool {t!r}; choose from {','.join(TOOLS)}")
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 7)
    min_seconds = 0.01 if args.quick else 0.1
    settle_s = 0.0 if args.threads == 1 else 0.2  # one thread per BLAS: no idle pollers
    runnable, skipped = split_runnable(tools)

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
    for name, dtype in [(c, d) for c in cases for d in dtypes]:  # a case's dtypes together
        case = CASES[name]
        data = make_data(case, fit_batches(case, args.quick), dtype=dtype)
        build_ours(case, data)  # data.init: the initial weights every tool starts from
        case_repeat = min(repeat, 3) if name == "XL" else repeat
        steps: dict[str, Step] = {}
        calls: dict[str, int] = {}
        # grouped by thread pool (see POOLS); listed in TOOLS order below
        order = sorted(runnable, key=lambda t: POOLS[t])
        for tool in order:
            if tool == "sklearn" and name == "XL":
                why = "not run on XL (too slow)"
                skipped.append({"tool": tool, "case": name, "dtype": dtype, "reason": why})
                continue
            settle(tool, settle_s)
            steps[tool] = BUILDERS[tool](case, data)
            calls[tool] = calibrate(steps[tool].call, min_seconds)
        # round-robin: a change in the machine's load during a case hits every tool alike
        turns = {tool: (step.call, calls[tool]) for tool, step in steps.items()}
        per_call = take_turns(turns, case_repeat, lambda tool: settle(tool, settle_s))
        times = {tool: [t / steps[tool].steps for t in per_call[tool]] for tool in steps}
        for tool in (t for t in TOOLS if t in steps):
            step = steps[tool]
            seconds = statistics.median(times[tool])
            results.append(
                {
                    "case": name,
                    "dtype": dtype,
                    "tool": tool,
                    "seconds": seconds,
                    "timings": times[tool],
                    "calls_per_timing": calls[tool],
                    "repeats": case_repeat,
                    "steps_per_call": step.steps,
                }
            )
            print(
                f"  {name:>2} {dtype} {TOOL_TITLES[tool]:<26} {fmt_time(seconds):>10}", flush=True
            )
        del steps
    imp = import_time(3 if args.quick else 7) if not args.no_import_time else None
    meta = machine(("scipy", "torch", "sklearn"))
    meta |= {
        "dtype": ",".join(dtypes),
        "dtypes": dtypes,
        "repeat": repeat,
        "min_seconds_per_timing": min_seconds,
        "blas_threads_limit": args.threads,
        "pause_between_thread_pools_seconds": settle_s,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    return shape(meta, cases, runnable, results, skipped, imp, args.threads, dtypes)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m backprop.bench", description=DESCRIPTION)
    p.add_argument(
        "--cases",
        default="T,S,M,L,XL",
        help="comma-separated, from T,S,M,L,XL; or sparse alone: one epoch over a TF-IDF-like "
        "sparse X against scikit-learn and PyTorch (backprop.bench.sparse)",
    )
    p.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated, from {','.join(TOOLS)}"
    )
    p.add_argument(
        "--repeat",
        "--runs",
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
    p.add_argument(
        "--dtype",
        default="float32",
        help="comma-separated, from float32,float64: the training step in each (default float32)",
    )
    p.add_argument(
        "--inference",
        action="store_true",
        help="instead: predict (one forward pass) of backprop, onnxruntime and PyTorch, on the "
        f"cases {','.join(INFERENCE_CASES)} unless given ('M b64': a network at a batch "
        "size), at 1 and 2 threads (or --threads), --repeat paired runs (default 7, at least 5 "
        f"unless --quick); tools {','.join(INFERENCE_TOOLS)}",
    )
    p.add_argument(
        "--mpi",
        type=int,
        metavar="N",
        help="instead: data-parallel samples/s of 1 vs N MPI ranks (1 BLAS thread each) and "
        "of one process with N BLAS threads, --runs paired runs (default 5), cases M,L unless "
        "given; needs the mpi extra (see backprop.bench.mpi)",
    )
    args = p.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be >= 1")
    for d in args.dtype.split(","):
        if d.strip() not in DTYPES:
            p.error(f"--dtype: unknown dtype {d.strip()!r}; choose from {','.join(DTYPES)}")
    if args.inference:  # its own cases, tools and thread counts
        if args.cases == p.get_default("cases"):
            args.cases = ",".join(INFERENCE_CASES)
        if args.tools == p.get_default("tools"):
            args.tools = ",".join(INFERENCE_TOOLS)
        if args.repeat is not None and args.repeat < 5 and not args.quick:
            p.error("--inference: --repeat must be >= 5 (paired runs), or use --quick")
        for opt in ("dtype", "plot", "mpi"):
            if getattr(args, opt, None) != p.get_default(opt):
                p.error(f"--{opt} does not apply to --inference")
    if args.mpi is not None:  # its own defaults; the single-process options do not apply
        if args.mpi < 2:
            p.error("--mpi must be >= 2")
        if args.cases == p.get_default("cases"):
            args.cases = "M,L"
        for opt in ("tools", "threads", "plot"):
            if getattr(args, opt) != p.get_default(opt):
                p.error(f"--{opt} does not apply to --mpi")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.mpi is not None:
        # not at import: its workers run as `python -m backprop.bench.mpi`, which runpy
        # would find already imported
        from .mpi import main as mpi_main

        mpi_main(args)
        return
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
