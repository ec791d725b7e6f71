"""The "sparse" case: one training epoch over a TF-IDF-like CSR matrix.

Data: 20,000 rows x 50,000 columns at 0.2% density (2M stored values), column frequencies
from a Zipf law (as words in text: a few columns in most rows, most columns in a few), values
as TfidfVectorizer's (log term frequency x smoothed idf, rows L2-normalised), float32, 20
classes. Network 50000-256-20, ReLU, softmax cross-entropy, batch 256, shuffled.

Tools, each timing one epoch from the same initial weights, in turns (round i of every tool is
a pair): this library's fit with SGD and with Adam; scikit-learn's MLPClassifier on the same
sparse X (solver="sgd" with momentum=0 and alpha=0, and its default adam with alpha=1e-4; one
epoch: max_iter=1); PyTorch with torch.sparse CSR @ dense and torch.optim.SGD / Adam. The floor
is the epoch's memory traffic over the machine's measured copy bandwidth: for SGD the stored
values (read twice) and the rows of W1 a batch touches (read in the forward pass, read and
written by the update), for Adam the exact dense update of every parameter each step (weights,
gradient, two moments read; weights and moments written).
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

import backprop as bp

from .timing import load_average, machine

ROWS, COLUMNS, DENSITY, HIDDEN, CLASSES, BATCH = 20_000, 50_000, 0.002, 256, 20, 256
LR_SGD, LR_ADAM = 0.01, 0.001
TOOLS = ("ours_sgd", "ours_adam", "sklearn_sgd", "sklearn_adam", "torch_sgd", "torch_adam")
TITLES = {
    "ours_sgd": "backprop fit, SGD",
    "ours_adam": "backprop fit, Adam",
    "sklearn_sgd": "scikit-learn sgd (momentum 0, alpha 0)",
    "sklearn_adam": "scikit-learn adam (default, alpha 1e-4)",
    "torch_sgd": "PyTorch sparse CSR, SGD",
    "torch_adam": "PyTorch sparse CSR, Adam",
}


def zipf_tfidf(
    rows: int = ROWS, columns: int = COLUMNS, density: float = DENSITY, seed: int = 0
) -> Any:
    """(X, y): X a (rows, columns) scipy CSR float32 matrix with density * rows * columns
    stored values, each row's columns drawn without repeats from a Zipf law (exponent 1.1)
    over the columns in a random order; y: (rows,) class labels in [0, CLASSES)."""
    rng = np.random.default_rng(seed)
    per_row = max(1, min(columns, round(density * columns)))
    cdf = np.cumsum(1.0 / np.arange(1, columns + 1) ** 1.1)
    column_of_rank = rng.permutation(columns)
    indices = np.empty((rows, per_row), dtype=np.int32)
    counts = np.empty((rows, per_row))
    draws = 4 * per_row
    for r in range(rows):  # distinct columns per row: the first per_row of oversampled draws
        ranks = np.searchsorted(cdf, rng.random(draws) * cdf[-1])
        unique, first, n = np.unique(column_of_rank[ranks], return_index=True,
                                     return_counts=True)  # fmt: skip
        keep = np.argsort(first)[:per_row]
        if len(keep) < per_row:  # too few distinct draws (tiny column counts): pad uniformly
            rest = np.setdiff1d(np.arange(columns), unique)
            extra = rng.choice(rest, per_row - len(keep), replace=False)
            unique, n = np.concatenate([unique, extra]), np.concatenate([n, np.ones(len(extra))])
            keep = np.concatenate([keep, np.arange(len(unique) - len(extra), len(unique))])
        indices[r], counts[r] = unique[keep], n[keep]
    order = np.argsort(indices, axis=1)
    indices = np.take_along_axis(indices, order, 1)
    counts = np.take_along_axis(counts, order, 1)
    df = np.bincount(indices.ravel(), minlength=columns)
    idf = np.log((1 + rows) / (1 + df)) + 1
    values = np.log1p(counts) * idf[indices]
    values /= np.linalg.norm(values, axis=1, keepdims=True)
    indptr = np.arange(0, rows * per_row + 1, per_row, dtype=np.int64)
    X = sp.csr_matrix(
        (values.ravel().astype(np.float32), indices.ravel(), indptr), shape=(rows, columns)
    )
    return X, rng.integers(0, CLASSES, rows)


def touched_rows(X: Any, order: Any, batch: int) -> int:
    """Sum over the epoch's batches (rows in `order`) of the distinct columns each touches."""
    total = 0
    for start in range(0, X.shape[0], batch):
        total += len(np.unique(X[order[start : start + batch]].indices))
    return total


