"""scikit-learn estimators over the compiled core: MLPClassifier and MLPRegressor.

from backprop.sklearn import MLPClassifier
clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, random_state=0).fit(X, y)

A drop-in for sklearn.neural_network's MLPClassifier and MLPRegressor (scikit-learn 1.9 is the
reference; 1.7 is the oldest supported): the same parameters with the same defaults and
meaning, the same solvers ("adam", "sgd" with its three learning-rate schedules, "lbfgs"),
targets (binary, multiclass, multilabel, multi-output regression), fitted attributes and
errors, validated by scikit-learn's own parameter machinery. With the same random_state the
initial weights are scikit-learn's, drawn from the same random sequence, and early stopping
holds out the same rows. Each estimator trains a backprop.Sequential (`model_`) through its
public API: for "sgd"/"adam" one model.fit call per fit (one epoch per partial_fit), with
scikit-learn's stopping rule and learning-rate schedules run by a callback after every epoch
(_Stopping, over backprop.callbacks.Plateau(rule="sklearn")); for "lbfgs" the full-batch loss
and gradient (model.loss_and_gradient, one compiled call) driven by scipy's L-BFGS-B as
scikit-learn drives its own.

Beyond scikit-learn: float32 networks (dtype), class_weight, the absolute_error and huber
losses, a "leaky_relu" activation, val_loss_curve_, partial_fit under early stopping, and
loss_curve_ for "lbfgs". Where the numbers differ from scikit-learn's, and why, is said per
parameter below (the README has the table). Sparse X is accepted as scikit-learn's MLP
accepts it (any scipy.sparse format, matrix or array; CSR and CSC kept, the others converted to
CSR by its validate_data) and is never densified: the network's first Dense reads its CSR rows
(backprop._sparse.CsrRows, converted once per call). Importing this module imports scikit-learn;
`import backprop` does not.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from itertools import pairwise
from numbers import Integral, Real
from typing import Any, ClassVar, TypeVar, cast

import numpy as np
import scipy.optimize
import scipy.sparse
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import layers as _layers
from . import losses as _losses
from . import onnx_export
from ._validation import as_features, check_int, check_range, resolve_dtype
from .callbacks import Plateau
from .model import Sequential
from .optimizers import SGD, Adam, Optimizer
from .training import Callback, Logs

Array = NDArray[Any]
F = TypeVar("F", bound=Callable[..., Any])

_ACTIVATIONS: dict[str, type[_layers.Activation]] = {
    "identity": _layers.Identity,
    "logistic": _layers.Sigmoid,
    "tanh": _layers.Tanh,
    "relu": _layers.ReLU,
    "leaky_relu": _layers.LeakyReLU,
}

#: out_activation_ per loss of the network (scikit-learn's names)
_OUT_ACTIVATION = {
    "softmax_cross_entropy": "softmax",
    "binary_cross_entropy": "logistic",
    "poisson": "exp",
}

_NONFINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values "
    "and need to be preprocessed."
)

#: the sparse formats validate_data keeps (scikit-learn's MLP's); other formats become CSR
_SPARSE_FORMATS = ["csr", "csc"]

#: the parameters the compiled loss and optimizer are built from: a warm_start fit or a
#: partial_fit after any of them changed recompiles (fresh optimizer state, as scikit-learn)
_COMPILE_PARAMS = (
    "solver", "learning_rate", "learning_rate_init", "power_t", "momentum",
    "nesterovs_momentum", "beta_1", "beta_2", "epsilon", "alpha", "loss", "huber_delta",
)  # fmt: skip


def _fit_method(fit: F) -> F:
    """scikit-learn's _fit_context: the parameters are validated against
    _parameter_constraints when fit (or a first partial_fit) starts."""
    return cast(F, _fit_context(prefer_skip_nested_validation=True)(fit))


def _stochastic_only(method: F) -> F:
    """partial_fit exists only for the stochastic solvers (hasattr is False for lbfgs)."""

    def check(est: Any) -> bool:
        if est.solver not in ("sgd", "adam"):
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{est.solver} is not stochastic."
            )
        return True

    return cast(F, available_if(check)(method))


class _LayerArrays(list):  # type: ignore[type-arg]
    """coefs_ / intercepts_: read-only views of the network's parameters, one per layer.
    Assigning an item (est.coefs_[0] = W) writes the array into the network, as assigning
    the whole list (est.coefs_ = [...]) does; writing into a view raises (the compiled core
    owns that memory)."""

    def __init__(self, est: _BaseMLP, which: str) -> None:
        super().__init__(est._layer_arrays(which))
        self._est, self._which = est, which

    def __setitem__(self, index: Any, value: Any) -> None:
        values = list(self)
        values[index] = value
        self._est._set_layer_arrays(self._which, values)
        super().__init__(self._est._layer_arrays(self._which))


class _BaseMLP(BaseEstimator):  # type: ignore[misc]
    """Shared machinery; see MLPClassifier and MLPRegressor for the parameters.

    No __init__ here: scikit-learn's get_params reads the parameters from the signature of
    each concrete class's own __init__.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dtype": [
            None,
            StrOptions({"float32", "float64"}),
            Options(type, {np.float32, np.float64}),
            Options(np.dtype, {np.dtype(np.float32), np.dtype(np.float64)}),
        ],
    }

    # fitted state, set by the first fit / partial_fit
    model_: Sequential
    classes_: Array
    stopped_early_: bool
    n_outputs_: int
    n_iter_: int
    t_: int
    loss_: float
    loss_curve_: list[float]
    validation_scores_: list[float] | None
    val_loss_curve_: list[float] | None
    best_loss_: float | None
    best_validation_score_: float | None
    # what training carries over between partial_fit / warm_start calls (and pickles):
    # the best weights so far under early_stopping, the stopping rule's count of epochs
    # without progress (scikit-learn's name for it), the held-out validation set (its X
    # an array, or CsrRows after a fit on sparse X), the current learning rate
    # (scikit-learn's, before _scale) and the parameters the network was compiled from
    _best: list[Array] | None
    _no_improvement_count: int
    _val: tuple[Any, Array, Array | None] | None
    _learning_rate: float
    _compiled: tuple[Any, ...]

    # -- hooks the subclasses fill in ------------------------------------------------------

    def _make_loss(self) -> _losses.Loss:
        raise NotImplementedError

    def _encode_y(self, y: Array, first: bool, incremental: bool, classes: Any) -> Array:
        """Targets in the loss's form, of the network's dtype (or int64 class indices). A
        first fit sets the classes / the output count; later partial_fit / warm_start
        calls must agree with them."""
        raise NotImplementedError

    def _class_weights(
        self, y_enc: Array, sample_weight: Array | None, incremental: bool
    ) -> Array | None:
        return None

    def _val_score(self, X: Array, y_enc: Array, sample_weight: Array | None) -> float:
        raise NotImplementedError

    @property
    def _scale(self) -> int:
        """scikit-learn's objective / the network's loss: n_outputs_ for multilabel (its
        binary log-loss sums over the labels, BinaryCrossEntropy averages), else 1."""
        return 1

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
        """What the constraint table cannot say (checked at fit, as scikit-learn does)."""
        self._hidden_sizes()
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError("validation_fraction must be > 0 when early_stopping=True")
        self._make_loss()

    @property
    def _activation(self) -> type[_layers.Activation]:
        return _ACTIVATIONS[self.activation]

    def _input_dtype(self, first: bool) -> Any:
        """What validate_data converts X to: the network's dtype once built; for a first fit
        the dtype parameter, or (None) float32 for float32 X and float64 otherwise."""
        if not first:
            return self.model_.dtype
        if self.dtype is None:
            return (np.float64, np.float32)
        return resolve_dtype(self.dtype)

    # -- building the network --------------------------------------------------------------

    def _compile_key(self) -> tuple[Any, ...]:
        return (*(getattr(self, name, None) for name in _COMPILE_PARAMS), self._scale)

    def _optimizer(self) -> Optimizer | None:
        """The solver as a backprop optimizer (None for lbfgs). SGD's learning rate and
        Adam's epsilon carry _scale, so that the steps on the network's loss are
        scikit-learn's steps on its objective."""
        if self.solver == "sgd":
            return SGD(
                lr=self._learning_rate * self._scale,
                momentum=self.momentum,
                nesterov=bool(self.nesterovs_momentum) and self.momentum > 0,
            )
        if self.solver == "adam":
            return Adam(
                lr=self.learning_rate_init,
                betas=(self.beta_1, self.beta_2),
                eps=self.epsilon / self._scale,
            )
        return None

    def _compile(self) -> None:
        """(Re)compile model_ from the parameters: loss, optimizer (fresh state) and
        scikit-learn's alpha as the core's per-batch L2 term on the weights."""
        self._learning_rate = float(self.learning_rate_init)
        self.model_.compile(
            loss=self._make_loss(), optimizer=self._optimizer(), l2=self.alpha / self._scale
        )
        self._compiled = self._compile_key()

    def _build_model(self, n_features: int, n_outputs: int, seed: int, dtype: Any) -> Sequential:
        """Dense + activation per hidden layer, then Dense(n_outputs) (logits or the values),
        compiled."""
        act = _ACTIVATIONS[self.activation]
        net: list[_layers.Layer] = []
        width = n_features
        for h in self._hidden_sizes():
            net += [_layers.Dense(width, h), act()]
            width = h
        net.append(_layers.Dense(width, n_outputs))
        self.model_ = Sequential(net, dtype=dtype, seed=seed)
        self._compile()
        return self.model_

    def _initial_weights(self, rng: np.random.RandomState, units: list[int]) -> list[Array]:
        """scikit-learn's _init_coef, drawn from the same generator in the same order
        (weights then bias, layer by layer): uniform in +-sqrt(factor / (fan_in + fan_out)),
        factor 2 for "logistic" and 6 otherwise."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        weights = []
        for fan_in, fan_out in pairwise(units):
            bound = np.sqrt(factor / (fan_in + fan_out))
            weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            weights.append(rng.uniform(-bound, bound, fan_out))
        return weights

    def _reset_records(self) -> None:
        """A first fit's records: nothing trained yet."""
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.stopped_early_ = False
        self._val = None
        self._best = None
        self.validation_scores_ = self.val_loss_curve_ = None
        self.best_loss_ = self.best_validation_score_ = None

    def _complete_records(self, stochastic: bool, early_stopping: bool) -> None:
        """The records this fit keeps, as scikit-learn's _initialize sets them; warm_start
        and partial_fit carry them on (completed when the solver or early_stopping
        changed)."""
        if not stochastic:
            self.validation_scores_ = self.val_loss_curve_ = self.best_validation_score_ = None
            return
        if early_stopping:
            if self.validation_scores_ is None or self.val_loss_curve_ is None:
                self.validation_scores_, self.val_loss_curve_ = [], []
            if self.best_validation_score_ is None:
                self.best_validation_score_ = -np.inf
                self._no_improvement_count = 0
            if self._best is None:
                self._best = self.model_.get_weights()  # scikit-learn's initial best
            self.best_loss_ = None
        else:
            if self.best_loss_ is None:
                self.best_loss_ = np.inf
                self._no_improvement_count = 0
            self.validation_scores_ = self.val_loss_curve_ = self.best_validation_score_ = None
            self._best = None

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
                # early stopping has ended training; fit() starts over
                warnings.warn(
                    "partial_fit: early stopping has ended training (stopped_early_ is True), "
                    "so this call trained nothing; fit() starts a new run",
                    UserWarning,
                    stacklevel=5,
                )
                return self
            self.stopped_early_ = False
        if not first:
            self._check_architecture()
        regressor = isinstance(self, RegressorMixin)
        X, y = validate_data(
            self,
            X,
            y,
            reset=first,
            accept_sparse=_SPARSE_FORMATS,
            dtype=self._input_dtype(first),
            order="C",
            multi_output=True,
            y_numeric=regressor,
        )
        y_enc = self._encode_y(y, first, incremental, classes)
        if first:
            self._reset_records()
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
        if scipy.sparse.issparse(X):
            # once per fit: the core reads these rows (epochs, the split, lbfgs's calls)
            X = as_features(X, X.dtype, X.shape[1], f"{type(self).__name__}.fit", sparse=True)
        cw = self._class_weights(y_enc, sw, incremental)
        if cw is not None:
            sw = cw if sw is None else sw * cw
        rng = check_random_state(self.random_state)
        stochastic = self.solver in ("sgd", "adam")
        early_stopping = bool(self.early_stopping) and stochastic

        init = None
        if first:
            units = [X.shape[1], *self._hidden_sizes(), self.n_outputs_]
            init = self._initial_weights(rng, units)
        if not early_stopping:
            self._val = None
        elif not incremental or self._val is None:
            X, y_enc, sw, self._val = self._split(X, y_enc, sw, rng, stratify=not incremental)
        if first:
            # the shuffling stream: drawn after the weights and the split, as scikit-learn's
            # shuffles are
            seed = int(rng.randint(np.iinfo(np.int32).max))
            self._build_model(X.shape[1], self.n_outputs_, seed, X.dtype)
            assert init is not None
            self.model_.set_weights(init)
        elif self._compile_key() != self._compiled:
            self._compile()
        self._complete_records(stochastic, early_stopping)
        if not incremental:
            self.n_iter_ = 0
        if stochastic:
            epochs = 1 if incremental else self.max_iter
            self._run(X, y_enc, sw, epochs=epochs, incremental=incremental)
        else:
            self._fit_lbfgs(X, y_enc, sw)
        return self

    def _check_architecture(self) -> None:
        """warm_start and partial_fit continue the network they built."""
        model = self.model_
        sizes = [layer.out_features for layer in model.layers if isinstance(layer, _layers.Dense)]
        acts = [type(layer) for layer in model.layers if isinstance(layer, _layers.Activation)]
        if sizes[:-1] != self._hidden_sizes() or (acts and acts[0] is not self._activation):
            built = {v: k for k, v in _ACTIVATIONS.items()}.get(acts[0]) if acts else None
            raise ValueError(
                f"warm_start/partial_fit continue the fitted network (hidden_layer_sizes="
                f"{tuple(sizes[:-1])}, activation={built!r}); hidden_layer_sizes="
                f"{self.hidden_layer_sizes!r}, activation={self.activation!r} need a new fit "
                "(warm_start=False)"
            )

    def _batch(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be "
                "clipped",
                stacklevel=6,
            )
        return min(int(self.batch_size), n)

    def _split(
        self, X: Any, y_enc: Array, sw: Array | None, rng: Any, stratify: bool
    ) -> tuple[Any, Array, Array | None, tuple[Any, Array, Array | None]]:
        """Hold out validation_fraction of the rows: scikit-learn's split (the same rows for
        the same random_state: train_test_split draws them from the row count and the
        strata alone), stratified as its is (for a single-output classifier). X: an array
        or CsrRows; the rows are taken by index (copies, CSR rows stay CSR)."""
        strat = None
        if stratify and isinstance(self, ClassifierMixin) and self.n_outputs_ == 1:
            strat = y_enc
        train, val = train_test_split(
            np.arange(X.shape[0]),
            test_size=self.validation_fraction,
            random_state=rng,
            stratify=strat,
        )
        if val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size "
                "of your dataset."
            )
        sw_tr, sw_val = (sw[train], sw[val]) if sw is not None else (None, None)
        return X[train], y_enc[train], sw_tr, (X[val], y_enc[val], sw_val)

    def _run(
        self, X: Array, y_enc: Array, sw: Array | None, epochs: int, incremental: bool
    ) -> None:
        """Train for up to `epochs` epochs in one model.fit call, _Stopping deciding when to
        stop; then restore the best weights (early_stopping) and warn if max_iter ran out.

        A step that would make the loss or the weights non-finite is refused by the core:
        without early stopping that is scikit-learn's ValueError; under early stopping
        training ends there (a RuntimeWarning says so) with the best weights restored."""
        model = self.model_
        stopping = _Stopping(self, X.shape[0])
        diverged = False
        try:
            history = model.fit(
                X, y_enc, epochs=epochs, batch_size=self._batch(X.shape[0]),
                shuffle=self.shuffle, sample_weight=sw, validation_data=self._val,
                callbacks=[stopping],
                on_nonfinite="stop" if self._val is not None else "raise",
            )  # fmt: skip
            diverged = history.stop_reason == "non-finite"
        except KeyboardInterrupt:
            # the core stops at a batch boundary with the weights of the last completed step
            warnings.warn("Training interrupted by user.", stacklevel=5)
        except FloatingPointError as e:
            raise ValueError(_NONFINITE) from e
        ended = stopping.stopped or diverged
        # a partial_fit stream keeps its current weights until early stopping ends it
        if self._val is not None and self._best is not None and (ended or not incremental):
            model.set_weights(self._best)
        if ended:
            # only a validation stop ends a partial_fit stream
            self.stopped_early_ = self._val is not None
        elif not incremental and self.n_iter_ == self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=5,
            )

    def _fit_lbfgs(self, X: Array, y_enc: Array, sw: Array | None) -> None:
        """scikit-learn's _fit_lbfgs: scipy's L-BFGS-B over the flat parameters with the
        same options (maxfun, maxiter, gtol=tol), on the full-batch objective (data loss +
        its L2 term) and gradient from the core. n_iter_, loss_ and the ConvergenceWarning
        are scikit-learn's; loss_curve_ records the objective after each iteration."""
        model = self.model_
        shapes = [w.shape for w in model.get_weights()]
        cuts = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
        scale = self._scale
        last: dict[str, Any] = {}

        def unpack(theta: Array) -> list[Array]:
            return [p.reshape(s) for p, s in zip(np.split(theta, cuts), shapes, strict=True)]

        def objective(theta: Array) -> tuple[float, Array]:
            model.set_weights(unpack(theta))
            try:
                loss, grad = model.loss_and_gradient(X, y_enc, sw)
            except FloatingPointError as e:
                raise ValueError(_NONFINITE) from e
            if not math.isfinite(loss):
                raise ValueError(_NONFINITE)
            last["x"], last["f"] = theta.copy(), loss * scale
            return loss * scale, grad.astype(np.float64) * scale

        curve = self.loss_curve_

        def iteration(xk: Array) -> None:
            f = last["f"] if "x" in last and np.array_equal(xk, last["x"]) else objective(xk)[0]
            curve.append(f)
            if self.verbose:
                print(f"Iteration {len(curve)}, loss = {f:.8f}")

        x0 = np.concatenate([w.ravel() for w in model.get_weights()]).astype(np.float64)
        result = scipy.optimize.minimize(
            objective,
            x0,
            method="L-BFGS-B",
            jac=True,
            callback=iteration,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
        )
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = float(result.fun)
        best = self.loss_ if self.best_loss_ is None else self.best_loss_
        self.best_loss_ = float(min([best, self.loss_, *curve]))
        model.set_weights(unpack(result.x))

    # -- the learning-rate schedules (solver="sgd"), scikit-learn's SGDOptimizer's --------

    def _set_learning_rate(self, lr: float) -> None:
        """Change SGD's learning rate to lr (scikit-learn's, times _scale in the network).
        scikit-learn's velocity holds -lr * (torch's buffer), so the buffer is rescaled by
        old/new to keep the two updates equal across the change."""
        model = self.model_
        opt = model.optimizer
        assert opt is not None
        new = lr * self._scale
        old = opt.lr
        self._learning_rate = lr
        if new == old:
            return
        if "velocity" in opt.buffer_names:
            state = model.get_state()
            state["optimizer"]["buffers"]["velocity"] *= old / new
            model.set_state(state)
        opt.lr = new

    def _iteration_ends(self) -> None:
        """invscaling: lr = learning_rate_init / (t_ + 1) ** power_t after every epoch."""
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._set_learning_rate(
                float(self.learning_rate_init) / (self.t_ + 1) ** float(self.power_t)
            )

    def _trigger_stopping(self, message: str) -> bool:
        """True to stop; "adaptive" divides the learning rate by 5 instead, until <= 1e-6."""
        if not (self.solver == "sgd" and self.learning_rate == "adaptive"):
            if self.verbose:
                print(message + " Stopping.")
            return True
        if self._learning_rate <= 1e-6:
            if self.verbose:
                print(message + " Learning rate too small. Stopping.")
            return True
        self._set_learning_rate(self._learning_rate / 5.0)
        if self.verbose:
            print(message + f" Setting learning rate to {self._learning_rate:f}")
        return False

    # -- prediction ------------------------------------------------------------------------

    def _outputs(self, X: Any) -> Array:
        """The network's outputs (logits for a classifier) for X, in the network's dtype."""
        check_is_fitted(self)
        X = validate_data(
            self,
            X,
            reset=False,
            accept_sparse=_SPARSE_FORMATS,
            dtype=(np.float64, np.float32),
            order="C",
        )
        out = self.model_.predict(X.astype(self.model_.dtype, copy=False))
        # float32 only when both the network and X are (as scikit-learn's products promote)
        return out.astype(np.result_type(X.dtype, out.dtype), copy=False)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # scipy.sparse X, as scikit-learn's MLP
        return tags

    # -- fitted attributes -----------------------------------------------------------------

    def _layer_arrays(self, which: str) -> list[Array]:
        check_is_fitted(self)
        dense = [layer for layer in self.model_.layers if isinstance(layer, _layers.Dense)]
        return [layer.W if which == "coefs_" else layer.b for layer in dense]

    def _set_layer_arrays(self, which: str, values: Any) -> None:
        check_is_fitted(self)
        current = self._layer_arrays(which)
        values = list(values)
        if len(values) != len(current):
            raise ValueError(f"{which} must be a list of {len(current)} arrays, got {len(values)}")
        weights = self.model_.get_weights()
        for i, (value, now) in enumerate(zip(values, current, strict=True)):
            if np.shape(value) != now.shape:
                raise ValueError(f"{which}[{i}] must have shape {now.shape}, got {np.shape(value)}")
            weights[2 * i + (which == "intercepts_")] = value
        self.model_.set_weights(weights)  # checks the values (finite, real) first

    @property
    def coefs_(self) -> list[Array]:
        """Weight matrices (n_in, n_out) per layer: read-only views of the network's
        parameters; assigning the list or an item writes through to the network."""
        return _LayerArrays(self, "coefs_")

    @coefs_.setter
    def coefs_(self, values: Any) -> None:
        self._set_layer_arrays("coefs_", values)

    @property
    def intercepts_(self) -> list[Array]:
        """Bias vectors (n_out,) per layer: read-only views of the network's parameters;
        assigning the list or an item writes through to the network."""
        return _LayerArrays(self, "intercepts_")

    @intercepts_.setter
    def intercepts_(self, values: Any) -> None:
        self._set_layer_arrays("intercepts_", values)

    @property
    def n_layers_(self) -> int:
        """Layers counted as scikit-learn does: the input, each hidden layer, the output."""
        check_is_fitted(self)
        return sum(isinstance(layer, _layers.Dense) for layer in self.model_.layers) + 1

    @property
    def out_activation_(self) -> str:
        """The output activation: "softmax", "logistic" (binary, multilabel), "exp"
        (poisson) or "identity"."""
        check_is_fitted(self)
        assert self.model_.loss is not None
        return _OUT_ACTIVATION.get(self.model_.loss.name, "identity")

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
        state.pop("_decay", None)  # release 0.1.0's alpha as weight decay
        super().__setstate__(state)
        # parameters added since a pickle was written take their defaults
        for name, default in self._get_param_defaults().items():
            if name not in state:
                setattr(self, name, default)
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
        self._upgrade()

    @classmethod
    def _get_param_defaults(cls) -> dict[str, Any]:
        import inspect

        signature = inspect.signature(cls.__init__)
        return {name: p.default for name, p in signature.parameters.items() if name != "self"}

    def _legacy_model(self, legacy: dict[str, Any]) -> Sequential:
        """The network of an estimator pickled by release 0.1.0, which stored the build
        seed, the parameters [W0, b0, ...], the optimizer's buffers and step count and the
        shuffling generator's state."""
        if not hasattr(self, "_y_type") and isinstance(self, ClassifierMixin):
            self._y_type = "binary" if self.classes_.size == 2 else "multiclass"
        model = self._build_model(self.n_features_in_, self.n_outputs_, legacy["seed"], self.dtype)
        model.set_weights(legacy["params"])
        state = model.get_state()
        state["optimizer"] = {"steps": legacy["steps"], "buffers": legacy["optimizer"]}
        state["rng"] = legacy["rng"]
        model.set_state(state)
        return model

    def _upgrade(self) -> None:
        """The records of pickles from earlier releases in today's form (None where
        scikit-learn has None)."""
        if isinstance(self, ClassifierMixin) and not hasattr(self, "_y_type"):
            self._y_type = "binary" if self.classes_.size == 2 else "multiclass"
        if not hasattr(self, "loss_") and self.loss_curve_:
            self.loss_ = self.loss_curve_[-1]
        if not hasattr(self, "_learning_rate"):
            self._learning_rate = float(self.learning_rate_init)
        if not hasattr(self, "_compiled"):
            self._compiled = self._compile_key()
        if self._val is None:
            self.validation_scores_ = self.val_loss_curve_ = self.best_validation_score_ = None
        else:
            self.best_loss_ = None


