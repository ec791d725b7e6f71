"""Training-step time of this library (`train_step`, float32, SGD) against batch size and width,
beside the GEMM floor, for a 2-hidden-layer net: in=width, hidden width, width, out 10 (ReLU,
softmax cross-entropy):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/scaling.py
        [--batches 1,4,16,64,256,1024,4096] [--widths 16,64,256,1024,4096] [--threads N]
        [--busy-limit 0.2] [--retries 2] [--json docs/scaling.json] [--plot docs/scaling.png]

Each point builds the runner's model and step (`tools.ours_step`, one `train_step` on a fixed
batch) and the runner's GEMM floor (`tools.gemm_floor`: the step's matrix products alone,
through the same BLAS path, in one compiled call), for a `Case` of that shape. The two take
turns (repeats 5 below 0.1 s a step, else 3), each timing about --min-seconds long (at least
one call); the figure is the median, per step. The BLAS threads are the library's default (a
thread per core: 2 here) unless --threads sets them (bp.set_num_threads). With a thread on
every core, any other process's work slows the products a lot (bench/NOTES.md, 2026-12-02
06:00), so each point also records the cores other processes kept busy meanwhile (from
/proc/stat), and a point where that exceeded --busy-limit is timed again (at most --retries
times; a point still disturbed is marked * in the table). A full run on a quiet machine takes
about 5 minutes on 2 cores, most of it at batch 4096 x width 4096 (~4 s a step).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

import backprop as bp
from backprop.bench.cases import Case, make_data
from backprop.bench.timing import (
    calibrate,
    environment_note,
    load_average,
    machine,
    seconds_per_call,
)
from backprop.bench.tools import gemm_floor, ours_step

BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
WIDTHS = (16, 64, 256, 1024, 4096)
N_OUT = 10
ROOT = Path(__file__).resolve().parents[1]


def scaling_case(batch: int, width: int) -> Case:
    return Case(f"b{batch}w{width}", (width, width, width, N_OUT), batch, "relu", "ce")


def _cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process), from
    /proc/stat and os.times (None off Linux)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = sum(ticks) - ticks[3] - ticks[4]  # less idle and iowait
    own = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def others_cpu(before: tuple[float, float] | None, wall: float) -> float | None:
    """Cores that other processes kept busy on average since `before` (_cpu_seconds())."""
    after = _cpu_seconds()
    if before is None or after is None or wall <= 0:
        return None
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / wall)


def time_point(batch: int, width: int, min_seconds: float = 0.2) -> dict[str, Any]:
    """Median seconds per step of train_step and of the GEMM floor at one shape, and how many
    cores other processes used meanwhile (others_cpu: with the BLAS on every core, any other
    work slows the products, see bench/NOTES.md 2026-12-02 06:00)."""
    case = scaling_case(batch, width)
    data = make_data(case, 1)
    steps = {"ours": ours_step(case, data), "floor": gemm_floor(case, data)}
    cpu, start = _cpu_seconds(), time.perf_counter()
    calls = {k: calibrate(s.call, min_seconds) for k, s in steps.items()}
    one = min_seconds / calls["ours"] if calls["ours"] > 1 else None  # a rough step time
    repeats = 5 if one is not None and one < 0.1 else 3
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):  # in turns: a change in the machine's load hits both alike
        for k, s in steps.items():
            times[k].append(seconds_per_call(s.call, calls[k]) / s.steps)
    ours, floor = statistics.median(times["ours"]), statistics.median(times["floor"])
    return {
        "batch": batch,
        "width": width,
        "widths": list(case.widths),
        "flops": case.flops,
        "seconds": ours,
        "floor_seconds": floor,
        "ratio": ours / floor,
        "gflops": case.flops / ours / 1e9,
        "floor_gflops": case.flops / floor / 1e9,
        "calls": calls["ours"],
        "floor_steps_per_call": steps["floor"].steps,
        "repeats": repeats,
        "others_cpu": others_cpu(cpu, time.perf_counter() - start),
    }


def run(
    batches: list[int],
    widths: list[int],
    min_seconds: float = 0.2,
    verbose: bool = True,
    busy_limit: float = 0.2,
    retries: int = 2,
) -> list[dict[str, Any]]:
    """time_point over the grid; a point during which other processes kept more than
    busy_limit cores busy is timed again, up to `retries` times (the last try is kept, with
    "tries" and its others_cpu)."""
    rows = []
    for width in widths:
        for batch in batches:
            for attempt in range(retries + 1):
                row = time_point(batch, width, min_seconds)
                row["tries"] = attempt + 1
                busy = row["others_cpu"]
                if verbose:
                    print(
                        f"  width {width:>5} batch {batch:>5}: {fmt(row['seconds']):>10}  floor "
                        f"{fmt(row['floor_seconds']):>10}  {row['ratio']:.2f}x"
                        + ("" if busy is None else f"  (others {busy:.2f} cores)"),
                        flush=True,
                    )
                if busy is None or busy <= busy_limit:
                    break
            rows.append(row)
    return rows


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per batch, one column per width, "time (ratio to the floor)"."""
    batches = sorted({r["batch"] for r in rows})
    widths = sorted({r["width"] for r in rows})
    at = {(r["batch"], r["width"]): r for r in rows}
    lines = [
        "| batch | " + " | ".join(f"width {w}" for w in widths) + " |",
        "|---|" + "---|" * len(widths),
    ]
    for b in batches:
        cells = []
        for w in widths:
            r = at.get((b, w))
            mark = "" if r is None or not r.get("disturbed") else "*"
            cells.append("—" if r is None else f"{fmt(r['seconds'])} ({r['ratio']:.2f}x){mark}")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Two panels against batch size, one line per width: the ratio to the GEMM floor, and
    the time per step (solid) with the floor (dashed)."""
    import matplotlib  # optional (the bench extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = sorted({r["width"] for r in rows})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(widths)))
    for w, colour in zip(widths, colours, strict=True):
        pts = sorted((r for r in rows if r["width"] == w), key=lambda r: r["batch"])
        b = [r["batch"] for r in pts]
        left.plot(b, [r["ratio"] for r in pts], "o-", color=colour, label=f"width {w}")
        right.plot(b, [r["seconds"] for r in pts], "o-", color=colour, label=f"width {w}")
        right.plot(b, [r["floor_seconds"] for r in pts], "--", color=colour, alpha=0.7)
    batches = sorted({r["batch"] for r in rows})
    ratios = [r["ratio"] for r in rows]
    lo, hi = min([*ratios, 1.0]) * 0.9, max([*ratios, 1.2]) * 1.1
    left.axhline(1.0, color="grey", lw=0.8)
    left.axhline(1.2, color="grey", lw=0.8, ls=":")
    left.set_yscale("log")
    left.set_ylim(lo, hi)
    ticks = [t for t in (0.5, 0.8, 1, 1.2, 1.5, 2, 3, 5, 10, 20, 50, 100) if lo <= t <= hi]
    left.set_yticks(ticks, [f"{t:g}" for t in ticks])
    left.minorticks_off()
    left.set_ylabel("train_step / GEMM floor")
    left.set_title("ratio to the GEMM floor (dotted: 1.2x)")
    left.legend(fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("seconds per step")
    right.set_title("train_step (solid) and GEMM floor (dashed)")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("batch size")
        ax.grid(True, which="major", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--batches", default=",".join(map(str, BATCHES)))
    p.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: the BLAS's)")
    p.add_argument("--min-seconds", type=float, default=0.2, help="length of one timing")
    p.add_argument(
        "--busy-limit",
        type=float,
        default=0.2,
        help="time a point again when other processes kept more cores busy meanwhile",
    )
    p.add_argument("--retries", type=int, default=2, help="at most this many times")
    p.add_argument("--json", default=str(ROOT / "docs" / "scaling.json"), metavar="PATH")
    p.add_argument("--plot", default=str(ROOT / "docs" / "scaling.png"), metavar="PATH.png")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",") if b]
    widths = [int(w) for w in args.widths.split(",") if w]
    if args.threads is not None:
        bp.set_num_threads(args.threads)
    print(environment_note(), flush=True)
    load_before = load_average()
    start = time.perf_counter()
    rows = run(batches, widths, args.min_seconds, True, args.busy_limit, args.retries)
    for r in rows:
        r["disturbed"] = r["others_cpu"] is not None and r["others_cpu"] > args.busy_limit
    meta: dict[str, Any] = machine(()) | {
        "net": f"width-width-width-{N_OUT}, ReLU, softmax cross-entropy, SGD, float32",
        "threads": bp.get_num_threads(),
        "threads_set": args.threads,
        "min_seconds_per_timing": args.min_seconds,
        "busy_limit_cores": args.busy_limit,
        "disturbed_points": sum(r["disturbed"] for r in rows),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "run_seconds": time.perf_counter() - start,
    }
    print(f"\n{meta['date']} | {meta['cpu']} | {meta['cpus']} CPUs | {meta['threads']} BLAS "
          f"threads | load {load_before} -> {meta['load_average_after']}")  # fmt: skip
    for b in meta["blas"]:
        print(f"BLAS: {b['owner']}: {b['library']} {b['version']} {b['kernel']} "
              f"threads={b['threads']}")  # fmt: skip
    print(f"net: {meta['net']}; train_step per step (ratio to the GEMM floor)\n")
    print(table(rows))
    if meta["disturbed_points"]:
        print(f"* other processes kept more than {args.busy_limit} cores busy during this point "
              f"(after {args.retries} retries)")  # fmt: skip
    Path(args.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    try:
        title = (f"backprop train_step vs GEMM floor, {meta['net']}, {meta['threads']} BLAS "
                 f"threads, {meta['date']}")  # fmt: skip
        plot(rows, args.plot, title)
        print(f"wrote {args.plot}")
    except ImportError:
        print("skipped the plot: matplotlib is not installed (pip install 'backprop-core[bench]')")


if __name__ == "__main__":
    main()
