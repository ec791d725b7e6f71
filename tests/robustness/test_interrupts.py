"""Ctrl-C inside a compiled epoch: KeyboardInterrupt at a batch boundary, the weights exactly
those of the completed steps, the History so far kept, and the model usable. The interrupt is
sent once training has visibly started (the optimizer's step count, read from another
thread, has moved), not after a fixed delay: a faster or slower machine cannot make it land
before fit or after the epoch."""

from __future__ import annotations

import _thread
import threading
import time

import numpy as np
import pytest

import backprop as bp

BATCH = 16


def _interrupt_once_training(model: bp.Sequential, after: int) -> threading.Thread:
    """A thread that sends Ctrl-C to the main thread once the optimizer has taken more than
    `after` steps."""
    assert model.optimizer is not None
    optimizer = model.optimizer

    def watch() -> None:
        deadline = time.monotonic() + 60
        while optimizer.steps <= after:
            if time.monotonic() > deadline:  # pragma: no cover - reported by the test
                return
            time.sleep(0.0002)
        _thread.interrupt_main()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _model(momentum: float) -> bp.Sequential:
    model = bp.Sequential([bp.Dense(64, 128), bp.ReLU(), bp.Dense(128, 10)], seed=0)
    return model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=1e-3, momentum=momentum))


def _data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    return rng.standard_normal((n, 64)).astype(np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_ctrl_c_ends_an_epoch_at_a_batch_boundary(momentum) -> None:
    X, y = _data(200_000)
    model, replay = _model(momentum), _model(momentum)
    watcher = _interrupt_once_training(model, after=2)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=1, batch_size=BATCH, shuffle=False)
    watcher.join(60)
    steps = model.optimizer.steps
    assert 2 < steps < len(X) // BATCH  # stopped inside the epoch
    history = model.history
    assert history is not None and history.stop_reason == "interrupted" and history.epochs == 0
    for s in range(steps):
        replay.train_step(X[BATCH * s : BATCH * (s + 1)], y[BATCH * s : BATCH * (s + 1)])
    np.testing.assert_array_equal(model.get_state()["weights"], replay.get_state()["weights"])
    assert np.isfinite(model.train_step(X[:BATCH], y[:BATCH]))  # not left busy or broken


def test_ctrl_c_after_some_epochs_keeps_their_history() -> None:
    X, y = _data(4_000)
    model, replay = _model(0.5), _model(0.5)
    per_epoch = len(X) // BATCH
    watcher = _interrupt_once_training(model, after=2 * per_epoch + 3)  # in the third epoch
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=10_000, batch_size=BATCH, shuffle=False)
    watcher.join(60)
    history = model.history
    steps = model.optimizer.steps
    assert history is not None and history.stop_reason == "interrupted"
    # Ctrl-C inside an epoch stops it at a batch boundary; one that lands just after an
    # epoch's last batch is raised before that epoch is recorded (its steps did run)
    assert history.epochs * per_epoch <= steps <= (history.epochs + 1) * per_epoch
    assert history.epochs >= 2 and np.isfinite(history.loss).all()
    replay.fit(X, y, epochs=history.epochs, batch_size=BATCH, shuffle=False)
    for s in range(steps - history.epochs * per_epoch):
        replay.train_step(X[BATCH * s : BATCH * (s + 1)], y[BATCH * s : BATCH * (s + 1)])
    np.testing.assert_array_equal(model.get_state()["weights"], replay.get_state()["weights"])
    assert model.fit(X[:64], y[:64], epochs=1).epochs == 1  # usable, and no longer claimed
