"""backprop.sklearn against scikit-learn's own MLPClassifier/MLPRegressor, feature by feature.

With the same random_state both draw the same initial weights and hold out the same
validation rows, so with shuffle=False (the mini-batch order is the one thing drawn
differently) whole fits can be compared number for number: the weights after several epochs
of mini-batch SGD agree to float64 rounding (rtol 1e-9), for every activation, loss, target
type, learning-rate schedule, sample/class weights and early stopping. Adam is compared
through scikit-learn's own AdamOptimizer with its epsilon rescaled to torch's placement
(the one stated difference, see test_adam_*). lbfgs's final loss is within 1e-6 relative
of scikit-learn's. With shuffling on, scores on the classic datasets are within a stated
margin. Small data and few epochs keep this module at a few seconds.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    make_blobs,
    make_multilabel_classification,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.neural_network import _multilayer_perceptron as sk_mlp
from sklearn.neural_network import _stochastic_optimizers as sk_optim
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

from backprop.model import Sequential
from backprop.sklearn import MLPClassifier, MLPRegressor
from backprop.training import History

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]


def params(est):
    return est.coefs_ + est.intercepts_


def assert_same_network(ours, theirs, rtol=1e-9, atol=1e-12):
    assert len(ours.coefs_) == len(theirs.coefs_)
    for a, b in zip(params(ours), params(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def blobs(n=90, k=3, features=4, seed=0):
    X, y = make_blobs(n_samples=n, centers=k, n_features=features, cluster_std=2.0,
                      random_state=seed)  # fmt: skip
    return StandardScaler().fit_transform(X), y


def regression(n=90, outputs=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    Y = np.c_[X @ [1.0, -2.0, 0.5, 0.0], np.sin(X[:, 0]) + X[:, 1] * X[:, 2], X[:, 3] ** 2]
    Y = Y + 0.1 * rng.normal(size=Y.shape)
    return X, (Y[:, 0] if outputs == 1 else Y[:, :outputs])


def both(make_ours, make_theirs, **kw):
    """Our estimator and scikit-learn's with the same parameters."""
    return make_ours(**kw), make_theirs(**kw)


SGD = dict(solver="sgd", shuffle=False, batch_size=32, momentum=0.9, random_state=0)


# -- initialisation ------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_initial_weights_are_sklearns(monkeypatch, activation):
    """The same draws from the same generator: scikit-learn's _init_coef (factor 2 for
    logistic, 6 otherwise), weights then bias, layer by layer."""
    monkeypatch.setattr(Sequential, "fit", lambda self, *a, **k: History())
    monkeypatch.setattr(SkMLPClassifier, "_fit_stochastic", lambda self, *a, **k: None)
    X, y = blobs()
    ours, theirs = both(MLPClassifier, SkMLPClassifier, hidden_layer_sizes=(7, 5),
                        activation=activation, random_state=42)  # fmt: skip
    ours.fit(X, y)
    theirs.fit(X, y)
    for a, b in zip(params(ours), params(theirs), strict=True):
        np.testing.assert_array_equal(a, b)


# -- whole fits, number for number ---------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_each_activation_fits_as_sklearns(activation):
    """A mutation building the wrong activation (tanh for "logistic", ...) fails here."""
    X, y = blobs()
    kw = dict(hidden_layer_sizes=(8,), activation=activation, alpha=1e-3,
              learning_rate_init=0.05, max_iter=4, **SGD)  # fmt: skip
    ours, theirs = both(MLPClassifier, SkMLPClassifier, **kw)
    assert_same_network(ours.fit(X, y), theirs.fit(X, y))
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-10)
    assert ours.out_activation_ == theirs.out_activation_ == "softmax"
    Xr, yr = regression()
    ours, theirs = both(MLPRegressor, SkMLPRegressor, **kw)
    assert_same_network(ours.fit(Xr, yr), theirs.fit(Xr, yr))
    np.testing.assert_allclose(ours.predict(Xr), theirs.predict(Xr), rtol=1e-9, atol=1e-12)


