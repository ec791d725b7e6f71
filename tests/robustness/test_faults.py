"""Faults during a step and during fit(): a non-finite loss or gradient is refused before the
update; divergence in fit raises or stops with a warning; a KeyboardInterrupt raised between
epochs propagates. Either way the model keeps the weights of the last finite / completed step
(checked against a replay of the same batches by train_step on a copy) and the History so far
is kept. A restored optimizer state (an invalid one refused) continues Adam exactly.

Ctrl-C inside a compiled epoch, sent from another thread, is tested in test_interrupts.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import backprop as bp

BATCH = 4


def _diverging() -> tuple[bp.Sequential, bp.Sequential, np.ndarray, np.ndarray]:
    """A model whose learning rate blows up within a few epochs, and a replay copy (same
    initial weights and optimizer)."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((32, 3)), 3 * rng.standard_normal((32, 2))
    model = bp.Sequential([bp.Dense(3, 8), bp.Tanh(), bp.Dense(8, 2)], dtype="float64", seed=0)
    model.compile(bp.MSE(), bp.SGD(lr=0.9, momentum=0.9))
    replay = model.clone()
    replay.compile(bp.MSE(), bp.SGD(lr=0.9, momentum=0.9))
    return model, replay, X, y


def _weights(model: bp.Sequential) -> np.ndarray:
    """All of the model's parameters, flat (a copy)."""
    return model.get_state()["weights"]


