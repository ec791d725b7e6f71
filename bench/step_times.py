"""Time per training step of this library on the issue-3 case sizes (float32), one run:
`train_step` on one batch, and `fit` per mini-batch over one epoch of random data.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/step_times.py [--cases T,S,M,L]

Medians of repeated timings after a warm-up. The side-by-side comparison with NumPy,
PyTorch and scikit-learn is the comparison runner's job; this only tracks our own figures.
"""

import argparse
import functools
import os
import platform
import statistics
import time

import numpy as np

import backprop as bp

CASES = {  # name: (widths, batch, hidden activation, loss)
    "T": ([2, 3, 1], 1, bp.Sigmoid, "mse"),
    "S": ([64, 32, 10], 32, bp.ReLU, "ce"),
    "M": ([784, 128, 10], 64, bp.ReLU, "ce"),
    "L": ([784, 1024, 1024, 10], 256, bp.ReLU, "ce"),
    "XL": ([4096, 4096, 4096, 10], 512, bp.ReLU, "ce"),
}


def median_seconds(fn, calls: int, repeats: int = 7) -> float:
    fn()  # warm-up: buffers allocated, BLAS threads started
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i['internal_api']} {i.get('version')} {i.get('architecture')} threads={i['num_threads']}"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="T,S,M,L")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for name in args.cases.split(","):
        widths, batch, act, loss = CASES[name]
        layers: list[bp.Layer] = []
        for k in range(len(widths) - 1):
            layers.append(bp.Dense(widths[k], widths[k + 1], weight_init="he"))
            if k < len(widths) - 2:
                layers.append(act())
        model = bp.Sequential(layers, seed=0)
        model.compile(bp.MSE() if loss == "mse" else bp.SoftmaxCrossEntropy(), bp.SGD(lr=1e-3))
        n_batches = max(4, min(2000, int(2e7 // (batch * sum(widths) * widths[1]))))
        N = batch * n_batches
        X = rng.standard_normal((N, widths[0]), dtype=np.float32)
        y = (
            rng.standard_normal((N, 1), dtype=np.float32)
            if loss == "mse"
            else rng.integers(0, widths[-1], N)
        )
        train_step = functools.partial(model.train_step, X[:batch], y[:batch])
        fit = functools.partial(model.fit, X, y, batch_size=batch)
        step = median_seconds(train_step, max(1, n_batches // 4))
        epoch = median_seconds(fit, 1, 5) / n_batches
        rows.append((name, "-".join(map(str, widths)), batch, step, epoch))
    print(
        f"{time.strftime('%Y-%m-%d')} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} CPUs | BLAS: {blas_info()}"
    )
    print("OPENBLAS_CORETYPE:", os.environ.get("OPENBLAS_CORETYPE", "(unset)"))
    print("| case | layers | batch | train_step | fit, per batch |")
    print("|---|---|---|---|---|")
    for name, layers_, batch, step, epoch in rows:
        print(f"| {name} | {layers_} | {batch} | {fmt(step)} | {fmt(epoch)} |")


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    main()
