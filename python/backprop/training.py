"""What fit() talks to: the Callback protocol, the History it returns, metrics, progress.

Callbacks run between epochs (Keras-style hooks). An epoch is one compiled call, so callbacks
see epochs, never batches. In each hook, `epoch` is the 0-based index of the epoch within the
current fit() call, and `logs` holds that epoch's record (loss, val_loss, val_<metric>, lr,
epoch_time) at on_epoch_end: the very dict stored in the History, passed to the callbacks in
list order, so a callback may add an entry (a custom score) that later callbacks monitor and
the History keeps. A callback stops training by setting `self.model.stop_training = True`;
fit() checks it after on_epoch_begin (the epoch is then skipped) and after on_epoch_end.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import numpy as np
from numpy.typing import NDArray

from .optimizers import Optimizer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Array = NDArray[Any]
Logs = dict[str, float]


class FitModel(Protocol):
    """What a callback may use of the model being fitted (backprop.Sequential has it all)."""

    stop_training: bool
    optimizer: Optimizer | None

    def get_weights(self) -> list[Array]: ...

    def set_weights(self, weights: Sequence[Any]) -> None: ...

    def save(self, path: str | os.PathLike[str]) -> None: ...


class Callback:
    """Base class: override any of the hooks. `self.model` is the model being fitted."""

    def __init__(self) -> None:
        self._model: FitModel | None = None

    @property
    def model(self) -> FitModel:
        if self._model is None:
            raise RuntimeError(f"{type(self).__name__}: not attached to a model (use fit)")
        return self._model

    def set_model(self, model: FitModel) -> None:
        self._model = model

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Before the first epoch."""

    def on_train_end(self, logs: Logs | None = None) -> None:
        """After the last epoch, also when a callback stopped training (not after an
        exception: an interrupted or diverged fit leaves the model as it was)."""

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        """Before epoch `epoch` (0-based) runs."""

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """After epoch `epoch` (0-based) is recorded in the History; logs is its record."""

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """After batch `batch` (0-based, within the epoch) and its update; logs holds its
        "loss". Only callbacks that override this make fit() call back per batch, so the
        compiled epoch runs uninterrupted otherwise. The model may be used from here (but
        not recompiled); setting stop_training ends the epoch after this batch."""


