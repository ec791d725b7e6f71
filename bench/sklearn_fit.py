"""End-to-end fit time of backprop.sklearn's estimators against scikit-learn's own, same
parameters, both dtypes:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/sklearn_fit.py \
        [--cases digits,synthetic] [--repeats 3] [--threads N]

- digits: load_digits (1797 x 64, scaled to [0, 1]), MLPClassifier((128,), solver="adam"),
  50 epochs (the issue-13 figure: goals >= 3x in float64, >= 6x in float32);
- synthetic: 100,000 x 100 Gaussian features, 10 classes from a random linear map,
  MLPClassifier((128,), solver="adam"), 5 epochs.

Every fit runs exactly the given epochs (tol=0, n_iter_no_change=inf), batch_size "auto"
(200), random_state=0. scikit-learn's dtype follows X (float32 X trains a float32 network
there too); ours is dtype=None, the same rule. Each figure is the fastest of --repeats fits
after one warm-up fit; the ratio is scikit-learn's time / ours. "model.fit" is the same
training through backprop.Sequential directly: the estimator's own overhead is the
difference. --threads N limits every BLAS in the process to N threads (threadpoolctl); on a
machine shared with other work, 1 gives steadier figures.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from collections.abc import Callable
from functools import partial

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

import backprop as bp
from backprop.sklearn import MLPClassifier


def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def synthetic() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100_000, 100))
    y = np.argmax(X @ rng.standard_normal((100, 10)), axis=1)
    return X, y


CASES: dict[str, tuple[Callable[[], tuple[np.ndarray, np.ndarray]], int]] = {
    "digits": (digits, 50),
    "synthetic": (synthetic, 5),
}


def fastest(fit: Callable[[], object], repeats: int) -> float:
    fit()  # warm-up: imports, BLAS threads, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fit()
        times.append(time.perf_counter() - start)
    return min(times)


def model_fit(X: np.ndarray, y: np.ndarray, epochs: int) -> None:
    """The estimator's training without the estimator: the same network, loss, optimizer,
    L2 term, batch size and epochs through backprop.Sequential."""
    n_in, n_classes = X.shape[1], int(y.max()) + 1
    model = bp.Sequential(
        [bp.Dense(n_in, 128), bp.ReLU(), bp.Dense(128, n_classes)], dtype=X.dtype, seed=0
    )
    model.compile(bp.SoftmaxCrossEntropy(), bp.Adam(lr=1e-3), l2=1e-4)
    model.fit(X, y, epochs=epochs, batch_size=min(200, len(X)))


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i['internal_api']} {i.get('version')} threads={i['num_threads']}"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="digits,synthetic")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None,
        help="BLAS threads for every library (threadpoolctl); default: each library's own",
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"{platform.processor() or platform.machine()}; BLAS: {blas_info()}")
    header = (
        f"{'case':<10} {'dtype':<8} {'epochs':>6} {'sklearn s':>10} {'ours s':>8} "
        f"{'model.fit s':>11} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for name in args.cases.split(","):
        load, epochs = CASES[name]
        X64, y = load()
        kw = dict(hidden_layer_sizes=(128,), solver="adam", max_iter=epochs, tol=0.0,
                  n_iter_no_change=np.inf, random_state=0)  # fmt: skip
        for dtype in ("float64", "float32"):
            X = np.ascontiguousarray(X64, dtype=dtype)
            theirs = fastest(partial(SkMLPClassifier(**kw).fit, X, y), args.repeats)
            ours = fastest(partial(MLPClassifier(**kw).fit, X, y), args.repeats)
            raw = fastest(partial(model_fit, X, y, epochs), args.repeats)
            print(
                f"{name:<10} {dtype:<8} {epochs:>6} {theirs:>10.3f} {ours:>8.3f} "
                f"{raw:>11.3f} {theirs / ours:>5.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