def _replay(replay: bp.Sequential, X: np.ndarray, y: np.ndarray, steps: int) -> None:
    """Run `steps` train_steps over the batches fit(shuffle=False) visits, epoch after epoch."""
    per_epoch = -(-len(X) // BATCH)
    for s in range(steps):
        b = s % per_epoch
        replay.train_step(X[BATCH * b : BATCH * b + BATCH], y[BATCH * b : BATCH * b + BATCH])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_raises_a_clear_error_and_keeps_the_last_finite_step() -> None:
    model, replay, X, y = _diverging()
    with pytest.raises(FloatingPointError, match=r"training diverged in epoch \d+ .*not finite"):
        model.fit(X, y, epochs=200, batch_size=BATCH, shuffle=False)
    assert model.optimizer is not None
    steps = model.optimizer.steps
    history = model.history
    assert history is not None and history.stop_reason is None
    # the failing epoch is not recorded; the completed ones are, all finite
    assert steps >= history.epochs * 8 and history.epochs < 200
    assert np.isfinite(history.loss).all()
    _replay(replay, X, y, steps)
    np.testing.assert_array_equal(_weights(model), _weights(replay))
    assert np.isfinite(_weights(model)).all() and np.isfinite(model.predict(X)).all()


def test_on_nonfinite_stop_warns_and_returns_the_history_so_far() -> None:
    model, replay, X, y = _diverging()
    seen: list[int] = []

    class Seen(bp.Callback):
        def on_train_end(self, logs=None) -> None:
            seen.append(self.model.history.epochs if self.model.history else -1)

    with pytest.warns(RuntimeWarning, match=r"training diverged in epoch (\d+).*last finite"):
        history = model.fit(
            X, y, epochs=200, batch_size=BATCH, shuffle=False, on_nonfinite="stop",
            callbacks=[Seen()],
        )  # fmt: skip
    assert history is model.history and history.stop_reason == "non-finite"
    assert 0 < history.epochs < 200 and seen == [history.epochs]
    assert model.optimizer is not None
    steps = model.optimizer.steps
    assert history.epochs * 8 <= steps < (history.epochs + 1) * 8
    _replay(replay, X, y, steps)
    np.testing.assert_array_equal(_weights(model), _weights(replay))
    # the replay's next step is the one that failed
    b = steps % 8
    with pytest.raises(FloatingPointError):
        replay.train_step(X[BATCH * b : BATCH * b + BATCH], y[BATCH * b : BATCH * b + BATCH])


def test_on_nonfinite_is_checked() -> None:
    model, _, X, y = _diverging()
    with pytest.raises(ValueError, match="on_nonfinite must be 'raise' or 'stop', got 'ignore'"):
        model.fit(X, y, on_nonfinite="ignore")


# -- KeyboardInterrupt -------------------------------------------------------------------------


def _regression(n: int = 40) -> tuple[bp.Sequential, bp.Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((n, 3)), rng.standard_normal((n, 1))
    model = bp.Sequential([bp.Dense(3, 8), bp.ReLU(), bp.Dense(8, 1)], dtype="float64", seed=0)
    model.compile(bp.MSE(), bp.Adam(lr=1e-2))
    replay = model.clone()
    replay.compile(bp.MSE(), bp.Adam(lr=1e-2))
    return model, replay, X, y


class InterruptAt(bp.Callback):
    """Raises KeyboardInterrupt at the end of one epoch (like Ctrl-C between epochs)."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch
        self.ended = False

    def on_epoch_end(self, epoch, logs=None) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt

    def on_train_end(self, logs=None) -> None:
        self.ended = True


def test_interrupt_between_epochs_keeps_weights_and_history() -> None:
    model, replay, X, y = _regression()
    interrupt = InterruptAt(2)
    # restore_best_weights would move the weights at train end: an interrupted fit must not
    best = bp.EarlyStopping(monitor="loss", patience=100, restore_best_weights=True)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=10, batch_size=BATCH, shuffle=False, callbacks=[best, interrupt])
    history = model.history
    assert history is not None and history.epochs == 3 and history.stop_reason == "interrupted"
    assert not interrupt.ended
    _replay(replay, X, y, 3 * 10)
    np.testing.assert_array_equal(_weights(model), _weights(replay))
    # the model is usable: it predicts and trains on
    assert np.isfinite(model.predict(X)).all()
    assert model.fit(X, y, epochs=1).epochs == 1


# -- non-finite steps ----------------------------------------------------------------------


def test_nonfinite_loss_changes_nothing():
    """A learning rate that blows up: the step that meets the overflow raises, and the
    parameters and momentum are those left by the last finite step."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    model = bp.Sequential([bp.Dense(3, 4), bp.Dense(4, 2)], seed=0).compile(
        bp.MSE(), bp.SGD(lr=1e6, momentum=0.9)
    )
    step = 0
    while True:
        theta = model.get_state()["weights"]
        velocity = model.optimizer.state["velocity"].copy()
        try:
            model.train_step(X, y)
        except FloatingPointError as e:
            assert "not finite" in str(e) and "no update" in str(e)
            break
        step += 1
        assert step < 100, "the learning rate never blew up"
    assert step > 0 and np.isfinite(theta).all()
    np.testing.assert_array_equal(model.get_state()["weights"], theta)
    np.testing.assert_array_equal(model.optimizer.state["velocity"], velocity)
    assert model.optimizer.steps == step


def test_nonfinite_gradient_with_finite_loss_is_refused():
    """float32 outputs near the float32 limit: the loss (summed in double) is finite but
    2 (y - t) overflows float32, so the gradient is inf."""
    model = bp.Sequential([bp.Dense(1, 1, weight_init="ones")], seed=0).compile(
        bp.MSE(), bp.SGD(lr=1e-3)
    )
    X = np.array([[3e38]], np.float32)
    theta = model.get_state()["weights"]
    with pytest.raises(FloatingPointError, match="not finite"):
        model.train_step(X, np.zeros((1, 1)))
    np.testing.assert_array_equal(model.get_state()["weights"], theta)


def test_fit_divergence_keeps_the_last_finite_step():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((64, 3)), rng.standard_normal((64, 2))
    model = bp.Sequential([bp.Dense(3, 8), bp.Dense(8, 2)], seed=0).compile(
        bp.MSE(), bp.SGD(lr=3e3)
    )
    replay = model.clone()
    replay.compile(bp.MSE(), bp.SGD(lr=3e3))
    with pytest.raises(FloatingPointError, match=r"fit: training diverged in epoch 1"):
        model.fit(X, y, epochs=1, batch_size=4, shuffle=False)
    steps = model.optimizer.steps
    for s in range(steps):
        replay.train_step(X[4 * s : 4 * s + 4], y[4 * s : 4 * s + 4])
    weights = model.get_state()["weights"]
    assert 0 < steps < 16 and np.isfinite(weights).all()
    np.testing.assert_array_equal(weights, replay.get_state()["weights"])


# -- a restored optimizer state ------------------------------------------------------------


def test_restored_adam_state_continues_exactly():
    """Copying weights, m, v and the step count into a fresh model (set_state: what save/load
    and pickling rely on) continues Adam exactly as the original. Without the step count,
    Adam's bias correction differs and so do the weights."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))

    def make():
        return bp.Sequential([bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2)], seed=0).compile(
            bp.MSE(), bp.Adam(lr=0.01)
        )

    a, b, c = make(), make(), make()
    for _ in range(5):
        a.train_step(X, y)
    saved = a.get_state()
    assert saved["optimizer"]["steps"] == 5 and set(saved["optimizer"]["buffers"]) == {"m", "v"}
    fresh = b.get_state()
    bad = copy.deepcopy(saved)
    bad["optimizer"]["steps"] = -1
    with pytest.raises(ValueError, match=r"optimizer 'steps' must be in \[0, 2\*\*62\)"):
        b.set_state(bad)
    np.testing.assert_array_equal(b.get_state()["weights"], fresh["weights"])  # unchanged
    assert b.optimizer.steps == 0
    b.set_state(saved)
    assert b.optimizer.steps == a.optimizer.steps == 5
    no_steps = copy.deepcopy(saved)
    no_steps["optimizer"]["steps"] = 0
    c.set_state(no_steps)
    for _ in range(3):
        loss = a.train_step(X, y)
        assert b.train_step(X, y) == loss
        c.train_step(X, y)
    np.testing.assert_array_equal(a.get_state()["weights"], b.get_state()["weights"])
    for key, buf in a.optimizer.state.items():
        np.testing.assert_array_equal(b.optimizer.state[key], buf)
    assert not np.array_equal(c.get_state()["weights"], a.get_state()["weights"])