def test_binary_and_string_labels_fit_as_sklearns():
    X, y = blobs(k=2)
    labels = np.array(["no", "yes"])[y]
    kw = dict(hidden_layer_sizes=(6, 4), learning_rate_init=0.05, max_iter=5, **SGD)
    ours, theirs = both(MLPClassifier, SkMLPClassifier, **kw)
    assert_same_network(ours.fit(X, labels), theirs.fit(X, labels))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert (ours.n_outputs_, ours.n_layers_, ours.out_activation_) == (1, 4, "logistic")
    assert (theirs.n_outputs_, theirs.n_layers_, theirs.out_activation_) == (1, 4, "logistic")


@pytest.mark.parametrize(("momentum", "nesterov"), [(0.9, True), (0.8, False), (0.0, True)])
@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_learning_rate_schedules_fit_as_sklearns(schedule, momentum, nesterov):
    """Momentum across learning-rate changes: the velocity buffer is rescaled at every
    change, so the steps stay scikit-learn's."""
    X, y = blobs()
    kw = dict(hidden_layer_sizes=(8,), learning_rate=schedule, learning_rate_init=0.5,
              power_t=0.25, nesterovs_momentum=nesterov, tol=0.05, n_iter_no_change=1,
              max_iter=12, **{**SGD, "momentum": momentum})  # fmt: skip
    ours, theirs = both(MLPClassifier, SkMLPClassifier, **kw)
    assert_same_network(ours.fit(X, y), theirs.fit(X, y), rtol=1e-8)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours._learning_rate == pytest.approx(theirs._optimizer.learning_rate, rel=1e-15)


def sklearn_learning_rates(loss_curve, n_rows, schedule, lr, power_t, tol, n_iter_no_change):
    """The learning rate of each epoch from scikit-learn's own SGDOptimizer, driven by the
    events of _fit_stochastic: iteration_ends(t_) after each epoch, and trigger_stopping
    when its _update_no_improvement_count (run on a real estimator) exceeds
    n_iter_no_change."""
    optimizer = sk_optim.SGDOptimizer([np.zeros(1)], lr, schedule, power_t=power_t)
    sk = SkMLPClassifier(tol=tol, n_iter_no_change=n_iter_no_change)
    sk.loss_curve_, sk._no_improvement_count, sk.best_loss_ = [], 0, np.inf
    rates, t = [], 0
    for loss in loss_curve:
        rates.append(optimizer.learning_rate)
        sk.loss_curve_.append(loss)
        sk._update_no_improvement_count(False, None, None, None)
        t += n_rows
        optimizer.iteration_ends(t)
        if sk._no_improvement_count > n_iter_no_change:
            if optimizer.trigger_stopping("", False):
                break
            sk._no_improvement_count = 0
    return rates


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_learning_rate_sequences_equal_sklearns(schedule):
    """Each epoch's learning rate (what the network trained with, from model_.history) is
    the one scikit-learn's SGDOptimizer gives for the same events; "adaptive" divides by 5
    until the rate is <= 1e-6, then stops."""
    X, y = blobs(n=60)
    # tol larger than any gain: every epoch is "no improvement"
    kw = dict(solver="sgd", learning_rate=schedule, learning_rate_init=0.01, power_t=0.3,
              tol=1e3, n_iter_no_change=2, max_iter=40, random_state=0)  # fmt: skip
    ours = MLPClassifier((4,), **kw).fit(X, y)
    rates = ours.model_.history.lr
    assert len(rates) == ours.n_iter_
    want = sklearn_learning_rates(ours.loss_curve_, len(X), schedule, 0.01, 0.3, 1e3, 2)
    np.testing.assert_allclose(rates, want, rtol=1e-15)
    if schedule == "adaptive":
        # the first epoch is progress (from inf); then every 3 stalled epochs a reduction,
        # six of them (0.01 / 5**6 < 1e-6), and the stop 3 epochs later
        assert ours.n_iter_ == 1 + 3 * 7 and want[-1] == pytest.approx(0.01 / 5**6)
    if schedule == "invscaling":
        assert rates[1] == pytest.approx(0.01 / (len(X) + 1) ** 0.3)


def test_poisson_fits_as_sklearns():
    X, _ = regression()
    y = np.random.default_rng(1).poisson(np.exp(0.5 * X[:, 0] + 1.0)).astype(float)
    kw = dict(hidden_layer_sizes=(6,), loss="poisson", learning_rate_init=0.01, alpha=1e-2,
              max_iter=5, **SGD)  # fmt: skip
    ours = MLPRegressor(**kw).fit(X, y)
    theirs = SkMLPRegressor(**kw).fit(X, y)
    assert_same_network(ours, theirs)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9)  # exp output
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit(X, -y)


