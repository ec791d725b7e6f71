"""Sequential: a stack of layers compiled into one core Executor, its training loop, and its
public state (config, weights, state) through which everything outside it works."""

from __future__ import annotations

import copy
import itertools
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, overload

import numpy as np
from numpy.typing import DTypeLike, NDArray

from backprop_core import MODE_GRAD, Executor

from . import onnx_export, torch_interop, weights_file
from ._validation import (
    as_features,
    as_sample_weight,
    as_targets,
    check_int,
    check_positive,
    check_range,
    check_result,
    check_seed,
    from_spec,
    resolve_dtype,
    spec_of,
)
from .layers import LAYERS, Activation, Dense, Layer
from .losses import LOSSES, Loss
from .optimizers import OPTIMIZERS, Optimizer
from .serialization import Expected, ModelFileError, read_model, write_model
from .summary import format_repr, format_summary
from .training import Callback, History, Progress, as_callbacks, check_metrics, compute_metrics

Array = NDArray[Any]


class _Slice(NamedTuple):
    start: int
    stop: int
    shape: tuple[int, ...]


class Sequential:
    """A feed-forward network: layers applied in order.

    layers: Dense layers and activations; the first Dense fixes the input width and each
    Dense's in_features must equal the width before it.
    dtype: "float32" (default, fast) or "float64". Inputs of another dtype are converted.
    seed: initialises the weights and, unless fit() gets its own seed, the shuffling and
    the dropout masks.
    All parameters live in one flat array; each Dense's W and b are read-only views into it
    (set_weights and set_state write it).
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
        readonly = np.frombuffer(self._theta.data.toreadonly(), dtype=self.dtype)
        offset = 0
        for _, layer in dense:
            offset = layer._attach(self._theta, readonly, offset, self._rng)
        ops, width = [], dense[0][1].in_features
        for layer in layers:
            ops.append(layer._op(width))
            if isinstance(layer, Dense):
                width = layer.out_features
        self.n_features_in = dense[0][1].in_features
        self._first_layer = f"the first layer layers[{dense[0][0]}] {dense[0][1]!r}"
        self._reads_sparse = dense[0][0] == 0  # a CSR X goes straight into a first Dense
        self.n_outputs = width
        self._executor = Executor(ops, self._theta, self._dtheta)
        self._dense = [layer for _, layer in dense]
        self._seed_dropout(seed)
        self.loss: Loss | None = None
        self.optimizer: Optimizer | None = None
        self.metrics: tuple[str, ...] = ()
        #: scikit-learn's alpha (see compile)
        self.l2 = 0.0
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
        *,
        l2: float = 0.0,
    ) -> Sequential:
        """Choose the loss, the optimizer (fresh optimizer state) and the metrics that
        evaluate(return_dict=True) and fit's validation report: "accuracy" for the
        cross-entropy losses, "r2" and "mae" for regression. Returns self.

        l2: scikit-learn's alpha, a penalty in the training objective: each batch's loss
        (train_step, fit, gradients, loss_and_gradient) gains l2/2 * sum ||W||^2 / (the
        batch's weight: its row count, or its sample weights' sum), over the Dense weights
        only (not the biases); evaluate reports the data loss alone. The optimizers'
        weight_decay is torch's instead (added to every parameter's gradient)."""
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
        l2 = check_range(l2, "compile: l2", 0.0, math.inf)
        self._executor.set_loss(loss.name, loss.core_param(self.n_outputs))
        self._executor.set_l2(l2)
        if optimizer is not None:
            optimizer._attach(self._executor)
        self.loss, self.optimizer, self.metrics, self.l2 = loss, optimizer, metric_names, l2
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
        """[W0, b0, W1, b1, ...]: read-only views of the parameters, in layer order (the very
        memory training updates; set_weights writes them)."""
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
            loss = self._executor.step(X, y, exact=True)
            if loss is not None:
                return loss
        X, y = self._batch(X, y, "train_step", check_range=False)
        w = as_sample_weight(sample_weight, X.shape[0], self.dtype, "train_step")
        return float(self._executor.step(X, y, sample_weight=w))

    def gradients(self, X: Any, y: Any, sample_weight: Any = None) -> list[tuple[Array, Array]]:
        """[(dW, db), ...] per Dense layer for the batch (X, y), without updating anything:
        new arrays (also kept, read-only, as each Dense's dW and db)."""
        _, flat = self.loss_and_gradient(X, y, sample_weight, where="gradients")
        grads = []
        for layer, (w_off, b_off) in zip(self._dense, self._offsets(), strict=True):
            dW = flat[w_off:b_off].reshape(layer.in_features, layer.out_features)
            db = flat[b_off : b_off + layer.out_features]
            layer._record_gradients(dW, db)
            grads.append((dW, db))
        return grads

    def loss_and_gradient(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        out: Array | None = None,
        where: str = "loss_and_gradient",
    ) -> tuple[float, Array]:
        """(mean loss, flat gradient) for the batch (X, y) at the current weights, nothing
        updated. The gradient, laid out as the concatenation of get_weights() flattened
        (W0, b0, W1, b1, ...), is written into `out` ((n_params,) of the model's dtype,
        e.g. a buffer reused every step) or else into a new array."""
        X, y = self._batch(X, y, where, check_range=False)
        w = as_sample_weight(sample_weight, X.shape[0], self.dtype, where)
        if out is None:
            grad = np.empty_like(self._theta)
        elif (
            not isinstance(out, np.ndarray)
            or out.shape != (self.n_params,)
            or out.dtype != self.dtype
        ):
            raise ValueError(
                f"{where}: out must be a numpy array of shape ({self.n_params},) and dtype "
                f"{self.dtype}, got {type(out).__name__} {getattr(out, 'dtype', '')} "
                f"{getattr(out, 'shape', '')}"
            )
        elif not out.flags.writeable:
            raise ValueError(f"{where}: out is read-only")
        else:
            grad = out
        loss = float(self._executor.step(X, y, MODE_GRAD, sample_weight=w, out=grad))
        check_result(grad.reshape(1, -1), "a gradient", where, self.dtype)
        return loss, grad

    def apply_gradient(self, grad: Any, *, scale: float = 1.0) -> None:
        """One optimizer step from the flat gradient scale * grad, grad laid out as
        loss_and_gradient returns it (n_params,), for gradients computed elsewhere (e.g.
        summed over data-parallel ranks, scale > 0: 1 / their total weight): clipped, checked and
        applied exactly as a train_step applies its own; a non-finite gradient or an
        overflowing update raises FloatingPointError and changes nothing."""
        if self.optimizer is None:
            raise RuntimeError(
                "apply_gradient: the model has no optimizer; call model.compile(loss=..., "
                "optimizer=...)"
            )
        g = np.asarray(grad)
        if g.shape != (self.n_params,) or g.dtype.kind != "f":
            raise ValueError(
                f"apply_gradient: grad must be a float array of shape ({self.n_params},), "
                f"got {g.dtype} {g.shape}"
            )
        factor = check_positive(scale, "apply_gradient: scale")
        self._executor.apply_gradient(np.ascontiguousarray(g, dtype=self.dtype), factor)

    def _offsets(self) -> list[tuple[int, int]]:
        """(offset of W, offset of b) in the flat parameters, per Dense."""
        out, offset = [], 0
        for layer in self._dense:
            w_end = offset + layer.in_features * layer.out_features
            out.append((offset, w_end))
            offset = w_end + layer.out_features
        return out

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
            loss = self._executor.evaluate(X, y, sample_weight=w)
            check_result(np.full((1, 1), loss), "the loss", "evaluate", self.dtype)
            return float(loss)
        scores = self._scores(X, y, w)
        check_result(np.full((1, 1), scores["loss"]), "the loss", "evaluate", self.dtype)
        return scores

    def _scores(self, X: Array, y: Array, w: Array | None, prefix: str = "") -> dict[str, float]:
        """Loss and metrics of validated (X, y, w), keys prefixed (e.g. "val_")."""
        scores = {"loss": float(self._executor.evaluate(X, y, sample_weight=w))}
        if self.metrics and self.loss is not None:
            outputs = self.predict(X)
            if self.loss.name == "poisson":  # the metrics are of the means, exp(z)
                outputs = self.loss.link(outputs)
            scores |= compute_metrics(self.metrics, outputs, y, self.loss.name, w)
        return {prefix + k: v for k, v in scores.items()}

    def predict(self, X: Any) -> Array:
        """Network outputs (n_samples, n_outputs) — logits for the cross-entropy losses."""
        # fast path: an X that needs no conversion is checked in C (finiteness too)
        out: Array | None = self._executor.predict_exact(X)
        if out is not None:
            return out
        X = self._features(X, "predict")
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

    def _features(self, X: Any, where: str) -> Any:
        """X checked and converted for the core: an (n, n_features_in) array of the dtype, or
        CSR rows (_sparse.CsrRows) for a scipy.sparse X."""
        return as_features(
            X, self.dtype, self.n_features_in, where, self._first_layer, self._reads_sparse
        )

    def _batch(self, X: Any, y: Any, where: str, check_range: bool = True) -> tuple[Array, Array]:
        if self.loss is None:
            raise RuntimeError(
                f"{where}: the model has no loss; call model.compile(loss=..., optimizer=...)"
            )
        X = self._features(X, where)
        y = as_targets(
            y, self.loss.name, X.shape[0], self.n_outputs, self.dtype, where, check_range
        )
        return X, y

    def validate(self, X: Any, y: Any, where: str = "validate") -> tuple[Array, Array]:
        """(X, y) as the core reads them: X (n, n_features_in) of the model's dtype, y as the
        loss takes it (int64 labels or (n, n_outputs) of the dtype), checked as fit checks
        them (messages name `where`). Needs a compiled loss."""
        return self._batch(X, y, where)

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
        class_weight: Mapping[int, float] | None = None,
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
        class_weight: {class index: weight >= 0} (Keras's): each training row's weight is
        multiplied by its class's (1 for a class not named), for SoftmaxCrossEntropy labels or
        BinaryCrossEntropy with one output (class 0 or 1); validation data is not weighted.
        """
        if self.optimizer is None:
            raise RuntimeError(
                "fit: the model has no optimizer; call model.compile(loss=..., optimizer=...)"
            )
        # the whole run is this thread's: another thread's call is refused until fit returns
        self._executor.claim()
        try:
            return self._fit(
                X, y, epochs, batch_size, shuffle, validation_data, validation_split,
                callbacks, on_nonfinite, verbose, seed, sample_weight, class_weight,
            )  # fmt: skip
        finally:
            self._executor.release()

    def _fit(
        self,
        X: Any,
        y: Any,
        epochs: int,
        batch_size: int,
        shuffle: bool,
        validation_data: tuple[Any, ...] | None,
        validation_split: float,
        callbacks: Sequence[Callback] | None,
        on_nonfinite: str,
        verbose: int,
        seed: int | None,
        sample_weight: Any,
        class_weight: Mapping[int, float] | None,
    ) -> History:
        assert self.optimizer is not None
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
        if class_weight is not None:
            w = self._class_weighted(class_weight, y, w)
        hooks = as_callbacks(callbacks, self)
        rng = self._rng
        if seed is not None:
            rng = np.random.default_rng(seed)
            self._seed_dropout(seed)
        n = X.shape[0]
        on_batch = self._batch_hook(hooks)
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
                    loss = self._executor.run_epoch(
                        X, y, perm, batch_size, sample_weight=w, on_batch=on_batch
                    )
                    logs = {"loss": float(loss)}
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

    def _class_weighted(
        self, class_weight: Mapping[int, float], y: Array, w: Array | None
    ) -> Array:
        """Row weights: w (or ones) times each row's class weight."""
        assert self.loss is not None
        if self.loss.name == "softmax_cross_entropy":
            labels, n_classes = y, self.n_outputs
        elif self.loss.name == "binary_cross_entropy" and self.n_outputs == 1:
            labels, n_classes = y[:, 0], 2
            if not np.isin(labels, (0, 1)).all():
                raise ValueError("fit: class_weight needs binary targets of 0 or 1")
        else:
            raise ValueError(
                f"fit: class_weight needs integer class labels (SoftmaxCrossEntropy, or "
                f"BinaryCrossEntropy with one output); the loss is {self.loss!r} with "
                f"{self.n_outputs} outputs (pass sample_weight instead)"
            )
        if not isinstance(class_weight, Mapping):
            raise TypeError(f"fit: class_weight must be a dict {{class: weight}}, got "
                            f"{type(class_weight).__name__}")  # fmt: skip
        table = np.ones(n_classes)
        for key, value in class_weight.items():
            k = check_int(key, "fit: class_weight's class", 0, n_classes - 1)
            table[k] = check_range(value, f"fit: class_weight[{k}]", 0.0, math.inf)
        weights = table[np.asarray(labels, dtype=np.int64)]
        if w is not None:
            weights = weights * w
        if not weights.sum() > 0:
            raise ValueError("fit: class_weight leaves every training row with weight 0")
        return np.ascontiguousarray(weights, dtype=self.dtype)

    def _batch_hook(self, hooks: list[Callback]) -> Callable[[int, float], bool] | None:
        """The per-batch call for run_epoch: the callbacks that override on_batch_end, or
        None when none does (the epoch then stays in compiled code)."""
        per_batch = [h for h in hooks if type(h).on_batch_end is not Callback.on_batch_end]
        if not per_batch:
            return None

        def on_batch(batch: int, loss: float) -> bool:
            logs = {"loss": loss}
            for hook in per_batch:
                hook.on_batch_end(batch, logs)
            return self._stop_requested()

        return on_batch

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

    # -- state -----------------------------------------------------------------------------

    def get_weights(self) -> list[Array]:
        """[W0, b0, W1, b1, ...]: copies of each Dense's weights (in, out) and bias (out,),
        in layer order (Keras's get_weights), taken in one go."""
        theta = self._executor.snapshot()[0]
        return [theta[p.start : p.stop].reshape(p.shape) for p in self._slices()]

    def _slices(self) -> list[_Slice]:
        """Where W0, b0, W1, b1, ... sit in the flat parameters."""
        out = []
        for layer, (w_off, b_off) in zip(self._dense, self._offsets(), strict=True):
            out.append(_Slice(w_off, b_off, (layer.in_features, layer.out_features)))
            out.append(_Slice(b_off, b_off + layer.out_features, (layer.out_features,)))
        return out

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set every Dense's W and b from a list shaped as get_weights() gives it; values are
        converted to the model's dtype and must be finite. Nothing changes on error."""
        params = self._slices()
        if not isinstance(weights, (list, tuple)):
            raise TypeError(
                f"set_weights: weights must be a list of arrays [W0, b0, W1, b1, ...], "
                f"got {type(weights).__name__}"
            )
        if len(weights) != len(params):
            raise ValueError(
                f"set_weights: expected {len(params)} arrays [W0, b0, W1, b1, ...], "
                f"got {len(weights)}"
            )
        theta = np.empty_like(self._theta)
        for i, (w, p) in enumerate(zip(weights, self._slices(), strict=True)):
            value = self._param_array(w, p.shape, f"set_weights: weights[{i}]")
            theta[p.start : p.stop] = value.reshape(-1)
        self._executor.restore(theta=theta)

    def _param_array(self, value: Any, shape: tuple[int, ...], name: str) -> Array:
        try:
            a = np.asarray(value)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be an array of floats ({e})") from None
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
        with np.errstate(over="ignore"):
            a = a.astype(self.dtype)
        if not np.isfinite(a).all():
            raise ValueError(f"{name} holds NaN or infinity (in the model's dtype {self.dtype})")
        return a

    def get_config(self) -> dict[str, Any]:
        """The architecture, dtype, seed, loss, metrics and optimizer (its current
        hyper-parameters) as plain JSON-able data; Sequential.from_config(config) builds
        a new model from it (fresh weights from the seed, fresh optimizer state)."""
        return {
            "dtype": self.dtype.name,
            "seed": self.seed,
            "layers": [spec_of(layer, LAYERS, f"layers[{i}]") for i, layer in
                       enumerate(self.layers)],
            "loss": None if self.loss is None else spec_of(self.loss, LOSSES, "the loss"),
            "metrics": list(self.metrics),
            "l2": self.l2,
            "optimizer": (
                None if self.optimizer is None
                else spec_of(self.optimizer, OPTIMIZERS, "the optimizer")
            ),
        }  # fmt: skip

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """A new model from get_config()'s data, compiled when it names a loss. Raises
        ValueError (TypeError for a value of the wrong type) naming the bad entry."""
        if not isinstance(config, dict):
            raise TypeError(f"from_config: config must be a dict, got {type(config).__name__}")
        missing = {"dtype", "seed", "layers", "loss", "metrics", "optimizer"} - config.keys()
        if missing:
            raise ValueError(f"from_config: config lacks {sorted(missing)}")
        layers = config["layers"]
        if not isinstance(layers, list):
            raise ValueError(f"from_config: 'layers' must be a list, got {layers!r}")
        built = [from_spec(s, LAYERS, f"from_config: layers[{i}]") for i, s in enumerate(layers)]
        model = cls(built, dtype=config["dtype"], seed=config["seed"])
        optimizer = None
        if config["optimizer"] is not None:
            optimizer = from_spec(config["optimizer"], OPTIMIZERS, "from_config: optimizer")
        if config["loss"] is not None:
            loss = from_spec(config["loss"], LOSSES, "from_config: loss")
            model.compile(loss, optimizer, metrics=config["metrics"], l2=config.get("l2", 0.0))
        elif optimizer is not None:
            raise ValueError("from_config: an optimizer needs a loss")
        return model

    def get_state(self) -> dict[str, Any]:
        """A snapshot (copies, never views) of everything training changes:
        {"weights": flat parameters (n_params,) in get_weights() order,
         "optimizer": None or {"steps": int, "buffers": {name: (n_params,) array}},
         "rng": the shuffling generator's state, "dropout_rng": int, "training": bool}.
        set_state(state) on a model of the same config continues bit for bit from here."""
        theta, buffers, steps, dropout = self._executor.snapshot()
        optimizer = None
        if self.optimizer is not None:
            optimizer = {"steps": int(steps), "buffers": buffers}
        return {
            "weights": theta,
            "optimizer": optimizer,
            "rng": copy.deepcopy(self._rng.bit_generator.state),
            "dropout_rng": int(dropout),
            "training": self.training,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a get_state() snapshot, checked first (keys, shapes, dtype, finite
        values, the optimizer's buffers and steps, the RNG states): a ValueError or
        TypeError names what is wrong, and nothing changes on error. The arrays are copied."""
        if not isinstance(state, dict):
            raise TypeError(f"set_state: state must be a dict, got {type(state).__name__}")
        keys = {"weights", "optimizer", "rng", "dropout_rng", "training"}
        if state.keys() != keys:
            raise ValueError(f"set_state: state must have the keys {sorted(keys)}, got "
                             f"{sorted(map(str, state))}")  # fmt: skip
        weights = self._state_array(state["weights"], "weights")
        steps, buffers = self._check_optimizer_state(state["optimizer"])
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = state["rng"]
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise ValueError(f"set_state: 'rng' is not a valid generator state ({e!r})") from None
        if type(rng.bit_generator) is not type(self._rng.bit_generator):
            raise ValueError("set_state: 'rng' is the state of another kind of generator")
        dropout = state["dropout_rng"]
        if isinstance(dropout, bool) or not isinstance(dropout, (int, np.integer)):
            raise TypeError(f"set_state: 'dropout_rng' must be an integer, got {dropout!r}")
        if not 0 <= int(dropout) < 2**64:
            raise ValueError(f"set_state: 'dropout_rng' must be in [0, 2**64), got {dropout}")
        if not isinstance(state["training"], (bool, np.bool_)):
            raise TypeError(f"set_state: 'training' must be a bool, got {state['training']!r}")
        # every check passed: now change the model
        self._executor.restore(
            theta=weights,
            buffers=buffers if self.optimizer is not None else None,
            step_count=steps if self.optimizer is not None else None,
            rng_state=int(dropout),
        )
        self._executor.training = bool(state["training"])
        self._rng.bit_generator.state = rng.bit_generator.state

    def _state_array(self, value: Any, name: str) -> Array:
        if not isinstance(value, np.ndarray):
            raise TypeError(f"set_state: {name!r} must be a numpy array, got "
                            f"{type(value).__name__}")  # fmt: skip
        if value.dtype != self.dtype or value.shape != (self.n_params,):
            raise ValueError(
                f"set_state: {name!r} must be {self.dtype} of shape ({self.n_params},), got "
                f"{value.dtype} {value.shape}"
            )
        if not np.isfinite(value).all():
            raise ValueError(f"set_state: {name!r} holds NaN or infinity")
        return value

    def _check_optimizer_state(self, opt: Any) -> tuple[int, dict[str, Array]]:
        """(steps, buffers) of a state's optimizer entry, checked against this model's."""
        if self.optimizer is None:
            if opt is not None:
                raise ValueError(
                    "set_state: the state has optimizer state; the model has no "
                    "optimizer (compile it with the same optimizer first)"
                )
            return 0, {}
        if not isinstance(opt, dict) or opt.keys() != {"steps", "buffers"}:
            raise ValueError(
                "set_state: 'optimizer' must be {'steps': int, 'buffers': {...}} for a model "
                f"with {self.optimizer!r}, got {opt!r:.200}"
            )
        steps = opt["steps"]
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
            raise TypeError(f"set_state: optimizer 'steps' must be an integer, got {steps!r}")
        if not 0 <= int(steps) < 2**62:
            raise ValueError(f"set_state: optimizer 'steps' must be in [0, 2**62), got {steps}")
        buffers = opt["buffers"]
        names = sorted(self.optimizer.state)
        if not isinstance(buffers, dict) or sorted(map(str, buffers)) != names:
            found = sorted(map(str, buffers)) if isinstance(buffers, dict) else buffers
            raise ValueError(
                f"set_state: {self.optimizer!r} keeps the buffers {names}, the state has "
                f"{found!r:.200}"
            )
        checked = {k: self._state_array(v, f"optimizer buffer {k}") for k, v in buffers.items()}
        self.optimizer.check_state(checked, "set_state")
        return int(steps), checked

    # -- copies and files --------------------------------------------------------------------

    def clone(self, dtype: DTypeLike | None = None) -> Sequential:
        """A new model with the same layers and current weights (cast to `dtype`), compiled
        with the same loss and metrics and no optimizer."""
        model = Sequential(
            [layer.clone() for layer in self.layers],
            dtype=self.dtype if dtype is None else dtype,
            seed=self.seed,
        )
        model.set_weights(self.get_weights())
        if self.loss is not None:
            model.compile(self.loss, metrics=self.metrics, l2=self.l2)
        return model

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write architecture, weights, loss, metrics and optimizer state to one .npz file,
        atomically; backprop.load(path) restores it (see backprop.serialization)."""
        write_model(path, self.get_config(), self.get_state())

    def to_onnx(
        self,
        path: str | os.PathLike[str],
        *,
        probabilities: bool = False,
        opset: int = onnx_export.OPSET,
    ) -> None:
        """Write the network as an ONNX model (needs the onnx package): input "X" (batch,
        n_features_in), output "Y", model.predict's values, or with probabilities=True
        predict_proba's; the batch size is free. See backprop.onnx_export."""
        onnx_export.export(self, path, probabilities=probabilities, opset=opset)

    def to_torch(self) -> torch_interop.TorchSequential:
        """An equivalent torch.nn.Sequential (needs PyTorch) with copies of the weights, in
        the model's dtype and training mode; backprop.from_torch converts back. See
        backprop.torch_interop."""
        return torch_interop.to_torch(self)

    def save_weights(self, path: str | os.PathLike[str]) -> None:
        """Write only the weights, as a safetensors file with PyTorch's names and layout
        (the state_dict of to_torch(): "0.weight" (out, in), "0.bias", ...), atomically.
        See backprop.weights_file."""
        weights_file.save_weights(self, path)

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        """Set the weights from a safetensors file with PyTorch's names and layout (from
        save_weights, or torch's state_dict of the equivalent nn.Sequential); every name,
        shape, dtype and value is checked first, and nothing changes on error."""
        weights_file.load_weights(self, path)

    def summary(self, print_fn: Callable[[str], object] | None = None) -> None:
        """Print a table of the layers (name and type, output shape, parameters), the total
        and trainable parameter counts with their memory size, the dtype and the optimizer's
        buffers (Keras's Model.summary). print_fn (default print) is called once with the
        whole text: model.summary(print_fn=lines.append) collects it as a string."""
        (print if print_fn is None else print_fn)(format_summary(self))

    def count_params(self) -> int:
        """The number of parameters (weights and biases of every Dense; Keras's
        count_params)."""
        return self.n_params

    def __repr__(self) -> str:
        """The constructor call, with each layer's output shape and parameters as comments
        (str(model) is the same)."""
        return format_repr(self)


def load(path: str | os.PathLike[str]) -> Sequential:
    """The model saved at `path` (model.save), with its loss, metrics, optimizer and
    optimizer state: it predicts bit for bit as the saved one and continues training
    identically.

    Raises ModelFileError, naming the file, for a file that is not a backprop model, is
    truncated or corrupted, of an unknown format version, or describes an invalid model
    (OSError for a file that cannot be opened). Memory is bounded by what the description
    implies: arrays of another size are refused before they are read.
    """
    name = os.fspath(path)
    config, state = read_model(name, _file_arrays)
    try:
        model = Sequential.from_config(config)
        model.set_state(state)
    except (TypeError, ValueError, KeyError, OverflowError, RecursionError) as e:
        raise ModelFileError(f"{name}: invalid model description: {e}") from e
    return model


def _file_arrays(config: dict[str, Any]) -> Expected:
    """The arrays a model file of this config holds besides its description: the weights
    and the optimizer's buffers, with dtype and shape, sized without building the model
    (a crafted description must not make load() allocate more than the file holds)."""
    layers = config["layers"]
    if not isinstance(layers, list):
        raise ValueError(f"'layers' must be a list, got {layers!r:.100}")
    built = [from_spec(spec, LAYERS, f"layers[{i}]") for i, spec in enumerate(layers)]
    n_params = sum(layer.n_params for layer in built if isinstance(layer, Dense))
    dtype = resolve_dtype(config["dtype"])
    arrays: Expected = {"theta": (dtype, (n_params,))}
    if config["optimizer"] is not None:
        optimizer = from_spec(config["optimizer"], OPTIMIZERS, "optimizer")
        arrays |= {f"opt_{k}": (dtype, (n_params,)) for k in optimizer.buffer_names}
    return arrays
