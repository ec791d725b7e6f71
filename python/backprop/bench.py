"""Side-by-side timing of one training step: this library, plain NumPy, PyTorch, scikit-learn.

    python -m backprop.bench [--cases T,S,M,L,XL] [--tools ...] [--repeat 7] [--quick]
                             [--threads N] [--json PATH] [--plot PATH.png]

Every tool runs the same step (forward, loss, backward, in-place SGD update of all weights,
one float32 mini-batch) in this one process. Each figure is the median over repeated
timings after a warm-up, with its ratio to this library's `train_step` from the same run;
the tools of a case take turns, so a change in the machine's load hits them alike. The
GEMM floor is the time of the step's matrix products alone, through the same BLAS path the
library uses: each layer's forward product, input-gradient product (not for the first
layer) and weight-gradient product. Needs the `bench` extra (torch, scikit-learn,
threadpoolctl, matplotlib); a tool whose package is missing is skipped with a note.

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, when set, make OpenBLAS pick another kernel or
blocking than it would for this CPU; the runner re-executes itself without them (its own
process only) before any timing, and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]

CLEAN_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_REEXEC_MARK = "BACKPROP_BENCH_UNSET"  # set in the re-executed child: what the parent unset
LR = 1e-3
IMPORT_TARGET = 0.15  # seconds, the target for `import backprop`


@dataclass(frozen=True)
class Case:
    """widths: layer widths (input first); batch: rows per step; hidden: activation name
    ("relu" or "sigmoid"); loss: "ce" (softmax cross-entropy, integer labels) or "mse"."""

    name: str
    widths: tuple[int, ...]
    batch: int
    hidden: str
    loss: str

    @property
    def label(self) -> str:
        return "-".join(map(str, self.widths))

    @property
    def flops(self) -> int:
        """Multiply-adds x2 of the step's matrix products (the GEMM floor's work)."""
        pairs = list(zip(self.widths[:-1], self.widths[1:], strict=True))
        products = sum(3 * a * b for a, b in pairs) - pairs[0][0] * pairs[0][1]
        return 2 * self.batch * products


CASES = {
    c.name: c
    for c in (
        Case("T", (2, 3, 1), 1, "sigmoid", "mse"),
        Case("S", (64, 32, 10), 32, "relu", "ce"),
        Case("M", (784, 128, 10), 64, "relu", "ce"),
        Case("L", (784, 1024, 1024, 10), 256, "relu", "ce"),
        Case("XL", (4096, 4096, 4096, 10), 512, "relu", "ce"),
    )
}

TOOLS = ("ours", "ours_fit", "numpy", "torch1", "torch2", "sklearn", "gemm")
TOOL_TITLES = {
    "ours": "backprop train_step",
    "ours_fit": "backprop fit (per step)",
    "numpy": "plain NumPy",
    "torch1": "PyTorch eager, 1 thread",
    "torch2": "PyTorch eager, 2 threads",
    "sklearn": "scikit-learn partial_fit",
    "gemm": "GEMM floor",
}


# -- the environment ---------------------------------------------------------------------------


def _reexec_without_openblas_overrides(argv: Sequence[str]) -> None:
    """Replace this process by a fresh one without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE.

    OpenBLAS reads them when it loads (numpy's and scipy's copies load in the child, before
    anything is timed). The parent's environment, and the shell's, are left alone.
    """
    if _REEXEC_MARK in os.environ:
        return
    present = [v for v in CLEAN_ENV_VARS if v in os.environ]
    if not present:
        return
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV_VARS}
    env[_REEXEC_MARK] = ",".join(f"{v}={os.environ[v]}" for v in present)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "backprop.bench", *argv], env)


def _environment_note() -> str:
    unset = os.environ.get(_REEXEC_MARK)
    if unset:
        return (
            f"environment: unset {unset} for this benchmark process only (re-executed "
            "before numpy loaded); the calling shell keeps them"
        )
    return "environment: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE were not set (nothing to unset)"


def blas_report() -> list[dict[str, Any]]:
    """The BLAS/OpenMP libraries loaded by numpy, scipy and torch (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    _load_blas()
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


def _load_blas() -> None:
    """The library fetches its BLAS (numpy's or scipy's) on first use: fetch it now, and load
    scipy's too (scikit-learn uses it), so that reports and thread limits see both."""
    import importlib

    from backprop_core._blas import _gemm_floor

    importlib.import_module("scipy.linalg.cython_blas")
    _gemm_floor([], 0)


def _blas_source() -> str | None:
    from backprop_core import blas_source

    return blas_source()


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


def import_time(runs: int) -> dict[str, float]:
    """Median over fresh interpreters of the time `import backprop` takes inside each, and
    of each subprocess's whole wall time (with and without the import)."""
    code = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    inner, wall, numpy_alone = [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code.format("backprop")],
            capture_output=True,
            text=True,
            check=True,
        )
        wall.append(time.perf_counter() - start)
        inner.append(float(out.stdout.strip()))
        out = subprocess.run(
            [sys.executable, "-c", code.format("numpy")], capture_output=True, text=True, check=True
        )
        numpy_alone.append(float(out.stdout.strip()))
    return {
        "import_seconds": statistics.median(inner),
        "process_wall_seconds": statistics.median(wall),
        "numpy_import_seconds": statistics.median(numpy_alone),
        "runs": runs,
    }


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


