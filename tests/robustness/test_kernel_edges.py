"""Kernels at their edges: zero-width inputs still write every output, and a NaN anywhere in
the network reaches the loss (ReLU passes NaN through, as NumPy and torch do), so the step is
refused instead of training on."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_core as core

SHAPES = [(3, 0, 2), (3, 2, 0), (0, 2, 3), (3, 0, 0), (0, 0, 0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "n_in", "n_out"), SHAPES)
def test_zero_width_dense_kernels_write_every_output(dtype, n, n_in, n_out) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    W = rng.normal(size=(n_in, n_out)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    Y = np.full((n, n_out), np.nan, dtype)
    core.dense_forward(X, W, b, Y)
    np.testing.assert_array_equal(Y, (X.astype(np.float64) @ W + b).astype(dtype))
    dY = rng.normal(size=(n, n_out)).astype(dtype)
    dW, db = np.full((n_in, n_out), np.nan, dtype), np.full(n_out, np.nan, dtype)
    dX = np.full((n, n_in), np.nan, dtype)
    core.dense_backward(X, W, dY, dW, db, dX)
    np.testing.assert_allclose(db, dY.astype(np.float64).sum(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(dW, np.zeros((n_in, n_out)) if n == 0 else X.T @ dY)
    np.testing.assert_array_equal(dX, np.zeros((n, n_in)) if n_out == 0 else dY @ W.T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_relu_passes_nan_through_as_numpy_and_torch_do(dtype, act) -> None:
    torch = pytest.importorskip("torch")
    Z = np.array([[np.nan, -1.0, 0.0, 2.0, -np.inf, np.inf]], dtype=dtype)
    A = np.empty_like(Z)
    core.activation_forward(act, Z, A, alpha=0.01)
    t = torch.from_numpy(Z)
    expected = torch.relu(t) if act == "relu" else torch.nn.functional.leaky_relu(t, 0.01)
    np.testing.assert_array_equal(A, expected.numpy())
    assert np.isnan(A[0, 0])


@pytest.mark.parametrize("hidden", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_a_nan_weight_reaches_the_loss_and_the_step_is_refused(hidden) -> None:
    # the executor over the caller's own arrays: a NaN weight a user could put there
    n_in, width, n_out = 3, 4, 2
    theta = np.random.default_rng(1).normal(size=n_in * width + width + width * n_out + n_out)
    theta[0] = np.nan
    dtheta = np.zeros_like(theta)
    w2 = n_in * width + width
    ops = [
        ("dense", n_in, width, 0, n_in * width),
        (hidden, width, 0.01),
        ("dense", width, n_out, w2, w2 + width * n_out),
    ]
    ex = core.Executor(ops, theta, dtheta)
    ex.set_loss("mse")
    ex.set_sgd(0.1)
    before = theta.copy()
    X = np.array([[1.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    with pytest.raises(FloatingPointError, match="not finite"):
        ex.step(X, np.zeros((2, n_out)), core.MODE_UPDATE)
    np.testing.assert_array_equal(theta, before)
