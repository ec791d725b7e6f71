"""scikit-learn estimators over the compiled core: MLPClassifier and MLPRegressor.

from backprop.sklearn import MLPClassifier
clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, random_state=0).fit(X, y)

The parameters follow sklearn.neural_network's MLP (same names and defaults where the meaning
is the same); each estimator builds a backprop.Sequential (`model_`) and trains it through
its public API: one model.fit call per fit (one epoch per partial_fit), with scikit-learn's
stopping rule (backprop.callbacks.Plateau, rule "sklearn") run by a callback after every
epoch. Differences from scikit-learn's MLP, all documented per parameter:
solvers "sgd" (constant learning rate) and "adam" only; `alpha` is applied as the optimizer's
L2 weight decay (on biases too); the squared error is mean((y - ŷ)²) without sklearn's 1/2;
predictions and probabilities are float64 whatever the training dtype;
`class_weight` for the classifier; `validation_scores_` / `val_loss_curve_` per epoch and
`partial_fit` under early stopping. Importing this module imports scikit-learn;
`import backprop` does not.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import layers as _layers
from . import losses as _losses
from . import onnx_export
from ._validation import check_int, check_positive, check_range, resolve_dtype
from .callbacks import Plateau
from .model import Sequential
from .optimizers import SGD, Adam, Optimizer
from .training import Callback, Logs

Array = NDArray[Any]

_ACTIVATIONS: dict[str, type[_layers.Activation]] = {
    "identity": _layers.Identity,
    "logistic": _layers.Sigmoid,
    "tanh": _layers.Tanh,
    "relu": _layers.ReLU,
    "leaky_relu": _layers.LeakyReLU,
}


class _BaseMLP(BaseEstimator):  # type: ignore[misc]
    """Shared machinery; see MLPClassifier and MLPRegressor for the parameters.

    No __init__ here: scikit-learn's get_params reads the parameters from the signature of
    each concrete class's own __init__.
    """

    # fitted state, set by the first fit / partial_fit
    model_: Sequential
    classes_: Array
    stopped_early_: bool
    n_outputs_: int
    n_iter_: int
    t_: int
    loss_curve_: list[float]
    validation_scores_: list[float]
    val_loss_curve_: list[float]
    best_loss_: float
    best_validation_score_: float
    _decay: float
    # what training carries over between partial_fit / warm_start calls (and pickles):
    # the best weights so far under early_stopping, the stopping rule's count of epochs
    # without progress (scikit-learn's name for it) and the held-out validation set
    _best: list[Array] | None
    _no_improvement_count: int
    _val: tuple[Array, Array, Array | None] | None

    # -- hooks the subclasses fill in ------------------------------------------------------

    def _make_loss(self) -> _losses.Loss:
        raise NotImplementedError

    def _encode_y(self, y: Array, refit: bool, classes: Any) -> Array:
        """Targets in the loss's form. A first fit (refit False) sets the classes / the
        output count; later partial_fit / warm_start calls must agree with them."""
        raise NotImplementedError

    def _class_weights(
        self, y_enc: Array, sample_weight: Array | None, incremental: bool
    ) -> Array | None:
        return None

    def _val_score(self, X: Array, y_enc: Array, sample_weight: Array | None) -> float:
        raise NotImplementedError

    # -- checks ----------------------------------------------------------------------------

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (int, np.integer)):
            sizes = [sizes]  # a bool is refused by check_int below
        try:
            sizes = list(sizes)
        except TypeError:
            raise TypeError(
                "hidden_layer_sizes must be an int or a sequence of ints, "
                f"got {self.hidden_layer_sizes!r}"
            ) from None
        return [check_int(h, f"hidden_layer_sizes[{i}]", 1) for i, h in enumerate(sizes)]

    def _check_params(self) -> None:
        """Validate the constructor arguments (fit time, as scikit-learn does)."""
        self._hidden_sizes()
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.solver not in ("sgd", "adam"):
            raise ValueError(f"solver must be 'sgd' or 'adam', got {self.solver!r}")
        check_range(self.alpha, "alpha", 0.0, float("inf"))
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            check_int(self.batch_size, "batch_size ('auto' or an integer)", 1)
        check_positive(self.learning_rate_init, "learning_rate_init")
        check_int(self.max_iter, "max_iter", 1)
        check_range(self.tol, "tol", 0.0, float("inf"))
        check_range(self.momentum, "momentum", 0.0, 1.0)
        check_range(self.validation_fraction, "validation_fraction", 0.0, 1.0)
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError("validation_fraction must be > 0 when early_stopping=True")
        check_range(self.beta_1, "beta_1", 0.0, 1.0)
        check_range(self.beta_2, "beta_2", 0.0, 1.0)
        check_positive(self.epsilon, "epsilon")
        check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        resolve_dtype(self.dtype)
        self._make_loss()

    # -- building the network --------------------------------------------------------------

    def _optimizer(self, weight_decay: float) -> Optimizer:
        if self.solver == "sgd":
            return SGD(
                lr=self.learning_rate_init,
                momentum=self.momentum,
                nesterov=bool(self.nesterovs_momentum) and self.momentum > 0,
                weight_decay=weight_decay,
            )
        return Adam(
            lr=self.learning_rate_init,
            betas=(self.beta_1, self.beta_2),
            eps=self.epsilon,
            weight_decay=weight_decay,
        )

    def _build_model(self, n_features: int, n_outputs: int, seed: int) -> Sequential:
        """Dense + activation per hidden layer, then Dense(n_outputs) (logits or the values).

        Weights start Glorot-uniform (scikit-learn's initialisation for all but logistic
        nets), biases at zero.
        """
        act = _ACTIVATIONS[self.activation]
        net: list[_layers.Layer] = []
        width = n_features
        for h in self._hidden_sizes():
            net += [_layers.Dense(width, h), act()]
            width = h
        net.append(_layers.Dense(width, n_outputs))
        model = Sequential(net, dtype=self.dtype, seed=seed)
        return model.compile(loss=self._make_loss(), optimizer=self._optimizer(self._decay))

    # -- training --------------------------------------------------------------------------

    def _fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        incremental: bool,
        classes: Any = None,
    ) -> Any:
        self._check_params()
        first = not hasattr(self, "model_") or not (incremental or self.warm_start)
        if not first and self.stopped_early_:
            if incremental:
                return self  # early stopping has ended training; fit() starts over
            self.stopped_early_ = False
        regressor = isinstance(self, RegressorMixin)
        X, y = validate_data(
            self,
            X,
            y,
            reset=first,
            dtype=resolve_dtype(self.dtype),
            order="C",
            multi_output=regressor,
            y_numeric=regressor,
        )
        y_enc = self._encode_y(y, refit=not first, classes=classes)
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
        cw = self._class_weights(y_enc, sw, incremental)
        if cw is not None:
            sw = cw if sw is None else sw * cw
        rng = check_random_state(self.random_state)

        if first:
            # alpha as L2 weight decay: sklearn adds alpha * W / sum(batch weights) to each
            # gradient; a batch's weights sum on average to batch_size * mean(w).
            n_train = X.shape[0]
            if self.early_stopping:
                n_train -= int(np.ceil(self.validation_fraction * X.shape[0]))
            mean_w = 1.0 if sw is None else float(np.mean(sw))
            self._decay = float(self.alpha) / (self._batch(max(n_train, 1)) * max(mean_w, 1e-12))
            seed = int(rng.randint(np.iinfo(np.int32).max))
            self.model_ = self._build_model(X.shape[1], self.n_outputs_, seed)
            self.loss_curve_ = []
            self.validation_scores_ = []
            self.val_loss_curve_ = []
            self.best_loss_ = np.inf
            self.best_validation_score_ = -np.inf
            self._best = None
            self._no_improvement_count = 0
            self._val = None
            self.stopped_early_ = False
            self.n_iter_ = 0
            self.t_ = 0
        if not incremental:
            self.n_iter_ = 0
            self._val = None

        if self.early_stopping and self._val is None:
            X, y_enc, sw, self._val = self._split(X, y_enc, sw, rng, stratify=not incremental)
        self._run(X, y_enc, sw, epochs=1 if incremental else self.max_iter, incremental=incremental)
        return self

    def _batch(self, n: int) -> int:
        return min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)

    def _split(
        self, X: Array, y_enc: Array, sw: Array | None, rng: Any, stratify: bool
    ) -> tuple[Array, Array, Array | None, tuple[Array, Array, Array | None]]:
        """Hold out validation_fraction of the rows (stratified for a classifier in fit)."""
        strat = y_enc.reshape(-1) if stratify and isinstance(self, ClassifierMixin) else None
        arrays = [X, y_enc] if sw is None else [X, y_enc, sw]
        parts = train_test_split(
            *arrays, test_size=self.validation_fraction, random_state=rng, stratify=strat
        )
        if parts[1].shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size "
                "of your dataset."
            )
        X_tr, X_val, y_tr, y_val = (np.ascontiguousarray(p) for p in parts[:4])
        sw_tr, sw_val = (parts[4], parts[5]) if sw is not None else (None, None)
        return X_tr, y_tr, sw_tr, (X_val, y_val, sw_val)

    def _run(
        self, X: Array, y_enc: Array, sw: Array | None, epochs: int, incremental: bool
    ) -> None:
        """Train for up to `epochs` epochs in one model.fit call, _Stopping deciding when to
        stop; then restore the best weights (early_stopping) and warn if max_iter ran out."""
        model = self.model_
        stopping = _Stopping(self, X.shape[0])
        try:
            model.fit(
                X, y_enc, epochs=epochs, batch_size=self._batch(X.shape[0]),
                shuffle=self.shuffle, sample_weight=sw, validation_data=self._val,
                callbacks=[stopping],
            )  # fmt: skip
        except KeyboardInterrupt:
            # the core stops at a batch boundary with the weights of the last completed step
            warnings.warn("Training interrupted by user.", stacklevel=4)
        # a partial_fit stream keeps its current weights until early stopping ends it
        if (
            self._val is not None
            and self._best is not None
            and (stopping.stopped or not incremental)
        ):
            model.set_weights(self._best)
        if stopping.stopped:
            # only a validation stop ends a partial_fit stream
            self.stopped_early_ = self._val is not None
        elif not incremental and self.n_iter_ == self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=4,
            )

    # -- prediction ------------------------------------------------------------------------

    def _outputs(self, X: Any) -> Array:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.model_.dtype, order="C")
        return self.model_.predict(X)

    @property
    def coefs_(self) -> list[Array]:
        """Weight matrices (n_in, n_out) per layer: views of the model's parameters."""
        check_is_fitted(self)
        return [layer.W for layer in self.model_.layers if isinstance(layer, _layers.Dense)]

    @property
    def intercepts_(self) -> list[Array]:
        """Bias vectors (n_out,) per layer: views of the model's parameters."""
        check_is_fitted(self)
        return [layer.b for layer in self.model_.layers if isinstance(layer, _layers.Dense)]

    @property
    def loss_(self) -> float:
        """The last epoch's training objective (loss_curve_[-1])."""
        check_is_fitted(self)
        return self.loss_curve_[-1]

    # -- pickling: the compiled model is rebuilt from its config and state -----------------

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:
            state["_model"] = {"config": model.get_config(), "state": model.get_state()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        saved = state.pop("_model", None)
        legacy = state.pop("_model_state", None)  # pickled by release 0.1.0
        super().__setstate__(state)
        if saved is None and legacy is None:
            return  # not fitted
        try:
            if saved is not None:
                model = Sequential.from_config(saved["config"])
                model.set_state(saved["state"])  # checks shapes, dtypes and finiteness
            else:
                model = self._legacy_model(legacy)
            if (model.n_features_in, model.n_outputs) != (self.n_features_in_, self.n_outputs_):
                raise ValueError(
                    f"the network maps {model.n_features_in} features to {model.n_outputs} "
                    f"outputs, the estimator has n_features_in_={self.n_features_in_} and "
                    f"n_outputs_={self.n_outputs_}"
                )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"cannot unpickle {type(self).__name__}: invalid network state ({e})"
            ) from e
        self.model_ = model

    def _legacy_model(self, legacy: dict[str, Any]) -> Sequential:
        """The network of an estimator pickled by release 0.1.0, which stored the build
        seed, the parameters [W0, b0, ...], the optimizer's buffers and step count and the
        shuffling generator's state."""
        model = self._build_model(self.n_features_in_, self.n_outputs_, legacy["seed"])
        model.set_weights(legacy["params"])
        state = model.get_state()
        state["optimizer"] = {"steps": legacy["steps"], "buffers": legacy["optimizer"]}
        state["rng"] = legacy["rng"]
        model.set_state(state)
        return model


