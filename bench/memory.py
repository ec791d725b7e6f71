"""Peak resident memory of `fit` on the runner's cases L and XL (float32): this library,
PyTorch (the same net) and plain NumPy (the runner's NumPy step), each in a process of its
own, less a baseline process that imports the same packages and holds the same data:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/memory.py [--cases L,XL]
        [--tools ours,torch,numpy] [--optimizers sgd,adam] [--epochs 2] [--repeat 2]
        [--json PATH]

What each process does, after importing numpy, backprop and backprop.bench (and torch for the
torch tool), making the case's data (`make_data`, the runner's `fit` epoch: L 4 x 256 rows,
XL 4 x 512 rows) and warming the tool up (its fit below on a 4-3-2 net: what the tool imports
or sets up once on first use, such as the ~70 MiB of modules torch.optim's first optimizer
imports, is then in the baseline too; column "warm-up"):
- baseline: nothing more;
- ours: builds the runner's model (He-initialised Dense + ReLU, softmax cross-entropy) with
  SGD(lr=1e-3) (the runner's) or Adam(lr=1e-3), then `model.fit(X, y, batch_size=batch,
  epochs=--epochs)`;
- torch: the same net of torch.nn.Linear + ReLU, CrossEntropyLoss, torch.optim.SGD (the
  runner's torch tool) or Adam, the runner's step (zero_grad, forward, backward, step) over
  shuffled batches gathered into one preallocated buffer, --epochs times;
- numpy: the runner's NumPy step (`tools.numpy_step`, SGD only: it has no Adam) over the same
  gathered batches.
The net peak is the process's peak resident set (ru_maxrss, or /proc's VmHWM when that reads
higher) less the baseline's, median over --repeat pairs (baseline and tool one after the
other). Threads are each library's default (a BLAS thread per core; torch's own count), and
the report prints them with the BLAS libraries loaded. A full run takes about 5 minutes.
Beside it: "model" (resident after building the model, less the baseline) and "in fit"
(the peak during the epochs above what was resident before them; the peak is reset before
`fit` through /proc/self/clear_refs).

This library's net peak is set against the model's theoretical need: parameters + gradients
+ optimizer state (none for SGD, two moments for Adam) + two batches' activations (every
layer's output for one batch, the gathered input batch included, and as much again for their
gradients). Goals: ours <= PyTorch's, and ours <= 1.2x the need.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import backprop as bp
from backprop.bench.cases import CASES, Case, Data, fit_batches, make_data
from backprop.bench.timing import environment_note, load_average, machine
from backprop.bench.tools import LR, numpy_step

HERE = Path(__file__).resolve()
MIB = 1 << 20
TOOLS = ("ours", "torch", "numpy")
OPTIMIZERS = ("sgd", "adam")
NEED_LIMIT = 1.2  # the goal: ours <= 1.2x the theoretical need


# -- what the model needs ----------------------------------------------------------------------


def theoretical_need(case: Case, optimizer: str, itemsize: int = 4) -> dict[str, int]:
    """Bytes the training needs at least: parameters, gradients, optimizer state and two
    batches' activations (each layer's output and the input batch, and their gradients)."""
    pairs = list(zip(case.widths[:-1], case.widths[1:], strict=True))
    n_params = sum(a * b + b for a, b in pairs)
    states = {"sgd": 0, "adam": 2}[optimizer]
    need = {
        "parameters": n_params * itemsize,
        "gradients": n_params * itemsize,
        "optimizer_state": states * n_params * itemsize,
        "activations": 2 * case.batch * sum(case.widths) * itemsize,
    }
    need["total"] = sum(need.values())
    return need


# -- one process: a baseline or a tool's fit ---------------------------------------------------


def _status_kib(field: str) -> int | None:
    """A "VmHWM"/"VmRSS" line of /proc/self/status in KiB (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current resident set (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def build_ours(case: Case, optimizer: str) -> bp.Sequential:
    """The runner's model (tools.build_ours, without its copy of the initial weights)."""
    layers: list[bp.Layer] = []
    n = len(case.widths) - 1
    for k in range(n):
        layers.append(bp.Dense(case.widths[k], case.widths[k + 1], weight_init="he"))
        if k < n - 1:
            layers.append(bp.ReLU())
    model = bp.Sequential(layers, seed=0)
    opt = bp.SGD(lr=LR) if optimizer == "sgd" else bp.Adam(lr=LR)
    model.compile(bp.SoftmaxCrossEntropy(), opt)
    return model


def _epochs_of_batches(data: Data, batch: int, epochs: int, step: Any, xb: Any, yb: Any) -> None:
    """`epochs` passes over data.X in a fresh random order, each batch gathered into xb, yb
    (preallocated, as this library's fit gathers) before step() runs on them."""
    n = data.X.shape[0]
    if n % batch:
        raise ValueError(f"{n} rows are not whole batches of {batch}")
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        perm = rng.permutation(n)
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            np.take(data.X, idx, axis=0, out=xb)
            np.take(data.y, idx, out=yb)
            step()


def fit_ours(case: Case, data: Data, optimizer: str, epochs: int) -> dict[str, Any]:
    model = build_ours(case, optimizer)
    built, reset = _status_kib("VmRSS"), _reset_peak()
    model.fit(data.X, data.y, batch_size=case.batch, epochs=epochs, seed=0)
    return {"rss_built_kib": built, "peak_reset": reset, "threads": bp.get_num_threads()}


def fit_torch(case: Case, data: Data, optimizer: str, epochs: int) -> dict[str, Any]:
    """The runner's torch tool's net and step (tools.torch_step), over gathered batches."""
    import torch  # optional (the bench extra): imported by the torch tool's processes only

    torch.manual_seed(0)
    mods: list[Any] = []
    n = len(case.widths) - 1
    for k in range(n):
        mods.append(torch.nn.Linear(case.widths[k], case.widths[k + 1]))
        if k < n - 1:
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods)
    loss_fn = torch.nn.CrossEntropyLoss()
    params = net.parameters()
    opt = torch.optim.SGD(params, lr=LR) if optimizer == "sgd" else torch.optim.Adam(params, lr=LR)
    xb = np.empty((case.batch, case.widths[0]), dtype=np.float32)
    yb = np.empty(case.batch, dtype=data.y.dtype)
    Xt, yt = torch.from_numpy(xb), torch.from_numpy(yb)  # views: the gathers refill them
    built, reset = _status_kib("VmRSS"), _reset_peak()

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(net(Xt), yt)
        loss.backward()
        opt.step()
        return float(loss.item())

    _epochs_of_batches(data, case.batch, epochs, step, xb, yb)
    return {"rss_built_kib": built, "peak_reset": reset, "threads": torch.get_num_threads()}


def fit_numpy(case: Case, data: Data, optimizer: str, epochs: int) -> dict[str, Any]:
    """The runner's NumPy step (tools.numpy_step, SGD) over gathered batches."""
    if optimizer != "sgd":
        raise ValueError("the runner's NumPy step is SGD only")
    # numpy_step copies data.init: hand it read-only broadcast views (no memory of their
    # own), so that its copies are the only weights held; the values change no memory
    pairs = zip(case.widths[:-1], case.widths[1:], strict=True)
    data.init = [
        (np.broadcast_to(np.float32(np.sqrt(1.0 / a)), (a, b)), np.zeros(b, np.float32))
        for a, b in pairs
    ]
    kept = data.Xb, data.yb  # held as in the baseline: the gather buffers below are extra
    data.Xb = np.empty((case.batch, case.widths[0]), dtype=np.float32)
    data.yb = np.empty(case.batch, dtype=data.y.dtype)
    step = numpy_step(case, data)
    data.init = []
    built, reset = _status_kib("VmRSS"), _reset_peak()
    _epochs_of_batches(data, case.batch, epochs, step.call, data.Xb, data.yb)
    data.Xb, data.yb = kept
    return {"rss_built_kib": built, "peak_reset": reset, "threads": _numpy_threads()}


FITS = {"ours": fit_ours, "torch": fit_torch, "numpy": fit_numpy}
TINY = Case("tiny", (4, 3, 2), 2, "relu", "ce")  # the warm-up: one-time costs, not the model's
SMOKE = Case("smoke", (256, 256, 10), 64, "relu", "ce")  # the smoke test's case (~0.3 MB)


def case_named(name: str) -> Case:
    """A case of the runner (CASES), or TINY / SMOKE."""
    return {TINY.name: TINY, SMOKE.name: SMOKE}.get(name) or CASES[name]


def _numpy_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    found = [i["num_threads"] for i in threadpool_info() if "numpy" in str(i.get("filepath"))]
    return int(found[0]) if found else None


def measure(
    tool: str, case_name: str, optimizer: str = "sgd", epochs: int = 2, baseline: bool = False
) -> dict[str, Any]:
    """In this process: make the case's data, warm the tool up (its fit on a tiny net: the
    modules it imports on first use, its runtime's one-time set-up), and, unless baseline,
    run the tool's fit on the case; the resident-memory figures in KiB. Meant for a fresh
    process (see run_worker)."""
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}; choose from {TOOLS}")
    if tool == "torch":
        import torch  # noqa: F401  (imported before the data, in the baseline too)
    case = case_named(case_name)
    data = make_data(case, fit_batches(case, quick=False))
    out: dict[str, Any] = {
        "tool": tool,
        "case": case_name,
        "optimizer": optimizer,
        "epochs": epochs,
        "baseline": baseline,
        "rows": int(data.X.shape[0]),
    }
    before = _status_kib("VmRSS")
    FITS[tool](TINY, make_data(TINY, 2), optimizer, 1)
    gc.collect()
    after = _status_kib("VmRSS")
    out["warm_up_kib"] = None if before is None or after is None else after - before
    start = time.perf_counter()
    if not baseline:
        out |= FITS[tool](case, data, optimizer, epochs)
    gc.collect()
    out["seconds"] = time.perf_counter() - start
    hwm, rss = _status_kib("VmHWM"), _status_kib("VmRSS")
    out["fit_peak_kib"] = hwm if out.get("peak_reset") else None
    out["rss_kib"] = rss
    # the whole run's peak: ru_maxrss (not reset; it can lag /proc's counters by a few pages)
    out["maxrss_kib"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, hwm or 0, rss or 0)
    return out


