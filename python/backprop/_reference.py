"""Readable NumPy specification of every core kernel, with the kernels' signatures.

Each function computes in float64 and writes its outputs into the arrays it is given, as the
kernel does. The tests and benchmarks compare the kernels with it; explain mode takes its
float64 derivatives from it (readable, and independent of the compiled core).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]

# Tolerances for comparing a kernel's float32/float64 output with this float64 spec
# (scale them by sqrt(k) for a reduction over k terms).
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
ATOL = {np.float32: 2e-6, np.float64: 1e-13}


def dense_forward(X: Array, W: Array, b: Array, Y: Array) -> None:
    Y[...] = X.astype(np.float64) @ W + b


def dense_backward(
    X: Array, W: Array, dY: Array, dW: Array, db: Array, dX: Array | None = None
) -> None:
    dY64 = dY.astype(np.float64)
    dW[...] = X.astype(np.float64).T @ dY64
    db[...] = dY64.sum(axis=0)
    if dX is not None:
        dX[...] = dY64 @ W.astype(np.float64).T


def _softmax(Z: Array) -> Array:
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def activation_forward(name: str, Z: Array, A: Array, alpha: float = 0.01) -> None:
    Z = Z.astype(np.float64)
    table: dict[str, Callable[[], Array]] = {
        "identity": lambda: Z,
        "sigmoid": lambda: 1.0 / (1.0 + np.exp(-Z)),
        "tanh": lambda: np.tanh(Z),
        "relu": lambda: np.maximum(Z, 0.0),
        "leaky_relu": lambda: np.where(Z > 0, Z, alpha * Z),
        "softmax": lambda: _softmax(Z),
    }
    A[...] = table[name]()


def activation_backward(name: str, A: Array, dA: Array, dZ: Array, alpha: float = 0.01) -> None:
    A, dA = A.astype(np.float64), dA.astype(np.float64)
    table: dict[str, Callable[[], Array]] = {
        "identity": lambda: dA,
        "sigmoid": lambda: dA * A * (1 - A),
        "tanh": lambda: dA * (1 - A**2),
        "relu": lambda: np.where(A > 0, dA, 0.0),
        "leaky_relu": lambda: np.where(A > 0, dA, alpha * dA),
        "softmax": lambda: A * (dA - (dA * A).sum(axis=1, keepdims=True)),
    }
    dZ[...] = table[name]()


def _row_scale(n: int, w: Array | None) -> tuple[Array, float]:
    """(row weights (n,), 1 / their sum): the batch loss is sum_i w_i L_i / sum_i w_i."""
    w64 = np.ones(n) if w is None else w.astype(np.float64)
    total = w64.sum()
    return w64, (1.0 / total if total > 0 else 0.0)


def _elementwise(
    value: Callable[[Array], Array],
    slope: Callable[[Array], Array],
    D: Array,
    G: Array | None,
    w: Array | None,
) -> float:
    """Loss with L_i = mean_j value(D[i, j]) and gradient slope(D) scaled per row."""
    w64, inv = _row_scale(D.shape[0], w)
    if G is not None:
        G[...] = slope(D) * (w64 * inv / D.shape[1])[:, None]
    return float((value(D).mean(axis=1) * w64).sum() * inv)


def mse_loss(
    Y: Array, T: Array, G: Array | None = None, w: Array | None = None, scale: float = 1.0
) -> float:
    D = Y.astype(np.float64) - T
    return _elementwise(lambda d: scale * d**2, lambda d: 2 * scale * d, D, G, w)


def mae_loss(Y: Array, T: Array, G: Array | None = None, w: Array | None = None) -> float:
    D = Y.astype(np.float64) - T
    return _elementwise(np.abs, np.sign, D, G, w)


def huber_loss(
    Y: Array, T: Array, G: Array | None = None, w: Array | None = None, delta: float = 1.0
) -> float:
    D = Y.astype(np.float64) - T
    return _elementwise(
        lambda d: np.where(np.abs(d) <= delta, 0.5 * d**2, delta * (np.abs(d) - 0.5 * delta)),
        lambda d: np.clip(d, -delta, delta),
        D,
        G,
        w,
    )


def softmax_cross_entropy_loss(
    Z: Array, labels: Array, G: Array | None = None, w: Array | None = None
) -> float:
    Z = Z.astype(np.float64)
    n = Z.shape[0]
    w64, inv = _row_scale(n, w)
    zmax = Z.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(Z - zmax).sum(axis=1))
    if G is not None:
        P = _softmax(Z)
        P[np.arange(n), labels] -= 1
        G[...] = P * (w64 * inv)[:, None]
    return float(((lse - Z[np.arange(n), labels]) * w64).sum() * inv)


def binary_cross_entropy_loss(
    Z: Array, T: Array, G: Array | None = None, w: Array | None = None
) -> float:
    Z, T = Z.astype(np.float64), T.astype(np.float64)
    w64, inv = _row_scale(Z.shape[0], w)
    if G is not None:
        G[...] = (1.0 / (1.0 + np.exp(-Z)) - T) * (w64 * inv / Z.shape[1])[:, None]
    L = np.maximum(Z, 0) - Z * T + np.log1p(np.exp(-np.abs(Z)))
    return float((L.mean(axis=1) * w64).sum() * inv)


def sgd_update(
    param: Array,
    grad: Array,
    velocity: Array | None = None,
    *,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> None:
    d = grad.astype(np.float64) + weight_decay * param
    if momentum != 0:
        assert velocity is not None
        v = momentum * velocity + d
        velocity[...] = v
        d = d + momentum * v if nesterov else v
    param[...] = param - lr * d


def adam_update(
    param: Array,
    grad: Array,
    m: Array,
    v: Array,
    *,
    t: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    d = grad.astype(np.float64) + weight_decay * param
    m64 = beta1 * m + (1 - beta1) * d
    v64 = beta2 * v + (1 - beta2) * d * d
    m[...], v[...] = m64, v64
    mhat, vhat = m64 / (1 - beta1**t), v64 / (1 - beta2**t)
    param[...] = param - lr * mhat / (np.sqrt(vhat) + eps)