class _Stopping(Callback):
    """An estimator's per-epoch bookkeeping and scikit-learn's stopping rule, run by
    model.fit after every epoch.

    Records the epoch's objective (data loss + the L2 term) in loss_curve_ and counts
    n_iter_ and t_ (n_rows per epoch). Under early_stopping it scores the validation set
    into validation_scores_ and val_loss_curve_, and snapshots the weights into the
    estimator's _best whenever the score reaches a new best. The monitored value (training
    loss, or validation score under early_stopping) goes through Plateau(rule="sklearn"),
    which starts from the estimator's best_loss_ / best_validation_score_ and
    _no_improvement_count so that partial_fit and warm_start fits carry the count on, and
    writes them back every epoch. Training stops (`stopped` becomes True) once more than
    n_iter_no_change epochs in a row brought no gain of tol.
    """

    def __init__(self, est: _BaseMLP, n_rows: int) -> None:
        super().__init__()
        self.est = est
        self.n_rows = n_rows
        self.stopped = False
        if est._val is None:
            self.plateau = Plateau("min", est.tol, rule="sklearn")
            self.plateau.best = est.best_loss_
        else:
            self.plateau = Plateau("max", est.tol, rule="sklearn")
            self.plateau.best = est.best_validation_score_
        self.plateau.wait = est._no_improvement_count

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        assert logs is not None  # model.fit passes the epoch's record
        est = self.est
        # the objective the optimizer descends: data loss + 0.5 * decay * ||theta||^2
        loss = logs["loss"] + 0.5 * est._decay * sum(
            float(np.vdot(p, p)) for p in est.model_.parameters()
        )
        est.n_iter_ += 1
        est.t_ += self.n_rows
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if est._val is None:
            value, what = loss, "Training loss"
        else:
            value, what = est._val_score(*est._val), "Validation score"
            est.validation_scores_.append(value)
            est.val_loss_curve_.append(logs["val_loss"])
            if est.verbose:
                print(f"Validation score: {value:f}")
        moved = self.plateau.update(value)
        best = self.plateau.best
        assert best is not None  # rule "sklearn" starts from -inf / inf
        est._no_improvement_count = self.plateau.wait
        if est._val is None:
            est.best_loss_ = best
        else:
            est.best_validation_score_ = best
            if moved:
                est._best = self.model.get_weights()
        if self.plateau.wait > est.n_iter_no_change:
            if est.verbose:
                print(
                    f"{what} did not improve more than tol={est.tol:f} for "
                    f"{est.n_iter_no_change} consecutive epochs. Stopping."
                )
            self.stopped = True
            self.model.stop_training = True


