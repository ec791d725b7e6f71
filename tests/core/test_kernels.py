"""backprop_core kernels against the NumPy float64 spec in backprop._reference, and the
element-wise passes compiled per instruction set (backprop_core/_simd.h) against NumPy.

Shapes cover the direct loop (m*n*k <= small_gemm_threshold()) and the BLAS path, 1x1,
non-square and empty batches. Tolerances: RTOL/ATOL from backprop._reference, scaled by
sqrt(k) for products with inner size k.

SIMD edge cases: sizes run each vector loop's body and its leftover lanes (1 to 17 items,
around 16 and 64); widths cover the db sums' block path (r*m a multiple of 16 and <= 512) and
its plain path, and W on both sides of the stack copy for dX (4096 items). The ReLU passes
match NumPy bit for bit. The updates match the same formula in NumPy, in the array's
precision, to 4 ulp of the sum of the magnitudes of the terms (the AVX-512 clone fuses a*b+c,
which rounds once where NumPy rounds twice, and a cancelling sum keeps that difference at the
terms' scale); sums and products match the float64 spec to RTOL/ATOL scaled by sqrt(k).

The kernels' refusals of bad arguments are in test_kernel_arguments.py.
"""

import inspect

import numpy as np
import pytest

import backprop_core as core
from backprop import _reference as ref
from backprop._reference import ATOL, RTOL

DENSE_SHAPES = [(1, 1, 1), (1, 2, 3), (4, 3, 2), (7, 5, 11), (32, 64, 10), (65, 33, 17), (0, 3, 4)]
ACTS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]


def close(actual, expected, dtype, k=1):
    scale = np.sqrt(max(k, 1))
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype] * scale, atol=ATOL[dtype] * scale)


def randn(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def test_small_gemm_threshold_splits_the_shapes():
    t = core.small_gemm_threshold()
    sizes = [n * i * o for n, i, o in DENSE_SHAPES]
    assert min(sizes) <= t < max(sizes)


@pytest.mark.parametrize("n,n_in,n_out", DENSE_SHAPES)
def test_dense_forward(rng, dtype, n, n_in, n_out):
    X, W, b = (
        randn(rng, (n, n_in), dtype),
        randn(rng, (n_in, n_out), dtype),
        randn(rng, n_out, dtype),
    )
    Y = np.full((n, n_out), np.nan, dtype=dtype)
    expected = np.empty((n, n_out))
    core.dense_forward(X, W, b, Y)
    ref.dense_forward(X, W, b, expected)
    close(Y, expected, dtype, n_in)


@pytest.mark.parametrize("n,n_in,n_out", DENSE_SHAPES)
@pytest.mark.parametrize("with_dx", [True, False], ids=["dX", "no-dX"])
def test_dense_backward(rng, dtype, n, n_in, n_out, with_dx):
    X, W, dY = (
        randn(rng, (n, n_in), dtype),
        randn(rng, (n_in, n_out), dtype),
        randn(rng, (n, n_out), dtype),
    )
    X0, W0, dY0 = X.copy(), W.copy(), dY.copy()
    # NaN-filled outputs: the kernel must overwrite, never accumulate into, its gradients
    dW, db = np.full((n_in, n_out), np.nan, dtype), np.full(n_out, np.nan, dtype)
    dX = np.full((n, n_in), np.nan, dtype) if with_dx else None
    core.dense_backward(X, W, dY, dW, db, dX)
    e_dW, e_db, e_dX = np.empty((n_in, n_out)), np.empty(n_out), np.empty((n, n_in))
    ref.dense_backward(X, W, dY, e_dW, e_db, e_dX)
    close(dW, e_dW, dtype, n)
    close(db, e_db, dtype, n)
    if with_dx:
        close(dX, e_dX, dtype, n_out)
    for before, after in ((X0, X), (W0, W), (dY0, dY)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (16, 3)])
