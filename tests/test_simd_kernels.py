"""The element-wise passes compiled per instruction set (backprop_core/_simd.h), against NumPy.

Sizes run each vector loop's body and its leftover lanes (1 to 17 items, around 16 and 64);
widths cover the db sums' block path (r*m a multiple of 16 and <= 512) and its plain path,
and W on both sides of the stack copy for dX (4096 items). The ReLU passes match NumPy bit for
bit. The updates match the same formula in NumPy, in the array's precision, to 4 ulp of the
sum of the magnitudes of the terms (the AVX-512 clone fuses a*b+c, which rounds once where
NumPy rounds twice, and a cancelling sum keeps that difference at the terms' scale); sums
and products match the float64 spec to RTOL/ATOL scaled by sqrt(k).
"""

import numpy as np
import pytest

import backprop_core as core
from backprop import _reference as ref
from backprop._reference import ATOL, RTOL

SIZES = [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 64, 65, 1000]


def ulps(actual, expected, dtype, scale, n=4):
    """actual within n ulp of max(|expected|, scale) (scale: the sum of the magnitudes of
    the terms), NaN where expected is NaN, infinities equal."""
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    ok = ~np.isnan(expected)
    np.testing.assert_array_equal(
        actual[ok & np.isinf(expected)], expected[ok & np.isinf(expected)]
    )
    fin = ok & np.isfinite(expected)
    size = np.maximum(np.abs(expected[fin]), np.abs(scale[fin])).astype(dtype)
    assert np.all(np.abs(actual[fin] - expected[fin]) <= n * np.spacing(size))


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 16, 17, 32, 33, 100])
@pytest.mark.parametrize("n_out", [1, 3, 10, 16, 24, 32, 33, 48])
def test_db_sums_and_bias_rows_over_narrow_and_wide_layers(rng, dtype, n, n_out):
    """db := dY.sum(0) (block and plain paths), and Y := X @ W + b."""
    n_in = 5
    X, W, b, dY = (randn(rng, s, dtype) for s in ((n, n_in), (n_in, n_out), n_out, (n, n_out)))
    dW, db, dX = np.empty((n_in, n_out), dtype), np.full(n_out, np.nan, dtype), None
    core.dense_backward(X, W, dY, dW, db, dX)
    np.testing.assert_allclose(
        db, dY.astype(np.float64).sum(0), rtol=RTOL[dtype] * np.sqrt(n), atol=ATOL[dtype] * n
    )
    again = np.empty_like(db)
    core.dense_backward(X, W, dY, dW, again, dX)
    np.testing.assert_array_equal(again, db)  # one (n, m): one summation order
    Y, e_Y = np.full((n, n_out), np.nan, dtype), np.empty((n, n_out))
    core.dense_forward(X, W, b, Y)
    ref.dense_forward(X, W, b, e_Y)
    np.testing.assert_allclose(Y, e_Y, rtol=RTOL[dtype] * 3, atol=ATOL[dtype] * 3)


@pytest.mark.parametrize("n_in,n_out", [(32, 10), (64, 64), (410, 10), (128, 33)])
def test_input_gradient_on_both_sides_of_the_transposed_copy(rng, dtype, n_in, n_out):
    """dX := dY @ W.T, through the stack copy of W.T (W <= 4096 items) or BLAS's transposed
    form (more)."""
    n = 19
    X, W, dY = (
        randn(rng, (n, n_in), dtype),
        randn(rng, (n_in, n_out), dtype),
        randn(rng, (n, n_out), dtype),
    )
    W0 = W.copy()
    dW, db, dX = (
        np.empty((n_in, n_out), dtype),
        np.empty(n_out, dtype),
        np.full((n, n_in), np.nan, dtype),
    )
    core.dense_backward(X, W, dY, dW, db, dX)
    expected = dY.astype(np.float64) @ W.astype(np.float64).T
    scale = np.sqrt(n_out)
    np.testing.assert_allclose(dX, expected, rtol=RTOL[dtype] * scale, atol=ATOL[dtype] * scale)
    np.testing.assert_array_equal(W, W0)


EDGES = [0.0, -0.0, 1e-45, -1e-45, 1e-310, -1e-310, np.inf, -np.inf, np.nan, 2.5, -2.5]


@pytest.mark.parametrize("size", SIZES)
def test_relu_forward_and_backward_match_numpy_exactly(rng, dtype, size):
    """A = 0 if Z <= 0 else Z (-0 and negative subnormals give 0, NaN stays NaN as in NumPy's
    maximum and torch's relu); dZ = dA where A > 0."""
    Z = randn(rng, (1, size), dtype)
    Z.flat[: len(EDGES)] = np.array(EDGES[:size], dtype=dtype)
    A = np.full_like(Z, np.nan)
    core.activation_forward("relu", Z, A)
    np.testing.assert_array_equal(A, np.where(Z <= 0, 0, Z).astype(dtype))
    np.testing.assert_array_equal(np.isnan(A), np.isnan(np.maximum(Z, 0)))
    assert not np.signbit(A).any()
    dA = randn(rng, (1, size), dtype)
    dA.flat[:3] = np.array([np.nan, np.inf, -np.inf][:size], dtype=dtype)
    expected = np.where(A > 0, dA, 0).astype(dtype)
    dZ = np.full_like(dA, np.nan)
    core.activation_backward("relu", A, dA, dZ)
    np.testing.assert_array_equal(dZ, expected)
    core.activation_backward("relu", A, dA, dA)  # in place
    np.testing.assert_array_equal(dA, expected)