_DOC_PARAMS = """
    hidden_layer_sizes: int or sequence of ints, default (100,); the widths of the hidden
        layers (empty: a linear model).
    activation: "relu" (default), "tanh", "logistic", "identity" or "leaky_relu" (slope 0.01).
    solver: "adam" (default) or "sgd" (constant learning rate; scikit-learn's learning-rate
        schedules and "lbfgs" are not offered).
    alpha: L2 strength, default 1e-4. Applied as the optimizer's weight decay
        alpha / (batch_size * mean(sample_weight)): the gradient term scikit-learn adds,
        alpha * W / sum(batch weights), for a batch of average weight, computed once when the
        model is built; it stays inside the compiled epoch, and it decays biases too.
    batch_size: "auto" (min(200, n_samples)) or an int (clipped to n_samples).
    learning_rate_init: step size, default 1e-3.
    max_iter: maximum number of epochs, default 200 (ConvergenceWarning when reached).
    shuffle: reshuffle the rows every epoch.
    random_state: None, an int or a RandomState: the initial weights, the shuffling and the
        validation split.
    tol, n_iter_no_change: stop when the training loss (or, with early_stopping, the
        validation score) has not improved by tol for n_iter_no_change + 1 epochs.
    verbose: print the loss per epoch.
    warm_start: fit() continues from the current weights and optimizer state.
    momentum, nesterovs_momentum: SGD momentum (default 0.9) and Nesterov's variant
        (scikit-learn's names; the update equals scikit-learn's at a constant learning rate).
    early_stopping: hold out validation_fraction of the data, score it after every epoch
        (validation_scores_, and its loss in val_loss_curve_), stop when it stops improving
        and keep the best weights. With partial_fit the first call holds out the validation
        set and later calls score on it; once the score stops improving the best weights
        are restored, stopped_early_ becomes True and further partial_fit calls do nothing.
    validation_fraction: default 0.1.
    beta_1, beta_2, epsilon: Adam's parameters.
    dtype: "float32" (default, fast) or "float64": the network's precision.

    Fitted attributes: model_ (the trained backprop.Sequential), coefs_ and intercepts_
    (views of its weights), n_features_in_ (feature_names_in_ for a DataFrame), n_outputs_,
    loss_curve_ (per epoch: mean data loss + the L2 term), loss_, best_loss_, n_iter_
    (epochs of the last fit; partial_fit counts up), t_ (samples seen), and with
    early_stopping validation_scores_, val_loss_curve_, best_validation_score_,
    stopped_early_. Ctrl-C ends training at a batch boundary with a warning, keeping the
    weights of the last step (as scikit-learn). Fitted estimators pickle: the network travels
    as its config and state (weights, optimizer buffers and step count, shuffling state), so
    the copy predicts the same and training continues exactly; unpickling checks that state
    (ValueError if it is invalid) and also reads the pickles of release 0.1.0.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):  # type: ignore[misc]
    """Multi-layer perceptron classifier trained by the compiled core.

    Two classes train one logit with BinaryCrossEntropy (as scikit-learn's logistic output);
    more train one logit per class with SoftmaxCrossEntropy. Labels may be of any sortable
    hashable type; classes_ holds them sorted.

    loss: "log_loss" (the only choice; kept for symmetry with MLPRegressor).
    class_weight: None, "balanced" (n_samples / (n_classes * count(class)), counts weighted
        by sample_weight, as sklearn.utils.class_weight.compute_class_weight) or a dict
        {label: weight}; multiplies sample_weight. "balanced" is refused by partial_fit.
    """

    __doc__ = (__doc__ or "") + _DOC_PARAMS

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        loss: str = "log_loss",
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        dtype: str = "float32",
        class_weight: Any = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train from scratch (or from the current weights with warm_start).

        X: (n_samples, n_features); y: (n_samples,) labels; sample_weight: (n_samples,) >= 0.
        """
        return self._fit(X, y, sample_weight, incremental=False)  # type: ignore[no-any-return]

    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        """One epoch over (X, y). The first call needs `classes` (every label to expect)."""
        if classes is None and not hasattr(self, "model_"):
            raise ValueError("partial_fit: the first call needs classes= (every label to expect)")
        return self._fit(  # type: ignore[no-any-return]
            X, y, sample_weight, incremental=True, classes=classes
        )

    def _make_loss(self) -> _losses.Loss:
        if self.loss != "log_loss":
            raise ValueError(f"loss must be 'log_loss' for MLPClassifier, got {self.loss!r}")
        if getattr(self, "classes_", np.empty(3)).size == 2:
            return _losses.BinaryCrossEntropy()
        return _losses.SoftmaxCrossEntropy()

    def _encode_y(self, y: Array, refit: bool, classes: Any) -> Array:
        check_classification_targets(y)
        if refit:
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(
                    f"classes={classes!r} differs from the classes_ of the first "
                    f"partial_fit call, {self.classes_!r}"
                )
        else:
            labels = np.unique(y if classes is None else classes)
            if labels.size < 2:
                raise ValueError(
                    f"MLPClassifier needs at least 2 classes in y, got one class: {labels!r}"
                )
            self.classes_ = labels
            # scikit-learn's n_outputs_: the network's outputs, one logit for two classes
            self.n_outputs_ = 1 if labels.size == 2 else int(labels.size)
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, self.classes_.size - 1)
        bad = np.flatnonzero(self.classes_[idx] != y)
        if bad.size:
            raise ValueError(
                f"y[{bad[0]}] = {y[bad[0]]!r} is not one of the classes {self.classes_!r}"
            )
        if self.n_outputs_ == 1:
            return np.ascontiguousarray(idx.reshape(-1, 1), dtype=resolve_dtype(self.dtype))
        return np.ascontiguousarray(idx, dtype=np.int64)

    def _class_weights(
        self, y_enc: Array, sample_weight: Array | None, incremental: bool
    ) -> Array | None:
        """Per-row factors from class_weight, or None. y_enc: encoded labels (n,) or (n, 1)."""
        cw = self.class_weight
        if cw is None:
            return None
        k = self.classes_.size
        labels = y_enc.reshape(-1).astype(np.intp)
        if isinstance(cw, str) and cw == "balanced":
            if incremental:
                raise ValueError(
                    "class_weight='balanced' is not supported by partial_fit (it depends on "
                    "all the data); pass a dict, e.g. from sklearn.utils.class_weight."
                    "compute_class_weight('balanced', classes=classes, y=y)"
                )
            # compute_class_weight's formula, class counts weighted by sample_weight
            counts = np.bincount(labels, weights=sample_weight, minlength=k)
            if np.any(counts == 0):
                raise ValueError(
                    "class_weight='balanced' needs every class in y with a positive weight"
                )
            per_class = counts.sum() / (k * counts)
        elif isinstance(cw, Mapping):
            per_class = np.ones(k)
            for label, weight in cw.items():
                pos = np.flatnonzero(self.classes_ == label)
                if pos.size == 0:
                    raise ValueError(
                        f"class_weight has the label {label!r}, which is not one of the "
                        f"classes {self.classes_!r}"
                    )
                per_class[pos[0]] = check_range(
                    weight, f"class_weight[{label!r}]", 0.0, float("inf")
                )
        else:
            raise ValueError(
                f"class_weight must be None, 'balanced' or a dict, got {self.class_weight!r}"
            )
        return np.ascontiguousarray(per_class[labels], dtype=resolve_dtype(self.dtype))

    def _val_score(self, X: Array, y_enc: Array, sample_weight: Array | None) -> float:
        pred = self._predict_index(self.model_.predict(X))
        hit = (pred == y_enc.reshape(-1).astype(np.intp)).astype(np.float64)
        return float(np.average(hit, weights=sample_weight))

    def _predict_index(self, out: Array) -> NDArray[np.intp]:
        if out.shape[1] == 1:
            return (out[:, 0] > 0).astype(np.intp)
        return np.asarray(np.argmax(out, axis=1), dtype=np.intp)

    def predict(self, X: Any) -> Array:
        """Labels (n_samples,) from classes_."""
        index = self._predict_index(self._outputs(X))
        return self.classes_[index]

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities (n_samples, n_classes) as float64, columns in the order of
        classes_."""
        out = self._outputs(X)
        assert self.model_.loss is not None
        p = self.model_.loss.link(out).astype(np.float64)
        if p.shape[1] == 1:
            return np.hstack([1 - p, p])
        return p

    def predict_log_proba(self, X: Any) -> Array:
        """log(predict_proba(X))."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def to_onnx(self, path: str | os.PathLike[str], *, opset: int = onnx_export.OPSET) -> None:
        """Write the fitted network as an ONNX model (needs the onnx package): input "X"
        (batch, n_features_in_), output "probabilities" (batch, n_classes), predict_proba's
        values in the model's dtype, columns in the order of classes_ (no ZipMap, no labels:
        predict is classes_[argmax])."""
        check_is_fitted(self)
        onnx_export.export_classifier(self.model_, path, opset=opset)