@pytest.mark.parametrize("in_place", [False, True], ids=["out-of-place", "in-place"])
def test_activation_forward_backward(rng, dtype, name, shape, in_place):
    Z = randn(rng, shape, dtype, scale=3.0)
    Z0 = Z.copy()
    A = Z if in_place else np.empty_like(Z)
    core.activation_forward(name, Z, A, alpha=0.2)
    eA = np.empty(shape)
    ref.activation_forward(name, Z0, eA, alpha=0.2)
    close(A, eA, dtype)
    if not in_place:
        np.testing.assert_array_equal(Z, Z0)

    dA = randn(rng, shape, dtype)
    dA0 = dA.copy()
    dZ = dA if in_place else np.empty_like(dA)
    core.activation_backward(name, A, dA, dZ, alpha=0.2)
    edZ = np.empty(shape)
    ref.activation_backward(name, A, dA0, edZ, alpha=0.2)
    close(dZ, edZ, dtype, shape[1])


@pytest.mark.parametrize("name", ["sigmoid", "softmax"])
def test_activations_do_not_overflow(dtype, name):
    Z = np.array([[-1000.0, 0.0, 1000.0]], dtype=dtype)
    A = np.empty_like(Z)
    core.activation_forward(name, Z, A)
    assert np.isfinite(A).all()
    expected = [[0.0, 0.5, 1.0]] if name == "sigmoid" else [[0.0, 0.0, 1.0]]
    np.testing.assert_allclose(A, expected, atol=1e-7)


@pytest.mark.parametrize("shape", [(1, 1), (6, 4), (33, 10)])
def test_mse_loss(rng, dtype, shape):
    Y, T = randn(rng, shape, dtype), randn(rng, shape, dtype)
    G, eG = np.empty_like(Y), np.empty(shape)
    loss = core.mse_loss(Y, T, G)
    close(loss, ref.mse_loss(Y, T, eG), dtype, Y.size)
    close(G, eG, dtype)
    assert core.mse_loss(Y, T) == loss  # value without the gradient is the same number


@pytest.mark.parametrize("shape", [(1, 2), (6, 4), (33, 10)])
@pytest.mark.parametrize("scale", [1.0, 50.0], ids=["small-logits", "large-logits"])
def test_softmax_cross_entropy_loss(rng, dtype, shape, scale):
    Z = randn(rng, shape, dtype, scale)
    labels = rng.integers(0, shape[1], shape[0])
    G, eG = np.empty_like(Z), np.empty(shape)
    loss = core.softmax_cross_entropy_loss(Z, labels, G)
    close(loss, ref.softmax_cross_entropy_loss(Z, labels, eG), dtype, shape[1])
    close(G, eG, dtype)
    assert np.isfinite(loss)


@pytest.mark.parametrize("shape", [(1, 1), (6, 1), (9, 3)])
@pytest.mark.parametrize("scale", [1.0, 50.0], ids=["small-logits", "large-logits"])
def test_binary_cross_entropy_loss(rng, dtype, shape, scale):
    Z = randn(rng, shape, dtype, scale)
    T = rng.uniform(0, 1, shape).astype(dtype)
    G, eG = np.empty_like(Z), np.empty(shape)
    loss = core.binary_cross_entropy_loss(Z, T, G)
    close(loss, ref.binary_cross_entropy_loss(Z, T, eG), dtype, Z.size)
    close(G, eG, dtype)


@pytest.mark.parametrize("shape", [(1, 1), (6, 4), (33, 10)])
@pytest.mark.parametrize("delta", [0.3, 1.0, 5.0])
def test_huber_loss(rng, dtype, shape, delta):
    Y, T = randn(rng, shape, dtype, 2.0), randn(rng, shape, dtype)
    G, eG = np.empty_like(Y), np.empty(shape)
    loss = core.huber_loss(Y, T, G, delta=delta)
    close(loss, ref.huber_loss(Y, T, eG, delta=delta), dtype, Y.size)
    close(G, eG, dtype)
    # delta large: half the squared error; every |d| above delta: linear
    if delta == 5.0 and np.abs(Y - T).max() <= 5.0:
        close(loss, 0.5 * ref.mse_loss(Y, T), dtype, Y.size)