def copy_bandwidth(megabytes: int = 256, repeat: int = 5) -> float:
    """Bytes per second moved by a large array copy (read + write counted), best of repeat."""
    a = np.ones(megabytes * 2**20 // 8)
    b = np.empty_like(a)
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - start)
    return 2 * a.nbytes / best


def floors(X: Any, order: Any, bandwidth: float) -> dict[str, float]:
    """Seconds per epoch no implementation can beat on this machine's bandwidth (see the
    module docstring); float32 values and int32 column indices."""
    steps = -(-X.shape[0] // BATCH)
    values = X.nnz * (4 + 4) * 2  # values and columns, forward and backward
    w1_rows = touched_rows(X, order, BATCH) * HIDDEN * 4 * 3  # read; read + written
    n_params = COLUMNS * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES
    adam = steps * n_params * 4 * 7  # W, g, m, v read; W, m, v written
    return {"sgd": (values + w1_rows) / bandwidth, "adam": (values + adam) / bandwidth}


def _ours(X: Any, y: Any, adam: bool, init: list[Any]) -> Callable[[], object]:
    model = bp.Sequential([bp.Dense(COLUMNS, HIDDEN), bp.ReLU(), bp.Dense(HIDDEN, CLASSES)])

    def epoch() -> object:
        model.set_weights(init)
        model.compile(bp.SoftmaxCrossEntropy(), bp.Adam(lr=LR_ADAM) if adam else bp.SGD(LR_SGD))
        return model.fit(X, y, epochs=1, batch_size=BATCH, seed=0)

    return epoch


def _sklearn(X: Any, y: Any, adam: bool) -> Callable[[], object]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    if adam:
        kwargs: dict[str, Any] = {"solver": "adam", "learning_rate_init": LR_ADAM}
    else:
        kwargs = {"solver": "sgd", "momentum": 0.0, "alpha": 0.0, "learning_rate_init": LR_SGD}

    def epoch() -> object:
        est = MLPClassifier((HIDDEN,), batch_size=BATCH, max_iter=1, random_state=0, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return est.fit(X, y)

    return epoch


def _torch(X: Any, y: Any, adam: bool, init: list[Any], threads: int) -> Callable[[], object]:
    import torch

    rng = np.random.default_rng(0)
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    params = [torch.from_numpy(np.array(w)) for w in init]
    for p in params:
        p.requires_grad_(True)
    W1, b1, W2, b2 = params

    def batches() -> list[tuple[Any, Any]]:
        order = rng.permutation(X.shape[0])
        out = []
        for start in range(0, X.shape[0], BATCH):
            rows = order[start : start + BATCH]
            b = X[rows]
            out.append((torch.sparse_csr_tensor(
                torch.from_numpy(b.indptr.astype(np.int64)),
                torch.from_numpy(b.indices.astype(np.int64)),
                torch.from_numpy(b.data), size=b.shape), labels[rows]))  # fmt: skip
        return out

    def epoch() -> object:
        torch.set_num_threads(threads)
        with torch.no_grad():
            for p, w in zip(params, init, strict=True):
                p.copy_(torch.from_numpy(np.asarray(w)))
        opt = (torch.optim.Adam(params, lr=LR_ADAM) if adam
               else torch.optim.SGD(params, lr=LR_SGD))  # fmt: skip
        for xb, yb in data:
            opt.zero_grad(set_to_none=False)
            logits = torch.relu(torch.sparse.mm(xb, W1) + b1) @ W2 + b2
            loss: Any = torch.nn.functional.cross_entropy(logits, yb)
            loss.backward()
            opt.step()
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "sparse CSR support is in beta"
        data = batches()  # built once, outside the timing (the others batch inside theirs)
    return epoch


def available(tool: str) -> str | None:
    """Why a tool cannot run here, or None."""
    module = {"sklearn": "sklearn", "torch": "torch"}.get(tool.split("_")[0])
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError:
        return f"{module} is not installed"
    return None


def run(
    tools: tuple[str, ...] = TOOLS, repeat: int = 3, threads: int = 2, rows: int = ROWS,
    quick: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Time one epoch per tool, `repeat` rounds in turns; the report: per tool the median
    seconds and the timings, the ratios of the other libraries to ours (paired medians), the
    floors and the measured bandwidth."""
    X, y = zipf_tfidf(rows=rows)
    init = bp.Sequential(
        [bp.Dense(COLUMNS, HIDDEN), bp.ReLU(), bp.Dense(HIDDEN, CLASSES)], seed=0
    ).get_weights()
    skipped = {t: why for t in tools if (why := available(t)) is not None}
    builders: dict[str, Callable[[], Callable[[], object]]] = {
        "ours_sgd": lambda: _ours(X, y, False, init),
        "ours_adam": lambda: _ours(X, y, True, init),
        "sklearn_sgd": lambda: _sklearn(X, y, False),
        "sklearn_adam": lambda: _sklearn(X, y, True),
        "torch_sgd": lambda: _torch(X, y, False, init, threads),
        "torch_adam": lambda: _torch(X, y, True, init, threads),
    }
    load_before = load_average()
    with bp.num_threads(threads):
        epochs = {t: builders[t]() for t in tools if t not in skipped}
        times: dict[str, list[float]] = {t: [] for t in epochs}
        for _ in range(repeat):
            for tool, epoch in epochs.items():
                start = time.perf_counter()
                epoch()
                times[tool].append(time.perf_counter() - start)
    seconds = {t: statistics.median(v) for t, v in times.items()}
    ratios = {}
    for ours, rule in (("ours_sgd", "sgd"), ("ours_adam", "adam")):
        for other in (f"sklearn_{rule}", f"torch_{rule}"):
            if ours in times and other in times:
                paired = [o / m for o, m in zip(times[other], times[ours], strict=True)]
                ratios[f"{other} / {ours}"] = statistics.median(paired)
    order = np.random.default_rng(0).permutation(X.shape[0])
    bandwidth = copy_bandwidth(64 if quick else 256)
    floor = floors(X, order, bandwidth)
    meta = machine(("scipy", "torch", "sklearn"))
    meta |= {"repeat": repeat, "load_average_before": load_before,
             "load_average_after": load_average()}  # fmt: skip
    return {
        "mode": "sparse",
        "meta": meta,
        "shape": [int(X.shape[0]), int(X.shape[1])],
        "nnz": int(X.nnz),
        "threads": threads,
        "seconds": seconds,
        "timings": times,
        "ratios": ratios,
        "bandwidth_gbs": bandwidth / 1e9,
        "floor": floor,
        "to_floor": {
            rule: seconds[f"ours_{rule}"] / floor[rule]
            for rule in ("sgd", "adam")
            if f"ours_{rule}" in seconds
        },
        "skipped": skipped,
    }


def run_sparse(args: Any) -> dict[str, Any]:
    """The runner's --cases sparse: its --repeat rounds (default 3; 1 with --quick, on
    2,000 rows), --threads (default 2) and --tools where they name this case's tools."""
    tools = tuple(t for t in args.tools.split(",") if t in TOOLS) or TOOLS
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    rows = ROWS // 10 if args.quick else ROWS
    return run(tools, repeat, args.threads or 2, rows, args.quick)


def print_sparse(report: dict[str, Any]) -> None:
    """The case's table, below the runner's header (report.print_report)."""
    rows, cols = report["shape"]
    meta = report["meta"]
    print(f"sparse: {rows} x {cols}, {report['nnz']:,} stored values (Zipf columns), "
          f"{COLUMNS}-{HIDDEN}-{CLASSES}, batch {BATCH}, float32, one epoch, "
          f"{report['threads']} threads; median of {meta['repeat']} rounds")  # fmt: skip
    for tool, s in report["seconds"].items():
        print(f"  {TITLES[tool]:<42} {s:8.3f} s")
    for name, r in report["ratios"].items():
        print(f"  {name:<42} {r:8.2f}x")
    floors_text = ", ".join(
        f"{k} {report['floor'][k]:.3f} s (ours {ratio:.2f}x)"
        for k, ratio in report["to_floor"].items()
    )
    print(f"  copy bandwidth {report['bandwidth_gbs']:.1f} GB/s; floor: {floors_text}")
    for tool, why in report["skipped"].items():
        print(f"  skipped {tool}: {why}")