def test_multilabel_fits_as_sklearns():
    """One sigmoid output per label. scikit-learn's multilabel log-loss sums over the labels
    (BinaryCrossEntropy averages): the estimator scales so that loss_curve_, the steps and
    alpha's weight are scikit-learn's."""
    X, Y = make_multilabel_classification(80, 6, n_classes=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    kw = dict(hidden_layer_sizes=(8,), alpha=1e-2, learning_rate_init=0.05, max_iter=5, **SGD)
    ours, theirs = both(MLPClassifier, SkMLPClassifier, **kw)
    assert_same_network(ours.fit(X, Y), theirs.fit(X, Y))
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.predict(X).dtype == theirs.predict(X).dtype
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.n_outputs_ == theirs.n_outputs_ == 4
    assert ours.out_activation_ == theirs.out_activation_ == "logistic"
    assert ours.score(X, Y) == theirs.score(X, Y)  # subset accuracy
    ours, theirs = both(MLPClassifier, SkMLPClassifier, hidden_layer_sizes=(8,),
                        solver="lbfgs", max_iter=30, random_state=0)  # fmt: skip
    assert ours.fit(X, Y).loss_ == pytest.approx(theirs.fit(X, Y).loss_, rel=1e-6)


def test_multi_output_regression_loss_and_gradient_agree():
    """scikit-learn's squared-error gradient is n_outputs times the gradient of the loss it
    reports (its issue #8349); ours is the loss's gradient: n_outputs times smaller there,
    equal for one output. So SGD needs n_outputs times scikit-learn's learning rate (and
    alpha / n_outputs) to step as it does."""
    X, Y = regression(outputs=3)
    lr = 0.02
    kw = dict(hidden_layer_sizes=(6,), max_iter=4, **SGD)
    ours = MLPRegressor(learning_rate_init=3 * lr, alpha=1e-2 / 3, **kw).fit(X, Y)
    theirs = SkMLPRegressor(learning_rate_init=lr, alpha=1e-2, **kw).fit(X, Y)
    assert_same_network(ours, theirs)
    # ours: loss and gradient agree (a finite-difference check through the network)
    model = ours.model_
    _, grad = model.loss_and_gradient(X, Y)
    theta = np.concatenate([w.ravel() for w in model.get_weights()])
    rng = np.random.default_rng(0)
    direction = rng.normal(size=theta.size)
    shapes = [w.shape for w in model.get_weights()]

    def at(t):
        parts = np.split(t, np.cumsum([int(np.prod(s)) for s in shapes])[:-1])
        model.set_weights([p.reshape(s) for p, s in zip(parts, shapes, strict=True)])
        return model.loss_and_gradient(X, Y)[0]

    h = 1e-6
    slope = (at(theta + h * direction) - at(theta - h * direction)) / (2 * h)
    assert slope == pytest.approx(grad @ direction, rel=1e-6)


# -- Adam: beta_1, beta_2, epsilon ---------------------------------------------------------


class TorchPlacedEpsilonAdam(sk_optim.AdamOptimizer):
    """scikit-learn's AdamOptimizer with epsilon moved to torch's place: torch adds eps to
    sqrt(v) / sqrt(1 - beta_2**t), scikit-learn to sqrt(v), so torch's step is
    scikit-learn's with epsilon * sqrt(1 - beta_2**t)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epsilon_0 = self.epsilon

    def _get_updates(self, grads):
        self.epsilon = self.epsilon_0 * np.sqrt(1 - self.beta_2 ** (self.t + 1))
        return super()._get_updates(grads)


ADAM = [
    dict(),  # the defaults
    dict(beta_1=0.5, beta_2=0.9, epsilon=1e-3),
    dict(beta_1=0.0, beta_2=0.5, epsilon=0.1),
]


@pytest.mark.parametrize("adam", ADAM, ids=["defaults", "betas-eps", "beta1-0"])
@pytest.mark.parametrize("task", ["multiclass", "regression", "multilabel"])
def test_adam_fits_as_sklearns_with_torchs_epsilon_placement(monkeypatch, task, adam):
    monkeypatch.setattr(sk_mlp, "AdamOptimizer", TorchPlacedEpsilonAdam)
    if task == "regression":
        X, y = regression()
        make = (MLPRegressor, SkMLPRegressor)
    else:
        X, y = blobs()
        if task == "multilabel":
            X, y = make_multilabel_classification(90, 4, n_classes=3, random_state=0)
        make = (MLPClassifier, SkMLPClassifier)
    kw = dict(hidden_layer_sizes=(8,), solver="adam", learning_rate_init=0.01, alpha=1e-3,
              shuffle=False, batch_size=32, max_iter=4, random_state=0, **adam)  # fmt: skip
    ours, theirs = both(*make, **kw)
    assert_same_network(ours.fit(X, y), theirs.fit(X, y), rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("adam", ADAM[1:], ids=["betas-eps", "beta1-0"])
def test_adam_steps_differ_from_sklearns_only_by_epsilons_placement(adam):
    """Against scikit-learn's unmodified Adam: one full-batch step from the same weights
    moves each parameter by lr_t m / (sqrt(v) + eps c) here and lr_t m / (sqrt(v) + eps)
    there, c = sqrt(1 - beta_2**t) <= 1: ours is the larger step, by at most the factor
    (sqrt(v) + eps) / (sqrt(v) + eps c)."""
    X, y = regression()
    kw = dict(hidden_layer_sizes=(8,), learning_rate_init=0.01, batch_size=90, shuffle=False,
              random_state=0, **adam)  # fmt: skip
    ours, theirs = both(MLPRegressor, SkMLPRegressor, **kw)
    # step 1 from the same initial weights: the same gradient, so the same moments m, v
    ours.partial_fit(X, y)
    theirs.partial_fit(X, y)
    # step 2 from the same weights (theirs): the same gradient and moments again
    ours.coefs_, ours.intercepts_ = theirs.coefs_, theirs.intercepts_
    start = [p.copy() for p in params(theirs)]
    ours.partial_fit(X, y)
    theirs.partial_fit(X, y)
    c = np.sqrt(1 - adam["beta_2"] ** 2)
    eps = adam["epsilon"]
    vs = theirs._optimizer.vs
    for mine, its, before, v in zip(params(ours), params(theirs), start, vs, strict=True):
        step_ours, step_its = mine - before, its - before
        ratio = (np.sqrt(v) + eps) / (np.sqrt(v) + eps * c)
        np.testing.assert_allclose(step_ours, step_its * ratio, rtol=1e-9, atol=1e-15)
        assert np.all(np.abs(step_ours) >= np.abs(step_its) * (1 - 1e-9))


# -- lbfgs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_lbfgs_final_loss_equals_sklearns(activation):
    """The same initial weights, scipy's L-BFGS-B with scikit-learn's options, the core's
    loss and gradient (its objective, to float64 rounding): the final loss within 1e-6
    relative and the same iteration count, for single-output problems (binary
    classification, regression)."""
    Xb, yb = load_breast_cancer(return_X_y=True)
    Xb = StandardScaler().fit_transform(Xb)
    kw = dict(hidden_layer_sizes=(8,), activation=activation, solver="lbfgs", alpha=1e-3,
              random_state=0)  # fmt: skip
    ours, theirs = both(MLPClassifier, SkMLPClassifier, max_iter=60, **kw)
    ours.fit(Xb, yb)
    theirs.fit(Xb, yb)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    assert ours.n_iter_ == theirs.n_iter_
    Xd, yd = load_diabetes(return_X_y=True)
    yd = (yd - yd.mean()) / yd.std()
    ours, theirs = both(MLPRegressor, SkMLPRegressor, max_iter=40, **kw)
    ours.fit(Xd, yd)
    theirs.fit(Xd, yd)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    assert ours.n_iter_ == theirs.n_iter_
    assert len(ours.loss_curve_) == ours.n_iter_ and ours.loss_curve_[-1] == ours.loss_


def test_lbfgs_warm_start_continues_as_sklearns():
    """lbfgs keeps no state but the weights: a warm-started second fit is scikit-learn's."""
    X, y = blobs()
    ours, theirs = both(MLPClassifier, SkMLPClassifier, hidden_layer_sizes=(8,), solver="lbfgs",
                        max_iter=8, warm_start=True, random_state=0)  # fmt: skip
    for _ in range(2):
        ours.fit(X, y)
        theirs.fit(X, y)
        assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
        assert ours.n_iter_ == theirs.n_iter_ == 8
    assert_same_network(ours, theirs, rtol=1e-6, atol=1e-9)


def test_lbfgs_warns_and_counts_as_sklearn():
    X, y = blobs()
    for make in (MLPClassifier, SkMLPClassifier):
        with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 3"):
            est = make((8,), solver="lbfgs", max_iter=3, random_state=0).fit(X, y)
        assert est.n_iter_ == 3
        assert not hasattr(est, "partial_fit")  # lbfgs has no partial_fit
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as err:
        MLPClassifier(solver="lbfgs").partial_fit(X, y, classes=[0, 1, 2])
    assert "lbfgs is not stochastic" in str(err.value.__cause__)
    # max_fun: the number of loss evaluations
    with pytest.warns(ConvergenceWarning, match="TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT"):
        MLPClassifier((8,), solver="lbfgs", max_fun=5, random_state=0).fit(X, y)


# -- robust losses (not in scikit-learn's MLP): against scikit-learn's loss functions ----------


@pytest.mark.parametrize(
    ("loss", "delta"), [("huber", 0.3), ("huber", 2.0), ("absolute_error", None)]
)
def test_robust_losses_are_sklearns_loss_functions(loss, delta):
    """loss_curve_'s full-batch value and the first SGD step equal scikit-learn's HuberLoss
    (delta = huber_delta) / AbsoluteError, averaged over the rows, back-propagated in
    NumPy from the same initial weights."""
    from sklearn._loss.loss import AbsoluteError, HuberLoss

    X, y = regression()
    y = 3 * y
    reference = HuberLoss(delta=delta) if loss == "huber" else AbsoluteError()
    kw = dict(hidden_layer_sizes=(6,), loss=loss, solver="sgd", momentum=0.0, alpha=0.0,
              learning_rate_init=0.05, batch_size=90, shuffle=False, random_state=0)  # fmt: skip
    if delta is not None:
        kw["huber_delta"] = delta
    est = MLPRegressor(max_iter=1, **kw)
    est.fit(X, y)  # one epoch = one full-batch step from the initial weights
    # the initial weights: scikit-learn's draw (test_initial_weights_are_sklearns)
    rs = np.random.RandomState(0)
    bound0, bound1 = np.sqrt(6 / 10), np.sqrt(6 / 7)
    W = [rs.uniform(-bound0, bound0, (4, 6)), None]
    b = [rs.uniform(-bound0, bound0, 6), None]
    W[1], b[1] = rs.uniform(-bound1, bound1, (6, 1)), rs.uniform(-bound1, bound1, 1)
    H = np.maximum(X @ W[0] + b[0], 0)
    raw = (H @ W[1] + b[1])[:, 0]
    assert est.loss_curve_[0] == pytest.approx(reference.loss(y, raw).mean(), rel=1e-12)
    delta_out = reference.gradient(y, raw)[:, None] / len(y)
    grads = [X.T @ ((delta_out @ W[1].T) * (H > 0)), H.T @ delta_out]
    grads_b = [((delta_out @ W[1].T) * (H > 0)).sum(axis=0), delta_out.sum(axis=0)]
    for i in range(2):
        np.testing.assert_allclose(est.coefs_[i], W[i] - 0.05 * grads[i], rtol=1e-12)
        np.testing.assert_allclose(est.intercepts_[i], b[i] - 0.05 * grads_b[i], rtol=1e-12)


# -- weights ---------------------------------------------------------------------------------


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 2: 0.5}])
def test_class_weight_is_sklearns_fit_with_those_sample_weights(class_weight):
    X, y = blobs()
    keep = (y != 1) | (np.arange(len(y)) % 3 == 0)  # class 1 is rare
    X, y = X[keep], y[keep]
    sw = np.random.default_rng(5).uniform(0.5, 2.0, size=len(y))
    per_class = compute_class_weight(class_weight, classes=np.unique(y), y=y, sample_weight=sw)
    if class_weight != "balanced":
        per_class = compute_class_weight(class_weight, classes=np.unique(y), y=y)
    kw = dict(hidden_layer_sizes=(6,), learning_rate_init=0.05, max_iter=4, **SGD)
    ours = MLPClassifier(class_weight=class_weight, **kw).fit(X, y, sample_weight=sw)
    theirs = SkMLPClassifier(**kw).fit(X, y, sample_weight=sw * per_class[y])
    assert_same_network(ours, theirs)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel", "regression"])
