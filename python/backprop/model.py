"""Sequential: a stack of layers compiled into one core Executor, and its training loop."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from backprop_core import Executor

from ._validation import as_features, as_sample_weight, as_targets, check_int, resolve_dtype
from .layers import Activation, Dense, Layer
from .losses import Loss
from .optimizers import Optimizer
from .training import History, report_epoch

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
        self.seed = seed
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
        self._seed_dropout(seed)
        self.loss: Loss | None = None
        self.optimizer: Optimizer | None = None

    # -- set-up ----------------------------------------------------------------------------

    def compile(self, loss: Loss, optimizer: Optimizer | None = None) -> Sequential:
        """Choose the loss and the optimizer (fresh optimizer state). Returns self."""
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
        self._executor.set_loss(loss.name, loss.param)
        if optimizer is not None:
            optimizer._attach(self._executor)
        self.loss, self.optimizer = loss, optimizer
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
        X, y = self._batch(X, y, "train_step", check_range=False)
        w = as_sample_weight(sample_weight, X.shape[0], self.dtype, "train_step")
        return float(self._executor.step(X, y, 2, w))

    def gradients(self, X: Any, y: Any, sample_weight: Any = None) -> list[tuple[Array, Array]]:
        """[(dW, db), ...] per Dense layer for the batch (X, y), without updating anything."""
        X, y = self._batch(X, y, "gradients", check_range=False)
        w = as_sample_weight(sample_weight, X.shape[0], self.dtype, "gradients")
        self._executor.step(X, y, 1, w)
        return [
            (layer.dW.copy(), layer.db.copy()) for layer in self.layers if isinstance(layer, Dense)
        ]

    def evaluate(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean loss over (X, y) (weighted by sample_weight), without gradients or dropout."""
        X, y = self._batch(X, y, "evaluate")
        w = as_sample_weight(sample_weight, X.shape[0], self.dtype, "evaluate")
        return float(self._executor.evaluate(X, y, 1024, w))

    def predict(self, X: Any) -> Array:
        """Network outputs (n_samples, n_outputs) — logits for the cross-entropy losses."""
        X = as_features(X, self.dtype, self.n_features_in, "predict", self._first_layer)
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        self._executor.predict(X, out)
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
        validation_data: tuple[Any, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        sample_weight: Any = None,
    ) -> History:
        """Mini-batch training for `epochs` passes over (X, y); returns the History.

        Each epoch runs in one compiled call: batches in a fresh random order when shuffle
        (drawn from `seed`, or else from the model's seed stream), the last batch smaller
        when batch_size does not divide n_samples. History.loss[i] is the mean over the
        epoch's batch losses, weighted by batch size (by batch weight with sample_weight:
        (n_samples,) >= 0); val_loss is measured after the epoch. A batch with a non-finite
        loss or gradient stops fit with FloatingPointError before its update.
        verbose=1 prints one line per epoch; verbose=0 prints nothing.
        """
        if self.optimizer is None:
            raise RuntimeError(
                "fit: the model has no optimizer; call model.compile(loss=..., optimizer=...)"
            )
        epochs = check_int(epochs, "fit: epochs", 0)
        batch_size = check_int(batch_size, "fit: batch_size", 1)
        verbose = check_int(verbose, "fit: verbose", 0)
        X, y = self._batch(X, y, "fit")
        w = as_sample_weight(sample_weight, X.shape[0], self.dtype, "fit")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("fit: validation_data must be a pair (X_val, y_val)")
            val = self._batch(*validation_data, where="fit (validation_data)")
        rng = self._rng
        if seed is not None:
            rng = np.random.default_rng(seed)
            self._seed_dropout(seed)
        history = History()
        n = X.shape[0]
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            perm = rng.permutation(n) if shuffle else None
            try:
                loss = float(self._executor.run_epoch(X, y, perm, batch_size, w))
            except FloatingPointError as e:
                raise FloatingPointError(
                    f"fit: training diverged in epoch {epoch}: {e} (try a smaller learning "
                    f"rate than {self.optimizer.lr})"
                ) from None
            history.loss.append(loss)
            if val is not None:
                history.val_loss.append(float(self._executor.evaluate(*val)))
            history.epoch_time.append(time.perf_counter() - start)
            if verbose:
                report_epoch(history, epoch, epochs, n)
        return history

    # -- copies ----------------------------------------------------------------------------

    def clone(self, dtype: DTypeLike | None = None) -> Sequential:
        """A new model with the same layers and current weights (cast to `dtype`), compiled
        with the same loss and no optimizer."""
        model = Sequential(
            [layer.clone() for layer in self.layers],
            dtype=self.dtype if dtype is None else dtype,
            seed=self.seed,
        )
        model._theta[...] = self._theta
        if self.loss is not None:
            model.compile(self.loss)
        return model

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner},\n], dtype={self.dtype.name!r})"