@pytest.mark.parametrize("shape", [(1, 1), (6, 4), (33, 10)])
def test_mae_loss(rng, dtype, shape):
    Y, T = randn(rng, shape, dtype), randn(rng, shape, dtype)
    T[0, 0] = Y[0, 0]  # d = 0: gradient 0, as torch's sign
    G, eG = np.empty_like(Y), np.empty(shape)
    loss = core.mae_loss(Y, T, G)
    close(loss, ref.mae_loss(Y, T, eG), dtype, Y.size)
    close(G, eG, dtype)
    assert G[0, 0] == 0


LOSS_CASES = ["mse_loss", "mae_loss", "huber_loss", "binary_cross_entropy_loss"]


@pytest.mark.parametrize("name", [*LOSS_CASES, "softmax_cross_entropy_loss"])
def test_weighted_losses(rng, dtype, name):
    """Row weights: sum_i w_i L_i / sum_i w_i, against the spec; integer weights equal
    repeating rows; all-ones weights equal no weights."""
    n, m = 7, 3
    Y = randn(rng, (n, m), dtype, 2.0)
    if name == "softmax_cross_entropy_loss":
        T = rng.integers(0, m, n)
    elif name == "binary_cross_entropy_loss":
        T = rng.uniform(0, 1, (n, m)).astype(dtype)
    else:
        T = randn(rng, (n, m), dtype)
    w = np.array([0, 1, 2, 3, 0, 1, 1], dtype=dtype)
    kernel, spec = getattr(core, name), getattr(ref, name)
    G, eG = np.empty_like(Y), np.empty((n, m))
    loss = kernel(Y, T, G, w)
    close(loss, spec(Y, T, eG, w), dtype, n * m)
    close(G, eG, dtype)
    assert not G[0].any() and not G[4].any()  # weight 0: no gradient
    rep = np.repeat(np.arange(n), w.astype(int))
    close(loss, kernel(Y[rep], T[rep]), dtype, n * m)
    close(kernel(Y, T, None, np.ones(n, dtype)), kernel(Y, T), dtype, n * m)
    G[...] = 1
    assert kernel(Y, T, G, np.zeros(n, dtype)) == 0 and not G.any()  # weights sum to 0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.1),
        dict(lr=0.1, weight_decay=0.01),
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.001),
    ],
    ids=["plain", "weight-decay", "momentum", "nesterov"],
)
def test_sgd_update(rng, dtype, kwargs):
    size = 37
    param, velocity = randn(rng, size, dtype), randn(rng, size, dtype)
    e_param, e_velocity = param.astype(np.float64), velocity.astype(np.float64)
    buffer_before = param.__array_interface__["data"][0]
    for _ in range(3):
        grad = randn(rng, size, dtype)
        grad0 = grad.copy()
        v = velocity if kwargs.get("momentum") else None
        assert core.sgd_update(param, grad, v, **kwargs) is None
        ref.sgd_update(e_param, grad, e_velocity if v is not None else None, **kwargs)
        np.testing.assert_array_equal(grad, grad0)
        close(param, e_param, dtype, 4)
        if v is not None:
            close(velocity, e_velocity, dtype, 4)
    assert param.__array_interface__["data"][0] == buffer_before


