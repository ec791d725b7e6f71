"""The update step's finiteness check reads a large weight gradient dW = X.T @ dY only when
the bound n max|X| max|dY| does not prove it finite (backprop_core/_executor.pyx,
_gradients_finite). These cases sit on both sides of that bound: the reference is float64
NumPy arithmetic on the same numbers."""

import numpy as np
import pytest

import backprop as bp
import backprop_core as core

N, WIDTH = 4, 64  # n (n_in + n_out) = 512 < n_in n_out = 4096: the bound is tried
# 128 x 128 = 16,384 weights: large enough for plain SGD to fold the layer's update into its
# weight-gradient product, where a gradient the bound cannot prove finite is computed after
# all (and the update made from it, or the step refused)
WIDTHS = pytest.mark.parametrize("width", [WIDTH, 128], ids=["64", "128-folding"])


def linear_model(target: float, width: int = WIDTH) -> tuple[bp.Sequential, np.ndarray, np.ndarray]:
    """Dense(w, w), MSE, float32: X = 1e19 everywhere and W = 1e-19 / w, so every output is
    1 and dY = 2 (1 - target) / (n w) everywhere, and dW = n 1e19 dY exactly in float64.
    The targets are scaled by w / 64, so dW is the same at every width."""
    model = bp.Sequential([bp.Dense(width, width)], seed=0).compile(bp.MSE(), bp.SGD(lr=1e-40))
    model.set_weights([np.full((width, width), np.float32(1e-19 / width)), np.zeros(width)])
    X = np.full((N, width), 1e19, np.float32)
    T = np.full((N, width), target * width / WIDTH, np.float32)
    return model, X, T


@WIDTHS
def test_an_overflowing_weight_gradient_is_refused(width):
    """dY = 2 (1 + 2e21) / 256 ~ 1.6e19 is finite, dW = 4e19 dY ~ 6.3e38 is not (float32):
    the bound (6.3e38) fails, dW is scanned and the step refused."""
    model, X, T = linear_model(-2e21, width)
    assert 4 * 1e19 * 2 * (1 + 2e21) / (N * WIDTH) > float(np.finfo(np.float32).max)
    theta = model.get_state()["weights"]
    with pytest.raises(FloatingPointError, match="not finite"):
        model.train_step(X, T)
    np.testing.assert_array_equal(model.get_state()["weights"], theta)
    assert model.optimizer.steps == 0


@WIDTHS
def test_a_large_finite_weight_gradient_above_the_bound_is_applied(width):
    """dW ~ 3.1e38 is finite but above half of float32's largest value: the bound cannot
    prove it, the scan finds it finite, and the update is made. The step's gradient is
    model.gradients() at the same weights, just before the step."""
    model, X, T = linear_model(-1e21, width)
    dW = 4 * 1e19 * 2 * (1 - np.float64(T[0, 0])) / (N * width)
    assert np.finfo(np.float32).max / 2 < dW < np.finfo(np.float32).max
    W0 = model.layers[0].W.astype(np.float64)
    ((grad, _),) = model.gradients(X, T)
    np.testing.assert_allclose(grad, dW, rtol=1e-5)
    model.train_step(X, T)
    assert model.optimizer.steps == 1
    np.testing.assert_allclose(model.layers[0].W, W0 - 1e-40 * dW, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_ordinary_step_through_the_bound_applies_the_gradient(dtype):
    """Random data: the bound holds, dW is not scanned, and W := W - lr dW exactly as the
    sgd_update kernel computes it from the step's own gradient."""
    rng = np.random.default_rng(0)
    model = bp.Sequential(
        [bp.Dense(WIDTH, WIDTH), bp.ReLU(), bp.Dense(WIDTH, 3)], dtype=dtype, seed=0
    ).compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.1))
    X = rng.standard_normal((N, WIDTH)).astype(dtype)
    y = rng.integers(0, 3, N)
    theta = model.get_state()["weights"]
    _, grad = model.loss_and_gradient(X, y)  # the step's gradient: same weights, same batch
    model.train_step(X, y)
    core.sgd_update(theta, grad, lr=0.1)
    np.testing.assert_array_equal(model.get_state()["weights"], theta)


def test_parameters_outside_the_ops_are_still_scanned():
    """An executor whose theta holds items no op writes: their gradients cannot be bounded,
    so the whole of dtheta is scanned and a NaN there refuses the step."""
    size = WIDTH * WIDTH + WIDTH
    theta, dtheta = np.zeros(size + 3), np.zeros(size + 3)
    dtheta[size:] = np.nan
    ex = core.Executor([("dense", WIDTH, WIDTH, 0, WIDTH * WIDTH)], theta, dtheta)
    ex.set_loss("mse")
    ex.set_sgd(0.1)
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((N, WIDTH)), rng.standard_normal((N, WIDTH))
    ex.step(X, T, core.MODE_GRAD)  # gradients only: the covered part of dtheta is now finite
    assert np.isfinite(dtheta[:size]).all()
    with pytest.raises(FloatingPointError, match="not finite"):
        ex.step(X, T, core.MODE_UPDATE)
    np.testing.assert_array_equal(theta, 0)


# -- plain SGD on many parameters runs as a BLAS axpy (_executor.pyx, AXPY_PARAMS) -----------


def big_model(dtype) -> tuple[bp.Sequential, np.ndarray, np.ndarray]:
    """784-32-10 (25,450 parameters: above the axpy threshold), plain SGD."""
    rng = np.random.default_rng(1)
    model = bp.Sequential(
        [bp.Dense(784, 32), bp.ReLU(), bp.Dense(32, 10)], dtype=dtype, seed=0
    ).compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.05))
    X = rng.standard_normal((16, 784)).astype(dtype)
    y = rng.integers(0, 10, 16)
    return model, X, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plain_sgd_on_many_parameters_subtracts_lr_times_the_gradient(dtype):
    """theta := theta - lr g within one rounding of the float64 value (BLAS may fuse the
    multiply and the add: one rounding instead of two; the first layer's update is folded
    into its weight-gradient product, whose sum rounds as the gradient's does), where g is
    loss_and_gradient at the weights and batch of the step."""
    model, X, y = big_model(dtype)
    assert model.n_params >= 1 << 14
    theta = model.get_state()["weights"].astype(np.float64)
    _, grad = model.loss_and_gradient(X, y)
    model.train_step(X, y)
    lr = np.float64(dtype(0.05))
    step = lr * grad.astype(np.float64)
    expected = theta - step
    eps = np.finfo(dtype).eps
    assert np.any(grad != 0)
    after = model.get_state()["weights"]
    assert np.all(np.abs(after - expected) <= 2 * eps * (np.abs(theta) + np.abs(step)))


def test_plain_sgd_on_many_parameters_is_the_same_at_one_and_two_blas_threads():
    """The axpy's split across BLAS threads must not change a single bit."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    runs = []
    for limit in (1, 2):
        model, X, y = big_model(np.float32)
        with threadpoolctl.threadpool_limits(limits=limit, user_api="blas"):
            for _ in range(3):
                model.train_step(X, y)
        runs.append(model.get_state()["weights"])
    np.testing.assert_array_equal(runs[0], runs[1])