def test_early_stopping_with_sample_weight_is_sklearns(task):
    """The same held-out rows (stratified only for a single-output classifier, as
    scikit-learn), the validation score weighted by their sample weights, the stopping rule
    with its ties (accuracy on 15 rows ties often), the best weights restored."""
    fraction = 0.1
    if task == "regression":
        X, y = regression(n=150)
        make = (MLPRegressor, SkMLPRegressor)
    elif task == "multilabel":
        X, y = make_multilabel_classification(150, 5, n_classes=3, random_state=0)
        X = StandardScaler().fit_transform(X)
        make = (MLPClassifier, SkMLPClassifier)
        fraction = 0.2  # not the default
    else:
        X, y = blobs(n=150, k=2 if task == "binary" else 3, seed=3)
        make = (MLPClassifier, SkMLPClassifier)
    sw = np.random.default_rng(2).uniform(0.2, 3.0, size=len(y))
    kw = dict(hidden_layer_sizes=(8,), learning_rate_init=0.02, early_stopping=True,
              n_iter_no_change=3, validation_fraction=fraction, max_iter=60, **SGD)  # fmt: skip
    ours, theirs = both(*make, **kw)
    ours.fit(X, y, sample_weight=sw)
    theirs.fit(X, y, sample_weight=sw)
    X_val = ours._val[0]
    assert len(X_val) == 150 * fraction
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
    assert ours.n_iter_ == theirs.n_iter_ < 60
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_)
    assert ours.best_loss_ is None and theirs.best_loss_ is None
    assert_same_network(ours, theirs)  # the best epoch's weights
    if task != "regression":
        scores = ours.validation_scores_
        assert len(set(scores)) < len(scores)  # ties happened
    # the weighted score is not the unweighted one
    unweighted = MLPClassifier if task != "regression" else MLPRegressor
    plain = unweighted(**kw).fit(X, y)
    assert plain.validation_scores_ != ours.validation_scores_