@dataclass
class Data:
    """A case's fixed random dataset (n_batches * batch rows) and the first batch of it."""

    X: Array
    y: Array
    Xb: Array
    yb: Array
    n_batches: int
    init: list[tuple[Array, Array]] = field(default_factory=list)  # (W, b) per layer


def make_data(case: Case, n_batches: int, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    n = case.batch * n_batches
    X = rng.standard_normal((n, case.widths[0]), dtype=np.float32)
    y: Array
    if case.loss == "mse":
        y = rng.standard_normal((n, case.widths[-1]), dtype=np.float32)
    else:
        y = rng.integers(0, case.widths[-1], n, dtype=np.int64)
    return Data(X, y, X[: case.batch].copy(), y[: case.batch].copy(), n_batches)


def fit_batches(case: Case, quick: bool) -> int:
    """Batches in the fit epoch: enough that the epoch lasts tens of ms, at least 4."""
    work = case.batch * sum(case.widths) * case.widths[1]
    return max(4, min(500 if quick else 2000, int((2e6 if quick else 2e7) // work)))


# -- the tools ---------------------------------------------------------------------------------


@dataclass
class Step:
    """call() runs `steps` training steps (one, a fit epoch, or a batch of GEMM-floor steps)."""

    call: Callable[[], object]
    steps: int = 1


def build_ours(case: Case, data: Data) -> Any:
    import backprop as bp

    act = {"relu": bp.ReLU, "sigmoid": bp.Sigmoid}[case.hidden]
    layers: list[bp.Layer] = []
    n = len(case.widths) - 1
    for k in range(n):
        init = "he" if case.hidden == "relu" else "glorot"
        layers.append(bp.Dense(case.widths[k], case.widths[k + 1], weight_init=init))
        if k < n - 1:
            layers.append(act())
    model = bp.Sequential(layers, seed=0)
    loss = bp.MSE() if case.loss == "mse" else bp.SoftmaxCrossEntropy()
    model.compile(loss, bp.SGD(lr=LR))
    data.init = [
        (layer.W.copy(), layer.b.copy()) for layer in model.layers if isinstance(layer, bp.Dense)
    ]
    return model


def ours_step(case: Case, data: Data) -> Step:
    model = build_ours(case, data)
    Xb, yb = data.Xb, data.yb
    return Step(lambda: model.train_step(Xb, yb))


def ours_fit(case: Case, data: Data) -> Step:
    model = build_ours(case, data)
    X, y, batch = data.X, data.y, case.batch
    return Step(lambda: model.fit(X, y, batch_size=batch), data.n_batches)


def numpy_step(case: Case, data: Data) -> Step:
    """The naive baseline: plain NumPy, new arrays for every intermediate."""
    params = [(W.copy(), b.copy()) for W, b in data.init]
    Xb, yb, sigmoid = data.Xb, data.yb, case.hidden == "sigmoid"

    def step() -> float:
        acts = [Xb]
        for k, (W, b) in enumerate(params):
            z = acts[-1] @ W + b
            if k < len(params) - 1:
                z = 1 / (1 + np.exp(-z)) if sigmoid else np.maximum(z, 0)
            acts.append(z)
        out = acts[-1]
        n = out.shape[0]
        if case.loss == "mse":
            diff = out - yb
            loss = float(np.mean(diff**2))
            delta = 2 * diff / diff.size
        else:
            shifted = out - out.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            s = e.sum(axis=1, keepdims=True)
            loss = float(np.mean(np.log(s[:, 0]) - shifted[np.arange(n), yb]))
            delta = e / s
            delta[np.arange(n), yb] -= 1
            delta /= n
        for k in range(len(params) - 1, -1, -1):
            W, b = params[k]
            dW = acts[k].T @ delta
            db = delta.sum(axis=0)
            if k > 0:
                a = acts[k]
                delta = (delta @ W.T) * (a * (1 - a) if sigmoid else (a > 0))
            W -= LR * dW
            b -= LR * db
        return loss

    return Step(step)


def torch_step(threads: int) -> Callable[[Case, Data], Step]:
    def build(case: Case, data: Data) -> Step:
        import torch

        torch.set_num_threads(threads)
        mods: list[Any] = []
        for k, (W, b) in enumerate(data.init):
            lin = torch.nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
            mods.append(lin)
            if k < len(data.init) - 1:
                mods.append(torch.nn.Sigmoid() if case.hidden == "sigmoid" else torch.nn.ReLU())
        net = torch.nn.Sequential(*mods)
        loss_fn = torch.nn.MSELoss() if case.loss == "mse" else torch.nn.CrossEntropyLoss()
        opt = torch.optim.SGD(net.parameters(), lr=LR)
        Xb, yb = torch.from_numpy(data.Xb), torch.from_numpy(data.yb)

        def step() -> float:
            torch.set_num_threads(threads)  # the other torch tool may have changed it
            opt.zero_grad()
            loss = loss_fn(net(Xb), yb)
            loss.backward()
            opt.step()
            return loss.item()  # type: ignore[no-any-return]

        return Step(step)

    return build


def sklearn_step(case: Case, data: Data) -> Step:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    kwargs: dict[str, Any] = dict(
        hidden_layer_sizes=case.widths[1:-1],
        activation="logistic" if case.hidden == "sigmoid" else "relu",
        solver="sgd",
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        learning_rate_init=LR,
        batch_size=case.batch,
        shuffle=False,
        random_state=0,
    )
    Xb, yb = data.Xb, data.yb
    if case.loss == "mse":
        if yb.shape[1] == 1:  # scikit-learn wants a single target as (n,): no warning per call
            yb = np.ascontiguousarray(yb[:, 0])
        reg = MLPRegressor(**kwargs)
        reg.partial_fit(Xb, yb)
        return Step(lambda: reg.partial_fit(Xb, yb))
    clf = MLPClassifier(**kwargs)
    clf.partial_fit(Xb, yb, classes=np.arange(case.widths[-1]))
    return Step(lambda: clf.partial_fit(Xb, yb))


def gemm_floor(case: Case, data: Data) -> Step:
    """The step's matrix products alone, through the library's own gemm path (scipy's BLAS,
    the same transposes, the direct loop for tiny products), one compiled call."""
    from backprop_core._blas import _gemm_floor

    rng = np.random.default_rng(1)
    n = case.batch
    products: list[tuple[object, ...]] = []

    def buf(size: int) -> Array:
        return rng.standard_normal(size, dtype=np.float32)

    for k, (n_in, n_out) in enumerate(zip(case.widths[:-1], case.widths[1:], strict=True)):
        X, W, Y = buf(n * n_in), buf(n_in * n_out), buf(n * n_out)
        dY, dW, dX = buf(n * n_out), buf(n_in * n_out), buf(n * n_in)
        products.append((False, False, n, n_out, n_in, X, W, Y))  # Y = X W
        products.append((True, False, n_in, n_out, n, X, dY, dW))  # dW = X^T dY
        if k > 0:
            products.append((False, True, n, n_in, n_out, dY, W, dX))  # dX = dY W^T
    # one compiled call runs the products many times: a Python call per step would cost
    # more than the products themselves on the small cases
    inner = max(1, int(2e7 // case.flops))
    return Step(lambda: _gemm_floor(products, inner), inner)


BUILDERS: dict[str, Callable[[Case, Data], Step]] = {
    "ours": ours_step,
    "ours_fit": ours_fit,
    "numpy": numpy_step,
    "torch1": torch_step(1),
    "torch2": torch_step(2),
    "sklearn": sklearn_step,
    "gemm": gemm_floor,
}
NEEDS = {"torch1": "torch", "torch2": "torch", "sklearn": "sklearn"}


def available(tool: str) -> str | None:
    """None if the tool can run, else why not."""
    module = NEEDS.get(tool)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError:
        pkg = "scikit-learn" if module == "sklearn" else module
        return f"{pkg} is not installed (pip install 'backprop-core[bench]')"
    return None


# The thread pool each tool's products run on. An idle OpenBLAS worker keeps polling for
# work (yielding) for about 2**28 cycles (~0.1 s) before it sleeps, so right after one pool
# worked, another pool's threads share the cores with those pollers: with more than one
# BLAS thread the runner pauses when the next tool uses another pool (bench/NOTES.md).
POOLS = {
    "ours": 0,
    "ours_fit": 0,
    "gemm": 0,  # scipy's OpenBLAS
    "numpy": 1,
    "sklearn": 1,  # numpy's OpenBLAS
    "torch1": 2,
    "torch2": 2,  # torch's OpenMP + MKL
}
_last_pool: list[int] = [-1]


def settle(tool: str, seconds: float) -> None:
    """Pause `seconds` if `tool` runs on another thread pool than the tool before it."""
    if seconds > 0 and POOLS[tool] != _last_pool[0] and _last_pool[0] >= 0:
        time.sleep(seconds)
    _last_pool[0] = POOLS[tool]


# -- targets -----------------------------------------------------------------------------------


def targets(
    results: dict[tuple[str, str], float], import_s: float | None, threads: int | None = None
) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured figure and pass/fail (None: not measured).

    threads: the BLAS thread limit of the run (--threads); PyTorch is then compared at that
    thread count (1 or 2), and otherwise at its faster one.
    """
    torch_tools = {1: ["torch1"], 2: ["torch2"]}.get(threads or 0, ["torch1", "torch2"])
    torch_name = {1: "PyTorch 1 thread", 2: "PyTorch 2 threads"}.get(threads or 0, "best PyTorch")

    def get(case: str, tool: str) -> float | None:
        return results.get((case, tool))

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a / b

    rows: list[dict[str, Any]] = []

    def add(case: str, text: str, value: float | None, ok: Callable[[float], bool]) -> None:
        rows.append(
            {
                "case": case,
                "target": text,
                "measured": value,
                "pass": None if value is None else bool(ok(value)),
            }
        )

    add(
        "T",
        "NumPy / train_step >= 20",
        ratio(get("T", "numpy"), get("T", "ours")),
        lambda v: v >= 20,
    )
    add("T", "NumPy / fit >= 90", ratio(get("T", "numpy"), get("T", "ours_fit")), lambda v: v >= 90)
    add(
        "S", "NumPy / train_step >= 8", ratio(get("S", "numpy"), get("S", "ours")), lambda v: v >= 8
    )
    add(
        "M",
        "train_step / GEMM floor <= 1.3",
        ratio(get("M", "ours"), get("M", "gemm")),
        lambda v: v <= 1.3,
    )
    add(
        "M",
        "NumPy / train_step >= 1.5",
        ratio(get("M", "numpy"), get("M", "ours")),
        lambda v: v >= 1.5,
    )
    for c in ("L", "XL"):
        add(
            c,
            "train_step / GEMM floor <= 1.10",
            ratio(get(c, "ours"), get(c, "gemm")),
            lambda v: v <= 1.10,
        )
        torch_times = [t for t in (get(c, tool) for tool in torch_tools) if t is not None]
        best_torch = min(torch_times) if torch_times else None
        add(c, f"{torch_name} / train_step > 1", ratio(best_torch, get(c, "ours")), lambda v: v > 1)
        add(c, "NumPy / train_step > 1", ratio(get(c, "numpy"), get(c, "ours")), lambda v: v > 1)
    add("-", f"import backprop < {IMPORT_TARGET} s", import_s, lambda v: v < IMPORT_TARGET)
    return [r for r in rows if r["case"] == "-" or any(k[0] == r["case"] for k in results)]


# -- output ------------------------------------------------------------------------------------


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


def plot(report: dict[str, Any], path: str) -> None:
    import matplotlib

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


# -- main --------------------------------------------------------------------------------------


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

    print(_environment_note(), flush=True)
    load_before = load_average()
    if args.threads is not None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            raise SystemExit("--threads needs threadpoolctl (pip install threadpoolctl)") from None
        _load_blas()  # so that the limit reaches it too

        threadpool_limits(args.threads, user_api="blas")  # for the rest of this process
    results: list[dict[str, Any]] = []
    measured: dict[tuple[str, str], float] = {}
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
            measured[(name, tool)] = seconds
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
    for r in results:
        ours = measured.get((r["case"], "ours"))
        r["ratio_to_ours"] = None if ours is None else r["seconds"] / ours
        r["gflops"] = CASES[r["case"]].flops / r["seconds"] / 1e9
    imp = import_time(3 if args.quick else 7) if not args.no_import_time else None
    import backprop

    report = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "backprop": backprop.__version__,
            "numpy": np.__version__,
            "versions": {
                m: getattr(sys.modules[m], "__version__", "?")
                for m in ("scipy", "torch", "sklearn")
                if m in sys.modules
            },
            "blas": blas_report(),
            "backprop_blas": _blas_source(),
            "environment": _environment_note(),
            "dtype": "float32",
            "repeat": repeat,
            "min_seconds_per_timing": min_seconds,
            "blas_threads_limit": args.threads,
            "pause_between_thread_pools_seconds": settle_s,
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "cases": cases,
        "tools": runnable,
        "results": results,
        "skipped": skipped,
        "import_time": imp,
        "targets": targets(measured, None if imp is None else imp["import_seconds"], args.threads),
    }
    return report


def print_report(report: dict[str, Any]) -> None:
    meta = report["meta"]
    print()
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
    print(meta["environment"])
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
    print("\nTargets (issue 3):")
    print(targets_table(report["targets"]))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m backprop.bench", description=__doc__.split("\n")[0])
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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    _reexec_without_openblas_overrides(argv)
    report = run(args)
    print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\nwrote {args.json}")
    if args.plot:
        try:
            plot(report, args.plot)
            print(f"wrote {args.plot}")
        except ImportError:
            print(
                "skipped --plot: matplotlib is not installed (pip install 'backprop-core[bench]')"
            )


if __name__ == "__main__":
    main()
