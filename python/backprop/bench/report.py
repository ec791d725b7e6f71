"""The runner's output: shape and shape_inference (the report dicts that --json writes),
write_json, fmt_time, table and inference_table (the figures as Markdown), targets_table (the
project's performance goals), print_report (the whole report on stdout) and plot (a log-scale
bar chart, with matplotlib).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from .cases import CASES, inference_case, inference_targets, targets
from .sparse import print_sparse
from .tools import INFERENCE_TOOLS, TOOL_TITLES, TOOLS

# -- the report dict ---------------------------------------------------------------------------


def shape(
    meta: dict[str, Any],
    cases: list[str],
    tools: list[str],
    results: list[dict[str, Any]],
    skipped: list[dict[str, str]],
    imp: dict[str, float] | None,
    threads: int | None,
    dtypes: Sequence[str] = ("float32",),
) -> dict[str, Any]:
    """The report: each result gets its ratio to this library's train_step in the same case
    and dtype (the ratio of the medians; "paired_ratio_to_ours": the median of the rounds'
    ratios) and its GFLOP/s (the GEMM floor's work over its time), and the goals are scored,
    per dtype."""
    measured = {(r["case"], r.get("dtype", "float32"), r["tool"]): r for r in results}
    for r in results:
        ours = measured.get((r["case"], r.get("dtype", "float32"), "ours"))
        r["ratio_to_ours"] = None if ours is None else r["seconds"] / ours["seconds"]
        r["paired_ratio_to_ours"] = (
            None
            if ours is None or "timings" not in r
            else statistics.median(
                a / b for a, b in zip(r["timings"], ours["timings"], strict=True)
            )
        )
        r["gflops"] = CASES[r["case"]].flops / r["seconds"] / 1e9
    import_s = None if imp is None else imp["import_seconds"]
    goals: list[dict[str, Any]] = []
    for dtype in dtypes:
        of_dtype = {(c, t): float(r["seconds"]) for (c, d, t), r in measured.items() if d == dtype}
        goals += targets(of_dtype, import_s, threads, dtype, import_row=False)
    goals += targets({}, import_s)  # the import-time goal, once
    return {
        "meta": meta,
        "cases": cases,
        "dtypes": list(dtypes),
        "tools": tools,
        "results": results,
        "skipped": skipped,
        "import_time": imp,
        "targets": goals,
    }


def shape_inference(
    meta: dict[str, Any],
    cases: list[str],
    threads: list[int],
    tools: list[str],
    results: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
) -> dict[str, Any]:
    """The --inference report: each result has its paired ratio to predict (set by the
    runner) and gets its GFLOP/s (the forward pass's products); the goal is scored."""
    for r in results:
        case = inference_case(r["case"])
        pairs = zip(case.widths[:-1], case.widths[1:], strict=True)
        r["gflops"] = 2 * case.batch * sum(a * b for a, b in pairs) / r["seconds"] / 1e9
    ratios = {(r["case"], r["threads"], r["tool"]): r["ratio_to_ours"] for r in results}
    return {
        "mode": "inference",
        "meta": meta,
        "cases": cases,
        "threads": threads,
        "tools": tools,
        "results": results,
        "skipped": skipped,
        "targets": inference_targets({k: v for k, v in ratios.items() if v is not None}),
    }


def write_json(report: dict[str, Any], path: str) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1)


# -- text --------------------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(report: dict[str, Any], dtype: str = "float32") -> str:
    """The training figures of one dtype."""
    rows = [r for r in report["results"] if r.get("dtype", "float32") == dtype]
    tools = [t for t in TOOLS if any(r["tool"] == t for r in rows)]
    lines = [
        "| case | layers | batch | " + " | ".join(TOOL_TITLES[t] for t in tools) + " |",
        "|---|---|---|" + "---|" * len(tools),
    ]
    by_key = {(r["case"], r["tool"]): r for r in rows}
    for name in report["cases"]:
        case = CASES[name]
        cells = []
        for t in tools:
            r = by_key.get((name, t))
            if r is None:
                cells.append("—")
            elif t == "ours":
                cells.append(f"**{fmt_time(r['seconds'])}**")
            else:
                cells.append(f"{fmt_time(r['seconds'])} ({r['ratio_to_ours']:.2f}x)")
        extra = f" ({case.hidden}, {case.loss.upper()})"
        lines.append(f"| {name} | {case.label}{extra} | {case.batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets_table(rows: list[dict[str, Any]]) -> str:
    """The goals; with a dtype column when some are float64's, a threads column for
    --inference's."""
    extra = [
        k for k in ("dtype", "threads") if any(r.get(k) not in (None, "-", "float32") for r in rows)
    ]
    lines = [
        "| case | " + "".join(f"{k} | " for k in extra) + "target | measured | pass |",
        "|---|" + "---|" * len(extra) + "---|---|---|",
    ]
    for r in rows:
        v = r["measured"]
        measured = "—" if v is None else (f"{v:.3f} s" if r["case"] == "-" else f"{v:.2f}")
        ok = {None: "not measured", True: "pass", False: "FAIL"}[r["pass"]]
        cells = "".join(f"{r.get(k, '-')} | " for k in extra)
        lines.append(f"| {r['case']} | {cells}{r['target']} | {measured} | {ok} |")
    return "\n".join(lines)


def inference_table(report: dict[str, Any]) -> str:
    """The --inference figures: a row per case and thread count, in brackets each tool's
    paired ratio to predict (above 1: slower than predict)."""
    tools = [t for t in INFERENCE_TOOLS if any(r["tool"] == t for r in report["results"])]
    lines = [
        "| case | layers | batch | threads | " + " | ".join(TOOL_TITLES[t] for t in tools) + " |",
        "|---|---|---|---|" + "---|" * len(tools),
    ]
    by_key = {(r["case"], r["threads"], r["tool"]): r for r in report["results"]}
    for name in report["cases"]:
        case = inference_case(name)
        for threads in report["threads"]:
            cells = []
            for t in tools:
                r = by_key.get((name, threads, t))
                if r is None:
                    cells.append("—")
                elif t == "predict":
                    cells.append(f"**{fmt_time(r['seconds'])}**")
                elif r["ratio_to_ours"] is None:
                    cells.append(fmt_time(r["seconds"]))
                else:
                    cells.append(f"{fmt_time(r['seconds'])} ({r['ratio_to_ours']:.2f}x)")
            lines.append(
                f"| {name} | {case.label} | {case.batch} | {threads} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def print_report(report: dict[str, Any]) -> None:
    meta = report["meta"]
    _print_header(meta)
    if report.get("mode") == "sparse":
        print_sparse(report)
        return
    if report.get("mode") == "inference":
        print(
            f"Median time per predict call, {meta['dtype']} (in brackets: the median over "
            f"{meta['repeat']} paired rounds of the tool's time / backprop predict's):"
        )
        print(inference_table(report))
        _print_skipped(report)
        print("\nThe project's performance goal for predict:")
        print(targets_table(report["targets"]))
        return
    for dtype in report.get("dtypes", ["float32"]):
        print(f"Median time per training step, {dtype} (ratio to backprop train_step in this run):")
        print(table(report, dtype))
    _print_skipped(report)
    imp = report["import_time"]
    if imp is not None:
        print(
            f"\nimport backprop in a fresh interpreter: {imp['import_seconds']:.3f} s (median of "
            f"{imp['runs']}; whole process {imp['process_wall_seconds']:.3f} s; numpy "
            f"alone {imp['numpy_import_seconds']:.3f} s)"
        )
    print("\nThe project's performance goals:")
    print(targets_table(report["targets"]))


def _print_skipped(report: dict[str, Any]) -> None:
    for s in report["skipped"]:
        where = s["case"] + (f" {s['dtype']}" if "dtype" in s else "")
        print(f"skipped {s['tool']} ({where}): {s['reason']}")


def _print_header(meta: dict[str, Any]) -> None:
    """The machine, the versions, the BLAS libraries and the load, atop a report."""
    print()
    print(meta["environment"])  # first: figures taken under OPENBLAS_* overrides say so on top
    print(f"{meta['date']} | {meta['cpu']} | {meta['cpus']} CPUs | Python {meta['python']}")
    versions = ", ".join(
        f"{k} {v}" for k, v in {"numpy": meta["numpy"], **meta["versions"]}.items()
    )
    print(f"backprop {meta['backprop']}; {versions}")
    for b in meta["blas"]:
        print(
            f"  {b['owner']:>5}: {b['library']} {b['version']} ({b['user_api']}), "
            f"kernel {b['kernel']}, {b['threads']} threads [{b['file']}]"
        )
    if not meta["blas"]:
        print("  BLAS: threadpoolctl not installed, libraries unknown")
    print(f"  backprop's products go to {meta['backprop_blas']}'s BLAS (BACKPROP_BLAS chooses)")
    if meta["load_average_before"] is not None:
        print(
            f"load average (1, 5, 15 min) before: {meta['load_average_before']}, after: "
            f"{meta['load_average_after']} (other processes share the CPUs when above 0)"
        )
    print()


# -- the chart ---------------------------------------------------------------------------------


def plot(report: dict[str, Any], path: str) -> None:
    """A log-scale bar chart of the training figures, a group of bars per case and dtype;
    raises ImportError without matplotlib."""
    import matplotlib  # optional (the bench extra): imported only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = report.get("dtypes", ["float32"])
    groups = [(c, d) for c in report["cases"] for d in dtypes]
    tools = [t for t in TOOLS if any(r["tool"] == t for r in report["results"])]
    by_key = {
        (r["case"], r.get("dtype", "float32"), r["tool"]): r["seconds"] for r in report["results"]
    }
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 2), 4.5))
    width = 0.8 / max(1, len(tools))
    for j, tool in enumerate(tools):
        xs = [i + (j - (len(tools) - 1) / 2) * width for i in range(len(groups))]
        ys = [by_key.get((c, d, tool), np.nan) * 1e6 for c, d in groups]
        ax.bar(xs, ys, width, label=TOOL_TITLES[tool])
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    suffix = {d: "" if len(dtypes) == 1 else f"\n{d}" for d in dtypes}
    ax.set_xticklabels(
        [f"{c}\n{CASES[c].label}\nbatch {CASES[c].batch}{suffix[d]}" for c, d in groups]
    )
    ax.set_ylabel("time per training step (µs, log scale)")
    meta = report["meta"]
    threads = meta["blas_threads_limit"]
    blas = f"BLAS {threads} thread(s)" if threads else "BLAS threads as loaded"
    ax.set_title(
        f"{'/'.join(dtypes)} training step, {meta['date']}, {meta['cpu']} ({meta['cpus']} "
        f"CPUs), {blas}, load {meta['load_average_before']}",
        fontsize=8,
    )
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
