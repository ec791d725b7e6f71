"""Faults during fit(): divergence raises or stops with a warning, Ctrl-C propagates; either
way the model keeps the weights of the last finite / completed step (checked against a replay
of the same batches by train_step on a copy) and the History so far is kept."""

from __future__ import annotations

import _thread
import threading

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


def test_ctrl_c_during_a_long_fit_keeps_a_completed_step_and_the_history() -> None:
    """_thread.interrupt_main from a timer while epochs run: fit re-raises KeyboardInterrupt,
    model.history holds the completed epochs, and the weights are exactly those after the
    optimizer's step count of replayed batches."""
    rng = np.random.default_rng(4)
    n = 20_000
    X = rng.standard_normal((n, 32)).astype(np.float32)
    y = rng.integers(0, 4, n)
    model = bp.Sequential([bp.Dense(32, 64), bp.ReLU(), bp.Dense(64, 4)], seed=0)
    model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=1e-3, momentum=0.5))
    replay = model.clone()
    replay.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=1e-3, momentum=0.5))
    model.fit(X[:BATCH], y[:BATCH], epochs=1, batch_size=BATCH, shuffle=False)  # warm up
    replay.train_step(X[:BATCH], y[:BATCH])
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y, epochs=10_000, batch_size=BATCH, shuffle=False, verbose=0)
    finally:
        timer.cancel()
        timer.join()
    history = model.history
    assert history is not None and history.stop_reason == "interrupted"
    assert model.optimizer is not None
    steps = model.optimizer.steps - 1
    per_epoch = n // BATCH
    # Ctrl-C inside an epoch stops it at a batch boundary; one that lands just after the
    # epoch's last batch is raised before the epoch is recorded (all its steps did run)
    assert history.epochs * per_epoch <= steps <= (history.epochs + 1) * per_epoch
    assert len(history.loss) == history.epochs and np.isfinite(history.loss).all()
    # replay: the completed epochs by fit (bit-identical to train_steps with shuffle=False),
    # then the steps of the interrupted epoch one by one
    if history.epochs:
        replay.fit(X, y, epochs=history.epochs, batch_size=BATCH, shuffle=False)
    _replay(replay, X, y, steps - history.epochs * per_epoch)
    np.testing.assert_array_equal(_weights(model), _weights(replay))
    assert np.isfinite(model.predict(X[:100])).all()
    assert np.isfinite(model.train_step(X[:BATCH], y[:BATCH]))
