"""The estimators' stopping rule pinned to its reference: scikit-learn's own
MLPClassifier._update_no_improvement_count, run on a real scikit-learn estimator with
scripted per-epoch values, against Plateau(rule="sklearn") and the estimators' callback."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from backprop.callbacks import Plateau
from backprop.model import Sequential
from backprop.sklearn import MLPClassifier, MLPRegressor, _Stopping

# Values on a grid of 1/8 with tol = 1/4 keep every comparison exact, so a value of
# exactly best - tol (or best + tol) is a true tie, not a rounding accident.
TOL = 0.25

# (name, n_iter_no_change, losses): the validation-score branch runs on the negated values,
# so each case means the same for both branches
CASES = [
    ("improves by more than tol", 2, [4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5]),
    ("constant: stops after n + 1 epochs without progress", 2, [1.0] * 8),
    ("ties at exactly best - tol are progress", 2, [2.0, 1.75, 1.5, 1.25, 1.0, 0.75, 0.5]),
    ("gains below tol still move best", 2, [2.0, 1.875, 1.75, 1.625, 1.5, 1.375, 1.25]),
    ("a tie with the moved best, not the old one", 2, [2.0, 1.875, 1.75, 1.625, 1.5, 1.5]),
    ("worse epochs then a recovery by exactly tol", 3, [1.0, 2.0, 3.0, 0.75, 0.75, 1.0, 0.5]),
    ("progress resets the count", 1, [1.0, 1.0, 0.75, 0.75, 0.5, 0.5, 0.5, 0.5]),
    ("negative values, crossing zero", 2, [0.25, 0.0, -0.125, -0.25, -0.5, -0.375, -0.5, -0.5]),
    ("large magnitudes", 1, [1e6, 1e6 - 0.25, 1e6 - 0.375, 1e6 - 0.5, 1e6 - 0.5]),
    ("n_iter_no_change=1 stops on the third stalled epoch", 1, [3.0, 3.0, 3.0, 3.0]),
]


def random_cases(n_cases=60, seed=0):
    """Random walks on the 1/8 grid: ties, small gains and setbacks in every mix."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_cases):
        steps = rng.choice([-0.5, -0.25, -0.125, 0.0, 0.0, 0.125, 0.25], size=30)
        out.append((f"random walk {i}", int(rng.integers(1, 5)), list(4.0 + np.cumsum(steps))))
    return out


ALL_CASES = CASES + random_cases()
BRANCHES = ["training loss", "validation score"]


class SklearnRule:
    """scikit-learn's bookkeeping on a real MLPClassifier, fed one scripted value per epoch
    (the training loss, or the score its _score would return)."""

    def __init__(self, monkeypatch, tol, n_iter_no_change, early_stopping):
        sk = SkMLPClassifier(tol=tol, n_iter_no_change=n_iter_no_change)
        sk.early_stopping = early_stopping
        # the state scikit-learn's _initialize sets for a stochastic solver
        sk.loss_curve_ = []
        sk._no_improvement_count = 0
        sk.coefs_, sk.intercepts_ = [np.zeros((1, 1))], [np.zeros(1)]
        sk._best_coefs, sk._best_intercepts = list(sk.coefs_), list(sk.intercepts_)
        if early_stopping:
            sk.validation_scores_, sk.best_validation_score_, sk.best_loss_ = [], -np.inf, None
        else:
            sk.validation_scores_, sk.best_validation_score_, sk.best_loss_ = None, None, np.inf
        self.score = None
        monkeypatch.setattr(sk, "_score", lambda X, y, sample_weight=None: self.score)
        self.sk = sk

    def epoch(self, value):
        """Run one epoch's update; (count, best, best weights replaced, stop)."""
        sk = self.sk
        kept = sk._best_coefs
        if sk.early_stopping:
            self.score = value
            sk.loss_curve_.append(0.0)
        else:
            sk.loss_curve_.append(value)
        sk._update_no_improvement_count(sk.early_stopping, None, None, None)
        best = sk.best_validation_score_ if sk.early_stopping else sk.best_loss_
        stop = sk._no_improvement_count > sk.n_iter_no_change
        return sk._no_improvement_count, best, sk._best_coefs is not kept, stop


def sklearn_trajectory(monkeypatch, values, tol, n_iter_no_change, early_stopping):
    rule = SklearnRule(monkeypatch, tol, n_iter_no_change, early_stopping)
    return [rule.epoch(v) for v in values]


