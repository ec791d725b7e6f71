"""What Keras, PyTorch and pandas users reach for: ReduceLROnPlateau and CSVLogger (checked
against Keras's own callbacks fed the same epoch logs), LinearWarmup (against torch's LinearLR
and SequentialLR), pandas and torch inputs (against the same calls on NumPy arrays),
iterators refused with what to pass instead, History.plot's Figure, progress through
tqdm.auto."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import backprop as bp

# -- helpers -------------------------------------------------------------------------------------


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # torch is a test dependency already
    return pytest.importorskip("keras")


def _data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(n, 1))
    return X, y


def _model(lr: float = 0.1, dtype: str = "float64") -> bp.Sequential:
    model = bp.Sequential([bp.Dense(3, 6), bp.Tanh(), bp.Dense(6, 1)], dtype=dtype, seed=0)
    return model.compile(bp.MSE(), bp.SGD(lr=lr))


def _classifier(dtype: str = "float64") -> bp.Sequential:
    model = bp.Sequential([bp.Dense(3, 6), bp.ReLU(), bp.Dense(6, 3)], dtype=dtype, seed=1)
    return model.compile(bp.SoftmaxCrossEntropy(), bp.Adam(lr=0.01), metrics=["accuracy"])


class Script(bp.Callback):
    """Puts a scripted value into each epoch's logs as "score"."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        assert logs is not None
        logs["score"] = self.values[epoch]


class Recorder(bp.Callback):
    """Copies each epoch's logs and the optimizer's lr after the callbacks before it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.logs: list[dict[str, float]] = []
        self.lrs: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.logs.append(dict(logs or {}))
        assert self.model.optimizer is not None
        self.lrs.append(self.model.optimizer.lr)


# -- ReduceLROnPlateau: Keras's own ------------------------------------------------------------


def _keras_reduce_lr(values: list[float], kwargs: dict, lr0: float):
    """The lr after each epoch of Keras's ReduceLROnPlateau fed `values` as the monitored log
    (on a stand-in model with a Keras optimizer: the callback reads and sets its
    learning_rate), and its wait, cooldown_counter and best at the end."""
    keras = _keras()

    class Model:
        stop_training = False

        def __init__(self) -> None:
            self.optimizer = keras.optimizers.SGD(learning_rate=lr0)

    model = Model()
    callback = keras.callbacks.ReduceLROnPlateau(monitor="score", **{"mode": "min", **kwargs})
    callback.set_model(model)
    callback.on_train_begin()
    lrs = []
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"score": value})
        lrs.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    return lrs, callback.wait, callback.cooldown_counter, callback.best


NAN = float("nan")
REDUCE_CASES = [
    ([5, 4, 4.5, 4.2, 4.1, 4.3, 3, 3.5, 3.6, 3.7], {"patience": 2, "factor": 0.5}),
    ([5, 4, 4.5, 4.2, 4.1, 4.3, 3, 3.5, 3.6, 3.7, 3.8], {"patience": 1, "cooldown": 2}),
    ([1, 2, 3, 0.5, 0.6, 0.7, 0.8], {"patience": 0, "factor": 0.5}),
    ([1, 1, 1, 1, 1, 1], {"patience": 1, "min_lr": 0.02}),  # floored at min_lr
    ([1, 1, 1, 1, 1, 1, 1], {"patience": 0, "min_lr": 0.001}),  # lands exactly on min_lr
    # ties at exactly min_delta (values exact in binary: Keras's torch backend compares in
    # float32, we in float64; these are ties in both)
    ([1.0, 0.875, 0.75, 0.625, 0.5625, 0.5], {"patience": 1, "min_delta": 0.125}),
    ([0.5, 0.52, 0.6, 0.61, 0.62, 0.7, 0.69], {"patience": 1, "mode": "max", "min_delta": 0.05}),
    ([NAN, 1, 1, 1], {"patience": 1}),
    ([3, NAN, NAN, 2, 2, 2], {"patience": 1, "cooldown": 1}),
    ([4, 3, 2, 1, 0.5], {"patience": 0}),  # always improving: never reduces
    ([2, 2, 2, 2, 2, 2, 2, 2], {"patience": 2, "cooldown": 1, "factor": 0.3, "min_delta": 0}),
]


@pytest.mark.parametrize(("values", "kwargs"), REDUCE_CASES)
def test_reduce_lr_on_plateau_reduces_where_keras_does(values, kwargs) -> None:
    """The lr after every epoch, and wait, cooldown_counter and best at the end, are those of
    Keras's callback fed the same values. rtol 1e-6: Keras keeps the lr in float32."""
    lr0 = 0.1
    keras_lrs, wait, cooldown_counter, best = _keras_reduce_lr(values, kwargs, lr0)
    X, y = _data()
    reduce = bp.ReduceLROnPlateau(monitor="score", **{"mode": "min", **kwargs})
    recorder = Recorder()
    history = _model(lr=lr0).fit(X, y, epochs=len(values), callbacks=[Script(values), reduce,
                                                                        recorder])  # fmt: skip
    np.testing.assert_allclose(recorder.lrs, keras_lrs, rtol=1e-6)
    # the lr each epoch trained with: lr0, then the lr set after the epoch before
    np.testing.assert_allclose(history.lr, [lr0, *keras_lrs[:-1]], rtol=1e-6)
    assert reduce.wait == wait and reduce.cooldown_counter == cooldown_counter
    if isinstance(best, float) and math.isnan(best):
        assert math.isnan(reduce.best)
    else:
        assert reduce.best == pytest.approx(float(best), rel=1e-12)