# -- scores on the classic data sets, shuffling on ------------------------------------------


def test_scores_on_classic_datasets_are_within_margin_of_sklearns():
    """Same parameters and random_state (so the same initial weights), shuffled batches
    (drawn differently), default solver adam: test accuracy within 0.03, R² within 0.03."""
    cases = []
    X, y = load_iris(return_X_y=True)
    cases.append((MLPClassifier, SkMLPClassifier, StandardScaler().fit_transform(X), y, 200))
    X, y = load_breast_cancer(return_X_y=True)
    cases.append((MLPClassifier, SkMLPClassifier, StandardScaler().fit_transform(X), y, 60))
    X, y = load_digits(return_X_y=True)
    cases.append((MLPClassifier, SkMLPClassifier, X / 16.0, y, 30))
    X, y = load_diabetes(return_X_y=True)
    cases.append((MLPRegressor, SkMLPRegressor, X, (y - y.mean()) / y.std(), 150))
    for ours_make, their_make, X, y, epochs in cases:
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
        kw = dict(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=epochs,
                  random_state=0)  # fmt: skip
        ours = ours_make(**kw).fit(X_tr, y_tr).score(X_te, y_te)
        theirs = their_make(**kw).fit(X_tr, y_tr).score(X_te, y_te)
        assert abs(ours - theirs) < 0.03, (their_make.__name__, ours, theirs)
        assert ours > (0.9 if ours_make is MLPClassifier else 0.35)


