"""What the runner times: the cases, their data, and the project's performance goals.

Case and CASES: the networks (T, S, M, L, XL). INFERENCE_CASES and inference_case: the
predict cases of --inference (a network of CASES at another batch size, "M b1"). DTYPES: the
float dtypes a training case runs in (--dtype). Data, make_data and fit_batches: a case's
fixed random dataset and how many batches its fit epoch has. targets and inference_targets:
the goals, scored against the figures of one run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]

IMPORT_TARGET = 0.15  # seconds: the project's goal for `import backprop`


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

DTYPES = ("float32", "float64")

#: the predict cases of --inference: CASES' networks at these batch sizes
INFERENCE_CASES = ("S b1", "S b32", "M b1", "M b64", "L b256")


def inference_case(label: str) -> Case:
    """The predict case "<network> b<batch>" ("M b64"; "Mb64" too): the network of CASES
    with that batch size, named by the label as written in INFERENCE_CASES."""
    match = re.fullmatch(r"\s*([A-Z]+)\s*b(\d+)\s*", label)
    if match is None or match[1] not in CASES or int(match[2]) < 1:
        raise ValueError(
            f"unknown predict case {label!r}: write a network of {','.join(CASES)} and a "
            "batch size, as in 'M b64'"
        )
    return replace(CASES[match[1]], name=f"{match[1]} b{int(match[2])}", batch=int(match[2]))


# -- data --------------------------------------------------------------------------------------


@dataclass
class Data:
    """A case's fixed random dataset (n_batches * batch rows) and the first batch of it."""

    X: Array
    y: Array
    Xb: Array
    yb: Array
    n_batches: int
    init: list[tuple[Array, Array]] = field(default_factory=list)  # (W, b) per layer


def make_data(case: Case, n_batches: int, seed: int = 0, dtype: str = "float32") -> Data:
    """dtype: of X (and of y for MSE); the same values in float32 and float64 (drawn in
    float32, then cast), so the two dtypes' runs time the same numbers."""
    rng = np.random.default_rng(seed)
    n = case.batch * n_batches
    X = rng.standard_normal((n, case.widths[0]), dtype=np.float32).astype(dtype, copy=False)
    y: Array
    if case.loss == "mse":
        y = rng.standard_normal((n, case.widths[-1]), dtype=np.float32).astype(dtype, copy=False)
    else:
        y = rng.integers(0, case.widths[-1], n, dtype=np.int64)
    return Data(X, y, X[: case.batch].copy(), y[: case.batch].copy(), n_batches)


def fit_batches(case: Case, quick: bool) -> int:
    """Batches in the fit epoch: about 2e7 (2e6 with --quick) of batch x sum(widths) x
    widths[1], 4 to 2000 (500): epochs of a few ms whose X mostly stays in cache (M: 4
    batches, 0.8 MB), as train_step's one batch does. A fit over an X in main memory pays
    more per step: bench/NOTES.md, 2026-12-02 18:45."""
    work = case.batch * sum(case.widths) * case.widths[1]
    return max(4, min(500 if quick else 2000, int((2e6 if quick else 2e7) // work)))


# -- the project's performance goals -----------------------------------------------------------


def targets(
    results: dict[tuple[str, str], float],
    import_s: float | None,
    threads: int | None = None,
    dtype: str = "float32",
    import_row: bool = True,
) -> list[dict[str, Any]]:
    """The project's performance goals, each with the measured figure and pass/fail (None: not
    measured), for the cases in `results` ((case, tool) -> seconds per step, in `dtype`).

    threads: the BLAS thread limit of the run (--threads); PyTorch is then compared at that
    thread count (1 or 2), and otherwise at its faster one. dtype: float64 has its own goals
    (the GEMM floor on L and XL, NumPy on M). import_row: add the import-time goal.
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
                "dtype": "-" if case == "-" else dtype,
                "target": text,
                "measured": value,
                "pass": None if value is None else bool(ok(value)),
            }
        )

    if dtype == "float64":
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
    else:
        add(
            "T",
            "NumPy / train_step >= 20",
            ratio(get("T", "numpy"), get("T", "ours")),
            lambda v: v >= 20,
        )
        add(
            "T",
            "NumPy / fit >= 90",
            ratio(get("T", "numpy"), get("T", "ours_fit")),
            lambda v: v >= 90,
        )
        add(
            "S",
            "NumPy / train_step >= 8",
            ratio(get("S", "numpy"), get("S", "ours")),
            lambda v: v >= 8,
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
            add(
                c,
                f"{torch_name} / train_step > 1",
                ratio(best_torch, get(c, "ours")),
                lambda v: v > 1,
            )
            add(
                c, "NumPy / train_step > 1", ratio(get(c, "numpy"), get(c, "ours")), lambda v: v > 1
            )
    if import_row:
        add("-", f"import backprop < {IMPORT_TARGET} s", import_s, lambda v: v < IMPORT_TARGET)
    return [r for r in rows if r["case"] == "-" or any(k[0] == r["case"] for k in results)]


def inference_targets(results: dict[tuple[str, int, str], float]) -> list[dict[str, Any]]:
    """The --inference goal: model.predict at least as fast as onnxruntime, per case and
    thread count; results: (case, threads, tool) -> the paired ratio tool / predict."""
    rows = []
    for (case, threads, tool), value in results.items():
        if tool == "onnxruntime":
            rows.append(
                {
                    "case": case,
                    "threads": threads,
                    "target": "onnxruntime / predict >= 1",
                    "measured": value,
                    "pass": bool(value >= 1),
                }
            )
    return rows
