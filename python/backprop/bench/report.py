"""The runner's output: shape (the report dict that --json writes), write_json, fmt_time,
table (the figures as Markdown), targets_table (the project's performance goals),
print_report (the whole report on stdout) and plot (a log-scale bar chart, with matplotlib).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .cases import CASES, targets
from .tools import TOOL_TITLES, TOOLS

# -- the report dict ---------------------------------------------------------------------------


def shape(
    meta: dict[str, Any],
    cases: list[str],
    tools: list[str],
    results: list[dict[str, Any]],
    skipped: list[dict[str, str]],
    imp: dict[str, float] | None,
    threads: int | None,
) -> dict[str, Any]:
    """The report: each result gets its ratio to this library's train_step in the same case
    and its GFLOP/s (the GEMM floor's work over its time), and the goals are scored."""
    measured = {(r["case"], r["tool"]): float(r["seconds"]) for r in results}
    for r in results:
        ours = measured.get((r["case"], "ours"))
        r["ratio_to_ours"] = None if ours is None else r["seconds"] / ours
        r["gflops"] = CASES[r["case"]].flops / r["seconds"] / 1e9
    return {
        "meta": meta,
        "cases": cases,
        "tools": tools,
        "results": results,
        "skipped": skipped,
        "import_time": imp,
        "targets": targets(measured, None if imp is None else imp["import_seconds"], threads),
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


def table(report: dict[str, Any]) -> str:
    tools = [t for t in TOOLS if any(r["tool"] == t for r in report["results"])]
    lines = [
        "| case | layers | batch | " + " | ".join(TOOL_TITLES[t] for t in tools) + " |",
        "|---|---|---|" + "---|" * len(tools),
    ]
    by_key = {(r["case"], r["tool"]): r for r in report["results"]}
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
    lines = ["| case | target | measured | pass |", "|---|---|---|---|"]
    for r in rows:
        v = r["measured"]
        measured = "—" if v is None else (f"{v:.3f} s" if r["case"] == "-" else f"{v:.2f}")
        ok = {None: "not measured", True: "pass", False: "FAIL"}[r["pass"]]
        lines.append(f"| {r['case']} | {r['target']} | {measured} | {ok} |")
    return "\n".join(lines)


def print_report(report: dict[str, Any]) -> None:
    meta = report["meta"]
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
    print("Median time per training step (ratio to backprop train_step in this run):")
    print(table(report))
    for s in report["skipped"]:
        print(f"skipped {s['tool']} ({s['case']}): {s['reason']}")
    imp = report["import_time"]
    if imp is not None:
        print(
            f"\nimport backprop in a fresh interpreter: {imp['import_seconds']:.3f} s (median of "
            f"{imp['runs']}; whole process {imp['process_wall_seconds']:.3f} s; numpy "
            f"alone {imp['numpy_import_seconds']:.3f} s)"
        )
    print("\nThe project's performance goals:")
    print(targets_table(report["targets"]))


# -- the chart ---------------------------------------------------------------------------------


def plot(report: dict[str, Any], path: str) -> None:
    """A log-scale bar chart of the figures; raises ImportError without matplotlib."""
    import matplotlib  # optional (the bench extra): imported only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = report["cases"]
    tools = [t for t in TOOLS if any(r["tool"] == t for r in report["results"])]
    by_key = {(r["case"], r["tool"]): r["seconds"] for r in report["results"]}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(cases) + 2), 4.5))
    width = 0.8 / max(1, len(tools))
    for j, tool in enumerate(tools):
        xs = [i + (j - (len(tools) - 1) / 2) * width for i in range(len(cases))]
        ys = [by_key.get((c, tool), np.nan) * 1e6 for c in cases]
        ax.bar(xs, ys, width, label=TOOL_TITLES[tool])
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([f"{c}\n{CASES[c].label}\nbatch {CASES[c].batch}" for c in cases])
    ax.set_ylabel("time per training step (µs, log scale)")
    meta = report["meta"]
    threads = meta["blas_threads_limit"]
    blas = f"BLAS {threads} thread(s)" if threads else "BLAS threads as loaded"
    ax.set_title(
        f"float32 training step, {meta['date']}, {meta['cpu']} ({meta['cpus']} CPUs), {blas}, "
        f"load {meta['load_average_before']}",
        fontsize=8,
    )
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