def sklearn_stop_epoch(monkeypatch, values, tol, n_iter_no_change, early_stopping):
    """The 1-based epoch at which scikit-learn's MLP stops on these values, or None."""
    trajectory = sklearn_trajectory(monkeypatch, values, tol, n_iter_no_change, early_stopping)
    return first_stop(trajectory)


def first_stop(trajectory):
    return next((i for i, step in enumerate(trajectory, start=1) if step[3]), None)


def plateau_trajectory(values, tol, n_iter_no_change, early_stopping):
    plateau = Plateau("max" if early_stopping else "min", tol, rule="sklearn")
    out = []
    for v in values:
        moved = plateau.update(v)
        # scikit-learn snapshots weights only under early stopping
        out.append((plateau.wait, plateau.best, moved and early_stopping,
                    plateau.wait > n_iter_no_change))  # fmt: skip
    return out


def blobs(n=60, k=2, seed=0):
    return make_blobs(n_samples=n, centers=k, n_features=3, random_state=seed)


def callback_trajectory(monkeypatch, values, tol, n_iter_no_change, early_stopping):
    """Drive the estimators' _Stopping callback with scripted values: alpha=0 makes the
    recorded objective the epoch's loss itself, and a patched _val_score returns the score."""
    X, y = blobs()
    est = MLPClassifier((2,), alpha=0.0, max_iter=1, tol=tol, n_iter_no_change=n_iter_no_change,
                        early_stopping=early_stopping, random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)  # builds the network (and the validation set)
    # the state a first fit starts from, as SklearnRule sets it for scikit-learn
    est.loss_curve_, est.validation_scores_, est.val_loss_curve_ = [], [], []
    est.best_loss_, est.best_validation_score_ = np.inf, -np.inf
    est._no_improvement_count, est._best, est.n_iter_ = 0, None, 0
    score = [None]
    monkeypatch.setattr(est, "_val_score", lambda X, y, w: score[0])
    callback = _Stopping(est, n_rows=len(X))
    callback.set_model(est.model_)
    out = []
    for epoch, v in enumerate(values):
        kept = est._best
        if early_stopping:
            score[0] = v
            callback.on_epoch_end(epoch, {"loss": 0.5, "val_loss": 0.5})
        else:
            callback.on_epoch_end(epoch, {"loss": v})
        best = est.best_validation_score_ if early_stopping else est.best_loss_
        out.append((est._no_improvement_count, best, est._best is not kept, callback.stopped))
    assert est.n_iter_ == len(values)
    assert est.loss_curve_ == ([0.5] * len(values) if early_stopping else values)
    if early_stopping:
        assert est.validation_scores_ == values and est.val_loss_curve_ == [0.5] * len(values)
    return out


@pytest.mark.parametrize("branch", BRANCHES)
@pytest.mark.parametrize(("name", "n_iter_no_change", "losses"), ALL_CASES,
                         ids=[c[0] for c in ALL_CASES])  # fmt: skip
def test_plateau_and_callback_follow_sklearns_update_no_improvement_count(
    monkeypatch, branch, name, n_iter_no_change, losses
):
    early_stopping = branch == "validation score"
    values = [-v for v in losses] if early_stopping else list(losses)
    args = (values, TOL, n_iter_no_change, early_stopping)
    reference = sklearn_trajectory(monkeypatch, *args)
    # count, best, whether the best weights were replaced, and the stop, epoch by epoch
    assert plateau_trajectory(*args) == reference
    ours = callback_trajectory(monkeypatch, *args)
    stop = first_stop(reference)
    # the callback stops once: the epochs up to its stop must match exactly
    assert ours[:stop] == reference[:stop]
    assert first_stop(ours) == stop


@pytest.mark.parametrize(
    ("name", "n_iter_no_change", "losses", "stop"),
    [
        ("improves by more than tol", 2, CASES[0][2], None),
        ("constant", 2, [1.0] * 8, 4),
        ("ties at exactly best - tol", 2, CASES[2][2], None),
        ("gains below tol", 2, CASES[3][2], 4),
        ("recovery by exactly tol", 3, CASES[5][2], None),
        ("tol 0: an equal value is progress", 2, [1.0] * 8, None),
    ],
)
def test_the_reference_stops_where_expected(monkeypatch, name, n_iter_no_change, losses, stop):
    """The reference itself, on cases worked by hand (epoch of the stop, 1-based)."""
    tol = 0.0 if name.startswith("tol 0") else TOL
    assert sklearn_stop_epoch(monkeypatch, losses, tol, n_iter_no_change, False) == stop
    scores = [-v for v in losses]
    assert sklearn_stop_epoch(monkeypatch, scores, tol, n_iter_no_change, True) == stop
    for early_stopping, values in [(False, losses), (True, scores)]:
        trajectory = plateau_trajectory(values, tol, n_iter_no_change, early_stopping)
        assert first_stop(trajectory) == stop