def test_sgd_update_in_place_on_a_2d_parameter_view(rng):
    W = rng.standard_normal((4, 3))
    flat = W.reshape(-1)
    assert np.shares_memory(flat, W)
    expected = W - 0.5 * np.ones_like(W)
    core.sgd_update(flat, np.ones(12), lr=0.5)
    np.testing.assert_allclose(W, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_update(rng, dtype, weight_decay):
    size = 29
    param = randn(rng, size, dtype)
    m, v = np.zeros(size, dtype), np.zeros(size, dtype)
    e_param, e_m, e_v = param.astype(np.float64), np.zeros(size), np.zeros(size)
    for t in range(1, 5):
        grad = randn(rng, size, dtype)
        kw = dict(t=t, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay)
        core.adam_update(param, grad, m, v, **kw)
        ref.adam_update(e_param, grad, e_m, e_v, **kw)
        close(param, e_param, dtype, 8)
        close(m, e_m, dtype, 4)
        close(v, e_v, dtype, 4)


def test_first_nonfinite_row():
    X = np.zeros((5, 3), np.float32)
    assert core.first_nonfinite_row(X) == -1
    X[3, 2] = np.inf
    X[4, 0] = np.nan
    assert core.first_nonfinite_row(X) == 3
    assert core.first_nonfinite_row(np.zeros((0, 3))) == -1


@pytest.mark.parametrize("n", [0, 1, 1023, 1024, 1025, 5000])
def test_first_label_outside_against_numpy(n):
    """Every position (block edges included), both ends of the range, int64's extremes;
    against NumPy's first index of (y < 0) | (y >= k)."""
    rng = np.random.default_rng(n)
    k = 7
    y = rng.integers(0, k, n)
    assert core.first_label_outside(y, k) == -1
    spots = sorted({0, n // 2, n - 1, 1023, 1024} & set(range(n)))
    for bad in (-1, k, k + 1, np.iinfo(np.int64).min, np.iinfo(np.int64).max):
        for at in spots:
            z = y.copy()
            z[at] = bad
            if at + 1 < n:
                z[-1] = -5  # a later bad label must not win
            want = int(np.flatnonzero((z < 0) | (z >= k))[0])
            assert core.first_label_outside(z, k) == want == at


def test_first_label_outside_refuses_other_input():
    for bad in (np.zeros(3, np.int32), np.zeros((2, 2), np.int64), np.zeros(3)):
        with pytest.raises(TypeError, match="1-D C-contiguous int64"):
            core.first_label_outside(bad, 3)
    with pytest.raises(ValueError):  # a strided view: not C-contiguous
        core.first_label_outside(np.zeros(6, np.int64)[::2], 3)
    with pytest.raises(ValueError, match="n_classes must be >= 1"):
        core.first_label_outside(np.zeros(3, np.int64), 0)


@pytest.mark.parametrize(
    "name",
    [
        "dense_forward",
        "dense_backward",
        "activation_forward",
        "activation_backward",
        "mse_loss",
        "mae_loss",
        "huber_loss",
        "softmax_cross_entropy_loss",
        "binary_cross_entropy_loss",
        "sgd_update",
        "adam_update",
    ],
)
def test_reference_has_the_kernel_signature(name):
    kernel, spec = getattr(core, name), getattr(ref, name)
    k_params = list(inspect.signature(kernel).parameters)
    s_params = list(inspect.signature(spec).parameters)
    assert k_params == s_params


# -- the element-wise passes compiled per instruction set (backprop_core/_simd.h) ------------

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


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("n_in, n_out", [(784, 128), (5, 300), (64, 1), (1000, 7), (3, 100)])
def test_one_row_products_equal_numpy(dtype, tol, n_in, n_out):
    """Batch 1 goes through gemv (m == 1 in _gemm): forward, dX (B transposed) and dW (A
    transposed, a one-row op(A) read with a stride) against float64 NumPy."""
    rng = np.random.default_rng(n_in)
    X = rng.standard_normal((1, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    dY = rng.standard_normal((1, n_out)).astype(dtype)
    Y, dW, db, dX = (np.empty((1, n_out), dtype), np.empty_like(W), np.empty_like(b),
                     np.empty_like(X))  # fmt: skip
    core.dense_forward(X, W, b, Y)
    core.dense_backward(X, W, dY, dW, db, dX)
    X64, W64, dY64 = (a.astype(np.float64) for a in (X, W, dY))
    for got, want in ((Y, X64 @ W64 + b), (dX, dY64 @ W64.T), (dW, X64.T @ dY64)):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())
