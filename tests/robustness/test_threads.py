"""One model, several threads: fit owns the model for its whole run, gradients() and save()
are atomic, and every other call meanwhile is refused with the documented RuntimeError.
Interleavings are forced with events inside a callback, not left to the scheduler."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import backprop as bp

BUSY = "in use by another thread"


def _model() -> bp.Sequential:
    model = bp.Sequential([bp.Dense(4, 8), bp.Tanh(), bp.Dense(8, 2)], dtype="float64", seed=0)
    return model.compile(bp.MSE(), bp.Adam(lr=0.01))


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(64, 4)), rng.normal(size=(64, 2))


class Pause(bp.Callback):
    """At the end of epoch `at`, tells the test it is inside fit and waits for it."""

    def __init__(self, at: int = 0) -> None:
        super().__init__()
        self.at = at
        self.inside = threading.Event()
        self.resume = threading.Event()
        self.own_thread: list[object] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if epoch == self.at:
            # fit's own thread may read, save and set state from a callback
            model = self.model
            assert isinstance(model, bp.Sequential)
            state = model.get_state()
            model.set_state(state)
            self.own_thread.append(state)
            self.inside.set()
            assert self.resume.wait(30), "the test never resumed fit"


def _inside_fit(model: bp.Sequential, pause: Pause) -> tuple[threading.Thread, list]:
    X, y = _data()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            model.fit(X, y, epochs=3, batch_size=16, callbacks=[pause])
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    assert pause.inside.wait(30), "fit never reached the callback"
    return thread, errors


CALLS: dict[str, Callable[[bp.Sequential, Path], object]] = {
    "train_step": lambda m, p: m.train_step(*_data(1)),
    "fit": lambda m, p: m.fit(*_data(1), epochs=1),
    "gradients": lambda m, p: m.gradients(*_data(1)),
    "loss_and_gradient": lambda m, p: m.loss_and_gradient(*_data(1)),
    "predict": lambda m, p: m.predict(_data(1)[0]),
    "evaluate": lambda m, p: m.evaluate(*_data(1)),
    "save": lambda m, p: m.save(p / "m.npz"),
    "get_state": lambda m, p: m.get_state(),
    "set_state": lambda m, p: m.set_state(_model().get_state()),
    "get_weights": lambda m, p: m.get_weights(),
    "set_weights": lambda m, p: m.set_weights(_model().get_weights()),
    "compile": lambda m, p: m.compile(bp.MSE(), bp.SGD(lr=0.1)),
    "eval": lambda m, p: m.eval(),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_call_from_another_thread_is_refused_while_fit_runs(call, tmp_path) -> None:
    model = _model()
    pause = Pause(at=1)
    thread, errors = _inside_fit(model, pause)
    try:
        with pytest.raises(RuntimeError, match=BUSY):
            CALLS[call](model, tmp_path)
    finally:
        pause.resume.set()
        thread.join(30)
    assert not errors, errors  # fit itself finished: the refused caller is the other thread
    assert model.history is not None and model.history.epochs == 3
    assert not (tmp_path / "m.npz").exists()
    assert pause.own_thread, "the callback in fit's thread could read and set state"


def test_the_refused_call_changed_nothing_and_fit_continues_as_alone() -> None:
    X, y = _data()
    alone = _model()
    alone.fit(X, y, epochs=3, batch_size=16)
    model = _model()
    pause = Pause(at=0)
    thread, errors = _inside_fit(model, pause)
    try:
        for call in ("set_state", "set_weights", "train_step", "compile"):
            with pytest.raises(RuntimeError, match=BUSY):
                CALLS[call](model, Path("."))
    finally:
        pause.resume.set()
        thread.join(30)
    assert not errors
    np.testing.assert_array_equal(model.get_state()["weights"], alone.get_state()["weights"])


def test_after_fit_the_model_is_free_for_any_thread(tmp_path) -> None:
    model = _model()
    model.fit(*_data(), epochs=1)
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(model.train_step(*_data(1))))
    thread.start()
    thread.join(30)
    assert len(results) == 1 and np.isfinite(results[0])


def test_a_fit_that_raises_releases_the_model() -> None:
    model = _model()
    X, y = _data()
    with pytest.raises(ValueError):
        model.fit(X, y[:10])
    thread = threading.Thread(target=lambda: model.train_step(X, y))
    thread.start()
    thread.join(30)
    assert model.optimizer.steps == 1


def test_gradients_from_two_threads_are_each_their_own_or_refused() -> None:
    """Each gradients() result is copied out before the call ends: another thread can never
    hand back its batch's gradient (it is refused while the model is busy)."""
    model = _model()
    batches = [_data(seed) for seed in range(2)]
    expected = [model.loss_and_gradient(X, y)[1] for X, y in batches]
    wrong: list[int] = []
    done = [0, 0]

    def hammer(k: int) -> None:
        X, y = batches[k]
        for _ in range(300):
            try:
                grad = model.loss_and_gradient(X, y)[1]
            except RuntimeError as e:
                assert BUSY in str(e)
                continue
            done[k] += 1
            if not np.array_equal(grad, expected[k]):
                wrong.append(k)

    threads = [threading.Thread(target=hammer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not wrong and sum(done) > 0


def test_save_is_one_snapshot_even_between_another_threads_steps(tmp_path) -> None:
    """A save while another thread takes train_steps is either refused or a state the model
    really had: its weights and optimizer state are of one and the same step."""
    model = _model()
    X, y = _data()
    states = {0: model.get_state()}
    stop = threading.Event()

    def train() -> None:
        while not stop.is_set():
            try:
                model.train_step(X, y)
            except RuntimeError:
                continue

    thread = threading.Thread(target=train)
    thread.start()
    saved = []
    try:
        for i in range(50):
            try:
                model.save(tmp_path / f"s{i}.npz")
                saved.append(i)
            except RuntimeError as e:
                assert BUSY in str(e)
    finally:
        stop.set()
        thread.join(30)
    replay = _model()
    by_steps = {0: replay.get_state()}
    for step in range(1, model.optimizer.steps + 1):
        replay.train_step(X, y)
        by_steps[step] = replay.get_state()
    for i in saved:
        loaded = bp.load(tmp_path / f"s{i}.npz")
        state = loaded.get_state()
        reference = by_steps[state["optimizer"]["steps"]]
        np.testing.assert_array_equal(state["weights"], reference["weights"])
        for k, v in reference["optimizer"]["buffers"].items():
            np.testing.assert_array_equal(state["optimizer"]["buffers"][k], v)
    assert states[0] is not None