def run_worker(
    tool: str, case_name: str, optimizer: str, epochs: int, baseline: bool
) -> dict[str, Any]:
    """measure() in a fresh interpreter (this file run with --worker)."""
    spec = json.dumps([tool, case_name, optimizer, epochs, baseline])
    proc = subprocess.run(
        [sys.executable, str(HERE), "--worker", spec],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- the comparison ----------------------------------------------------------------------------


def compare(
    cases: list[str], tools: list[str], optimizers: list[str], epochs: int, repeat: int
) -> list[dict[str, Any]]:
    """One row per (case, optimizer, tool): median net figures over `repeat` pairs of a
    baseline process and a tool process, in MiB."""
    rows = []
    for case_name in cases:
        for optimizer in optimizers:
            for tool in tools:
                if tool == "numpy" and optimizer != "sgd":
                    continue
                net, model, in_fit, runs = [], [], [], []
                for _ in range(repeat):
                    base = run_worker(tool, case_name, optimizer, epochs, True)
                    got = run_worker(tool, case_name, optimizer, epochs, False)
                    runs.append({"baseline": base, "tool": got})
                    net.append((got["maxrss_kib"] - base["maxrss_kib"]) * 1024 / MIB)
                    model.append((got["rss_built_kib"] - base["rss_kib"]) * 1024 / MIB)
                    if got["fit_peak_kib"] is not None:
                        in_fit.append((got["fit_peak_kib"] - got["rss_built_kib"]) * 1024 / MIB)
                need = theoretical_need(case_named(case_name), optimizer)
                row: dict[str, Any] = {
                    "case": case_name,
                    "optimizer": optimizer,
                    "tool": tool,
                    "net_peak_mib": statistics.median(net),
                    "net_peak_runs_mib": net,
                    "model_mib": statistics.median(model),
                    "in_fit_mib": statistics.median(in_fit) if in_fit else None,
                    "baseline_peak_mib": runs[-1]["baseline"]["maxrss_kib"] * 1024 / MIB,
                    "warm_up_mib": runs[-1]["baseline"]["warm_up_kib"] * 1024 / MIB,
                    "need_mib": need["total"] / MIB,
                    "need_parts_mib": {k: v / MIB for k, v in need.items() if k != "total"},
                    "ratio_to_need": statistics.median(net) / (need["total"] / MIB),
                    "threads": runs[-1]["tool"].get("threads"),
                    "seconds": runs[-1]["tool"]["seconds"],
                }
                rows.append(row)
                print(
                    f"  {case_name:>2} {optimizer:<4} {tool:<5} net {row['net_peak_mib']:8.1f} MiB"
                    f"  ({', '.join(f'{v:.1f}' for v in net)})",
                    flush=True,
                )
    for row in rows:
        mates = [
            r
            for r in rows
            if (r["case"], r["optimizer"]) == (row["case"], row["optimizer"])
            and r["tool"] == "ours"
        ]
        ours = mates[0]["net_peak_mib"] if mates else 0.0
        row["ratio_to_ours"] = row["net_peak_mib"] / ours if ours > 0 else None
    return rows


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ours <= PyTorch's net peak, and ours <= 1.2x the need, per case and optimizer."""
    out = []
    for row in (r for r in rows if r["tool"] == "ours"):
        key = (row["case"], row["optimizer"])
        torch_rows = [
            r for r in rows if (r["case"], r["optimizer"]) == key and r["tool"] == "torch"
        ]
        if torch_rows:
            ratio = torch_rows[0]["net_peak_mib"] / max(row["net_peak_mib"], 1e-9)
            out.append({"case": key[0], "optimizer": key[1], "goal": "PyTorch / ours >= 1",
                        "measured": ratio, "pass": ratio >= 1})  # fmt: skip
        ratio = row["ratio_to_need"]
        out.append({"case": key[0], "optimizer": key[1], "goal": f"ours / need <= {NEED_LIMIT}",
                    "measured": ratio, "pass": ratio <= NEED_LIMIT})  # fmt: skip
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| case | optimizer | tool | net peak | model | in fit | need | net / need | / ours "
        "| warm-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        in_fit = "—" if r["in_fit_mib"] is None else f"{r['in_fit_mib']:.1f}"
        to_ours = "—" if r["ratio_to_ours"] is None else f"{r['ratio_to_ours']:.2f}x"
        lines.append(
            f"| {r['case']} | {r['optimizer']} | {r['tool']} | {r['net_peak_mib']:.1f} MiB | "
            f"{r['model_mib']:.1f} | {in_fit} | {r['need_mib']:.1f} | "
            f"{r['ratio_to_need']:.2f}x | {to_ours} | {r['warm_up_mib']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--cases", default="L,XL")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2, help="baseline/tool pairs per figure")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        tool, case_name, optimizer, epochs, baseline = json.loads(args.worker)
        print(json.dumps(measure(tool, case_name, optimizer, epochs, baseline)))
        return
    cases = [c for c in args.cases.split(",") if c]
    tools = [t for t in args.tools.split(",") if t]
    optimizers = [o for o in args.optimizers.split(",") if o]
    for name, known, given in (
        ("case", CASES, cases),
        ("tool", TOOLS, tools),
        ("optimizer", OPTIMIZERS, optimizers),
    ):
        for g in given:
            if g not in known:
                p.error(f"unknown {name} {g!r}; choose from {','.join(known)}")
    print(environment_note(), flush=True)
    load_before = load_average()
    rows = compare(cases, tools, optimizers, args.epochs, args.repeat)
    meta: dict[str, Any] = machine(()) | {
        "threads": {r["tool"]: r["threads"] for r in rows},
        "epochs": args.epochs,
        "repeat": args.repeat,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    report: dict[str, Any] = {"meta": meta, "results": rows, "goals": goals(rows)}
    print(f"\n{meta['date']} | {meta['cpu']} | {meta['cpus']} CPUs | load "
          f"{load_before} -> {meta['load_average_after']}")  # fmt: skip
    for b in meta["blas"]:
        print(f"BLAS: {b['owner']}: {b['library']} {b['version']} {b['kernel']} "
              f"threads={b['threads']}")  # fmt: skip
    print(f"threads in the fit processes: {meta['threads']}")
    print(f"net peak = peak RSS less a baseline process's (median of {args.repeat}); MiB\n")
    print(table(rows))
    print()
    for g in report["goals"]:
        verdict = "PASS" if g["pass"] else "FAIL"
        print(f"{g['case']:>2} {g['optimizer']:<4} {g['goal']:<22} {g['measured']:.2f}  {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
