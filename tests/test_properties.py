"""Property tests: random networks against an independent float64 NumPy backprop.

The reference below is written from the maths (not from backprop._reference or the kernels):
a forward pass that keeps every layer's input, and the chain rule backwards. Tolerances:
float64 rtol 1e-9, float32 rtol 2e-4 (relative to each array's largest magnitude).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backprop as bp

ACT = {
    "identity": (bp.Identity, lambda z: z, lambda z, a: np.ones_like(z)),
    "sigmoid": (bp.Sigmoid, lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
    "tanh": (bp.Tanh, np.tanh, lambda z, a: 1 - a**2),
    "relu": (bp.ReLU, lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(float)),
    "leaky_relu": (
        lambda: bp.LeakyReLU(0.1),
        lambda z: np.where(z > 0, z, 0.1 * z),
        lambda z, a: np.where(z > 0, 1.0, 0.1),
    ),
}


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference(params, acts, loss, X, y):
    """Loss, outputs and [(dW, db)] by the chain rule, all in float64."""
    inputs, zs, a = [], [], X
    for k, (W, b) in enumerate(params):
        inputs.append(a)
        z = a @ W + b
        zs.append(z)
        a = ACT[acts[k]][1](z) if k < len(params) - 1 else z
    n = X.shape[0]
    if loss == "mse":
        value, g = np.mean((a - y) ** 2), 2 * (a - y) / a.size
    elif loss == "ce":
        p = softmax(a)
        value = np.mean(-np.log(p[np.arange(n), y]))
        g = p.copy()
        g[np.arange(n), y] -= 1
        g /= n
    else:
        value = np.mean(np.maximum(a, 0) - a * y + np.log1p(np.exp(-np.abs(a))))
        g = (1 / (1 + np.exp(-a)) - y) / a.size
    grads = []
    for k in range(len(params) - 1, -1, -1):
        W = params[k][0]
        grads.append((inputs[k].T @ g, g.sum(axis=0)))
        if k > 0:
            g = g @ W.T
            z = zs[k - 1]
            g = g * ACT[acts[k - 1]][2](z, ACT[acts[k - 1]][1](z))
    return value, a, grads[::-1]


@st.composite
def cases(draw):
    depth = draw(st.integers(1, 3))
    widths = draw(st.lists(st.integers(1, 6), min_size=depth + 1, max_size=depth + 1))
    acts = draw(st.lists(st.sampled_from(sorted(ACT)), min_size=depth - 1, max_size=depth - 1))
    loss = draw(st.sampled_from(["mse", "ce", "bce"]))
    if loss == "ce":
        widths[-1] = max(widths[-1], 2)
    n = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    fortran = draw(st.booleans())
    return widths, acts, loss, n, dtype, seed, fortran


def close(actual, expected, dtype):
    scale = max(np.abs(expected).max(), 1e-3)
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    assert np.abs(np.asarray(actual, float) - expected).max() <= rtol * scale


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_random_network_matches_numpy_backprop(case):
    widths, acts, loss, n, dtype, seed, fortran = case
    rng = np.random.default_rng(seed)
    layers = []
    for k in range(len(widths) - 1):
        layers.append(bp.Dense(widths[k], widths[k + 1], weight_init="uniform"))
        if k < len(widths) - 2:
            layers.append(ACT[acts[k]][0]())
    model = bp.Sequential(layers, dtype=dtype, seed=seed)
    model.compile(
        {"mse": bp.MSE, "ce": bp.SoftmaxCrossEntropy, "bce": bp.BinaryCrossEntropy}[loss](),
        bp.SGD(lr=0.1),
    )
    X = rng.uniform(-2, 2, (n, widths[0]))
    if loss == "ce":
        y = rng.integers(0, widths[-1], n)
    elif loss == "bce":
        y = rng.uniform(0, 1, (n, widths[-1]))
    else:
        y = rng.standard_normal((n, widths[-1]))
    X_in = np.asfortranarray(X) if fortran else X
    params = [
        (layer.W.astype(float), layer.b.astype(float))
        for layer in model.layers
        if isinstance(layer, bp.Dense)
    ]
    Xr = X.astype(dtype).astype(float)  # the model sees X in its own dtype
    value, out, grads = reference(params, [a for a in acts], loss, Xr, y)

    close(model.predict(X_in), out, dtype)
    close(model.evaluate(X_in, y), value, dtype)
    for (dW, db), (eW, eb) in zip(model.gradients(X_in, y), grads, strict=True):
        close(dW, eW, dtype)
        close(db, eb, dtype)
    # one SGD step moves every parameter by exactly -lr * gradient
    before = [p.astype(float) for p in model.parameters()]
    assert model.train_step(X_in, y) == pytest.approx(
        value, rel=1e-9 if dtype == np.float64 else 1e-4
    )
    flat = [g for pair in grads for g in pair]
    for p, p0, g in zip(model.parameters(), before, flat, strict=True):
        close(p - p0, -0.1 * g, dtype)