SGD = [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.001),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kw", SGD, ids=["plain", "weight-decay", "momentum", "nesterov"])
def test_sgd_update_matches_the_formula_in_numpy(rng, dtype, size, kw):
    w, v, g = (randn(rng, size, dtype) for _ in range(3))
    g[: min(size, 2)] = np.array([np.nan, np.inf][:size], dtype)  # non-finite propagates
    lr, mu = dtype(kw["lr"]), dtype(kw.get("momentum", 0.0))
    wd = dtype(kw.get("weight_decay", 0.0))
    with np.errstate(invalid="ignore"):
        d = g + wd * w
        d_size = np.abs(g) + np.abs(wd * w)
        if mu:
            e_v = mu * v + d
            v_size = np.abs(mu * v) + d_size
            nesterov = kw.get("nesterov", False)
            e_w = w - lr * (d + mu * e_v if nesterov else e_v)
            w_size = np.abs(w) + lr * (d_size + mu * v_size if nesterov else v_size)
        else:
            e_w = w - lr * d
            w_size = np.abs(w) + lr * d_size
    core.sgd_update(w, g, v if mu else None, **kw)
    ulps(w, e_w, dtype, w_size)
    if mu:
        ulps(v, e_v, dtype, v_size)


@pytest.mark.parametrize("size", SIZES)
def test_adam_update_matches_the_formula_in_numpy(rng, dtype, size):
    w, g = randn(rng, size, dtype), randn(rng, size, dtype)
    m, v = randn(rng, size, dtype), np.abs(randn(rng, size, dtype))
    g[0] = np.nan
    t, lr, b1, b2, eps, wd = 3, 1e-3, 0.9, 0.999, 1e-8, 0.01
    d = g + dtype(wd) * w
    d_size = np.abs(g) + np.abs(dtype(wd) * w)
    e_m = dtype(b1) * m + dtype(1 - b1) * d
    e_v = dtype(b2) * v + dtype(1 - b2) * d * d
    m_size = np.abs(dtype(b1) * m) + dtype(1 - b1) * d_size
    v_size = dtype(b2) * v + dtype(1 - b2) * d_size * d_size
    step = dtype(lr / (1 - b1**t))
    # the denominator in double, as the kernel's sqrt() of a float32 is
    denom = np.sqrt(e_v.astype(np.float64)) * float(dtype(1 / np.sqrt(1 - b2**t))) + float(
        dtype(eps)
    )
    e_w = (w - (step * e_m) / denom).astype(dtype)
    w_size = np.abs(w) + step * m_size / denom
    core.adam_update(w, g, m, v, t=t, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
    ulps(m, e_m, dtype, m_size)
    ulps(v, e_v, dtype, v_size)
    ulps(w, e_w, dtype, w_size)


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (32, 10), (517, 7), (4096, 1000)])
def test_softmax_cross_entropy_without_weights_sums_logs_as_one_product(rng, dtype, shape):
    """The unweighted float32 path takes log(prod s_i) with exact renormalisation, the
    weighted path a log per row; both match the float64 spec, and each other."""
    n, m = shape
    Z = (3 * rng.standard_normal(shape)).astype(dtype)
    labels = rng.integers(0, m, n)
    G, eG, Gw = np.empty_like(Z), np.empty(shape), np.empty_like(Z)
    loss = core.softmax_cross_entropy_loss(Z, labels, G)
    expected = ref.softmax_cross_entropy_loss(Z, labels, eG)
    np.testing.assert_allclose(loss, expected, rtol=RTOL[dtype] * np.sqrt(m), atol=ATOL[dtype])
    np.testing.assert_allclose(G, eG, rtol=RTOL[dtype], atol=ATOL[dtype] / n)
    weighted = core.softmax_cross_entropy_loss(Z, labels, Gw, np.ones(n, dtype))
    np.testing.assert_allclose(loss, weighted, rtol=RTOL[dtype], atol=ATOL[dtype])
    np.testing.assert_array_equal(G, Gw)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy_of_a_non_finite_logit_is_not_finite(dtype, bad, weighted):
    """An overflowed logit makes the loss NaN, never a finite number a product hid it in."""
    Z = np.zeros((4, 10), dtype)
    Z[1, 3] = bad
    w = np.ones(4, dtype) if weighted else None
    loss = core.softmax_cross_entropy_loss(Z, np.zeros(4, np.int64), np.empty_like(Z), w)
    assert np.isnan(loss)
