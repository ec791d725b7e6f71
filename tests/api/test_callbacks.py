"""Callbacks change what fit() does: early stopping, best weights, checkpoints, learning-rate
schedules, users' own callbacks; validation_split; progress output; History.plot."""

from __future__ import annotations

import io
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import backprop as bp


def _data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(n, 1))
    return X, y


def _model(lr: float = 0.05, seed: int = 0) -> bp.Sequential:
    model = bp.Sequential([bp.Dense(3, 8), bp.Tanh(), bp.Dense(8, 1)], dtype="float64", seed=seed)
    return model.compile(bp.MSE(), bp.SGD(lr=lr))


class Script(bp.Callback):
    """Puts a scripted value into each epoch's logs (as "score") and snapshots the weights."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = values
        self.snapshots: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        assert logs is not None
        logs["score"] = self.values[epoch]
        self.snapshots.append([p.copy() for p in self.model.parameters()])


# -- EarlyStopping -----------------------------------------------------------------------------


def _keras_early_stopping(values: list[float], kwargs: dict[str, object]) -> tuple[int, int, int]:
    """(epochs run, stopped_epoch, best_epoch) of Keras's own EarlyStopping fed `values`
    as the monitored log, on a stand-in model (Keras's callback needs only stop_training,
    get_weights and set_weights). stopped_epoch -1 when it did not stop."""
    os.environ.setdefault("KERAS_BACKEND", "torch")  # torch is a test dependency already
    keras = pytest.importorskip("keras")

    class Model:
        stop_training = False

        def get_weights(self) -> list[np.ndarray]:
            return []

        def set_weights(self, weights: list[np.ndarray]) -> None:
            pass

    model = Model()
    stopper = keras.callbacks.EarlyStopping(monitor="score", **{"mode": "min", **kwargs})
    stopper.set_model(model)
    stopper.on_train_begin()
    epochs = 0
    for epoch, value in enumerate(values):
        epochs += 1
        stopper.on_epoch_end(epoch, {"score": value})
        if model.stop_training:
            return epochs, epoch, stopper.best_epoch
    return epochs, -1, stopper.best_epoch


EARLY_STOPPING_CASES = [
    ([5, 4, 3, 3.5, 3.2, 3.1, 2, 1], {"patience": 2}),
    ([5, 3, 4, 1, 0], {"patience": 0}),
    ([5, 3, 3, 3, 3, 3], {"patience": 3}),  # ties are not improvements
    ([1.0, 0.95, 0.91, 0.5], {"patience": 1, "min_delta": 0.1}),
    ([1.0, 0.9, 0.8, 0.7, 0.6], {"patience": 1, "min_delta": 0.1}),  # exactly min_delta
    ([0.5, 0.7, 0.6, 0.65, 0.9], {"patience": 1, "mode": "max"}),
    ([5, 4, 3, 2, 1], {"patience": 0}),
    ([5, 6, 7, 8, 1, 0.5, 0.4], {"patience": 1, "start_from_epoch": 3}),
    ([5, 4, 3, 2.5, 2.4, 2.3], {"patience": 2, "baseline": 2.0}),
    ([5, 4, 1.5, 3, 3, 3], {"patience": 2, "baseline": 2.0}),
    ([float("nan"), 3, 2, 1], {"patience": 1}),
    ([3, float("nan"), float("nan"), 1], {"patience": 1}),
    ([3, 2, 2.5, 2.6, 2.7], {"patience": 2, "restore_best_weights": True}),
]


@pytest.mark.parametrize(("values", "kwargs"), EARLY_STOPPING_CASES)
def test_early_stopping_stops_where_keras_does(values, kwargs) -> None:
    """The epoch that ends training, stopped_epoch and best_epoch are Keras's own."""
    epochs, stopped, best = _keras_early_stopping(values, kwargs)
    X, y = _data()
    stopper = bp.EarlyStopping(monitor="score", **kwargs)
    history = _model().fit(X, y, epochs=len(values), callbacks=[Script(values), stopper])
    assert history.epochs == epochs
    np.testing.assert_array_equal(history["score"], values[:epochs])
    assert stopper.stopped_epoch == stopped
    assert history.stop_reason == ("callback" if stopped >= 0 else None)
    if stopper.best_epoch >= 0:  # Keras reports 0 where no epoch was ever monitored
        assert stopper.best_epoch == best


