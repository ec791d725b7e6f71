"""Callbacks: code that fit() runs between epochs (Keras-style hooks).

An epoch is one compiled call, so callbacks see epochs, never batches. In each hook,
`epoch` is the 0-based index of the epoch within the current fit() call, and `logs` holds
that epoch's record (loss, val_loss, val_<metric>, lr, epoch_time) at on_epoch_end: the
very dict stored in the History, passed to the callbacks in list order, so a callback may
add an entry (a custom score) that later callbacks monitor and the History keeps.
A callback stops training by setting `self.model.stop_training = True`; fit() checks it
after on_epoch_begin (the epoch is then skipped) and after on_epoch_end.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ._validation import check_int, check_positive, check_range

if TYPE_CHECKING:
    from .model import Sequential
    from .optimizers import Optimizer

Logs = dict[str, float]


class Callback:
    """Base class: override any of the hooks. `self.model` is the model being fitted."""

    def __init__(self) -> None:
        self._model: Sequential | None = None

    @property
    def model(self) -> Sequential:
        if self._model is None:
            raise RuntimeError(f"{type(self).__name__}: not attached to a model (use fit)")
        return self._model

    def set_model(self, model: Sequential) -> None:
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


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    # accuracy and R² grow when the model improves; losses and MAE shrink
    return "max" if monitor.removeprefix("val_") in ("accuracy", "r2") else "min"


def _monitored(logs: Logs | None, monitor: str, who: str) -> float:
    if logs is None or monitor not in logs:
        have = sorted(logs or {})
        hint = (
            "; pass validation_data or validation_split to fit, or monitor='loss'"
            if monitor.startswith("val_")
            else ""
        )
        raise ValueError(f"{who}: monitor {monitor!r} is not in the epoch logs {have}{hint}")
    return float(logs[monitor])


class _Monitor(Callback):
    """Tracks the best value of one log entry (shared by EarlyStopping, ModelCheckpoint)."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"{type(self).__name__}: monitor must be a str, got {monitor!r}")
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor, type(self).__name__)
        self.min_delta = check_range(min_delta, f"{type(self).__name__}: min_delta", 0, math.inf)
        self.best = math.inf if self.mode == "min" else -math.inf

    def _improved(self, logs: Logs | None) -> bool:
        """True (and best updated) when the monitored value beats best by more than
        min_delta: current < best - min_delta (mode "min") or current > best + min_delta."""
        current = _monitored(logs, self.monitor, type(self).__name__)
        if self.mode == "min":
            better = current < self.best - self.min_delta
        else:
            better = current > self.best + self.min_delta
        if better:
            self.best = current
        return better


class EarlyStopping(_Monitor):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs
    in a row (patience=0: at the first epoch without improvement).

    mode "auto" maximises accuracy and r2 and minimises everything else.
    restore_best_weights: when training ends (stopped early or not), put back the weights
    of the best epoch (the optimizer state is kept as it is).
    After fit: best (value), best_epoch and stopped_epoch (0-based; -1 if it did not stop).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        restore_best_weights: bool = False,
        mode: str = "auto",
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = check_int(patience, "EarlyStopping: patience", 0)
        self.restore_best_weights = bool(restore_best_weights)
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.best_epoch = -1
        self.stopped_epoch = -1
        self.best_weights: NDArray[Any] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self._improved(logs):
            self.wait = 0
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model._theta.copy()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model._theta[...] = self.best_weights


