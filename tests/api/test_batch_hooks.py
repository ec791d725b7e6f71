"""Per-batch callbacks: on_batch_end runs after each batch's update inside the compiled
epoch, sees the batch's loss, may use the model, and can end the epoch."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

BATCH = 8


def _model() -> bp.Sequential:
    model = bp.Sequential([bp.Dense(3, 5), bp.Tanh(), bp.Dense(5, 2)], dtype="float64", seed=0)
    return model.compile(bp.MSE(), bp.SGD(lr=0.05, momentum=0.5))


def _data(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 2))


class Record(bp.Callback):
    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at = stop_at
        self.seen: list[tuple[int, float, list[np.ndarray], np.ndarray]] = []

    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        assert logs is not None
        model = self.model
        assert isinstance(model, bp.Sequential)
        self.seen.append((batch, logs["loss"], model.get_weights(), model.predict(X[:3])))
        if batch == self.stop_at:
            model.stop_training = True


X, Y = _data()


def _replay(steps: int) -> tuple[bp.Sequential, list[float], list[list[np.ndarray]]]:
    replay = _model()
    losses, weights = [], []
    for s in range(steps):
        losses.append(
            replay.train_step(X[BATCH * s : BATCH * (s + 1)], Y[BATCH * s : BATCH * (s + 1)])
        )
        weights.append(replay.get_weights())
    return replay, losses, weights


def test_each_batch_is_reported_after_its_update() -> None:
    record = Record()
    history = _model().fit(X, Y, epochs=1, batch_size=BATCH, shuffle=False, callbacks=[record])
    n_batches = -(-len(X) // BATCH)
    _, losses, weights = _replay(n_batches)
    assert [b for b, *_ in record.seen] == list(range(n_batches))
    np.testing.assert_array_equal([loss for _, loss, *_ in record.seen], losses)
    for (_, _, seen, _), expected in zip(record.seen, weights, strict=True):
        for a, b in zip(seen, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    sizes = [min(BATCH, len(X) - BATCH * s) for s in range(n_batches)]
    assert history.loss[0] == pytest.approx(np.average(losses, weights=sizes), rel=1e-12)


def test_stop_training_ends_the_epoch_after_that_batch() -> None:
    model = _model()
    record = Record(stop_at=2)
    history = model.fit(X, Y, epochs=5, batch_size=BATCH, shuffle=False, callbacks=[record])
    replay, losses, _ = _replay(3)
    assert history.epochs == 1 and history.stop_reason == "callback"
    assert history.loss[0] == pytest.approx(np.mean(losses), rel=1e-12)
    assert model.optimizer.steps == 3
    np.testing.assert_array_equal(model.get_state()["weights"], replay.get_state()["weights"])


def test_an_exception_in_the_hook_propagates_and_leaves_the_model_usable() -> None:
    class Boom(bp.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                raise ValueError("boom")

    model = _model()
    with pytest.raises(ValueError, match="boom"):
        model.fit(X, Y, epochs=1, batch_size=BATCH, shuffle=False, callbacks=[Boom()])
    replay, _, _ = _replay(2)  # the batch whose hook raised was taken
    np.testing.assert_array_equal(model.get_state()["weights"], replay.get_state()["weights"])
    assert np.isfinite(model.train_step(X, Y))


def test_the_model_cannot_be_recompiled_from_a_batch_hook() -> None:
    class Recompile(bp.Callback):
        def on_batch_end(self, batch, logs=None):
            self.model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.1))  # type: ignore[attr-defined]

    with pytest.raises(RuntimeError, match="cannot change while an epoch runs"):
        _model().fit(X, Y, epochs=1, batch_size=BATCH, callbacks=[Recompile()])


def test_callbacks_without_a_batch_hook_keep_the_epoch_compiled() -> None:
    """An epoch-only callback adds no per-batch call: a hook that counts calls sees none."""
    calls = []

    class EpochOnly(bp.Callback):
        def on_epoch_end(self, epoch, logs=None):
            calls.append(epoch)

    model = _model()
    model.fit(X, Y, epochs=2, batch_size=BATCH, callbacks=[EpochOnly()])
    assert calls == [0, 1]
    # the same fit with a batch hook reports every batch: the difference is the hook alone
    record = Record()
    _model().fit(X, Y, epochs=2, batch_size=BATCH, callbacks=[record])
    assert len(record.seen) == 2 * -(-len(X) // BATCH)