class MLPRegressor(RegressorMixin, _BaseMLP):  # type: ignore[misc]
    """Multi-layer perceptron regressor trained by the compiled core; identity output,
    one output per target column (y of shape (n_samples,) or (n_samples, n_targets)).

    loss: "squared_error" (default: mean((y - ŷ)²) over all outputs, backprop.MSE),
        "absolute_error" (backprop.MAE) or "huber" (backprop.Huber). scikit-learn's MLP
        reports half our squared error and steps along the gradient of sum_j (ŷ_j - y_j)²/2
        per row, so with SGD our step equals its step at n_outputs / 2 times its
        learning_rate_init (tested).
    huber_delta: the Huber loss's threshold, default 1.0.
    """

    __doc__ = (__doc__ or "") + _DOC_PARAMS

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        loss: str = "squared_error",
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        dtype: str = "float32",
        huber_delta: float = 1.0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.huber_delta = huber_delta

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train from scratch (or from the current weights with warm_start).

        X: (n_samples, n_features); y: (n_samples,) or (n_samples, n_targets);
        sample_weight: (n_samples,) >= 0.
        """
        return self._fit(X, y, sample_weight, incremental=False)  # type: ignore[no-any-return]

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight, incremental=True)  # type: ignore[no-any-return]

    def _make_loss(self) -> _losses.Loss:
        if self.loss == "squared_error":
            return _losses.MSE()
        if self.loss not in ("absolute_error", "huber"):
            raise ValueError(
                f"loss must be 'squared_error', 'absolute_error' or 'huber', got {self.loss!r}"
            )
        if self.loss == "huber":
            return _losses.Huber(delta=check_positive(self.huber_delta, "huber_delta"))
        return _losses.MAE()

    def _encode_y(self, y: Array, refit: bool, classes: Any) -> Array:
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y = np.asarray(y, dtype=resolve_dtype(self.dtype))
        n_out = 1 if y.ndim == 1 else y.shape[1]
        if refit:
            if n_out != self.n_outputs_:
                raise ValueError(
                    f"y has {n_out} targets but the model was fitted with {self.n_outputs_}"
                )
        else:
            self.n_outputs_ = n_out
        return np.ascontiguousarray(y.reshape(y.shape[0], n_out))

    def _val_score(self, X: Array, y_enc: Array, sample_weight: Array | None) -> float:
        pred = self.model_.predict(X)
        if not np.isfinite(pred).all():
            return float("nan")
        return float(r2_score(y_enc, pred, sample_weight=sample_weight))

    def predict(self, X: Any) -> Array:
        """Predictions as float64 (scikit-learn's habit, whatever the training dtype):
        (n_samples,) for one target, else (n_samples, n_targets)."""
        out = self._outputs(X).astype(np.float64)
        return out[:, 0] if self.n_outputs_ == 1 else out

    def to_onnx(self, path: str | os.PathLike[str], *, opset: int = onnx_export.OPSET) -> None:
        """Write the fitted network as an ONNX model (needs the onnx package): input "X"
        (batch, n_features_in_), output "Y", predict's values in the model's dtype, (batch,)
        for one target, else (batch, n_targets)."""
        check_is_fitted(self)
        onnx_export.export_regressor(self.model_, path, opset=opset)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


__all__ = ["MLPClassifier", "MLPRegressor"]
