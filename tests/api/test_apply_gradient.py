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