def as_callbacks(callbacks: Any, model: FitModel) -> list[Callback]:
    """fit's callbacks argument as a checked list, each attached to the model."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"fit: callbacks must be a list of Callback, got {callbacks!r}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(
                f"fit: callbacks[{i}] must be a Callback (EarlyStopping(...), ...), "
                f"got {type(cb).__name__}"
            )
        cb.set_model(model)
    return list(callbacks)


#: metric name -> the losses it applies to (classification or regression)
_CLASSIFICATION = ("softmax_cross_entropy", "binary_cross_entropy")
METRICS = ("accuracy", "r2", "mae")


class History:
    """Per-epoch record of one fit() call; index i is the call's epoch i + 1.

    loss: mean training loss of each epoch (batch losses weighted by batch size);
    val_loss and val_<metric> (e.g. val_accuracy): measured on the validation data after
    the epoch; lr: the learning rate the epoch trained with; epoch_time: seconds.
    stop_reason: None when every epoch ran, else why fit() stopped early ("callback",
    "non-finite", "interrupted").
    """

    def __init__(self) -> None:
        # One dict per completed epoch, appended in one step, so an interrupt can never
        # leave the lists of different lengths.
        self.records: list[dict[str, float]] = []
        self.stop_reason: str | None = None

    def _column(self, key: str) -> list[float]:
        return [r[key] for r in self.records if key in r]

    @property
    def loss(self) -> list[float]:
        return self._column("loss")

    @property
    def val_loss(self) -> list[float]:
        return self._column("val_loss")

    @property
    def lr(self) -> list[float]:
        return self._column("lr")

    @property
    def epoch_time(self) -> list[float]:
        return self._column("epoch_time")

    @property
    def metrics(self) -> dict[str, list[float]]:
        """Metric columns, e.g. {"val_accuracy": [...]}."""
        base = {"loss", "val_loss", "lr", "epoch_time"}
        return {k: v for k, v in self.as_dict().items() if k not in base}

    @property
    def epochs(self) -> int:
        return len(self.records)

    def as_dict(self) -> dict[str, list[float]]:
        """{"loss": [...], "val_loss": [...], ...}: every column that was recorded."""
        keys: dict[str, None] = {}
        for r in self.records:
            keys.update(dict.fromkeys(r))
        return {k: self._column(k) for k in keys}

    def __getitem__(self, key: str) -> list[float]:
        columns = self.as_dict()
        if key not in columns:
            raise KeyError(f"History has no {key!r}; it holds {sorted(columns)}")
        return columns[key]

    def plot(
        self, path: str | os.PathLike[str] | None = None, *, show_metrics: bool = True
    ) -> Figure:
        """Draw loss (and val_loss) per epoch, and, with show_metrics, any metrics in a
        second panel. Returns the matplotlib Figure (a notebook displays it); with `path`,
        also saves it there (format from the suffix, e.g. .png). The Figure is made without
        pyplot, so no global state changes and no GUI backend is needed (plt.show() does
        not know it; display(fig) or fig.savefig do). Needs matplotlib."""
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError(
                "History.plot needs matplotlib: pip install matplotlib "
                "(or the extra: pip install 'backprop-core[plot]')"
            ) from None
        metrics = self.metrics if show_metrics else {}
        fig = Figure(figsize=(6.4 * (1 + bool(metrics)), 4.0), layout="constrained")
        axes = fig.subplots(1, 1 + bool(metrics), squeeze=False)[0]
        epochs = np.arange(1, self.epochs + 1)
        for key in ("loss", "val_loss"):
            column = self._column(key)
            if column:
                axes[0].plot(epochs[: len(column)], column, marker=".", label=key)
        axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
        axes[0].legend()
        if metrics:
            for key, column in metrics.items():
                axes[1].plot(epochs[: len(column)], column, marker=".", label=key)
            axes[1].set(xlabel="epoch", title="metrics")
            axes[1].legend()
        if path is not None:
            fig.savefig(path)
        return fig

    def __repr__(self) -> str:
        return f"History(epochs={self.epochs}, keys={list(self.as_dict())})"


# -- metrics -----------------------------------------------------------------------------------


def check_metrics(metrics: Sequence[str] | None, loss_name: str) -> tuple[str, ...]:
    """The metric names for compile(): "accuracy" for the cross-entropy losses, "r2" and
    "mae" for the regression losses."""
    if metrics is None:
        return ()
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"compile: metrics must be a list of names, got {metrics!r}")
    out = []
    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"compile: unknown metric {m!r}; expected one of {list(METRICS)}")
        classification = loss_name in _CLASSIFICATION
        if (m == "accuracy") != classification:
            kind = "a classification" if m == "accuracy" else "a regression"
            raise ValueError(
                f"compile: metric {m!r} needs {kind} loss, but the loss is {loss_name!r}"
            )
        if m not in out:
            out.append(m)
    return tuple(out)


def compute_metrics(
    names: Sequence[str], outputs: Array, y: Array, loss_name: str, weights: Array | None
) -> dict[str, float]:
    """Metrics of network outputs (n, m) (logits for classification) against the
    validated targets y, each row weighted by weights (n,) if given (else equally)."""
    w = np.ones(outputs.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    out64 = outputs.astype(np.float64)
    result: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            if loss_name == "softmax_cross_entropy":
                row = (np.argmax(out64, axis=1) == y).astype(np.float64)
            else:  # binary: logit > 0 <=> probability > 0.5; mean over the row's outputs
                row = ((out64 > 0) == (y >= 0.5)).mean(axis=1)
            result[name] = float(np.sum(w * row) / np.sum(w))
        elif name == "mae":
            row = np.abs(out64 - y).mean(axis=1)
            result[name] = float(np.sum(w * row) / np.sum(w))
        elif name == "r2":
            result[name] = _r2(out64, np.asarray(y, dtype=np.float64), w)
    return result


def _r2(pred: Array, y: Array, w: Array) -> float:
    """Coefficient of determination, averaged over outputs (sklearn's r2_score with
    multioutput="uniform_average"; an output with constant targets scores 1.0 if predicted
    exactly, else 0.0)."""
    mean = np.sum(w[:, None] * y, axis=0) / np.sum(w)
    ss_res = np.sum(w[:, None] * (y - pred) ** 2, axis=0)
    ss_tot = np.sum(w[:, None] * (y - mean) ** 2, axis=0)
    scores = np.where(ss_res == 0, 1.0, 0.0)
    nonconstant = ss_tot != 0
    scores[nonconstant] = 1.0 - ss_res[nonconstant] / ss_tot[nonconstant]
    return float(np.mean(scores))


# -- progress ----------------------------------------------------------------------------------


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _in_jupyter() -> bool:
    """True inside a Jupyter kernel (tqdm.auto's own test, without importing IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # an IPython without get_ipython or config: not a kernel we know
        return False


class Progress:
    """What fit() prints per epoch.

    verbose=0: nothing. verbose=1: a tqdm bar over the epochs (tqdm.auto: a text bar in a
    terminal, a widget in a Jupyter notebook) when tqdm is installed and the stream is a
    terminal, or is sys.stdout in a Jupyter kernel; else one line per epoch. verbose=2: one
    line per epoch always. An epoch is one compiled call, so the bar advances once per
    epoch. stream: sys.stdout (looked up when fit() starts) unless given.
    """

    def __init__(
        self, verbose: int, epochs: int, n_samples: int, stream: TextIO | None = None
    ) -> None:
        self.verbose = verbose
        self.epochs = epochs
        self.n_samples = n_samples
        self.stream = sys.stdout if stream is None else stream
        self._bar: Any = None
        notebook = stream is None and _in_jupyter()
        if verbose == 1 and epochs > 0 and (notebook or _isatty(self.stream)):
            try:
                # tqdm.auto picks the notebook widget or the text bar, as tqdm itself does
                import tqdm.auto
            except ImportError:
                pass
            else:
                self._bar = tqdm.auto.tqdm(total=epochs, unit="epoch", desc="fit", file=self.stream)

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """epoch: 1-based number within this fit() call."""
        if not self.verbose:
            return
        seconds = logs.get("epoch_time", 0.0)
        rate = self.n_samples / seconds if seconds > 0 else float("inf")
        if self._bar is not None:
            parts = [f"{k}={v:.4g}" for k, v in logs.items() if k not in ("epoch_time", "lr")]
            postfix = ", ".join([*parts, f"{rate:,.0f} samples/s"])
            self._bar.set_postfix_str(postfix, refresh=False)  # update() redraws
            self._bar.update(1)
            return
        parts = [f"epoch {epoch}/{self.epochs}"]
        parts += [f"{k} {v:.6g}" for k, v in logs.items() if k != "epoch_time"]
        parts.append(f"{seconds * 1e3:.1f} ms ({rate:,.0f} samples/s)")
        print(" - ".join(parts), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
