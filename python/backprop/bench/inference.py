"""--inference: one forward pass (predict) of this library, onnxruntime and PyTorch, side by
side in one process, at 1 and 2 threads.

    python -m backprop.bench --inference [--cases "S b1,S b32,M b1,M b64,L b256"]
                             [--tools predict,onnxruntime,torch_infer] [--threads N]
                             [--repeat 7] [--quick] [--json PATH]

The tools (tools.INFERENCE_BUILDERS) run the case's network from the same weights on the same
float32 batch: this library's `model.predict`, onnxruntime's CPU session on the file
`model.to_onnx` writes (intra_op_num_threads = the thread count), and the same network in
PyTorch under `torch.inference_mode()`; each takes a NumPy batch and returns a NumPy array.
Per case and thread count the tools take turns (timing.take_turns): each round times each
tool once, and a tool's ratio to predict is the median over the rounds of its time in a
round over predict's in the same round (paired). The goal (cases.inference_targets):
onnxruntime / predict >= 1 everywhere.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from .cases import Case, Data, inference_case, make_data
from .report import fmt_time, shape_inference
from .timing import (
    calibrate,
    environment_note,
    load_average,
    machine,
    take_turns,
)
from .tools import (
    INFERENCE_BUILDERS,
    INFERENCE_TOOLS,
    POOLS,
    TOOL_TITLES,
    Step,
    build_ours,
    settle,
    split_runnable,
)

#: the thread counts timed unless --threads names one
THREADS = (1, 2)


def run_inference(args: argparse.Namespace) -> dict[str, Any]:
    """Time the predict tools on the predict cases at each thread count; the report."""
    labels = [c.strip() for c in args.cases.split(",") if c.strip()]
    try:
        cases = [inference_case(label) for label in labels]
    except ValueError as e:
        raise SystemExit(f"--cases: {e}") from None
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in INFERENCE_TOOLS:
            raise SystemExit(
                f"--tools: unknown predict tool {t!r}; choose from {','.join(INFERENCE_TOOLS)}"
            )
    threads_list = [args.threads] if args.threads is not None else list(THREADS)
    if any(n < 1 for n in threads_list):
        raise SystemExit("--threads must be >= 1")
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 7)
    min_seconds = 0.01 if args.quick else 0.1
    runnable, skipped = split_runnable(tools)

    print(environment_note(), flush=True)
    load_before = load_average()
    results: list[dict[str, Any]] = []
    for case in cases:
        data = make_data(case, 1)
        build_ours(case, data)  # data.init: the weights every tool computes with
        for threads in threads_list:
            results += _time_case(case, data, threads, runnable, repeat, min_seconds)
    meta = machine(("scipy", "torch", "onnx", "onnxruntime"))
    meta |= {
        "dtype": "float32",
        "threads": threads_list,
        "repeat": repeat,
        "min_seconds_per_timing": min_seconds,
        "blas_threads_limit": None,
        "pause_between_thread_pools_seconds_above_1_thread": 0.2,
        "onnxruntime_session": "CPUExecutionProvider, intra_op_num_threads = threads, "
        "inter_op_num_threads 1, other options default (all graph optimizations)",
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    names = [c.name for c in cases]
    return shape_inference(meta, names, threads_list, runnable, results, skipped)


def _time_case(
    case: Case, data: Data, threads: int, tools: list[str], repeat: int, min_seconds: float
) -> list[dict[str, Any]]:
    """The tools on one case at one thread count, in turns: their result rows."""
    pause = 0.0 if threads == 1 else 0.2  # idle workers of the last pool (POOLS)
    steps: dict[str, Step] = {}
    calls: dict[str, int] = {}
    for tool in sorted(tools, key=lambda t: POOLS[t]):
        settle(tool, pause)
        step = INFERENCE_BUILDERS[tool](case, data, threads)
        if step.before is not None:
            step.before()
        calls[tool] = calibrate(step.call, min_seconds)
        steps[tool] = step

    def before(tool: str) -> None:
        settle(tool, pause)
        hook = steps[tool].before
        if hook is not None:
            hook()

    turns = {tool: (step.call, calls[tool]) for tool, step in steps.items()}
    times = take_turns(turns, repeat, before)
    ours = times.get("predict")
    rows = []
    for tool in (t for t in INFERENCE_TOOLS if t in steps):
        seconds = statistics.median(times[tool])
        paired = (
            None
            if ours is None
            else statistics.median(a / b for a, b in zip(times[tool], ours, strict=True))
        )
        rows.append(
            {
                "case": case.name,
                "threads": threads,
                "tool": tool,
                "seconds": seconds,
                "timings": times[tool],
                "ratio_to_ours": paired,
                "calls_per_timing": calls[tool],
                "repeats": repeat,
            }
        )
        ratio = "" if paired is None or tool == "predict" else f" ({paired:.2f}x)"
        print(
            f"  {case.name:>6} {threads}t {TOOL_TITLES[tool]:<24} {fmt_time(seconds):>10}{ratio}",
            flush=True,
        )
    return rows
