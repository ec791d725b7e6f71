"""apply_gradient: one optimizer step from a gradient computed elsewhere (the entry a
data-parallel loop needs), equal to train_step's own step, and refused like it."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def _model(optimizer: bp.Optimizer, dtype: str = "float64") -> bp.Sequential:
    model = bp.Sequential([bp.Dense(3, 5), bp.Tanh(), bp.Dense(5, 2)], dtype=dtype, seed=0)
    return model.compile(bp.MSE(), optimizer)


@pytest.mark.parametrize(
    "make",
    [
        lambda: bp.SGD(lr=0.1),
        lambda: bp.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda: bp.Adam(lr=0.01, clipnorm=0.5),
        lambda: bp.RMSprop(lr=0.01, centered=True, clipvalue=0.1),
    ],
)
def test_applying_loss_and_gradient_equals_train_step(make) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    a, b = _model(make()), _model(make())
    for _ in range(4):
        a.train_step(X, y)
        _, g = b.loss_and_gradient(X, y)
        b.apply_gradient(g)
    np.testing.assert_array_equal(a.get_state()["weights"], b.get_state()["weights"])
    assert a.optimizer.steps == b.optimizer.steps == 4


def test_bad_or_overflowing_gradients_are_refused_and_change_nothing() -> None:
    model = _model(bp.SGD(lr=1e38), dtype="float32")
    before = model.get_state()
    with pytest.raises(FloatingPointError, match="not finite"):
        model.apply_gradient(np.full(model.n_params, np.nan))
    with pytest.raises(FloatingPointError, match="overflow"):
        model.apply_gradient(np.full(model.n_params, 10.0))
    with pytest.raises(ValueError, match="shape"):
        model.apply_gradient(np.zeros(3))
    np.testing.assert_array_equal(model.get_state()["weights"], before["weights"])
    assert model.optimizer.steps == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scale_applies_the_scaled_gradient(dtype) -> None:
    """apply_gradient(g, scale=s) against apply_gradient(s * g) computed in float64 and
    cast (Adam: its step depends on the gradient's scale); one rounding apart at most."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    a, b = _model(bp.Adam(lr=0.01), dtype), _model(bp.Adam(lr=0.01), dtype)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for _ in range(3):
        _, g = a.loss_and_gradient(X, y)
        total = 3.0 * g.astype(np.float64)  # e.g. a sum over 3 ranks
        a.apply_gradient(total.astype(dtype), scale=1 / 3)
        b.apply_gradient(g)
        np.testing.assert_allclose(a.get_state()["weights"], b.get_state()["weights"], rtol=tol)


def test_scale_must_be_a_positive_finite_number() -> None:
    model = _model(bp.SGD(lr=0.1))
    g = np.ones(model.n_params)
    for bad, error in ((0.0, ValueError), (-1.0, ValueError), (np.inf, ValueError),
                       (np.nan, ValueError), ("2", TypeError)):  # fmt: skip
        with pytest.raises(error, match="apply_gradient: scale"):
            model.apply_gradient(g, scale=bad)
    assert model.optimizer.steps == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_and_gradient_into_out(dtype) -> None:
    """out= receives the gradient a new array would hold (bit for bit) and is returned; a
    view into a bigger buffer works (as DataParallel's step buffer)."""
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    model = _model(bp.SGD(lr=0.1), dtype)
    loss, fresh = model.loss_and_gradient(X, y)
    buf = np.full(model.n_params + 4, 7.0, dtype=dtype)
    loss_out, got = model.loss_and_gradient(X, y, out=buf[: model.n_params])
    assert got is not fresh and np.shares_memory(got, buf)
    np.testing.assert_array_equal(buf[: model.n_params], fresh)
    np.testing.assert_array_equal(buf[model.n_params :], 7.0)
    assert loss_out == loss


def test_loss_and_gradient_refuses_a_wrong_out() -> None:
    model = _model(bp.SGD(lr=0.1))
    X, y = np.zeros((2, 3)), np.zeros((2, 2))
    n = model.n_params
    for bad in (np.zeros(n - 1), np.zeros(n, dtype=np.float32), np.zeros((1, n)), [0.0] * n):
        with pytest.raises(ValueError, match=rf"out must be a numpy array of shape \({n},\)"):
            model.loss_and_gradient(X, y, out=bad)
    frozen = np.zeros(n)
    frozen.flags.writeable = False
    theta = model.parameters()[0].base  # the flat parameters the weight views share
    assert theta is not None and theta.shape == (n,)
    for bad in (frozen, theta):
        with pytest.raises(ValueError, match="out is read-only"):
            model.loss_and_gradient(X, y, out=bad)
    np.testing.assert_array_equal(frozen, 0.0)
