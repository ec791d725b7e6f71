"""backprop_core kernels against the NumPy float64 spec in backprop._reference.

Shapes cover the direct loop (m*n*k <= small_gemm_threshold()) and the BLAS path, 1x1,
non-square and empty batches. Tolerances: RTOL/ATOL from conftest, scaled by sqrt(k) for
products with inner size k.
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


def test_dense_rejects_mismatched_shapes():
    X, W, b = np.zeros((2, 3)), np.zeros((4, 2)), np.zeros(2)
    with pytest.raises(ValueError, match=r"X\(2, 3\) W\(4, 2\)"):
        core.dense_forward(X, W, b, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="incompatible shapes"):
        core.dense_backward(np.zeros((2, 4)), W, np.zeros((2, 2)), W.copy(), b, np.zeros((3, 4)))


def test_dense_rejects_mixed_dtypes_and_strided_arrays():
    X = np.zeros((2, 3), np.float32)
    # a second line of defence: the Python package never lets this reach the kernels
    with pytest.raises((TypeError, ValueError), match=r"dtype|signature"):
        core.dense_forward(X, np.zeros((3, 2)), np.zeros(2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="contiguous"):
        core.dense_forward(np.zeros((3, 2)).T, np.zeros((3, 2)), np.zeros(2), np.zeros((2, 2)))


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


def test_activation_errors():
    Z = np.zeros((2, 2))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        core.activation_forward("gelu", Z, Z)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        core.activation_forward("leaky_relu", Z, Z, alpha=-1.0)
    with pytest.raises(ValueError, match="one shape"):
        core.activation_forward("relu", Z, np.zeros((2, 3)))


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


def test_loss_kernels_reject_bad_weights():
    Y = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"w must have shape \(3,\)"):
        core.mse_loss(Y, Y, None, np.ones(2))
    with pytest.raises(ValueError, match="delta must be > 0"):
        core.huber_loss(Y, Y, delta=0.0)


def test_loss_kernels_reject_bad_targets():
    Z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"labels\[1\] = 4 is not a class index in \[0, 4\)"):
        core.softmax_cross_entropy_loss(Z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"labels\[2\] = -1"):
        core.softmax_cross_entropy_loss(Z, np.array([0, 1, -1]))
    with pytest.raises(ValueError, match="row 1 holds a target outside"):
        core.binary_cross_entropy_loss(Z, np.array([[0, 1, 0, 1], [0, 2, 0, 0], [0] * 4], float))
    with pytest.raises(ValueError, match="shape"):
        core.mse_loss(Z, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-empty"):
        core.mse_loss(np.zeros((0, 4)), np.zeros((0, 4)))


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


def test_optimizer_kernel_errors():
    p = np.zeros(3)
    with pytest.raises(ValueError, match="velocity"):
        core.sgd_update(p, np.zeros(3), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"grad must have shape \(3,\)"):
        core.sgd_update(p, np.zeros(4), lr=0.1)
    with pytest.raises(ValueError, match="t must be >= 1"):
        core.adam_update(p, p.copy(), p.copy(), p.copy(), t=0)


def test_first_nonfinite_row():
    X = np.zeros((5, 3), np.float32)
    assert core.first_nonfinite_row(X) == -1
    X[3, 2] = np.inf
    X[4, 0] = np.nan
    assert core.first_nonfinite_row(X) == 3
    assert core.first_nonfinite_row(np.zeros((0, 3))) == -1


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