# -- inputs, dtypes, labels ------------------------------------------------------------------


def test_dtype_follows_X_as_sklearns():
    X, y = blobs()
    X32 = X.astype(np.float32)
    for Xfit, dtype, net in [(X32, None, np.float32), (X, None, np.float64),
                             (np.rint(X * 10).astype(int), None, np.float64),
                             (X, "float32", np.float32)]:  # fmt: skip
        ours = MLPClassifier((4,), max_iter=2, dtype=dtype, random_state=0).fit(Xfit, y)
        assert ours.model_.dtype == net
        assert ours.coefs_[0].dtype == net
        theirs = SkMLPClassifier((4,), max_iter=2, random_state=0).fit(Xfit, y)
        for Xq in (X32, X):
            # float32 only when the network and X both are, as scikit-learn's products
            assert ours.predict_proba(Xq).dtype == np.result_type(net, Xq.dtype)
            if dtype is None:
                assert ours.predict_proba(Xq).dtype == theirs.predict_proba(Xq).dtype
    reg = MLPRegressor((4,), max_iter=2, random_state=0).fit(X32, y.astype(np.float32))
    assert reg.predict(X32).dtype == np.float32 and reg.predict(X).dtype == np.float64


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["b", "a", "c"]),
        np.array([True, False, True]),
        np.array([3, -1, 7]),
        np.array([2.0, 1.0, 3.0]),
        np.array(["x", "y", "z"], dtype=object),
    ],
    ids=["str", "bool", "int", "float", "object"],
)
def test_labels_and_classes_are_sklearns(labels):
    X, y = blobs(k=3)
    y = labels[y % len(labels)] if labels.dtype != bool else labels[y % 2]
    ours = MLPClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    theirs = SkMLPClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.classes_.dtype == theirs.classes_.dtype
    assert ours.predict(X).dtype == theirs.predict(X).dtype
    assert ours.predict_proba(X).shape == theirs.predict_proba(X).shape


