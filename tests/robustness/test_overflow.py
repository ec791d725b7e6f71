"""Updates that would overflow: a step that would make a weight or an optimizer buffer
non-finite is refused like a non-finite gradient (weights and optimizer state stay those of
the last good step), and hyper-parameters the dtype cannot hold are refused when compiled."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

REFUSED = "would make a weight or an optimizer buffer overflow"


def _net(dtype: str, optimizer: bp.Optimizer, width: int = 4) -> bp.Sequential:
    model = bp.Sequential([bp.Dense(3, width), bp.Tanh(), bp.Dense(width, 2)], dtype=dtype, seed=0)
    return model.compile(bp.MSE(), optimizer)


def _refused_and_unchanged(model: bp.Sequential, X: np.ndarray, y: np.ndarray) -> None:
    before = model.get_state()
    with pytest.raises(FloatingPointError, match=REFUSED):
        model.train_step(X, y)
    after = model.get_state()
    np.testing.assert_array_equal(after["weights"], before["weights"])
    assert after["optimizer"]["steps"] == before["optimizer"]["steps"]
    for k, v in before["optimizer"]["buffers"].items():
        np.testing.assert_array_equal(after["optimizer"]["buffers"][k], v)


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: bp.SGD(lr=1e38),
        lambda: bp.SGD(lr=1e38, momentum=0.9),
        lambda: bp.SGD(lr=1e38, momentum=0.9, nesterov=True, weight_decay=0.1),
    ],
)
def test_a_float32_sgd_step_that_would_overflow_the_weights_is_refused(optimizer) -> None:
    model = _net("float32", optimizer())
    X = np.ones((4, 3), np.float32)
    y = np.full((4, 2), 50.0, np.float32)
    _refused_and_unchanged(model, X, y)
    assert np.isfinite(model.get_state()["weights"]).all()


def test_a_finite_float32_gradient_of_1e21_does_not_overflow_adams_v() -> None:
    model = _net("float32", bp.Adam(lr=1e-3))
    X = np.ones((4, 3), np.float32)
    y = np.full((4, 2), 1e21, np.float32)  # dL/dy ~ 1e21: its square is beyond float32
    _refused_and_unchanged(model, X, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_folded_update_of_a_large_layer_is_guarded_too(dtype) -> None:
    # 128 x 128 weights: plain SGD folds the update into the weight-gradient product
    model = bp.Sequential([bp.Dense(128, 128), bp.Dense(128, 1)], dtype=dtype, seed=0)
    big = np.finfo(dtype).max / 1e3
    model.compile(bp.MSE(), bp.SGD(lr=big))
    X = np.ones((8, 128), dtype)
    _refused_and_unchanged(model, X, np.full((8, 1), 1e3, dtype))


def test_weights_near_the_limit_are_decided_exactly_not_by_a_loose_bound() -> None:
    """The carried bounds cannot clear a step near the limit; it is then computed without
    writing, so a finite result is taken and only a non-finite one refused. (MAE: its
    gradient stays bounded however large the residual, so the loss stays finite.)"""
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float32", seed=0)
    model.compile(bp.MAE(), bp.SGD(lr=1e30))
    model.set_weights([np.zeros((3, 2)), np.full(2, 3.3e38)])  # float32's largest is 3.4e38
    X, y = np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)
    model.train_step(X, y)  # each bias moves by -lr/2 = -5e29: finite, so taken
    assert model.optimizer.steps == 1
    assert model.get_weights()[1][0] == np.float32(np.float32(3.3e38) - np.float32(5e29))
    model.optimizer.lr = 2e38  # now -1e38 each way: with y above the bias, b + 1e38 overflows
    _refused_and_unchanged(model, X, np.full((4, 2), 3.4e38, np.float32))


def test_fit_applies_on_nonfinite_to_a_refused_update() -> None:
    model = _net("float32", bp.SGD(lr=1e38))
    X = np.ones((8, 3), np.float32)
    y = np.full((8, 2), 50.0, np.float32)
    before = model.get_state()["weights"]
    with pytest.warns(RuntimeWarning, match=REFUSED):
        history = model.fit(X, y, epochs=3, batch_size=4, on_nonfinite="stop")
    assert history.stop_reason == "non-finite"
    np.testing.assert_array_equal(model.get_state()["weights"], before)
    with pytest.raises(FloatingPointError, match=REFUSED):
        model.fit(X, y, epochs=1, batch_size=4)


def test_ordinary_training_is_unchanged_by_the_guard() -> None:
    """Against plain NumPy SGD on the same gradients: the guard changes no number."""
    model = _net("float64", bp.SGD(lr=0.1, momentum=0.9))
    twin = _net("float64", bp.SGD(lr=0.1, momentum=0.9))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    velocity = np.zeros(model.n_params)
    theta = twin.get_state()["weights"]
    for _ in range(20):
        model.train_step(X, y)
        _, g = twin.loss_and_gradient(X, y)
        velocity = 0.9 * velocity + g
        theta = theta - 0.1 * velocity
        state = twin.get_state()
        state["weights"] = theta
        twin.set_state(state)
    np.testing.assert_allclose(model.get_state()["weights"], theta, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: bp.SGD(lr=1e39), r"lr=1e\+39 does not fit"),
        (lambda: bp.Adam(lr=1e-3, eps=1e-50), "eps=1e-50 rounds to 0"),
        (lambda: bp.SGD(lr=1e-50), "lr=1e-50 rounds to 0"),
        (lambda: bp.SGD(lr=0.1, weight_decay=1e39), r"weight_decay=1e\+39 does not fit"),
    ],
)
def test_hyper_parameters_that_do_not_fit_float32_are_refused_at_compile(make, name) -> None:
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float32")
    with pytest.raises(ValueError, match=name):
        model.compile(bp.MSE(), make())
    make_64 = bp.Sequential([bp.Dense(3, 2)], dtype="float64")
    make_64.compile(bp.MSE(), make())  # float64 holds them


def test_an_lr_set_later_is_checked_against_the_dtype_too() -> None:
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float32").compile(bp.MSE(), bp.SGD(lr=0.1))
    with pytest.raises(ValueError, match="does not fit"):
        model.optimizer.lr = 1e39
    assert model.optimizer.lr == 0.1
