"""Property tests: random networks against an independent float64 NumPy backprop.

The reference below is written from the maths (not from backprop._reference or the kernels):
a forward pass that keeps every layer's input, and the chain rule backwards. Inputs come in
every dtype the package converts (float16/32/64, small integers) and every memory layout
(C, Fortran, strided, negative strides, read-only, nested lists). Tolerances: float64 rtol
1e-9, float32 rtol 2e-4, relative to each array's largest magnitude (for an update: to the
step's largest magnitude).
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
    "softmax": (bp.Softmax, lambda z: softmax(z), None),
    "leaky_relu": (
        lambda: bp.LeakyReLU(0.1),
        lambda z: np.where(z > 0, z, 0.1 * z),
        lambda z, a: np.where(z > 0, 1.0, 0.1),
    ),
}


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def row_losses(a, y, loss, delta):
    """Per-row losses L_i and dL_i/da (float64)."""
    n, m = a.shape
    if loss == "ce":
        p = softmax(a)
        g = p.copy()
        g[np.arange(n), y] -= 1
        return -np.log(p[np.arange(n), y]), g
    d = a - y
    if loss == "mse":
        return (d**2).mean(axis=1), 2 * d / m
    if loss == "mae":
        return np.abs(d).mean(axis=1), np.sign(d) / m
    if loss == "huber":
        h = np.where(np.abs(d) <= delta, 0.5 * d**2, delta * (np.abs(d) - 0.5 * delta))
        return h.mean(axis=1), np.clip(d, -delta, delta) / m
    value = np.maximum(a, 0) - a * y + np.log1p(np.exp(-np.abs(a)))
    return value.mean(axis=1), (1 / (1 + np.exp(-a)) - y) / m


def reference(params, acts, loss, X, y, w=None, delta=1.0):
    """Loss, outputs and [(dW, db)] by the chain rule, all in float64.

    The batch loss is sum_i w_i L_i / sum_i w_i (w = 1 without sample weights)."""
    inputs, zs, a = [], [], X
    for k, (W, b) in enumerate(params):
        inputs.append(a)
        z = a @ W + b
        zs.append(z)
        a = ACT[acts[k]][1](z) if k < len(params) - 1 else z
    w = np.ones(X.shape[0]) if w is None else np.asarray(w, float)
    rows, g = row_losses(a, y, loss, delta)
    value = (w * rows).sum() / w.sum()
    g = g * (w / w.sum())[:, None]
    grads = []
    for k in range(len(params) - 1, -1, -1):
        W = params[k][0]
        grads.append((inputs[k].T @ g, g.sum(axis=0)))
        if k > 0:
            g = g @ W.T
            z = zs[k - 1]
            a_k = ACT[acts[k - 1]][1](z)
            if acts[k - 1] == "softmax":  # a row-wise Jacobian, not an element-wise slope
                g = a_k * (g - (g * a_k).sum(axis=1, keepdims=True))
            else:
                g = g * ACT[acts[k - 1]][2](z, a_k)
    return value, a, grads[::-1]


LOSSES = {
    "mse": bp.MSE,
    "mae": bp.MAE,
    "huber": lambda: bp.Huber(0.7),
    "ce": bp.SoftmaxCrossEntropy,
    "bce": bp.BinaryCrossEntropy,
}
# Every memory layout an input may come in; the model must treat each like a C copy.
LAYOUTS = {
    "C": lambda a: a,
    "F": np.asfortranarray,
    "strided": lambda a: np.repeat(a, 2, axis=0)[::2],
    "negative": lambda a: np.ascontiguousarray(a[::-1])[::-1],
    "read-only": lambda a: _read_only(a.copy()),
    "list": lambda a: a.tolist(),
}
X_DTYPES = ["float64", "float32", "float16", "int32", "int64", "uint8"]


def _read_only(a):
    a.flags.writeable = False
    return a


@st.composite
def cases(draw):
    depth = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 6), min_size=depth + 1, max_size=depth + 1))
    acts = draw(st.lists(st.sampled_from(sorted(ACT)), min_size=depth - 1, max_size=depth - 1))
    dropout = draw(st.lists(st.booleans(), min_size=depth - 1, max_size=depth - 1))
    loss = draw(st.sampled_from(sorted(LOSSES)))
    if loss == "ce":
        widths[-1] = max(widths[-1], 2)
    return {
        "widths": widths,
        "acts": acts,
        "dropout": dropout,
        "loss": loss,
        "n": draw(st.sampled_from([1, 1, 2, 3, 5, 8])),
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "x_dtype": draw(st.sampled_from(X_DTYPES)),
        "x_layout": draw(st.sampled_from(sorted(LAYOUTS))),
        "y_layout": draw(st.sampled_from(sorted(LAYOUTS))),
        "weighted": draw(st.booleans()),
        "opt": draw(st.sampled_from(["sgd", "momentum", "nesterov", "adam"])),
        "weight_decay": draw(st.sampled_from([0.0, 0.01])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def close(actual, expected, dtype, scale=None):
    scale = max(np.abs(expected).max(), 1e-3) if scale is None else scale
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    assert np.abs(np.asarray(actual, float) - expected).max() <= rtol * scale


def make_optimizer(case, lr):
    wd = case["weight_decay"]
    if case["opt"] == "adam":
        return bp.Adam(lr=lr, weight_decay=wd)
    momentum = 0.0 if case["opt"] == "sgd" else 0.9
    return bp.SGD(lr=lr, momentum=momentum, nesterov=case["opt"] == "nesterov", weight_decay=wd)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_random_network_matches_numpy_backprop(case):
    """Forward, loss, gradients and one update of a random network (any depth, width 1 and
    batch 1 included, every activation and loss, Dropout in eval mode, sample weights, every
    optimizer) on inputs of any dtype and memory layout, against the float64 reference."""
    widths, acts, loss, n, dtype = (case[k] for k in ("widths", "acts", "loss", "n", "dtype"))
    rng = np.random.default_rng(case["seed"])
    layers = []
    for k in range(len(widths) - 1):
        layers.append(bp.Dense(widths[k], widths[k + 1], weight_init="uniform"))
        if k < len(widths) - 2:
            layers.append(ACT[acts[k]][0]())
            if case["dropout"][k]:
                layers.append(bp.Dropout(0.5))
    model = bp.Sequential(layers, dtype=dtype, seed=case["seed"])
    lr = 0.1 if case["opt"] != "adam" else 0.01
    model.compile(LOSSES[loss](), make_optimizer(case, lr))
    if any(case["dropout"]):
        model.eval()  # dropout off: the reference has none

    if case["x_dtype"].startswith(("int", "uint")):
        low = 0 if case["x_dtype"] == "uint8" else -3
        X = rng.integers(low, 4, (n, widths[0])).astype(case["x_dtype"])
    else:
        X = rng.uniform(-2, 2, (n, widths[0])).astype(case["x_dtype"])
    if loss == "ce":
        y = rng.integers(0, widths[-1], n)
    elif loss == "bce":
        y = rng.uniform(0, 1, (n, widths[-1]))
    else:
        y = rng.standard_normal((n, widths[-1]))
    w = rng.uniform(0.1, 2.0, n) if case["weighted"] else None
    X_in, y_in = LAYOUTS[case["x_layout"]](X), LAYOUTS[case["y_layout"]](y)
    params = [
        (layer.W.astype(float), layer.b.astype(float))
        for layer in model.layers
        if isinstance(layer, bp.Dense)
    ]
    Xr = X.astype(dtype).astype(float)  # the model sees X in its own dtype
    yr = y if loss == "ce" else y.astype(dtype).astype(float)
    wr = None if w is None else w.astype(dtype).astype(float)
    value, out, grads = reference(params, acts, loss, Xr, yr, wr, delta=0.7)

    close(model.predict(X_in), out, dtype)
    close(model.evaluate(X_in, y_in, sample_weight=w), value, dtype, scale=max(value, 1e-3))
    got = model.gradients(X_in, y_in, sample_weight=w)
    for (dW, db), (eW, eb) in zip(got, grads, strict=True):
        close(dW, eW, dtype)
        close(db, eb, dtype)

    # one update, from the state before it (velocity / moments zero)
    before = [p.astype(float) for p in model.parameters()]
    assert model.train_step(X_in, y_in, sample_weight=w) == pytest.approx(
        value, rel=1e-9 if dtype == np.float64 else 1e-4, abs=1e-12
    )
    wd = case["weight_decay"]
    if case["opt"] == "adam":
        # from the model's own gradients: a first Adam step is ~lr * sign(d), so it would
        # magnify float32 rounding of a tiny d compared against the float64 reference
        own = [g.astype(float) for pair in got for g in pair]
        for p, p0, g in zip(model.parameters(), before, own, strict=True):
            d = g + wd * p0
            m, v = 0.1 * d, 0.001 * d * d
            step = lr / 0.1 * m / (np.sqrt(v) / np.sqrt(0.001) + 1e-8)
            close(p - p0, -step, dtype, scale=lr)
    else:
        factor = 1.9 if case["opt"] == "nesterov" else 1.0  # nesterov: d + mu * v, v = d
        flat = [g for pair in grads for g in pair]
        for p, p0, g in zip(model.parameters(), before, flat, strict=True):
            expected = -lr * factor * (g + wd * p0)
            # p - p0 also carries the rounding of p itself (float32: ~6e-8 * |p|)
            scale = max(np.abs(expected).max(), 1e-3 * np.abs(p0).max(), lr * 1e-3)
            close(p - p0, expected, dtype, scale=scale)