def test_mixed_and_continuous_labels_are_refused_as_sklearn():
    X, _ = blobs(n=30)
    for bad in (np.array([1, "a"] * 15, dtype=object), np.linspace(0, 1, 30)):
        for make in (MLPClassifier, SkMLPClassifier):
            with pytest.raises((ValueError, TypeError)):  # scikit-learn: TypeError for mixed
                make((4,), max_iter=2).fit(X, bad)


def test_pandas_feature_names_as_sklearn():
    X, y = blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    for make in (MLPClassifier, SkMLPClassifier):
        est = make((4,), max_iter=2, random_state=0).fit(frame, pd.Series(y))
        np.testing.assert_array_equal(est.feature_names_in_, ["a", "b", "c", "d"])
        with pytest.raises(ValueError, match="feature names should match"):
            est.predict(frame.rename(columns={"a": "z"}))
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            est.predict(X)
        plain = make((4,), max_iter=2, random_state=0).fit(X, y)
        with pytest.warns(UserWarning, match="fitted without feature names"):
            plain.predict(frame)


def test_non_finite_values_are_refused_as_sklearn():
    X, y = blobs()
    bad = X.copy()
    bad[3, 1] = np.nan
    for make in (MLPClassifier, SkMLPClassifier):
        with pytest.raises(ValueError, match="NaN"):
            make((4,), max_iter=2).fit(bad, y)
    X_huge = X * 1e200
    for make in (MLPRegressor, SkMLPRegressor):
        with (
            warnings.catch_warnings(),
            pytest.raises(ValueError, match="Solver produced non-finite parameter weights"),
        ):
            warnings.simplefilter("ignore", RuntimeWarning)
            make(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=1.0, max_iter=3).fit(
                X_huge, y * 1.0
            )


# -- attributes and behaviour ----------------------------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_fitted_attributes_are_sklearns(solver, early_stopping):
    X, y = blobs()
    kw = dict(hidden_layer_sizes=(5,), solver=solver, early_stopping=early_stopping,
              max_iter=5, random_state=0)  # fmt: skip
    ours, theirs = both(MLPClassifier, SkMLPClassifier, **kw)
    ours.fit(X, y)
    theirs.fit(X, y)
    public = {a for a in dir(theirs) if a.endswith("_") and not a.startswith("_")}
    for name in sorted(public):
        mine, its = getattr(ours, name), getattr(theirs, name)
        if its is None:
            assert mine is None, name
        elif name not in ("coefs_", "intercepts_"):
            assert type(mine) is type(its) or np.ndim(its) == 0, name
            if np.ndim(its) == 0:
                assert isinstance(mine, (int, float, np.number, str)), name
    if solver == "adam":
        assert (ours.best_loss_ is None) == early_stopping
        assert (ours.validation_scores_ is None) == (not early_stopping)
        assert (ours.best_validation_score_ is None) == (not early_stopping)
        assert ours.t_ == theirs.t_
    assert ours.n_layers_ == theirs.n_layers_ == 3