def test_early_stopping_patience_counts_epochs_without_improvement() -> None:
    # patience 2: 4, 4.5 do not beat 3, and training stops at the second of them (Keras's
    # rule: n epochs without improvement, not n + 1)
    X, y = _data()
    stopper = bp.EarlyStopping(monitor="score", patience=2)
    history = _model().fit(X, y, epochs=6, callbacks=[Script([5, 3, 4, 4.5, 1, 0]), stopper])
    assert history.epochs == 4 and stopper.stopped_epoch == 3 and stopper.best == 3


def test_early_stopping_on_val_loss_of_a_validation_set_that_worsens() -> None:
    # Training on y while validating against -y: val_loss grows from the first epoch on
    # (checked below from the History itself), so patience 1 stops at the second epoch.
    X, y = _data()
    history = _model().fit(
        X, y, epochs=20, validation_data=(X, -y), callbacks=[bp.EarlyStopping(patience=1)]
    )
    v = history.val_loss
    assert history.epochs == 2
    assert v[1] >= v[0]


def test_early_stopping_verbose_says_where_it_stopped(capsys) -> None:
    X, y = _data()
    stopper = bp.EarlyStopping("score", patience=1, restore_best_weights=True, verbose=1)
    _model().fit(X, y, epochs=5, callbacks=[Script([3.0, 1.0, 2.0, 2.5, 0.5]), stopper])
    out = capsys.readouterr().out
    assert "Epoch 3: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 2." in out


def test_restore_best_weights_puts_back_the_best_epochs_weights() -> None:
    X, y = _data()
    script = Script([3.0, 1.0, 2.0, 2.5, 1.5, 0.5])
    model = _model()
    stopper = bp.EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    history = model.fit(X, y, epochs=6, callbacks=[script, stopper])
    assert history.epochs == 4  # 2.0, 2.5 do not beat 1.0: patience 2 runs out at index 3
    assert stopper.best_epoch == 1 and stopper.best == 1.0
    for p, best in zip(model.parameters(), script.snapshots[1], strict=True):
        np.testing.assert_array_equal(p, best)
    # without restore_best_weights the model keeps the last epoch's weights
    script2 = Script([3.0, 1.0, 2.0, 2.5, 1.5, 0.5])
    model2 = _model()
    model2.fit(X, y, epochs=6, callbacks=[script2, bp.EarlyStopping("score", patience=2)])
    for p, last in zip(model2.parameters(), script2.snapshots[-1], strict=True):
        np.testing.assert_array_equal(p, last)
    assert not np.array_equal(script2.snapshots[-1][0], script2.snapshots[1][0])


def test_early_stopping_names_a_missing_monitor() -> None:
    X, y = _data()
    with pytest.raises(ValueError, match=r"'val_loss' is not in the epoch logs.*validation"):
        _model().fit(X, y, epochs=2, callbacks=[bp.EarlyStopping()])
    with pytest.raises(ValueError, match="mode must be"):
        bp.EarlyStopping(mode="best")


# -- ModelCheckpoint ---------------------------------------------------------------------------


def test_checkpoint_save_best_only_writes_only_on_improvement(tmp_path: Path) -> None:
    X, y = _data()
    script = Script([3.0, 2.0, 2.5, 1.0, 1.5])
    ckpt = bp.ModelCheckpoint(tmp_path / "ck-{epoch}.npz", monitor="score", save_best_only=True)
    model = _model()
    model.fit(X, y, epochs=5, callbacks=[script, ckpt])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck-1.npz", "ck-2.npz", "ck-4.npz"]
    for epoch in (1, 2, 4):  # each file holds the weights of its epoch
        loaded = bp.load(tmp_path / f"ck-{epoch}.npz")
        for p, snap in zip(loaded.parameters(), script.snapshots[epoch - 1], strict=True):
            np.testing.assert_array_equal(p, snap)