class ModelCheckpoint(_Monitor):
    """Save the model (model.save) after epochs: every epoch, or with save_best_only only
    when `monitor` improved (by more than min_delta; mode as in EarlyStopping).

    path may hold format fields: {epoch} (1-based) and any log entry, e.g.
    "ckpt-{epoch:03d}-{val_loss:.4f}.npz". Each file is written atomically.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        min_delta: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.path = os.fspath(path)
        self.save_best_only = bool(save_best_only)
        self.saved: list[str] = []

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.save_best_only and not self._improved(logs):
            return
        fields = {"epoch": epoch + 1, **(logs or {})}
        try:
            path = self.path.format(**fields)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"ModelCheckpoint: cannot fill in the path {self.path!r} ({e!r}); its fields "
                f"may be {sorted(fields)}"
            ) from None
        self.model.save(path)
        self.saved.append(path)


# -- learning-rate schedules ---------------------------------------------------------------------


class LearningRateScheduler(Callback):
    """Before each epoch, set optimizer.lr = schedule(epoch, lr).

    epoch counts the epochs this scheduler has started, from 0, and carries on across fit()
    calls that reuse the scheduler (like a torch.optim.lr_scheduler); lr is the optimizer's
    current learning rate. The result must be a finite float > 0.
    """

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got {schedule!r}")
        self.schedule = schedule
        self.epoch = 0

    def _optimizer(self) -> Optimizer:
        optimizer = self.model.optimizer
        if optimizer is None:
            raise RuntimeError(f"{type(self).__name__}: the model has no optimizer")
        return optimizer

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        optimizer = self._optimizer()
        lr = self.schedule(self.epoch, optimizer.lr)
        optimizer.lr = check_positive(lr, f"{type(self).__name__}: the scheduled lr")
        self.epoch += 1


class _DecayFromInitial(LearningRateScheduler):
    """A schedule of the initial learning rate lr0: the optimizer's lr when the scheduler
    first runs, unless given as initial_lr."""

    def __init__(self, initial_lr: float | None) -> None:
        super().__init__(self._scheduled)
        self.initial_lr = (
            None
            if initial_lr is None
            else check_positive(initial_lr, f"{type(self).__name__}: initial_lr")
        )

    def _scheduled(self, epoch: int, lr: float) -> float:
        if self.initial_lr is None:
            self.initial_lr = lr
        return self.lr_at(epoch)

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch `epoch` (0-based)."""
        raise NotImplementedError

    def _lr0(self) -> float:
        if self.initial_lr is None:
            raise RuntimeError(f"{type(self).__name__}: initial_lr is not known before fit")
        return self.initial_lr


def _check_gamma(gamma: float, who: str) -> float:
    value = check_range(gamma, f"{who}: gamma", 0, 1, hi_open=False)
    if value == 0:
        raise ValueError(f"{who}: gamma must be in (0, 1], got 0")
    return value


class StepDecay(_DecayFromInitial):
    """lr = lr0 * gamma ** (epoch // step_size)   (torch StepLR)."""

    def __init__(self, step_size: int, gamma: float = 0.1, initial_lr: float | None = None):
        super().__init__(initial_lr)
        self.step_size = check_int(step_size, "StepDecay: step_size", 1)
        self.gamma = _check_gamma(gamma, "StepDecay")

    def lr_at(self, epoch: int) -> float:
        return self._lr0() * self.gamma ** (epoch // self.step_size)


class ExponentialDecay(_DecayFromInitial):
    """lr = lr0 * gamma ** epoch   (torch ExponentialLR)."""

    def __init__(self, gamma: float, initial_lr: float | None = None) -> None:
        super().__init__(initial_lr)
        self.gamma = _check_gamma(gamma, "ExponentialDecay")

    def lr_at(self, epoch: int) -> float:
        return self._lr0() * self.gamma**epoch


class CosineDecay(_DecayFromInitial):
    """lr = eta_min + (lr0 - eta_min) * (1 + cos(pi * min(epoch, T_max) / T_max)) / 2

    (torch CosineAnnealingLR's closed form over one half period; it stays at eta_min
    after T_max epochs instead of rising again.)
    """

    def __init__(self, T_max: int, eta_min: float = 0.0, initial_lr: float | None = None):
        super().__init__(initial_lr)
        self.T_max = check_int(T_max, "CosineDecay: T_max", 1)
        self.eta_min = check_range(eta_min, "CosineDecay: eta_min", 0, math.inf)

    def lr_at(self, epoch: int) -> float:
        progress = min(epoch, self.T_max) / self.T_max
        lr = self.eta_min + (self._lr0() - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2
        # eta_min = 0 reaches lr 0 at T_max, which the optimizers refuse: use the smallest
        # positive double instead (no update in practice)
        return max(lr, float(np.finfo(np.float64).tiny))


def as_callbacks(callbacks: Any, model: Sequential) -> list[Callback]:
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
