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


class LinearWarmup(_DecayFromInitial):
    """Linear warm-up, then optionally another schedule (torch's LinearLR followed by
    SequentialLR's hand-over):

        lr = lr0 * (start_factor + (1 - start_factor) * epoch / warmup_epochs)
                                                            for epoch < warmup_epochs
        lr = lr0                                 afterwards, when then is None
        lr = then.lr_at(epoch - warmup_epochs)   afterwards, when then is a schedule

    so the first epoch trains with lr0 * start_factor and epoch warmup_epochs with lr0 (or
    with the first lr of `then`, which counts its epochs from the hand-over, as the
    schedulers in torch's SequentialLR do). lr0: the optimizer's lr when the schedule first
    runs, unless given as initial_lr; `then` (StepDecay, ExponentialDecay, CosineDecay or
    another LinearWarmup) starts from the same lr0 unless it has an initial_lr of its own.
    Give only the LinearWarmup to fit, not `then` as well. 0 < start_factor <= 1
    (torch's default 1/3); warmup_epochs >= 1.
    """

    def __init__(
        self,
        warmup_epochs: int,
        start_factor: float = 1.0 / 3.0,
        then: _DecayFromInitial | None = None,
        initial_lr: float | None = None,
    ) -> None:
        super().__init__(initial_lr)
        self.warmup_epochs = check_int(warmup_epochs, "LinearWarmup: warmup_epochs", 1)
        factor = check_range(start_factor, "LinearWarmup: start_factor", 0, 1, hi_open=False)
        if factor == 0:
            raise ValueError("LinearWarmup: start_factor must be in (0, 1], got 0")
        self.start_factor = factor
        if then is not None and (not isinstance(then, _DecayFromInitial) or then is self):
            raise TypeError(
                "LinearWarmup: then must be a schedule of the initial lr (StepDecay, "
                f"ExponentialDecay, CosineDecay, LinearWarmup) or None, got {then!r}"
            )
        self.then = then

    def lr_at(self, epoch: int) -> float:
        lr0 = self._lr0()
        if epoch < self.warmup_epochs:
            return lr0 * (
                self.start_factor + (1.0 - self.start_factor) * epoch / self.warmup_epochs
            )
        if self.then is None:
            return lr0
        if self.then.initial_lr is None:
            self.then.initial_lr = lr0
        return self.then.lr_at(epoch - self.warmup_epochs)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved for `patience`
    epochs (Keras's ReduceLROnPlateau, checked against Keras itself).

    After each epoch: during a cooldown (the `cooldown` epochs after a reduction) the count
    of epochs without improvement stays 0. An improvement is a value better than the best
    so far by more than min_delta (the first value always is one); it becomes the best and
    resets the count. Otherwise, outside a cooldown, the count grows, and when it reaches
    `patience` and lr > min_lr (compared in float32, as Keras keeps the lr):
    lr = max(lr * factor, min_lr), the count restarts and the cooldown begins. The new lr
    applies from the next epoch (History.lr shows it there). The best value and the counts
    restart with every fit() call; the lr stays where it is.
    mode "auto" maximises accuracy and r2 and minimises everything else. 0 < factor < 1;
    the lr never goes below the smallest float32 subnormal (an lr of 0 is refused).
    verbose: 1 prints each reduction. After fit: best, wait, cooldown_counter.
    A monitor missing from the logs is an error (Keras only warns), as in EarlyStopping.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        who = "ReduceLROnPlateau"
        self.monitor = _check_monitor(monitor, who)
        self.mode = _resolve_mode(mode, monitor, who)
        self.factor = check_range(factor, f"{who}: factor", 0, 1)
        if self.factor == 0:
            raise ValueError(f"{who}: factor must be in (0, 1), got 0")
        self.patience = check_int(patience, f"{who}: patience", 0)
        self.min_delta = abs(check_range(min_delta, f"{who}: min_delta", -math.inf, math.inf))
        self.cooldown = check_int(cooldown, f"{who}: cooldown", 0)
        self.min_lr = check_range(min_lr, f"{who}: min_lr", 0, math.inf)
        self.verbose = check_int(verbose, f"{who}: verbose", 0)
        self._plateau = Plateau(self.mode, self.min_delta, "keras")
        self.cooldown_counter = 0

    @property
    def best(self) -> float:
        """The best monitored value of this fit() call (inf or -inf before the first)."""
        best = self._plateau.best
        return (math.inf if self.mode == "min" else -math.inf) if best is None else best

    @property
    def wait(self) -> int:
        """Epochs without improvement counted towards the next reduction."""
        return self._plateau.wait

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._plateau.reset()
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        current = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        plateau = self._plateau
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            plateau.wait = 0
        in_cooldown = self.cooldown_counter > 0
        waited = plateau.wait
        if plateau.update(current):  # an improvement: the new best, the count restarts
            return
        if in_cooldown:
            plateau.wait = waited  # Keras counts no epochs during a cooldown
            return
        if plateau.wait >= self.patience:
            optimizer = self.model.optimizer
            if optimizer is None:
                raise RuntimeError("ReduceLROnPlateau: the model has no optimizer")
            old_lr = optimizer.lr
            # "above min_lr" as Keras judges it, in float32 (where it keeps the lr): an lr that
            # reached min_lr through float64 rounding (0.1 * 0.1 * 0.1 > 0.001) is at it
            with np.errstate(over="ignore"):
                above = np.float32(old_lr) > np.float32(self.min_lr)
            if above:
                # the smallest float32 subnormal keeps lr > 0 and in either model dtype
                new_lr = max(old_lr * self.factor, self.min_lr, _SMALLEST_LR)
                optimizer.lr = new_lr
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                          f"{new_lr}.")  # fmt: skip
                self.cooldown_counter = self.cooldown
                plateau.wait = 0