def test_reduce_lr_on_plateau_on_a_worsening_val_loss_matches_keras_replay(capsys) -> None:
    """A real fit: training on y while validating against -y makes val_loss worse every
    epoch; replaying the recorded val_loss through Keras's callback gives the same lrs."""
    X, y = _data()
    reduce = bp.ReduceLROnPlateau(patience=1, factor=0.5, verbose=1)
    history = _model(lr=0.05).fit(X, y, epochs=6, validation_data=(X, -y), callbacks=[reduce])
    keras_lrs, *_ = _keras_reduce_lr(history.val_loss, {"patience": 1, "factor": 0.5}, 0.05)
    np.testing.assert_allclose(history.lr[1:], keras_lrs[:-1], rtol=1e-6)
    assert history.lr[-1] < history.lr[0]
    out = capsys.readouterr().out
    first = next(i for i in range(len(history.lr) - 1) if history.lr[i + 1] < history.lr[i])
    # Keras's message, for the epoch (1-based) after which the lr fell
    new_lr = history.lr[first + 1]
    assert f"\nEpoch {first + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}." in out


def test_reduce_lr_on_plateau_restarts_its_counts_with_each_fit() -> None:
    X, y = _data()
    model = _model(lr=0.1)
    reduce = bp.ReduceLROnPlateau(monitor="score", patience=2, factor=0.5)
    model.fit(X, y, epochs=3, callbacks=[Script([1, 1, 1]), reduce])
    assert model.optimizer.lr == 0.05 and reduce.wait == 0
    model.fit(X, y, epochs=2, callbacks=[Script([1, 1]), reduce])  # best restarts: 1 epoch waited
    assert model.optimizer.lr == 0.05 and reduce.wait == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"factor": 1.0}, ValueError, r"factor must be in \[0, 1\)"),
        ({"factor": 0}, ValueError, r"factor must be in \(0, 1\)"),
        ({"patience": -1}, ValueError, "patience must be >= 0"),
        ({"mode": "up"}, ValueError, "mode must be"),
        ({"min_lr": -1.0}, ValueError, "min_lr must be in"),
        ({"monitor": 3}, TypeError, "monitor must be a str"),
    ],
)
def test_reduce_lr_on_plateau_checks_its_arguments(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        bp.ReduceLROnPlateau(**kwargs)


def test_reduce_lr_on_plateau_names_a_missing_monitor() -> None:
    X, y = _data()
    with pytest.raises(ValueError, match=r"monitor 'val_loss' is not in the epoch logs.*"
                                         r"validation_data"):  # fmt: skip
        _model().fit(X, y, epochs=1, callbacks=[bp.ReduceLROnPlateau()])


def test_reduce_lr_never_sets_an_lr_of_zero() -> None:
    """min_lr=0 and many reductions: the lr stops at the smallest float32 subnormal, which
    both model dtypes hold (an lr of 0, or one rounding to 0, is refused)."""
    X, y = _data()
    model = _model(lr=1e-40, dtype="float32")
    reduce = bp.ReduceLROnPlateau(monitor="score", patience=0, factor=1e-3)
    model.fit(X, y, epochs=4, callbacks=[Script([1.0] * 4), reduce])
    assert model.optimizer.lr == float(np.finfo(np.float32).smallest_subnormal)


# -- CSVLogger: Keras's file, byte for byte ------------------------------------------------------


def _keras_csv(path: Path, runs: list[list[dict[str, float]]], **kwargs) -> bytes:
    """The file Keras's CSVLogger writes for the given epochs' logs, one list per fit."""
    keras = _keras()
    logger = keras.callbacks.CSVLogger(str(path), **kwargs)
    for logs in runs:
        logger.on_train_begin()
        for epoch, record in enumerate(logs):
            logger.on_epoch_end(epoch, dict(record))
        logger.on_train_end()
    return path.read_bytes()


@pytest.mark.parametrize(
    ("fit_kwargs", "csv_kwargs"),
    [
        ({"validation_split": 0.25}, {}),
        ({}, {}),  # no val_ keys: Keras adds val_<key> columns, written as NA
        ({"validation_split": 0.25}, {"separator": ";"}),
    ],
    ids=["validation", "no-validation", "separator"],
)
def test_csv_logger_writes_kerass_file(tmp_path: Path, fit_kwargs, csv_kwargs) -> None:
    X = np.random.default_rng(1).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    recorder = Recorder()
    path = tmp_path / "ours.csv"
    _classifier().fit(X, y, epochs=4, callbacks=[recorder, bp.CSVLogger(path, **csv_kwargs)],
                      **fit_kwargs)  # fmt: skip
    expected = _keras_csv(tmp_path / "keras.csv", [recorder.logs], **csv_kwargs)
    assert path.read_bytes() == expected
    header = path.read_text().splitlines()[0].split(csv_kwargs.get("separator", ","))
    assert header[0] == "epoch" and header[1:] == sorted(header[1:])


def test_csv_logger_appends_across_fits_as_keras_does(tmp_path: Path) -> None:
    X, y = _data()
    model = _model()
    path = tmp_path / "ours.csv"
    logger = bp.CSVLogger(path, append=True)
    runs = []
    for epochs in (2, 3):
        recorder = Recorder()
        model.fit(X, y, epochs=epochs, validation_data=(X, y), callbacks=[recorder, logger])
        runs.append(recorder.logs)
    assert path.read_bytes() == _keras_csv(tmp_path / "keras.csv", runs, append=True)
    assert len(path.read_text().splitlines()) == 1 + 2 + 3  # one header
    # append=False starts the file again
    model.fit(X, y, epochs=1, validation_data=(X, y), callbacks=[bp.CSVLogger(path)])
    assert len(path.read_text().splitlines()) == 2


def test_csv_logger_checks_its_separator() -> None:
    with pytest.raises(ValueError, match="one character"):
        bp.CSVLogger("log.csv", separator=", ")


# -- LinearWarmup: torch's LinearLR and SequentialLR ---------------------------------------------


def _torch_lrs(make_scheduler, lr0: float, epochs: int) -> list[float]:
    """The lr torch.optim.lr_scheduler gives each epoch (the reference)."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's notes on its construction
        sched = make_scheduler(torch.optim.lr_scheduler, opt)
        lrs = []
        for _ in range(epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return lrs


def _warmup_formula(e: int, lr0: float, n: int, start: float) -> float:
    return lr0 * (start + (1 - start) * e / n) if e < n else lr0


@pytest.mark.parametrize(
    ("make", "formula", "torch_scheduler", "epochs"),
    [
        (
            lambda: bp.LinearWarmup(4, start_factor=0.25),
            lambda e: _warmup_formula(e, 0.1, 4, 0.25),
            lambda s, o: s.LinearLR(o, start_factor=0.25, total_iters=4),
            8,
        ),
        (
            lambda: bp.LinearWarmup(3),  # torch's default start_factor, 1/3
            lambda e: _warmup_formula(e, 0.1, 3, 1 / 3),
            lambda s, o: s.LinearLR(o, total_iters=3),
            6,
        ),
        (
            lambda: bp.LinearWarmup(4, 0.25, then=bp.CosineDecay(T_max=5, eta_min=0.01)),
            lambda e: _warmup_formula(e, 0.1, 4, 0.25) if e < 4 else
            0.01 + 0.09 * (1 + math.cos(math.pi * min(e - 4, 5) / 5)) / 2,
            lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.25, total_iters=4),
                                            s.CosineAnnealingLR(o, T_max=5, eta_min=0.01)],
                                        milestones=[4]),
            10,  # up to T_max after the hand-over (torch's cosine then rises again)
        ),
        (
            lambda: bp.LinearWarmup(2, 0.5, then=bp.ExponentialDecay(gamma=0.8)),
            lambda e: _warmup_formula(e, 0.1, 2, 0.5) if e < 2 else 0.1 * 0.8 ** (e - 2),
            lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.5, total_iters=2),
                                            s.ExponentialLR(o, gamma=0.8)], milestones=[2]),
            9,
        ),
        (
            lambda: bp.LinearWarmup(3, 0.1, then=bp.StepDecay(step_size=2, gamma=0.5)),
            lambda e: _warmup_formula(e, 0.1, 3, 0.1) if e < 3 else 0.1 * 0.5 ** ((e - 3) // 2),
            lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.1, total_iters=3),
                                            s.StepLR(o, step_size=2, gamma=0.5)], milestones=[3]),
            10,
        ),
    ],
    ids=["warmup", "default-start", "then-cosine", "then-exponential", "then-step"],
)  # fmt: skip
def test_linear_warmup_gives_torchs_learning_rates(make, formula, torch_scheduler, epochs) -> None:
    X, y = _data()
    history = _model(lr=0.1).fit(X, y, epochs=epochs, callbacks=[make()])
    np.testing.assert_allclose(history.lr, [formula(e) for e in range(epochs)], rtol=1e-12)
    np.testing.assert_allclose(history.lr, _torch_lrs(torch_scheduler, 0.1, epochs), rtol=1e-12)


def test_linear_warmup_counts_epochs_across_fit_calls_like_torch() -> None:
    X, y = _data()
    model = _model(lr=0.1)
    schedule = bp.LinearWarmup(4, 0.25, then=bp.ExponentialDecay(gamma=0.9))
    lrs = model.fit(X, y, epochs=3, callbacks=[schedule]).lr
    lrs += model.fit(X, y, epochs=5, callbacks=[schedule]).lr
    expected = _torch_lrs(
        lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.25, total_iters=4),
                                        s.ExponentialLR(o, gamma=0.9)], milestones=[4]),
        0.1, 8,
    )  # fmt: skip
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"warmup_epochs": 0}, ValueError, "warmup_epochs must be >= 1"),
        ({"warmup_epochs": 2, "start_factor": 0}, ValueError, r"start_factor must be in \(0, 1\]"),
        ({"warmup_epochs": 2, "start_factor": 1.5}, ValueError, "start_factor must be in"),
        ({"warmup_epochs": 2, "then": lambda e, lr: lr}, TypeError, "then must be a schedule"),
    ],
)
def test_linear_warmup_checks_its_arguments(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        bp.LinearWarmup(**kwargs)


# -- inputs: pandas and torch, converted once; iterators refused ---------------------------------


def _same_training(make, X, y, X2, y2, **kwargs) -> None:
    """fit / train_step / predict / evaluate on (X2, y2) give exactly what they give on the
    NumPy arrays (X, y): the same losses, weights, predictions (bit for bit)."""
    ref, other = make(), make()
    w_ref = kwargs.pop("sample_weight_ref", None)
    w_other = kwargs.pop("sample_weight", None)
    h_ref = ref.fit(X, y, epochs=2, batch_size=8, seed=0, sample_weight=w_ref, **kwargs)
    h_other = other.fit(X2, y2, epochs=2, batch_size=8, seed=0, sample_weight=w_other, **kwargs)
    assert h_other.loss == h_ref.loss
    assert ref.train_step(X, y, w_ref) == other.train_step(X2, y2, w_other)
    for a, b in zip(ref.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ref.predict(X), other.predict(X2))
    assert ref.evaluate(X, y, w_ref) == other.evaluate(X2, y2, w_other)
    assert ref.evaluate(X, y, w_ref, return_dict=True) == other.evaluate(
        X2, y2, w_other, return_dict=True
    )
    np.testing.assert_array_equal(ref.gradients(X, y)[0][0], other.gradients(X2, y2)[0][0])


def test_pandas_dataframe_and_series_everywhere() -> None:
    pd = pytest.importorskip("pandas")
    X, y = _data()
    w = np.linspace(0.5, 2.0, len(X))
    df = pd.DataFrame(X, columns=["a", "b", "c"], index=np.arange(100, 140))
    _same_training(_model, X, y, df, pd.Series(y[:, 0]), sample_weight_ref=w,
                   sample_weight=pd.Series(w), validation_data=(X[:10], y[:10]))  # fmt: skip
    _same_training(_model, X, y, df, pd.DataFrame(y))  # y as a one-column frame
    # validation data as pandas too
    a, b = _model(), _model()
    ha = a.fit(X, y, epochs=2, validation_data=(X[:10], y[:10], w[:10]))
    hb = b.fit(df, y, epochs=2, validation_data=(df[:10], pd.Series(y[:10, 0]), pd.Series(w[:10])))
    assert ha.val_loss == hb.val_loss


def test_pandas_labels_and_mixed_or_nullable_columns() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.integers(-5, 5, 30), rng.normal(size=30), rng.random(30) > 0.5])
    labels = rng.integers(0, 3, 30)
    mixed = pd.DataFrame({"i": X[:, 0].astype(np.int64), "f": X[:, 1], "b": X[:, 2] > 0})
    nullable = pd.DataFrame({
        "i": pd.array(X[:, 0].astype(np.int64), dtype="Int64"),
        "f": pd.array(X[:, 1], dtype="Float64"),
        "b": pd.array(X[:, 2] > 0, dtype="boolean"),
    })  # fmt: skip
    X64 = X.astype(np.float64)  # what NumPy makes of the columns (bool -> 0/1)
    _same_training(_classifier, X64, labels, mixed, pd.Series(labels))
    _same_training(_classifier, X64, labels, nullable, pd.Series(labels, dtype="Int64"))


def _with_missing(pd, X, dtype: str, row: int):
    """X as a frame whose column "a" has the nullable dtype and a missing value in `row`
    (the index labels are not positions: the message names the position)."""
    a = [None if i == row else v for i, v in enumerate(np.round(X[:, 0] * 10))]
    return pd.DataFrame({"a": pd.array(a, dtype=dtype), "b": X[:, 1], "c": X[:, 2]},
                        index=np.arange(100, 100 + len(X)))  # fmt: skip


@pytest.mark.parametrize(
    ("make_bad", "error", "message"),
    [
        (lambda pd, X: pd.DataFrame(X, columns=["a", "b", "c"]).assign(name="x"), TypeError,
         r"fit: X column 'name' must hold numbers \(float, integer or bool\), got the pandas "
         r"dtype"),
        (lambda pd, X: pd.DataFrame(X, columns=["a", "b", "c"]).astype({"a": "category"}),
         TypeError, r"fit: X column 'a' .*dtype category \(\.cat\.codes gives"),
        (lambda pd, X: _with_missing(pd, X, "Int64", 3), ValueError,
         r"fit: X holds a missing value \(NA\) in row 3 \(column 'a'\)"),
        (lambda pd, X: _with_missing(pd, X, "Float64", 5), ValueError,
         r"fit: X holds a missing value \(NA\) in row 5 \(column 'a'\)"),
        (lambda pd, X: pd.DataFrame(np.where(np.arange(len(X))[:, None] == 7, np.nan, X)),
         ValueError,
         r"fit: X holds NaN or infinity in row 7"),  # NumPy-backed: NaN, as in NumPy
    ],
    ids=["strings", "category", "int-na", "float-na", "numpy-nan"],
)  # fmt: skip
def test_pandas_columns_that_are_not_numbers_are_named(make_bad, error, message) -> None:
    pd = pytest.importorskip("pandas")
    X, y = _data()
    with pytest.raises(error, match=message):
        _model().fit(make_bad(pd, X), y)


def test_pandas_categorical_labels_say_how_to_encode_them() -> None:
    pd = pytest.importorskip("pandas")
    X = np.random.default_rng(0).normal(size=(6, 3))
    y = pd.Series(["cat", "dog", "cat", "emu", "dog", "emu"], dtype="category")
    with pytest.raises(TypeError, match=r"fit: y must hold numbers.*\.cat\.codes"):
        _classifier().fit(X, y)
    _same_training(_classifier, X, y.cat.codes.to_numpy(), X, y.cat.codes)


def test_torch_tensors_everywhere_also_with_requires_grad() -> None:
    torch = pytest.importorskip("torch")
    X, y = _data()
    w = np.linspace(0.5, 2.0, len(X))
    tX = torch.tensor(X, requires_grad=True)
    ty = torch.tensor(y, requires_grad=True)
    _same_training(_model, X, y, tX, ty, sample_weight_ref=w, sample_weight=torch.tensor(w),
                   validation_data=(X[:10], y[:10]))  # fmt: skip
    assert tX.grad is None and tX.requires_grad  # the caller's tensor is left as it was
    # float32 tensors into a float32 model, a transposed (non-contiguous) tensor, labels
    X32 = X.astype(np.float32)
    _same_training(lambda: _model(dtype="float32"), X32, y.astype(np.float32),
                   torch.tensor(X32.T).T, torch.tensor(y, dtype=torch.float32))  # fmt: skip
    labels = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    _same_training(_classifier, X, labels, torch.tensor(X), torch.tensor(labels))
    _same_training(_classifier, X, labels, torch.tensor(X), torch.tensor(labels, dtype=torch.int32))
    # an nn.Parameter is a tensor too
    _same_training(_model, X, y, torch.nn.Parameter(torch.tensor(X)), ty)


def test_torch_bfloat16_goes_through_float32_exactly() -> None:
    torch = pytest.importorskip("torch")
    X, y = _data()
    tX, ty = torch.tensor(X, dtype=torch.bfloat16), torch.tensor(y, dtype=torch.bfloat16)
    # the reference: the bfloat16 values in float32 (exact), as NumPy arrays
    rX, ry = tX.float().numpy(), ty.float().numpy()
    _same_training(lambda: _model(dtype="float32"), rX, ry, tX, ty)


def test_torch_loss_functions_take_tensors() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    loss = bp.MSE()
    expected = loss(pred, target)
    assert loss(torch.tensor(pred, requires_grad=True), torch.tensor(target)) == expected
    # the reference: torch's own
    assert expected == pytest.approx(
        torch.nn.functional.mse_loss(torch.tensor(pred), torch.tensor(target)).item(), rel=1e-12
    )


def _iterators():
    X, _ = _data()
    rows = [list(r) for r in X]
    yield "generator", lambda: (r for r in rows)
    yield "list_iterator", lambda: iter(rows)
    yield "map", lambda: map(list, X)
    yield "dict", lambda: dict(enumerate(rows))
    yield "set", lambda: {1.0, 2.0}


@pytest.mark.parametrize(("kind", "make"), list(_iterators()), ids=[k for k, _ in _iterators()])
def test_iterators_are_refused_with_what_to_pass_instead(kind, make) -> None:
    X, y = _data()
    model = _model()
    calls = {
        "fit": lambda it: model.fit(it, y),
        "train_step": lambda it: model.train_step(it, y),
        "predict": lambda it: model.predict(it),
        "evaluate": lambda it: model.evaluate(it, y),
        "fit (y)": lambda it: model.fit(X, it),
        "evaluate (sample_weight)": lambda it: model.evaluate(X, y, sample_weight=it),
    }
    for where, call in calls.items():
        with pytest.raises(TypeError) as info:
            call(make())
        text = str(info.value)
        assert f" is a {kind}, which can be read only item by item" in text, where
        assert "pass the data as one array instead" in text
        assert "model.train_step(X_batch, y_batch) for each batch" in text
        assert "partial_fit" in text


def test_a_torch_dataloader_is_refused_too() -> None:
    torch = pytest.importorskip("torch")
    X, y = _data()
    loader = torch.utils.data.DataLoader(torch.tensor(X), batch_size=8)
    with pytest.raises(TypeError, match=r"fit: X is a DataLoader.*train_step\(X_batch"):
        _model().fit(loader, y)


def test_import_backprop_imports_neither_pandas_nor_torch_nor_plotting() -> None:
    code = (
        "import sys, numpy as np, backprop as bp\n"
        "m = bp.Sequential([bp.Dense(2, 1)], seed=0).compile(bp.MSE(), bp.SGD(lr=0.1))\n"
        "m.fit(np.zeros((4, 2)), np.zeros(4), epochs=2, verbose=2)\n"
        "m.summary(print_fn=lambda s: None)\n"
        "print(sorted(k for k in ('pandas', 'torch', 'matplotlib', 'tqdm', 'keras')"
        " if k in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "[]"


# -- History.plot: the Figure ---------------------------------------------------------------------


def _history() -> bp.History:
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    model = _classifier()
    return model.fit(X, y, epochs=4, validation_split=0.2)


def test_history_plot_returns_the_figure_with_the_history_s_numbers(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    history = _history()
    fig = history.plot()
    assert isinstance(fig, Figure)
    loss_axes, metric_axes = fig.axes
    lines = {line.get_label(): line for line in loss_axes.get_lines()}
    for key in ("loss", "val_loss"):
        np.testing.assert_array_equal(lines[key].get_ydata(), history[key])
        np.testing.assert_array_equal(lines[key].get_xdata(), np.arange(1, 5))
    (acc,) = metric_axes.get_lines()
    assert acc.get_label() == "val_accuracy"
    np.testing.assert_array_equal(acc.get_ydata(), history["val_accuracy"])
    # show_metrics=False: the loss panel only; with a path, the same figure is also saved
    fig = history.plot(tmp_path / "h.png", show_metrics=False)
    assert len(fig.axes) == 1
    data = (tmp_path / "h.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    history.plot(tmp_path / "h.svg")
    assert (tmp_path / "h.svg").read_text().lstrip().startswith("<?xml")


def test_history_plot_leaves_pyplot_alone() -> None:
    pytest.importorskip("matplotlib")
    code = (
        "import sys, numpy as np, backprop as bp\n"
        "m = bp.Sequential([bp.Dense(2, 1)], seed=0).compile(bp.MSE(), bp.SGD(lr=0.1))\n"
        "fig = m.fit(np.zeros((4, 2)), np.zeros(4), epochs=2).plot()\n"
        "print(type(fig).__name__, 'matplotlib.pyplot' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    assert done.stdout.split() == ["Figure", "False"]


# -- progress: tqdm.auto -------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeBar:
    """Stands in for tqdm.auto.tqdm: records what fit asks of the bar."""

    made: ClassVar[list[FakeBar]] = []

    def __init__(self, **kwargs) -> None:
        self.kwargs, self.updates, self.postfix, self.closed = kwargs, 0, [], False
        FakeBar.made.append(self)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix.append(text)

    def update(self, n: int = 1) -> None:
        self.updates += n

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tqdm_auto(monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    FakeBar.made = []
    monkeypatch.setattr(tqdm_auto, "tqdm", FakeBar)
    return FakeBar


def _fake_jupyter(monkeypatch) -> None:
    """An IPython that reports a Jupyter kernel, as tqdm.auto itself checks for one."""
    shell = types.SimpleNamespace(config={"IPKernelApp": {"connection_file": "kernel.json"}})
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)


def test_progress_in_a_notebook_uses_tqdm_auto(monkeypatch, fake_tqdm_auto) -> None:
    """In a Jupyter kernel stdout is no terminal, yet verbose=1 draws tqdm.auto's bar (the
    notebook widget); nothing is printed as lines."""
    _fake_jupyter(monkeypatch)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    X, y = _data()
    history = _model().fit(X, y, epochs=3, verbose=1, validation_split=0.25)
    (bar,) = fake_tqdm_auto.made
    assert bar.kwargs["total"] == 3 and bar.updates == 3 and bar.closed
    assert bar.postfix[-1].startswith(f"loss={history.loss[-1]:.4g}, val_loss=")
    assert out.getvalue() == ""


def test_progress_in_a_terminal_uses_tqdm_auto_and_elsewhere_lines(
    monkeypatch, fake_tqdm_auto
) -> None:
    X, y = _data()
    monkeypatch.setattr(sys, "stdout", FakeTerminal())
    _model().fit(X, y, epochs=2, verbose=1)
    assert len(fake_tqdm_auto.made) == 1 and fake_tqdm_auto.made[0].updates == 2
    # no terminal and no notebook (a CI log): one line per epoch, as before
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    _model().fit(X, y, epochs=2, verbose=1)
    assert len(fake_tqdm_auto.made) == 1
    assert [line.split(" - ")[0] for line in out.getvalue().splitlines()] == [
        "epoch 1/2",
        "epoch 2/2",
    ]
    # a terminal IPython (no kernel) is not a notebook
    shell = types.SimpleNamespace(config={"TerminalIPythonApp": {}})
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    _model().fit(X, y, epochs=2, verbose=1)
    assert len(fake_tqdm_auto.made) == 1 and len(out.getvalue().splitlines()) == 4


def test_real_tqdm_auto_in_a_terminal_is_the_text_bar(monkeypatch) -> None:
    tqdm_auto = pytest.importorskip("tqdm.auto")
    import tqdm.std

    if "IPython" in sys.modules:
        pytest.skip("tqdm.auto chose its class when IPython was loaded")
    assert tqdm_auto.tqdm is tqdm.std.tqdm or issubclass(tqdm_auto.tqdm, tqdm.std.tqdm)
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", term)
    X, y = _data()
    _model().fit(X, y, epochs=3, verbose=1)
    assert "\r" in term.getvalue() and "3/3" in term.getvalue()