def test_checkpoint_every_epoch_and_one_path_holds_the_best(tmp_path: Path) -> None:
    X, y = _data()
    every = bp.ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{loss:.3f}.npz"), monitor="loss")
    script = Script([3.0, 2.0, 2.5, 1.0, 1.5])
    best = bp.ModelCheckpoint(tmp_path / "best.npz", monitor="score", save_best_only=True)
    history = _model().fit(X, y, epochs=5, callbacks=[script, every, best])
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != "best.npz")
    assert names == [f"e{e:02d}-{loss:.3f}.npz" for e, loss in enumerate(history.loss, start=1)]
    loaded = bp.load(tmp_path / "best.npz")
    for p, snap in zip(loaded.parameters(), script.snapshots[3], strict=True):
        np.testing.assert_array_equal(p, snap)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_checkpoint_path_with_an_unknown_field(tmp_path) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 2)), rng.normal(size=(8, 1))
    model = bp.Sequential([bp.Dense(2, 1)]).compile(bp.MSE(), bp.SGD())
    ckpt = bp.ModelCheckpoint(tmp_path / "{val_acc}.npz", monitor="loss")
    with pytest.raises(ValueError, match=r"the path.*KeyError.*'epoch', 'epoch_time', 'loss'"):
        model.fit(X, y, epochs=1, callbacks=[ckpt])


# -- learning-rate schedules -------------------------------------------------------------------


