"""The MPI tests' cases, shared by the ranks (worker.py, under mpiexec) and by the test
process, which trains the single-process reference: every step on the concatenation of the
ranks' batches (rank order), with loss_and_gradient and apply_gradient."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import backprop as bp
from backprop.distributed import shuffle_rng

SIZE = 2  # ranks

#: name: model, data and fit arguments. rows: each rank's training rows.
CASES: dict[str, dict[str, Any]] = {
    # unequal shards (rank 1 is exhausted after 2 of 6 steps), shuffled, sample weights with
    # zeros, momentum and the l2 penalty
    "sgd": {
        "dtype": "float64", "loss": "ce", "optimizer": ("SGD", {"lr": 0.1, "momentum": 0.9}),
        "l2": 0.05, "rows": [23, 6], "weights": True, "val_rows": None, "metrics": None,
        "fit": {"epochs": 3, "batch_size": 4, "shuffle": True, "seed": 7},
    },
    # equal shards in order, Adam, validation with metrics (r2: the two-pass reduction)
    "adam": {
        "dtype": "float64", "loss": "mse", "optimizer": ("Adam", {"lr": 0.02}),
        "l2": 0.0, "rows": [16, 16], "weights": False, "val_rows": [9, 5],
        "metrics": ["r2", "mae"],
        "fit": {"epochs": 3, "batch_size": 5, "shuffle": False, "seed": 3},
    },
    # a rank without training rows takes part with weight 0 throughout
    "empty": {
        "dtype": "float64", "loss": "mse", "optimizer": ("SGD", {"lr": 0.05}),
        "l2": 0.1, "rows": [9, 0], "weights": False, "val_rows": [0, 4], "metrics": ["mae"],
        "fit": {"epochs": 2, "batch_size": 4, "shuffle": True, "seed": 2},
    },
    # dropout: each rank its own masks, the replicas still identical (no reference)
    "dropout": {
        "dtype": "float64", "loss": "ce", "optimizer": ("SGD", {"lr": 0.1}), "dropout": 0.3,
        "l2": 0.0, "rows": [10, 10], "weights": False, "val_rows": None, "metrics": None,
        "fit": {"epochs": 2, "batch_size": 4, "shuffle": True, "seed": 5},
    },
    # float32, uneven, Adam: ranks bit-identical to each other, close to the reference
    "float32": {
        "dtype": "float32", "loss": "ce", "optimizer": ("Adam", {"lr": 0.01}),
        "l2": 0.01, "rows": [12, 17], "weights": False, "val_rows": [6, 0],
        "metrics": ["accuracy"],
        "fit": {"epochs": 2, "batch_size": 3, "shuffle": True, "seed": 11},
    },
    # sparse X (each rank a scipy CSR shard with most values zero, validation too): the same
    # training as on the dense shards
    "sparse": {
        "dtype": "float64", "loss": "ce", "optimizer": ("SGD", {"lr": 0.1}), "sparse": True,
        "l2": 0.0, "rows": [14, 9], "weights": False, "val_rows": [5, 3], "metrics": None,
        "fit": {"epochs": 2, "batch_size": 4, "shuffle": True, "seed": 13},
    },
}  # fmt: skip

N_IN, N_HIDDEN, N_OUT = 5, 8, 3


def model(case: dict[str, Any]) -> bp.Sequential:
    dropout = [bp.Dropout(case["dropout"])] if case.get("dropout") else []
    net = bp.Sequential(
        [bp.Dense(N_IN, N_HIDDEN), bp.Tanh(), *dropout, bp.Dense(N_HIDDEN, N_OUT)],
        dtype=case["dtype"],
        seed=1,
    )
    name, kwargs = case["optimizer"]
    loss = bp.SoftmaxCrossEntropy() if case["loss"] == "ce" else bp.MSE()
    return net.compile(loss, getattr(bp, name)(**kwargs), metrics=case["metrics"], l2=case["l2"])


def shard(case: dict[str, Any], rank: int, rows: int | None = None, salt: int = 0) -> tuple:
    """(X, y, w or None) of rank `rank`'s training shard (or a validation shard: salt 1)."""
    n = case["rows"][rank] if rows is None else rows
    rng = np.random.default_rng([rank, salt, 99])
    X = rng.normal(size=(n, N_IN))
    if case.get("sparse"):  # dense here (the reference); worker.py passes it as CSR
        X[rng.uniform(size=X.shape) < 0.7] = 0.0
    if case["loss"] == "ce":
        y = rng.integers(0, N_OUT, n)
    else:
        y = X[:, :N_OUT] * 0.5 + rng.normal(scale=0.1, size=(n, N_OUT))
    w = None
    if case["weights"] and salt == 0:
        w = rng.uniform(0.5, 2.0, n)
        w[::5] = 0.0  # some rows weigh nothing
    return X, y, w


def val_shard(case: dict[str, Any], rank: int) -> tuple | None:
    rows = case["val_rows"]
    if rows is None:
        return None
    X, y, _ = shard(case, rank, rows[rank], salt=1)
    return X, y


def reference(case: dict[str, Any]) -> tuple[bp.Sequential, list[dict[str, float]]]:
    """Single-process training on the concatenated batches; the per-epoch logs."""
    net = model(case)
    fit = case["fit"]
    shards = [shard(case, r) for r in range(SIZE)]
    rngs = [shuffle_rng(fit["seed"], r) for r in range(SIZE)]
    bs = fit["batch_size"]
    steps = max(math.ceil(len(X) / bs) for X, _, _ in shards)
    vals = [v for v in (val_shard(case, r) for r in range(SIZE)) if v is not None and len(v[0])]
    records = []
    for _ in range(fit["epochs"]):
        perms = [
            rng.permutation(len(X)) if fit["shuffle"] else np.arange(len(X))
            for rng, (X, _, _) in zip(rngs, shards, strict=True)
        ]
        loss_sum = weight_sum = 0.0
        for s in range(steps):
            parts = []
            for (X, y, w), perm in zip(shards, perms, strict=True):
                rows = perm[s * bs : (s + 1) * bs]
                if len(rows) and (w is None or w[rows].sum() > 0):
                    parts.append((X[rows], y[rows], None if w is None else w[rows]))
            if not parts:
                continue
            Xc = np.concatenate([p[0] for p in parts])
            yc = np.concatenate([p[1] for p in parts])
            wc = None if shards[0][2] is None else np.concatenate([p[2] for p in parts])
            total = len(Xc) if wc is None else wc.sum()
            loss, grad = net.loss_and_gradient(Xc, yc, wc)
            net.apply_gradient(grad)
            loss_sum += loss * total
            weight_sum += total
        logs = {"loss": loss_sum / weight_sum}
        if vals:
            Xv = np.concatenate([v[0] for v in vals])
            yv = np.concatenate([v[1] for v in vals])
            logs |= {f"val_{k}": v for k, v in net.evaluate(Xv, yv, return_dict=True).items()}
        records.append(logs)
    return net, records
