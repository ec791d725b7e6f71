"""Where does a BLAS call start to beat the direct loop? Measures backprop_core.dense_forward
+ dense_backward (three products) with every product forced through BLAS, then through the
direct loop, side by side in one run; prints the median time per call and the ratio.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gemm_threshold.py
"""

import functools
import os
import statistics
import timeit

import numpy as np

import backprop_core as core
from backprop_core._blas import _set_small_gemm_threshold

SHAPES = [  # (batch, n_in, n_out)
    (1, 2, 3),
    (1, 8, 8),
    (4, 4, 4),
    (2, 8, 8),
    (4, 8, 8),
    (8, 8, 8),
    (4, 16, 16),
    (8, 16, 16),
    (16, 16, 16),
    (16, 32, 16),
    (32, 32, 16),
    (32, 32, 32),
    (32, 64, 32),
    (64, 64, 64),
]


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    core.dense_forward(*[np.ones(s) for s in ((2, 2), (2, 2), (2,), (2, 2))])  # load BLAS
    return "; ".join(
        f"{i['internal_api']} {i.get('version')} {i.get('architecture')} threads={i['num_threads']}"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


def forward_backward(X, W, b, Y, dW, db, dX) -> None:
    core.dense_forward(X, W, b, Y)
    core.dense_backward(X, W, Y, dW, db, dX)


def median_us(fn, number=2000, repeat=7) -> float:
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    print("OPENBLAS_CORETYPE", os.environ.get("OPENBLAS_CORETYPE", "(unset)"))
    print("BLAS:", blas_info())
    rng = np.random.default_rng(0)
    print(f"{'n x in x out':>14} {'m*n*k':>7} {'BLAS us':>8} {'loop us':>8} {'loop/BLAS':>9}")
    for n, i, o in SHAPES:
        X = rng.standard_normal((n, i), dtype=np.float32)
        W = rng.standard_normal((i, o), dtype=np.float32)
        b, Y = np.zeros(o, np.float32), np.empty((n, o), np.float32)

        call = functools.partial(
            forward_backward, X, W, b, Y, np.empty_like(W), np.empty_like(b), np.empty_like(X)
        )

        times = {}
        for mode, threshold in (("blas", -1), ("loop", 1 << 40)):
            old = _set_small_gemm_threshold(threshold)
            try:
                times[mode] = median_us(call)
            finally:
                _set_small_gemm_threshold(old)
        print(
            f"{n:>4}x{i:>3}x{o:>3}  {n * i * o:>7} {times['blas']:>8.2f} {times['loop']:>8.2f} "
            f"{times['loop'] / times['blas']:>9.2f}"
        )


if __name__ == "__main__":
    main()