# -- end to end: the estimators stop where the reference does on their own curves ----------


def test_training_loss_stop_is_the_references(monkeypatch):
    X, y = blobs(n=120, k=3)
    clf = MLPClassifier((4,), max_iter=5000, tol=1e-2, n_iter_no_change=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.n_iter_ == len(clf.loss_curve_) < 5000
    reference = sklearn_trajectory(monkeypatch, clf.loss_curve_, 1e-2, 2, False)
    assert first_stop(reference) == clf.n_iter_
    assert clf.best_loss_ == reference[-1][1] == min(clf.loss_curve_)
    assert clf._no_improvement_count == reference[-1][0] == 3
    assert not clf.stopped_early_  # only early stopping ends a partial_fit stream


def test_regressor_early_stopping_stop_is_the_references(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = X @ [1.0, -1.0, 0.5, 0.0] + rng.normal(size=200)  # noisy: the score soon levels off
    reg = MLPRegressor((16,), early_stopping=True, tol=1e-3, n_iter_no_change=3,
                       learning_rate_init=0.01, max_iter=1000, random_state=0)  # fmt: skip
    reg.fit(X, y)
    scores = reg.validation_scores_
    assert reg.stopped_early_ and reg.n_iter_ == len(scores) < 1000
    reference = sklearn_trajectory(monkeypatch, scores, 1e-3, 3, True)
    assert first_stop(reference) == reg.n_iter_
    assert reg.best_validation_score_ == reference[-1][1] == max(scores)


def test_partial_fit_stream_stops_where_the_reference_does(monkeypatch):
    X, y = blobs(n=300, k=2, seed=3)
    y = np.where(np.random.default_rng(1).random(300) < 0.3, 1 - y, y)  # noisy labels
    clf = MLPClassifier((16,), early_stopping=True, n_iter_no_change=2, tol=1e-3,
                        learning_rate_init=0.01, random_state=0)  # fmt: skip
    clf.partial_fit(X, y, classes=[0, 1])
    calls = 1
    while not clf.stopped_early_ and calls < 300:
        clf.partial_fit(X, y)
        calls += 1
    assert clf.stopped_early_ and calls < 300
    reference = sklearn_trajectory(monkeypatch, clf.validation_scores_, 1e-3, 2, True)
    assert first_stop(reference) == clf.n_iter_ == calls


def test_a_run_that_does_not_stop_runs_max_iter(monkeypatch):
    X, y = blobs(n=120, k=3)
    clf = MLPClassifier((8,), max_iter=15, tol=0.0, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(15\)"):
        clf.fit(X, y)
    assert clf.n_iter_ == 15
    assert sklearn_stop_epoch(monkeypatch, clf.loss_curve_, 0.0, 10, False) is None


# -- one model.fit call per fit ------------------------------------------------------------


def test_fit_calls_model_fit_once_and_partial_fit_runs_one_epoch(monkeypatch):
    calls = []
    fit = Sequential.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(kwargs["epochs"])
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Sequential, "fit", counting_fit)
    X, y = blobs(n=120, k=3)
    clf = MLPClassifier((8,), max_iter=30, early_stopping=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert calls == [30] and clf.n_iter_ <= 30
    calls.clear()
    reg = MLPRegressor((8,), random_state=0)
    for _ in range(3):
        reg.partial_fit(X, y.astype(float))
    assert calls == [1, 1, 1] and reg.n_iter_ == 3


def test_keyboard_interrupt_warns_and_restores_the_best_weights(monkeypatch):
    X, y = blobs(n=120, k=3)
    clf = MLPClassifier((8,), max_iter=50, early_stopping=True, random_state=0)
    score = clf._val_score

    def interrupting(*args):
        if len(clf.validation_scores_) == 3:
            raise KeyboardInterrupt
        return score(*args)

    monkeypatch.setattr(clf, "_val_score", interrupting)
    with pytest.warns(UserWarning, match="Training interrupted by user") as record:
        clf.fit(X, y)
    assert not any(issubclass(w.category, ConvergenceWarning) for w in record)
    assert len(clf.validation_scores_) == 3 and not clf.stopped_early_
    for p, q in zip(clf.model_.get_weights(), clf._best, strict=True):
        np.testing.assert_array_equal(p, q)
