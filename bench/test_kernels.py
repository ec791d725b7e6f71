"""Each compiled kernel at a few sizes, float32, next to its NumPy reference
(backprop._reference, float64 maths): `pytest bench/test_kernels.py`."""

import numpy as np
import pytest

import backprop_core as core
from backprop import _reference as ref

F32 = np.float32
DENSE_SIZES = [(1, 2, 3), (32, 64, 32), (64, 784, 128), (256, 1024, 1024)]  # batch, in, out
ELEMENT_SIZES = [(32, 32), (64, 128), (256, 1024)]
LOSS_SIZES = [(1, 1), (32, 10), (256, 10)]
PARAM_SIZES = [10, 2410, 1_863_690]  # T's, S's and L's parameter counts
IMPLS = {"core": core, "numpy": ref}


def _size(*dims):
    return "x".join(map(str, dims))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n,n_in,n_out", DENSE_SIZES)
def test_dense_forward(benchmark, rng, impl, n, n_in, n_out):
    benchmark.group = f"dense_forward-{_size(n, n_in, n_out)}"
    X = rng.standard_normal((n, n_in), dtype=F32)
    W = rng.standard_normal((n_in, n_out), dtype=F32)
    b = rng.standard_normal(n_out, dtype=F32)
    Y = np.empty((n, n_out), F32)
    benchmark(IMPLS[impl].dense_forward, X, W, b, Y)
    benchmark.extra_info["flops"] = 2 * n * n_in * n_out
    np.testing.assert_allclose(Y, X.astype(np.float64) @ W + b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n,n_in,n_out", DENSE_SIZES)
def test_dense_backward(benchmark, rng, impl, n, n_in, n_out):
    benchmark.group = f"dense_backward-{_size(n, n_in, n_out)}"
    X = rng.standard_normal((n, n_in), dtype=F32)
    W = rng.standard_normal((n_in, n_out), dtype=F32)
    dY = rng.standard_normal((n, n_out), dtype=F32)
    dW, db, dX = np.empty_like(W), np.empty(n_out, F32), np.empty_like(X)
    benchmark(IMPLS[impl].dense_backward, X, W, dY, dW, db, dX)
    benchmark.extra_info["flops"] = 4 * n * n_in * n_out
    np.testing.assert_allclose(dW, X.T.astype(np.float64) @ dY, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dX, dY.astype(np.float64) @ W.T, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("n,m", ELEMENT_SIZES)
def test_activation_forward(benchmark, rng, impl, name, n, m):
    benchmark.group = f"activation_forward-{name}-{_size(n, m)}"
    Z = rng.standard_normal((n, m), dtype=F32)
    A = np.empty_like(Z)
    benchmark(IMPLS[impl].activation_forward, name, Z, A)
    expected = np.empty((n, m))
    ref.activation_forward(name, Z, expected)
    np.testing.assert_allclose(A, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("n,m", ELEMENT_SIZES)
def test_activation_backward(benchmark, rng, impl, name, n, m):
    benchmark.group = f"activation_backward-{name}-{_size(n, m)}"
    A = rng.uniform(0.01, 0.99, (n, m)).astype(F32)
    dA = rng.standard_normal((n, m), dtype=F32)
    dZ = np.empty_like(A)
    benchmark(IMPLS[impl].activation_backward, name, A, dA, dZ)
    expected = np.empty((n, m))
    ref.activation_backward(name, A, dA, expected)
    np.testing.assert_allclose(dZ, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("loss", ["mse", "softmax_cross_entropy", "binary_cross_entropy"])
@pytest.mark.parametrize("n,m", LOSS_SIZES)
def test_loss(benchmark, rng, impl, loss, n, m):
    benchmark.group = f"{loss}_loss-{_size(n, m)}"
    Z = rng.standard_normal((n, m), dtype=F32)
    if loss == "softmax_cross_entropy":
        T = rng.integers(0, m, n)
    elif loss == "binary_cross_entropy":
        T = rng.uniform(0, 1, (n, m)).astype(F32)
    else:
        T = rng.standard_normal((n, m), dtype=F32)
    G = np.empty_like(Z)
    fn = getattr(IMPLS[impl], f"{loss}_loss")
    value = benchmark(fn, Z, T, G)
    expected_G = np.empty((n, m))
    expected = getattr(ref, f"{loss}_loss")(Z, T, expected_G)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    np.testing.assert_allclose(G, expected_G, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size", PARAM_SIZES)
def test_sgd_update(benchmark, rng, impl, size):
    benchmark.group = f"sgd_update-{size}"
    param = rng.standard_normal(size, dtype=F32)
    start = param.copy()
    grad = rng.standard_normal(size, dtype=F32)
    calls = []

    def update():
        calls.append(1)
        IMPLS[impl].sgd_update(param, grad, lr=1e-6)

    benchmark(update)
    expected = start - len(calls) * 1e-6 * grad.astype(np.float64)
    np.testing.assert_allclose(param, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size", PARAM_SIZES)
def test_adam_update(benchmark, rng, impl, size):
    benchmark.group = f"adam_update-{size}"
    param = rng.standard_normal(size, dtype=F32)
    grad = rng.standard_normal(size, dtype=F32)
    m, v = np.zeros_like(param), np.zeros_like(param)
    before = param.copy()
    benchmark(IMPLS[impl].adam_update, param, grad, m, v, t=1, lr=1e-2)
    # a constant gradient: every step moves each weight against the gradient's sign
    np.testing.assert_array_equal(np.sign(before - param), np.sign(grad))