def test_coefs_and_intercepts_are_settable_and_write_through():
    X, y = blobs()
    ours = MLPClassifier((5,), max_iter=2, random_state=0).fit(X, y)
    theirs = SkMLPClassifier((5,), max_iter=2, random_state=1).fit(X, y)
    ours.coefs_ = [c.copy() for c in theirs.coefs_]
    ours.intercepts_[1] = theirs.intercepts_[1]
    ours.intercepts_[0] = theirs.intercepts_[0]
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-12)
    with pytest.raises(ValueError, match="read-only"):
        ours.coefs_[0][0, 0] = 1.0  # the network's memory: write through assignment instead
    with pytest.raises(ValueError, match=r"coefs_\[1\] must have shape \(5, 3\)"):
        ours.coefs_ = [theirs.coefs_[0], np.zeros((3, 5))]
    with pytest.raises(ValueError, match="NaN"):
        ours.intercepts_[0] = np.full(5, np.nan)


def test_warm_start_with_other_classes_raises_as_sklearn():
    X, y = blobs()
    for make in (MLPClassifier, SkMLPClassifier):
        est = make((4,), max_iter=2, warm_start=True, random_state=0).fit(X, y)
        with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
            est.fit(X, np.where(y == 2, 5, y))
    ours = MLPClassifier((4,), max_iter=2, warm_start=True, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="continue the fitted network"):
        ours.set_params(hidden_layer_sizes=(6,)).fit(X, y)


def test_partial_fit_after_an_early_stopped_fit():
    """scikit-learn refuses partial_fit under early_stopping (ValueError); here it works
    (the held-out set of the first call is kept), and once early stopping has ended
    training, further partial_fit calls leave the best weights as they are, with a
    warning (fit() starts a new run)."""
    X, y = blobs(n=120)
    kw = dict(hidden_layer_sizes=(8,), early_stopping=True, n_iter_no_change=1, tol=0.5,
              max_iter=50, random_state=0)  # fmt: skip
    theirs = SkMLPClassifier(**kw).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        theirs.partial_fit(X, y)
    ours = MLPClassifier(**kw).fit(X, y)
    assert ours.stopped_early_
    before = [p.copy() for p in params(ours)]
    with pytest.warns(UserWarning, match="early stopping has ended training"):
        ours.partial_fit(X, y)
    for p, q in zip(before, params(ours), strict=True):
        np.testing.assert_array_equal(p, q)


def test_diverging_fit_under_early_stopping_stops_cleanly():
    """Outputs that overflow score NaN (scikit-learn's _score); the core refuses the
    non-finite step, training stops there with a RuntimeWarning and the best weights
    (here the initial ones: no score was ever better) are restored."""
    X, y = regression(n=120)
    est = MLPRegressor((8,), solver="sgd", learning_rate_init=10.0, early_stopping=True,
                       max_iter=50, random_state=0)  # fmt: skip
    with pytest.warns(RuntimeWarning, match="diverged"):
        est.fit(X * 1e3, y)
    assert est.stopped_early_ and est.n_iter_ < 50
    assert all(np.isfinite(p).all() for p in params(est))
    scores = est.validation_scores_
    assert len(scores) == est.n_iter_
    assert np.isfinite(est.predict(X)).all()
    # outputs that overflow score NaN instead of raising from inside predict
    for make, target in [(MLPRegressor, y), (MLPClassifier, y > 0)]:
        est = make((4,), early_stopping=True, max_iter=2, random_state=0).fit(X, target)
        est.coefs_ = [np.full_like(c, 1e300) for c in est.coefs_]
        assert np.isnan(est._val_score(*est._val))


def test_n_iter_no_change_inf_runs_max_iter_as_sklearn():
    X, y = blobs(n=60)
    kw = dict(hidden_layer_sizes=(4,), tol=1e3, n_iter_no_change=np.inf, max_iter=7,
              random_state=0)  # fmt: skip
    for make in (MLPClassifier, SkMLPClassifier):
        with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(7\)"):
            assert make(**kw).fit(X, y).n_iter_ == 7
