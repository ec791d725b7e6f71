"""Callbacks: early stopping, checkpoints and learning-rate schedules (Keras-style hooks).

The Callback base class, and what fit() does with callbacks, are in backprop.training.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ._validation import check_int, check_positive, check_range
from .optimizers import Optimizer
from .training import Callback as Callback
from .training import Logs


def _resolve_mode(mode: str, monitor: str, who: str) -> Literal["min", "max"]:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return "min" if mode == "min" else "max"
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


class Plateau:
    """Counts epochs without progress of one monitored value: the rule behind EarlyStopping
    (Keras's) and behind scikit-learn's n_iter_no_change / tol (the estimators').

    mode "min" or "max"; delta >= 0.
    rule "keras" (Keras's EarlyStopping): progress is a value better than `best` by more
    than delta (strictly); only progress moves `best`; the first value is always progress.
    With a baseline, progress resets `wait` only when the value also beats the baseline.
    rule "sklearn" (MLP's _update_no_improvement_count): progress is a value at least delta
    better than `best` (a tie at exactly delta counts); `best` follows every gain, however
    small, while `wait` resets only on progress.
    update(value) returns True when `best` moved (the moment to keep the best weights).
    """

    def __init__(
        self,
        mode: Literal["min", "max"],
        delta: float,
        rule: Literal["keras", "sklearn"] = "keras",
        baseline: float | None = None,
    ) -> None:
        if mode not in ("min", "max") or rule not in ("keras", "sklearn"):
            raise ValueError(f"Plateau: unknown mode {mode!r} or rule {rule!r}")
        self.mode, self.delta, self.rule, self.baseline = mode, float(delta), rule, baseline
        self.reset()

    def reset(self) -> None:
        self.wait = 0
        #: the best value so far (None before the first update under rule "keras")
        self.best: float | None = None if self.rule == "keras" else self._worst()

    def _worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def _beats(self, value: float, reference: float, delta: float) -> bool:
        if self.mode == "min":
            return value < reference - delta
        return value > reference + delta

    def update(self, value: float) -> bool:
        """Count one epoch's value; True when it became the new best."""
        if self.rule == "keras":
            if self.best is not None and not self._beats(value, self.best, self.delta):
                self.wait += 1
                return False
            self.best = value
            beats_baseline = self.baseline is None or self._beats(value, self.baseline, 0.0)
            self.wait = 0 if beats_baseline else self.wait + 1
            return True
        best = self._worst() if self.best is None else self.best
        stalled = (value > best - self.delta) if self.mode == "min" else (value < best + self.delta)
        self.wait = self.wait + 1 if stalled else 0
        if self._beats(value, best, 0.0):
            self.best = value
            return True
        return False


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs
    (Keras's EarlyStopping: patience=0 stops at the first epoch without improvement, never
    at the first epoch).

    mode "auto" maximises accuracy and r2 and minimises everything else.
    baseline: an improvement resets the patience count only if it also beats baseline.
    start_from_epoch: epochs (0-based index) before this one are not monitored (warm-up).
    restore_best_weights: when training ends (stopped early or not), put back the weights
    of the best monitored epoch (the optimizer state is kept as it is).
    verbose: 1 prints the epoch at which training stopped and the restore.
    After fit: best (value), best_epoch and stopped_epoch (0-based; -1 if it did not stop).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        restore_best_weights: bool = False,
        mode: str = "auto",
        baseline: float | None = None,
        start_from_epoch: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        self.monitor = _check_monitor(monitor, "EarlyStopping")
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.min_delta = check_range(min_delta, "EarlyStopping: min_delta", 0, math.inf)
        self.patience = check_int(patience, "EarlyStopping: patience", 0)
        self.restore_best_weights = bool(restore_best_weights)
        self.baseline = (
            None if baseline is None else check_range(baseline, "EarlyStopping: baseline",
                                                      -math.inf, math.inf)
        )  # fmt: skip
        self.start_from_epoch = check_int(start_from_epoch, "EarlyStopping: start_from_epoch", 0)
        self.verbose = check_int(verbose, "EarlyStopping: verbose", 0)
        self._plateau = Plateau(self.mode, self.min_delta, "keras", self.baseline)
        self._reset()

    @property
    def best(self) -> float:
        """The best monitored value so far (inf or -inf before the first)."""
        best = self._plateau.best
        return (math.inf if self.mode == "min" else -math.inf) if best is None else best

    @property
    def wait(self) -> int:
        """Monitored epochs since the last improvement."""
        return self._plateau.wait

    def _reset(self) -> None:
        self._plateau.reset()
        self.best_epoch = -1
        self.stopped_epoch = -1
        self.best_weights: list[NDArray[Any]] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        current = _monitored(logs, self.monitor, "EarlyStopping")
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # no best yet: these are the best
            self.best_epoch = epoch
        if self._plateau.update(current):
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self._plateau.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch >= 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)


def _check_monitor(monitor: Any, who: str) -> str:
    if not isinstance(monitor, str):
        raise TypeError(f"{who}: monitor must be a str, got {monitor!r}")
    return monitor


class ModelCheckpoint(Callback):
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
        super().__init__()
        self.monitor = _check_monitor(monitor, "ModelCheckpoint")
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.min_delta = check_range(min_delta, "ModelCheckpoint: min_delta", 0, math.inf)
        self.path = os.fspath(path)
        self.save_best_only = bool(save_best_only)
        self.saved: list[str] = []
        self._plateau = Plateau(self.mode, self.min_delta, "keras")

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._plateau.reset()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.save_best_only and not self._plateau.update(
            _monitored(logs, self.monitor, "ModelCheckpoint")
        ):
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
