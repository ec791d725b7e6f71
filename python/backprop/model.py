"""Sequential: a stack of layers compiled into one core Executor, and its training loop."""

from __future__ import annotations

import functools
import itertools
import math
import os
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
from numpy.typing import DTypeLike, NDArray

from backprop_core import Executor

from ._validation import (
    as_features,
    as_sample_weight,
    as_targets,
    check_int,
    check_range,
    check_result,
    check_seed,
    resolve_dtype,
)
from .layers import Activation, Dense, Layer
from .losses import Loss
from .optimizers import Optimizer
from .training import History, Progress, check_metrics, compute_metrics

if TYPE_CHECKING:
    from .callbacks import Callback

Array = NDArray[Any]


class Sequential:
    """A feed-forward network: layers applied in order.

    layers: Dense layers and activations; the first Dense fixes the input width and each
    Dense's in_features must equal the width before it.
    dtype: "float32" (default, fast) or "float64". Inputs of another dtype are converted.
    seed: initialises the weights and, unless fit() gets its own seed, the shuffling and
    the dropout masks.
    All parameters live in one flat array; each Dense's W, b, dW, db are views into it.
    """

    def __init__(
        self, layers: Sequence[Layer], *, dtype: DTypeLike = "float32", seed: int | None = None
    ) -> None:
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential: layers must not be empty")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential: layers[{i}] must be a Layer (Dense, ReLU, ...), "
                    f"got {type(layer).__name__}"
                )
        dense = [(i, layer) for i, layer in enumerate(layers) if isinstance(layer, Dense)]
        if not dense:
            raise ValueError("Sequential: needs at least one Dense layer")
        for (i, prev), (j, cur) in itertools.pairwise(dense):
            if cur.in_features != prev.out_features:
                raise ValueError(
                    f"Sequential: layers[{j}] {cur!r} expects {cur.in_features} inputs, but "
                    f"layers[{i}] {prev!r} gives {prev.out_features}"
                )
        self.layers = layers
        self.dtype = resolve_dtype(dtype)
        self.seed = check_seed(seed, "Sequential: seed")
        self._rng = np.random.default_rng(seed)
        n_params = sum(layer.n_params for _, layer in dense)
        self._theta = np.zeros(n_params, dtype=self.dtype)
        self._dtheta = np.zeros(n_params, dtype=self.dtype)
        offset = 0
        for _, layer in dense:
            offset = layer._attach(self._theta, self._dtheta, offset, self._rng)
        ops, width = [], dense[0][1].in_features
        for layer in layers:
            ops.append(layer._op(width))
            if isinstance(layer, Dense):
                width = layer.out_features
        self.n_features_in = dense[0][1].in_features
        self._first_layer = f"the first layer layers[{dense[0][0]}] {dense[0][1]!r}"
        self.n_outputs = width
        self._executor = Executor(ops, self._theta, self._dtheta)
        for k, (_, layer) in enumerate(dense):
            layer._sync = functools.partial(self._executor.sync_gradients, k == 0)
        self._seed_dropout(seed)
        self.loss: Loss | None = None
        self.optimizer: Optimizer | None = None
        self.metrics: tuple[str, ...] = ()
        #: the History of the last fit() call, also when it was interrupted
        self.history: History | None = None
        #: a callback sets this to True to end fit() after the current epoch
        self.stop_training = False

    # -- set-up ----------------------------------------------------------------------------

    def compile(
        self,
        loss: Loss,
        optimizer: Optimizer | None = None,
        metrics: Sequence[str] | None = None,
    ) -> Sequential:
        """Choose the loss, the optimizer (fresh optimizer state) and the metrics that
        evaluate(return_dict=True) and fit's validation report: "accuracy" for the
        cross-entropy losses, "r2" and "mae" for regression. Returns self."""
        if not isinstance(loss, Loss):
            raise TypeError(f"compile: loss must be a Loss (MSE(), ...), got {loss!r}")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"compile: optimizer must be an Optimizer (SGD(...), ...), got {optimizer!r}"
            )
        last = self.layers[-1]
        if (
            loss.fused_activation
            and isinstance(last, Activation)
            and (last.name == loss.fused_activation)
        ):
            raise ValueError(
                f"compile: {loss!r} takes logits and applies {last.name} itself; remove the "
                f"final {last!r} layer (predict_proba gives the probabilities)"
            )
        metric_names = check_metrics(metrics, loss.name)
        self._executor.set_loss(loss.name, loss.param)
        if optimizer is not None:
            optimizer._attach(self._executor)
        self.loss, self.optimizer, self.metrics = loss, optimizer, metric_names
        return self

    def train(self) -> Sequential:
        """Training mode (the default): Dropout is active in train_step, gradients and fit."""
        self._executor.training = True
        return self

    def eval(self) -> Sequential:
        """Evaluation mode: Dropout passes values through everywhere. predict and evaluate
        never drop, in either mode."""
        self._executor.training = False
        return self

    @property
    def training(self) -> bool:
        return bool(self._executor.training)

    def _seed_dropout(self, seed: int | None) -> None:
        # a stream of its own, so dropout does not shift the shuffling drawn from self._rng
        entropy = None if seed is None else [seed, 0xD5]
        self._executor.seed(int(np.random.default_rng(entropy).integers(2**63)))

    def parameters(self) -> list[Array]:
        """[W0, b0, W1, b1, ...]: writable views of the parameters, in layer order."""
        return [p for layer in self.layers for p in layer.parameters()]

    @property
    def n_params(self) -> int:
        return int(self._theta.size)

    # -- one batch -------------------------------------------------------------------------

    def train_step(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Forward, loss, backward and one in-place optimizer update on the batch (X, y).

        X: (batch, n_features_in); sample_weight: (batch,) >= 0 or None. Returns the batch's
        mean loss before the update (weighted: sum w_i L_i / sum w_i). A non-finite loss or
        gradient raises FloatingPointError and changes nothing.
        """
        if self.loss is not None and sample_weight is None:
            # fast path: inputs that need no conversion are checked in C (finiteness too);
            # anything else (None) takes the full validation below, with its messages
            loss = self._executor.step(X, y, 2, None, True)
            if loss is not None:
                return loss
        X, y = self._batch(X, y, "train_step", check_range=False)
        w = as_sample_weight(sample_weight, X.shape[0], self.dtype, "train_step")
        return float(self._executor.step(X, y, 2, w))

    def gradients(self, X: Any, y: Any, sample_weight: Any = None) -> list[tuple[Array, Array]]:
        """[(dW, db), ...] per Dense layer for the batch (X, y), without updating anything."""
        X, y = self._batch(X, y, "gradients", check_range=False)
        w = as_sample_weight(sample_weight, X.shape[0], self.dtype, "gradients")
        self._executor.step(X, y, 1, w)
        check_result(self._dtheta.reshape(1, -1), "a gradient", "gradients", self.dtype)
        return [
            (layer.dW.copy(), layer.db.copy()) for layer in self.layers if isinstance(layer, Dense)
        ]

    @overload
    def evaluate(
        self, X: Any, y: Any, sample_weight: Any = ..., *, return_dict: Literal[False] = ...
    ) -> float: ...

    @overload
    def evaluate(
        self, X: Any, y: Any, sample_weight: Any = ..., *, return_dict: Literal[True]
    ) -> dict[str, float]: ...

    def evaluate(
        self, X: Any, y: Any, sample_weight: Any = None, *, return_dict: bool = False
    ) -> float | dict[str, float]:
        """Mean loss over (X, y) (weighted by sample_weight), without gradients or dropout;
        with return_dict=True, {"loss": ..., <metric>: ...} for the metrics given to
        compile() (weighted the same way)."""
        X, y = self._batch(X, y, "evaluate")
        w = as_sample_weight(sample_weight, X.shape[0], self.dtype, "evaluate")
        if not return_dict:
            loss = self._executor.evaluate(X, y, 1024, w)
            check_result(np.full((1, 1), loss), "the loss", "evaluate", self.dtype)
            return float(loss)
        scores = self._scores(X, y, w)
        check_result(np.full((1, 1), scores["loss"]), "the loss", "evaluate", self.dtype)
        return scores

    def _scores(self, X: Array, y: Array, w: Array | None, prefix: str = "") -> dict[str, float]:
        """Loss and metrics of validated (X, y, w), keys prefixed (e.g. "val_")."""
        scores = {"loss": float(self._executor.evaluate(X, y, 1024, w))}
        if self.metrics and self.loss is not None:
            scores |= compute_metrics(self.metrics, self.predict(X), y, self.loss.name, w)
        return {prefix + k: v for k, v in scores.items()}

    def predict(self, X: Any) -> Array:
        """Network outputs (n_samples, n_outputs) — logits for the cross-entropy losses."""
        X = as_features(X, self.dtype, self.n_features_in, "predict", self._first_layer)
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        self._executor.predict(X, out)
        check_result(out, "the network's output", "predict", self.dtype)
        return out

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities: softmax (SoftmaxCrossEntropy) or sigmoid (BinaryCrossEntropy)
        of the outputs."""
        if self.loss is None:
            raise RuntimeError("predict_proba: compile the model with a loss first")
        return self.loss.link(self.predict(X))

    def _batch(self, X: Any, y: Any, where: str, check_range: bool = True) -> tuple[Array, Array]:
        if self.loss is None:
            raise RuntimeError(
                f"{where}: the model has no loss; call model.compile(loss=..., optimizer=...)"
            )
        X = as_features(X, self.dtype, self.n_features_in, where, self._first_layer)
        y = as_targets(
            y, self.loss.name, X.shape[0], self.n_outputs, self.dtype, where, check_range
        )
        return X, y

    # -- many batches ----------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        validation_data: tuple[Any, ...] | None = None,
        validation_split: float = 0.0,
        callbacks: Sequence[Callback] | None = None,
        on_nonfinite: str = "raise",
        verbose: int = 0,
        seed: int | None = None,
        sample_weight: Any = None,
    ) -> History:
        """Mini-batch training for `epochs` passes over (X, y); returns the History (also
        kept as model.history).

        Each epoch runs in one compiled call: batches in a fresh random order when shuffle
        (drawn from `seed`, or else from the model's seed stream), the last batch smaller
        when batch_size does not divide n_samples. History.loss[i] is the mean over the
        epoch's batch losses, weighted by batch size (by batch weight with sample_weight:
        (n_samples,) >= 0); val_loss (and val_<metric> for the compiled metrics) is measured
        after the epoch on validation_data ((X_val, y_val) or (X_val, y_val, w_val)), or on
        the last validation_split fraction of the rows (taken before any shuffling, as Keras
        does; their sample weights go with them).
        callbacks: Callback objects run between epochs (EarlyStopping, ModelCheckpoint,
        learning-rate schedules, your own).
        on_nonfinite: when a batch's loss or gradient becomes NaN/inf, "raise" a
        FloatingPointError, or "stop" training with a RuntimeWarning and return the History
        so far; either way the model keeps the weights of the last finite step (the core
        refuses such a batch before its update). "stop" ends training normally, so
        on_train_end runs (EarlyStopping(restore_best_weights=True) then restores the best).
        Ctrl-C (KeyboardInterrupt) leaves the model usable with the weights of the last
        completed step and the History so far in model.history, then propagates (a Ctrl-C
        that lands just as an epoch's last batch finishes ends fit before that epoch is
        recorded; optimizer.steps counts every step taken).
        verbose: 0 prints nothing; 1 a progress bar over the epochs (tqdm, in a terminal)
        or else one line per epoch; 2 one line per epoch.
        """
        if self.optimizer is None:
            raise RuntimeError(
                "fit: the model has no optimizer; call model.compile(loss=..., optimizer=...)"
            )
        epochs = check_int(epochs, "fit: epochs", 0)
        batch_size = check_int(batch_size, "fit: batch_size", 1)
        verbose = check_int(verbose, "fit: verbose", 0)
        seed = check_seed(seed, "fit: seed")
        if on_nonfinite not in ("raise", "stop"):
            raise ValueError(f"fit: on_nonfinite must be 'raise' or 'stop', got {on_nonfinite!r}")
        split = check_range(validation_split, "fit: validation_split", 0.0, 1.0)
        X, y = self._batch(X, y, "fit")
        w = as_sample_weight(sample_weight, X.shape[0], self.dtype, "fit")
        X, y, w, val = self._hold_out(X, y, w, validation_data, split)
        from .callbacks import as_callbacks  # imports this module

        hooks = as_callbacks(callbacks, self)
        rng = self._rng
        if seed is not None:
            rng = np.random.default_rng(seed)
            self._seed_dropout(seed)
        n = X.shape[0]
        history = self.history = History()
        progress = Progress(verbose, epochs, n)
        self.stop_training = False
        try:
            for hook in hooks:
                hook.on_train_begin({})
            for epoch in range(epochs):
                for hook in hooks:
                    hook.on_epoch_begin(epoch, {})
                if self._stop_requested():
                    history.stop_reason = "callback"
                    break
                lr = self.optimizer.lr
                start = time.perf_counter()
                perm = rng.permutation(n) if shuffle else None
                try:
                    logs = {"loss": float(self._executor.run_epoch(X, y, perm, batch_size, w))}
                    if not math.isfinite(logs["loss"]):
                        raise FloatingPointError(f"the epoch's mean loss is {logs['loss']}")
                    if val is not None:
                        logs |= self._scores(*val, prefix="val_")
                except FloatingPointError as e:
                    message = (
                        f"fit: training diverged in epoch {epoch + 1} ({e}); the model keeps "
                        f"the weights of the last finite step (try a learning rate below {lr})"
                    )
                    if on_nonfinite == "raise":
                        raise FloatingPointError(message) from e
                    warnings.warn(message, RuntimeWarning, stacklevel=2)
                    history.stop_reason = "non-finite"
                    break
                logs["lr"] = lr
                logs["epoch_time"] = time.perf_counter() - start
                history.records.append(logs)
                progress.epoch_end(epoch + 1, logs)
                for hook in hooks:  # one dict: a hook may add entries that later ones read
                    hook.on_epoch_end(epoch, logs)
                if self._stop_requested():
                    history.stop_reason = "callback"
                    break
        except KeyboardInterrupt:
            history.stop_reason = "interrupted"
            raise
        finally:
            progress.close()
        for hook in hooks:
            hook.on_train_end({})
        return history

    def _hold_out(
        self,
        X: Array,
        y: Array,
        w: Array | None,
        validation_data: tuple[Any, ...] | None,
        split: float,
    ) -> tuple[Array, Array, Array | None, tuple[Array, Array, Array | None] | None]:
        """fit's training rows (X, y, w) and validation set (X_val, y_val, w_val) or None:
        validation_data, or the last `split` fraction of the rows."""
        if validation_data is not None:
            if split:
                raise ValueError("fit: give validation_data or validation_split, not both")
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise TypeError(
                    "fit: validation_data must be a pair (X_val, y_val) or a triple "
                    "(X_val, y_val, sample_weight_val)"
                )
            where = "fit (validation_data)"
            Xv, yv = self._batch(validation_data[0], validation_data[1], where)
            wv = validation_data[2] if len(validation_data) == 3 else None
            return X, y, w, (Xv, yv, as_sample_weight(wv, Xv.shape[0], self.dtype, where))
        if not split:
            return X, y, w, None
        n_train = math.floor(X.shape[0] * (1.0 - split))  # Keras's split point
        if not 0 < n_train < X.shape[0]:
            raise ValueError(
                f"fit: validation_split={split} of {X.shape[0]} samples leaves {n_train} for "
                f"training and {X.shape[0] - n_train} for validation; both need at least one"
            )
        wv = None
        if w is not None:
            w, wv = w[:n_train], w[n_train:]
            if not (w.sum() > 0 and wv.sum() > 0):
                raise ValueError(
                    "fit: validation_split leaves a part whose sample_weight sums to 0"
                )
        return X[:n_train], y[:n_train], w, (X[n_train:], y[n_train:], wv)

    def _stop_requested(self) -> bool:
        # a method, not an inline test: callbacks change the attribute behind mypy's back
        return bool(self.stop_training)

    # -- copies ----------------------------------------------------------------------------

    def clone(self, dtype: DTypeLike | None = None) -> Sequential:
        """A new model with the same layers and current weights (cast to `dtype`), compiled
        with the same loss and metrics and no optimizer."""
        model = Sequential(
            [layer.clone() for layer in self.layers],
            dtype=self.dtype if dtype is None else dtype,
            seed=self.seed,
        )
        model._theta[...] = self._theta
        if self.loss is not None:
            model.compile(self.loss, metrics=self.metrics)
        return model

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write architecture, weights, loss, metrics and optimizer state to one .npz file,
        atomically; backprop.load(path) restores it (see backprop.serialization)."""
        from .serialization import save_model  # imports this module

        save_model(self, path)

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner},\n], dtype={self.dtype.name!r})"