def _torch_lrs(make_scheduler, lr0: float, epochs: int) -> list[float]:
    """The learning rate torch.optim.lr_scheduler gives each epoch (the reference)."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr0)
    sched = make_scheduler(torch.optim.lr_scheduler, opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize(
    ("schedule", "formula", "torch_scheduler"),
    [
        (
            bp.StepDecay(step_size=2, gamma=0.5),
            lambda e: 0.1 * 0.5 ** (e // 2),
            lambda s, o: s.StepLR(o, step_size=2, gamma=0.5),
        ),
        (
            bp.ExponentialDecay(gamma=0.9),
            lambda e: 0.1 * 0.9**e,
            lambda s, o: s.ExponentialLR(o, gamma=0.9),
        ),
        (
            bp.CosineDecay(T_max=5, eta_min=0.01),
            lambda e: 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * min(e, 5) / 5)) / 2,
            lambda s, o: s.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
        ),
    ],
    ids=["step", "exponential", "cosine"],
)
def test_schedules_give_the_learning_rates_of_their_formula(
    schedule, formula, torch_scheduler
) -> None:
    X, y = _data()
    history = _model(lr=0.1).fit(X, y, epochs=6, callbacks=[schedule])
    expected = [formula(e) for e in range(6)]
    np.testing.assert_allclose(history.lr, expected, rtol=1e-12)
    # torch agrees up to T_max (after it, CosineAnnealingLR rises again; ours stays at eta_min)
    np.testing.assert_allclose(history.lr[:6], _torch_lrs(torch_scheduler, 0.1, 6), rtol=1e-12)


def test_cosine_decay_stays_at_eta_min_after_t_max() -> None:
    X, y = _data()
    history = _model(lr=0.1).fit(X, y, epochs=6, callbacks=[bp.CosineDecay(T_max=3, eta_min=0.02)])
    assert history.lr[3:] == [pytest.approx(0.02, rel=1e-12)] * 3


def test_schedule_changes_training_like_setting_the_lr_by_hand() -> None:
    X, y = _data()
    scheduled = _model(lr=0.1)
    scheduled.fit(X, y, epochs=4, seed=3, callbacks=[bp.StepDecay(step_size=1, gamma=0.5)])
    by_hand = _model(lr=0.1)
    rng = np.random.default_rng(3)
    for e in range(4):
        assert by_hand.optimizer is not None
        by_hand.optimizer.lr = 0.1 * 0.5**e
        perm = rng.permutation(len(X))
        by_hand.fit(X[perm], y[perm], epochs=1, shuffle=False)
    for a, b in zip(scheduled.parameters(), by_hand.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_callable_schedule_and_its_epoch_count_carries_over_fit_calls() -> None:
    X, y = _data()
    calls: list[tuple[int, float]] = []

    def halve(epoch: int, lr: float) -> float:
        calls.append((epoch, lr))
        return lr / 2

    model = _model(lr=0.8)
    scheduler = bp.LearningRateScheduler(halve)
    assert model.fit(X, y, epochs=2, callbacks=[scheduler]).lr == [0.4, 0.2]
    assert model.fit(X, y, epochs=2, callbacks=[scheduler]).lr == [0.1, 0.05]
    assert calls == [(0, 0.8), (1, 0.4), (2, 0.2), (3, 0.1)]
    with pytest.raises(ValueError, match="scheduled lr must be > 0"):
        model.fit(X, y, epochs=1, callbacks=[bp.LearningRateScheduler(lambda e, lr: 0.0)])


# -- users' callbacks --------------------------------------------------------------------------


class Recorder(bp.Callback):
    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.stop_at = stop_at

    def on_train_begin(self, logs=None) -> None:
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.calls.append(f"begin {epoch}")

    def on_epoch_end(self, epoch, logs=None) -> None:
        assert logs is not None
        self.calls.append(f"end {epoch} {logs['loss']:.6g}")
        if epoch == self.stop_at:
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        self.calls.append("train_end")


def test_custom_callback_sees_every_hook_in_order() -> None:
    X, y = _data()
    rec = Recorder()
    history = _model().fit(X, y, epochs=2, callbacks=[rec])
    loss = history.loss
    assert rec.calls == [
        "train_begin",
        "begin 0",
        f"end 0 {loss[0]:.6g}",
        "begin 1",
        f"end 1 {loss[1]:.6g}",
        "train_end",
    ]


def test_custom_callback_stops_training() -> None:
    X, y = _data()
    model, twin = _model(), _model()
    history = model.fit(X, y, epochs=10, seed=1, callbacks=[Recorder(stop_at=2)])
    assert history.epochs == 3 and history.stop_reason == "callback"
    assert model.history is history
    twin.fit(X, y, epochs=3, seed=1)  # the same three epochs, without the callback
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_callbacks_argument_is_checked() -> None:
    X, y = _data()
    with pytest.raises(TypeError, match=r"callbacks\[1\] must be a Callback"):
        _model().fit(X, y, callbacks=[bp.EarlyStopping(), print])  # type: ignore[list-item]


# -- validation_split --------------------------------------------------------------------------


def test_validation_split_holds_out_the_last_rows() -> None:
    X, y = _data(n=10)
    model = _model()
    history = model.fit(X, y, epochs=3, seed=5, validation_split=0.25)
    # floor(10 * 0.75) = 7 rows train, rows 7, 8, 9 validate (as Keras: before shuffling)
    assert history.val_loss[-1] == pytest.approx(model.evaluate(X[7:], y[7:]), rel=1e-12)
    twin = _model()
    twin_history = twin.fit(X[:7], y[:7], epochs=3, seed=5)
    assert twin_history.loss == history.loss
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_validation_split_takes_the_sample_weights_with_the_rows() -> None:
    X, y = _data(n=10)
    w = np.linspace(0.5, 2.0, 10)
    model = _model()
    history = model.fit(X, y, epochs=2, seed=5, validation_split=0.25, sample_weight=w)
    assert history.val_loss[-1] == model.evaluate(X[7:], y[7:], sample_weight=w[7:])
    assert history.val_loss[-1] != pytest.approx(model.evaluate(X[7:], y[7:]), rel=1e-6)
    twin = _model()
    twin.fit(X[:7], y[:7], epochs=2, seed=5, sample_weight=w[:7])
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_validation_split_errors() -> None:
    X, y = _data(n=10)
    with pytest.raises(ValueError, match="not both"):
        _model().fit(X, y, validation_split=0.2, validation_data=(X, y))
    with pytest.raises(ValueError, match=r"validation_split must be in \[0.0, 1.0\)"):
        _model().fit(X, y, validation_split=1.0)
    with pytest.raises(ValueError, match="leaves 0 for training and 10 for validation"):
        _model().fit(X, y, validation_split=0.95)


# -- progress ----------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_verbose_1_to_a_non_terminal_prints_one_line_per_epoch(monkeypatch) -> None:
    X, y = _data()
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    history = _model().fit(X, y, epochs=4, verbose=1, validation_split=0.25)
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and len(lines) == 4
    for e, line in enumerate(lines):
        assert line.startswith(f"epoch {e + 1}/4 - loss {history.loss[e]:.6g} - val_loss ")
        assert "samples/s" in line


def test_verbose_1_in_a_terminal_draws_a_tqdm_bar(monkeypatch) -> None:
    pytest.importorskip("tqdm")
    X, y = _data()
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", term)
    _model().fit(X, y, epochs=4, verbose=1, validation_split=0.25)
    text = term.getvalue()
    assert "\r" in text  # redrawn in place, not one line per epoch
    assert "4/4" in text and "val_loss=" in text and "samples/s" in text


def test_without_tqdm_a_terminal_gets_lines(monkeypatch) -> None:
    X, y = _data()
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", term)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    _model().fit(X, y, epochs=3, verbose=1)
    assert len(term.getvalue().splitlines()) == 3 and "\r" not in term.getvalue()


def test_verbose_2_prints_lines_in_a_terminal_and_verbose_0_nothing(monkeypatch) -> None:
    X, y = _data()
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", term)
    _model().fit(X, y, epochs=3, verbose=2)
    assert len(term.getvalue().splitlines()) == 3 and "\r" not in term.getvalue()
    quiet = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", quiet)
    monkeypatch.setattr(sys, "stderr", quiet)
    _model().fit(X, y, epochs=3, verbose=0)
    assert quiet.getvalue() == ""


# -- History -----------------------------------------------------------------------------------


def test_history_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    model = bp.Sequential([bp.Dense(3, 4), bp.ReLU(), bp.Dense(4, 2)], seed=0)
    model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.1), metrics=["accuracy"])
    history = model.fit(X, y, epochs=3, validation_split=0.2)
    history.plot(tmp_path / "h.png")
    data = (tmp_path / "h.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_history_plot_without_matplotlib_says_what_to_install(monkeypatch, tmp_path) -> None:
    X, y = _data()
    history = _model().fit(X, y, epochs=1)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"History\.plot needs matplotlib: pip install"):
        history.plot(tmp_path / "h.png")


def test_history_records_loss_metrics_lr_and_time() -> None:
    X = np.random.default_rng(1).normal(size=(50, 3))
    y = (X[:, 1] > 0).astype(np.int64)
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float64", seed=0)
    model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.3), metrics=["accuracy"])
    history = model.fit(X, y, epochs=3, validation_data=(X[:20], y[:20]))
    assert set(history.as_dict()) == {"loss", "val_loss", "val_accuracy", "lr", "epoch_time"}
    assert history.metrics == {"val_accuracy": history["val_accuracy"]}
    # the last val_accuracy is the trained model's accuracy on the validation rows
    acc = float(np.mean(np.argmax(model.predict(X[:20]), axis=1) == y[:20]))
    assert history["val_accuracy"][-1] == acc
    assert history.lr == [0.3] * 3 and all(t > 0 for t in history.epoch_time)
    with pytest.raises(KeyError, match="History has no 'accuracy'"):
        history["accuracy"]