#: the smallest learning rate a schedule sets: the smallest float32 subnormal, positive in
#: both model dtypes (the optimizers refuse an lr of 0 and one that rounds to 0)
_SMALLEST_LR = float(np.finfo(np.float32).smallest_subnormal)


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file (Keras's CSVLogger, file for file).

    The columns are "epoch" (0-based within the fit call) and then the first epoch's log
    keys in sorted order; when none of them starts with "val_", a "val_<key>" column is
    added for each (Keras's provision for validation scores that appear later), and keys
    missing from an epoch's logs are written as NA. Rows are flushed as they are written.
    separator: the field delimiter. append: add to an existing file (no second header if
    it already has a line) instead of overwriting it.
    """

    def __init__(
        self, path: str | os.PathLike[str], separator: str = ",", append: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.path = os.fspath(path)
        self.separator = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._file: Any = None
        self._writer: Any = None
        self._header = True

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.close()
        mode = "w"
        self._header = True
        if self.append:
            mode = "a"
            if os.path.exists(self.path):
                with open(self.path, encoding="utf-8", newline="") as f:
                    self._header = not f.readline()
        self._file = open(self.path, mode, encoding="utf-8", newline="")
        self._writer = None
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        import csv

        logs = logs or {}
        if self._file is None:
            raise RuntimeError("CSVLogger: not started (use it as a callback of fit)")
        if self.keys is None:
            keys = sorted(logs)
            if not any(k.startswith("val_") for k in keys):
                keys += [f"val_{k}" for k in keys]
            self.keys = keys
        if self._writer is None:
            self._writer = csv.DictWriter(
                self._file, fieldnames=["epoch", *self.keys], delimiter=self.separator
            )
            if self._header:
                self._writer.writeheader()
        row: dict[str, Any] = {"epoch": epoch}
        row.update((k, logs.get(k, "NA")) for k in self.keys)
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (fit does it when training ends; after an exception, call it or
        let the next fit do it)."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._file = None
        self._writer = None