class _Stopping(Callback):
    """An estimator's per-epoch bookkeeping, scikit-learn's stopping rule and its
    learning-rate schedules, run by model.fit after every epoch (in the order of
    scikit-learn's _fit_stochastic).

    Records the epoch's objective (the mean data loss + the L2 term, from the core) as
    loss_ and in loss_curve_, and counts n_iter_ and t_ (n_rows per epoch). Under
    early_stopping it scores the validation set into validation_scores_ and val_loss_curve_,
    and snapshots the weights into the estimator's _best whenever the score reaches a new
    best. The monitored value (training loss, or validation score under early_stopping)
    goes through Plateau(rule="sklearn"), which starts from the estimator's best_loss_ /
    best_validation_score_ and _no_improvement_count so that partial_fit and warm_start fits
    carry the count on, and writes them back every epoch. Then "invscaling" sets the next
    learning rate, and once more than n_iter_no_change epochs in a row brought no gain of
    tol, training stops (`stopped` becomes True) — or, with learning_rate="adaptive", the
    learning rate is divided by 5 and the count starts again, until it is <= 1e-6.
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
        # the core's epoch loss includes the L2 term, batch by batch, as scikit-learn's
        loss = logs["loss"] * est._scale
        est.n_iter_ += 1
        est.t_ += self.n_rows
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if est._val is None:
            value, what = loss, "Training loss"
        else:
            value, what = est._val_score(*est._val), "Validation score"
            assert est.validation_scores_ is not None and est.val_loss_curve_ is not None
            est.validation_scores_.append(value)
            est.val_loss_curve_.append(logs["val_loss"] * est._scale)
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
                est._best = est.model_.get_weights()
        est._iteration_ends()
        if self.plateau.wait > est.n_iter_no_change:
            message = (
                f"{what} did not improve more than tol={est.tol:f} for "
                f"{est.n_iter_no_change} consecutive epochs."
            )
            if est._trigger_stopping(message):
                self.stopped = True
                self.model.stop_training = True
            else:
                self.plateau.wait = est._no_improvement_count = 0


_DOC_PARAMS = """
    Parameters (scikit-learn's, same defaults; the differences are said where they are):

    hidden_layer_sizes: int or sequence of ints, default (100,); the widths of the hidden
        layers (empty: a linear model).
    activation: "relu" (default), "tanh", "logistic", "identity", or "leaky_relu" (slope
        0.01; not in scikit-learn).
    solver: "adam" (default), "sgd" or "lbfgs" (full-batch L-BFGS-B from scipy, as
        scikit-learn's: max_iter iterations, max_fun loss evaluations, gtol=tol).
    alpha: L2 strength, default 1e-4: scikit-learn's term, alpha / 2 * sum ||W||^2 over the
        weights (not the biases), divided by each batch's size (or sample-weight sum),
        computed in the core with the loss.
    batch_size: "auto" (min(200, n_samples)) or an int (clipped to n_samples, with
        scikit-learn's warning).
    learning_rate: "constant" (default), "invscaling" (learning_rate_init / (t_ + 1) **
        power_t after every epoch) or "adaptive" (divided by 5 when the stopping rule would
        stop, stopping once it is <= 1e-6): scikit-learn's schedules, for solver="sgd".
    learning_rate_init: step size, default 1e-3 (sgd, adam). power_t: default 0.5.
    max_iter: maximum epochs (lbfgs: iterations), default 200 (ConvergenceWarning when
        reached).
    shuffle: reshuffle the rows every epoch. The order is this library's own random stream
        (seeded from random_state), so the batches differ from scikit-learn's unless
        shuffle=False.
    random_state: None, an int or a RandomState: the initial weights (scikit-learn's, drawn
        the same way from the same generator), the validation split (scikit-learn's rows)
        and the shuffling.
    tol, n_iter_no_change (an int or np.inf): stop when the training loss (or, with
        early_stopping, the validation score) has not improved by tol for n_iter_no_change
        + 1 epochs (scikit-learn's rule, ties included).
    verbose: print the loss per epoch (per iteration for lbfgs).
    warm_start: fit() continues from the current weights and, unlike scikit-learn (which
        starts a new optimizer each fit), the optimizer state and learning rate: two
        warm-started fits of n epochs are one fit of 2n. After a change of a parameter the
        loss or optimizer is built from, the optimizer starts afresh, as scikit-learn's.
    momentum, nesterovs_momentum: SGD momentum (default 0.9) and Nesterov's variant; the
        updates equal scikit-learn's (also across learning-rate changes).
    early_stopping: hold out validation_fraction of the data (the rows scikit-learn holds
        out), score it after every epoch (validation_scores_: accuracy or R², weighted by
        sample_weight, NaN when the outputs overflow; its loss in val_loss_curve_), stop
        when it stops improving and keep the best weights. partial_fit works with it (not
        in scikit-learn): the first call holds out the validation set and later calls score
        on it; once the score stops improving the best weights are restored,
        stopped_early_ becomes True and further partial_fit calls do nothing.
    validation_fraction: default 0.1.
    beta_1, beta_2, epsilon: Adam's parameters. The update is torch's Adam, whose epsilon
        is added after the bias correction of sqrt(v), scikit-learn's before: the same step
        for epsilon * sqrt(1 - beta_2**t) here (a difference only where |gradient| is near
        epsilon).
    max_fun: lbfgs's maximum number of loss evaluations, default 15000.
    dtype: None (default: float32 for float32 X, else float64, as scikit-learn), "float32"
        (the fast path, whatever X is) or "float64": the network's precision. predict and
        predict_proba return it, float64 when X or the network is float64 (scikit-learn's
        promotion: a float32 network asked about float64 X answers in float64).

    X (fit, partial_fit, predict, predict_proba, predict_log_proba, score): an array-like or,
    as in scikit-learn, a scipy.sparse matrix or array of any format (CSR and CSC as they
    are, other formats converted to CSR by scikit-learn's validate_data; int32 or int64
    indices), under the same dtype rule (float32 data: a float32 network with dtype=None).
    Sparse X is never densified: it is converted once per call to the CSR rows the
    network's first layer reads (the early-stopping split takes rows of it), and NaN or
    infinity among its stored values is scikit-learn's ValueError.

    Fitted attributes (scikit-learn's): coefs_ and intercepts_ (read-only views of the
    weights; assigning them writes through), n_layers_, n_outputs_, out_activation_, loss_,
    best_loss_ (None under early stopping), loss_curve_ (per epoch: the mean data loss plus
    the L2 term), validation_scores_ and best_validation_score_ (None without early
    stopping), t_ (samples seen), n_iter_ (epochs of the last fit; partial_fit counts up
    where scikit-learn's stays 1), n_features_in_, feature_names_in_ (for a DataFrame).
    Also: model_ (the trained backprop.Sequential), val_loss_curve_, stopped_early_.
    Ctrl-C ends training at a batch boundary with a warning, keeping the weights of the last
    step (as scikit-learn). A step that would make the weights non-finite raises
    scikit-learn's ValueError (under early stopping: training stops there, best weights
    restored). Fitted estimators pickle: the network travels as its config and state
    (weights, optimizer buffers and step count, shuffling state), so the copy predicts the
    same and training continues exactly; unpickling checks that state (ValueError if it is
    invalid) and also reads the pickles of release 0.1.0.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):  # type: ignore[misc]
    """Multi-layer perceptron classifier trained by the compiled core.

    Targets as scikit-learn's: labels (n_samples,) of any kind (strings, bools, integers;
    classes_ holds them sorted, as LabelBinarizer), or a multilabel indicator matrix
    (n_samples, n_labels). Two classes train one logit with BinaryCrossEntropy (scikit-learn's
    logistic output), more one logit per class with SoftmaxCrossEntropy; multilabel targets
    one logit per label with BinaryCrossEntropy (the objective, steps and loss_curve_ equal
    scikit-learn's, whose log-loss sums over the labels), predict then gives the indicator
    matrix and predict_proba each label's probability.

    loss: "log_loss" (the only choice; kept for symmetry with MLPRegressor).
    class_weight (not in scikit-learn): None, "balanced" (n_samples / (n_classes *
        count(class)), counts weighted by sample_weight, as
        sklearn.utils.class_weight.compute_class_weight) or a dict {label: weight};
        multiplies sample_weight. "balanced" is refused by partial_fit; class weights are
        refused for multilabel targets.
    """

    __doc__ = (__doc__ or "") + _DOC_PARAMS

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"log_loss"})],
        "class_weight": [None, StrOptions({"balanced"}), dict],
    }

    _y_type: str

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        loss: str = "log_loss",
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
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
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        dtype: Any = None,
        class_weight: Any = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
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
        self.max_fun = max_fun
        self.dtype = dtype
        self.class_weight = class_weight

    @_fit_method
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train from scratch (or from the current weights with warm_start).

        X: (n_samples, n_features), an array or scipy.sparse (any format, never
        densified); y: (n_samples,) labels or a (n_samples, n_labels)
        indicator matrix; sample_weight: (n_samples,) >= 0.
        """
        return self._fit(X, y, sample_weight, incremental=False)  # type: ignore[no-any-return]

    @_stochastic_only
    @_fit_method
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        """One epoch over (X, y). The first call needs `classes` (every label to expect;
        for a multilabel y any non-None value, the labels being its columns)."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit. (partial_fit "
                    "needs classes= listing every label to expect.)"
                )
        elif classes is not None and self._y_type != "multilabel-indicator":
            if not np.array_equal(self.classes_, unique_labels(classes)):
                raise ValueError(
                    f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                    f"was: {self.classes_!r}"
                )
        return self._fit(  # type: ignore[no-any-return]
            X, y, sample_weight, incremental=True, classes=classes
        )

    @property
    def _scale(self) -> int:
        if getattr(self, "_y_type", "") == "multilabel-indicator":
            return int(self.n_outputs_)
        return 1

    def _make_loss(self) -> _losses.Loss:
        if getattr(self, "_y_type", "") == "multiclass":
            return _losses.SoftmaxCrossEntropy()
        return _losses.BinaryCrossEntropy()

    def _encode_y(self, y: Array, first: bool, incremental: bool, classes: Any) -> Array:
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        multilabel = type_of_target(y).startswith("multilabel")
        if first:
            binarizer = LabelBinarizer()
            binarizer.fit(classes if incremental and not multilabel else y)
            if binarizer.classes_.size < 2 and not multilabel:
                raise ValueError(
                    "MLPClassifier needs at least 2 classes in y, got one class: "
                    f"{binarizer.classes_!r}"
                )
            self.classes_ = binarizer.classes_
            self._y_type = binarizer.y_type_
            self.n_outputs_ = 1 if self._y_type == "binary" else int(self.classes_.size)
        if multilabel != (self._y_type == "multilabel-indicator"):
            raise ValueError(
                f"y is {type_of_target(y)!r}, the classifier was fitted on {self._y_type!r} targets"
            )
        if multilabel:
            if y.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"y has {y.shape[1]} labels, the classifier was fitted with {self.n_outputs_}"
                )
            return np.ascontiguousarray(y, dtype=np.float64)
        labels = unique_labels(y)
        if not first and self.warm_start and not incremental:
            if set(labels) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {self.classes_}, `y` has {labels}"
                )
        elif len(np.setdiff1d(labels, self.classes_, assume_unique=True)):
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has "
                f"{self.classes_}. 'y' has {labels}."
            )
        idx = np.searchsorted(self.classes_, y)
        if self.n_outputs_ == 1:
            return np.ascontiguousarray(idx.reshape(-1, 1), dtype=np.float64)
        return np.ascontiguousarray(idx, dtype=np.int64)

    def _class_weights(
        self, y_enc: Array, sample_weight: Array | None, incremental: bool
    ) -> Array | None:
        """Per-row factors from class_weight, or None. y_enc: encoded labels (n,) or (n, 1)."""
        cw = self.class_weight
        if cw is None:
            return None
        if self._y_type == "multilabel-indicator":
            raise ValueError(
                "class_weight is not supported for multilabel targets; pass sample_weight"
            )
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
        return np.ascontiguousarray(per_class[labels], dtype=np.float64)

    def _val_score(self, X: Array, y_enc: Array, sample_weight: Array | None) -> float:
        """Accuracy (subset accuracy for multilabel) on the held-out rows, weighted; NaN
        when the network's outputs overflow."""
        try:
            out = self.model_.predict(X)
        except FloatingPointError:
            return float("nan")
        if self._y_type == "multilabel-indicator":
            hit = np.all((out > 0) == (y_enc > 0.5), axis=1)
        else:
            hit = self._predict_index(out) == y_enc.reshape(-1).astype(np.intp)
        return float(np.average(hit.astype(np.float64), weights=sample_weight))

    def _predict_index(self, out: Array) -> NDArray[np.intp]:
        if out.shape[1] == 1:
            return (out[:, 0] > 0).astype(np.intp)
        return np.asarray(np.argmax(out, axis=1), dtype=np.intp)

    def predict(self, X: Any) -> Array:
        """Labels (n_samples,) from classes_; for multilabel targets the indicator matrix
        (n_samples, n_labels) of ints."""
        out = self._outputs(X)
        if self._y_type == "multilabel-indicator":
            return (out > 0).astype(int)
        return self.classes_[self._predict_index(out)]

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities (n_samples, n_classes) in the network's dtype, columns in the
        order of classes_; for multilabel targets each label's probability (n_samples,
        n_labels)."""
        out = self._outputs(X)
        assert self.model_.loss is not None
        p = self.model_.loss.link(out)
        if self._y_type == "binary":
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

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):  # type: ignore[misc]
    """Multi-layer perceptron regressor trained by the compiled core; one output per target
    column (y of shape (n_samples,) or (n_samples, n_targets)).

    loss: "squared_error" (default; scikit-learn's, half the mean squared error over all
        outputs, backprop.MSE(half=True)), "poisson" (scikit-learn's: half the Poisson
        deviance summed over the outputs, with an exp output, y >= 0;
        backprop.Poisson("sum_outputs")), or, not in scikit-learn, "absolute_error"
        (backprop.MAE) and "huber" (backprop.Huber(huber_delta)), means over all outputs.
        With several outputs scikit-learn's squared-error gradient is n_outputs times the
        gradient of the loss it reports (its issue #8349); here loss and gradient agree, so
        SGD steps are 1 / n_outputs of its steps there (single-output fits are the same).
    huber_delta: the Huber loss's threshold, default 1.0.

    Note: scikit-learn 1.7+ takes `loss` as its first positional parameter; here, as in
    MLPClassifier and earlier scikit-learn, the first positional parameter is
    hidden_layer_sizes (pass loss by keyword).
    """

    __doc__ = (__doc__ or "") + _DOC_PARAMS

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson", "absolute_error", "huber"})],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        loss: str = "squared_error",
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
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
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        dtype: Any = None,
        huber_delta: float = 1.0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
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
        self.max_fun = max_fun
        self.dtype = dtype
        self.huber_delta = huber_delta

    @_fit_method
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train from scratch (or from the current weights with warm_start).

        X: (n_samples, n_features), an array or scipy.sparse (any format, never
        densified); y: (n_samples,) or (n_samples, n_targets);
        sample_weight: (n_samples,) >= 0.
        """
        return self._fit(X, y, sample_weight, incremental=False)  # type: ignore[no-any-return]

    @_stochastic_only
    @_fit_method
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight, incremental=True)  # type: ignore[no-any-return]

    def _make_loss(self) -> _losses.Loss:
        if self.loss == "poisson":
            return _losses.Poisson("sum_outputs")
        if self.loss == "absolute_error":
            return _losses.MAE()
        if self.loss == "huber":
            return _losses.Huber(delta=self.huber_delta)
        return _losses.MSE(half=True)

    def _encode_y(self, y: Array, first: bool, incremental: bool, classes: Any) -> Array:
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        n_out = 1 if y.ndim == 1 else y.shape[1]
        if first:
            self.n_outputs_ = n_out
        elif n_out != self.n_outputs_:
            raise ValueError(
                f"y has {n_out} targets but the model was fitted with {self.n_outputs_}"
            )
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for Poisson regression."
            )
        return np.ascontiguousarray(y.reshape(y.shape[0], n_out))

    def _link(self, out: Array) -> Array:
        """Network outputs -> predictions: exp for poisson, else the outputs."""
        assert self.model_.loss is not None
        if self.model_.loss.name == "poisson":
            return self.model_.loss.link(out)
        return out

    def _val_score(self, X: Array, y_enc: Array, sample_weight: Array | None) -> float:
        """R² (averaged over outputs) on the held-out rows, weighted; NaN when the
        predictions are not finite."""
        try:
            pred = self._link(self.model_.predict(X))
        except FloatingPointError:
            return float("nan")
        if not np.isfinite(pred).all():
            return float("nan")
        with np.errstate(over="ignore", invalid="ignore"):  # finite but huge: -inf or NaN
            return float(r2_score(y_enc, pred, sample_weight=sample_weight))

    def predict(self, X: Any) -> Array:
        """Predictions in the network's dtype: (n_samples,) for one target, else
        (n_samples, n_targets); for loss="poisson" the means exp(network output)."""
        out = self._link(self._outputs(X))
        return out[:, 0] if self.n_outputs_ == 1 else out

    def to_onnx(self, path: str | os.PathLike[str], *, opset: int = onnx_export.OPSET) -> None:
        """Write the fitted network as an ONNX model (needs the onnx package): input "X"
        (batch, n_features_in_), output "Y", predict's values in the model's dtype, (batch,)
        for one target, else (batch, n_targets); for loss="poisson" the means exp(network
        output), as predict."""
        check_is_fitted(self)
        onnx_export.export_regressor(self.model_, path, opset=opset)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.positive_only = self.loss == "poisson"
        return tags


__all__ = ["MLPClassifier", "MLPRegressor"]
