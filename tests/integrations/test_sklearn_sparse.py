"""backprop.sklearn with scipy.sparse X: accepted as scikit-learn's MLP accepts it, never
densified, and trained to the numbers of the same estimator fitted on X.toarray().

References and tolerances:
- the same estimator (same random_state) fitted on X.toarray(): float64 weights within
  1e-10 relative (max |difference| / max |weight|, per array; the CSR kernels sum in another
  order than BLAS, measured <= 1e-13 here); float32 within 1e-5 for sgd/adam and 1e-4 for
  lbfgs, whose line searches amplify float32 rounding (measured 1e-7 and 4e-6);
- scikit-learn's own MLP fitted on the same sparse X: test accuracy / R² within 0.05 of its
  score with shuffling on, and the weights within 1e-9 with shuffle=False under "sgd" (the
  one solver whose steps are scikit-learn's exactly; the same held-out rows under
  early_stopping).
Small data and few epochs keep this module at a few seconds.
"""

import pickle
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor

from backprop._sparse import CsrRows
from backprop.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SOLVERS = ["sgd", "adam", "lbfgs"]
FLOAT32_RTOL = {"sgd": 1e-5, "adam": 1e-5, "lbfgs": 1e-4}
FLOAT64_RTOL = 1e-10
CONTAINERS = ["csr_matrix", "csr_array", "csc_matrix", "csc_array", "coo_matrix", "coo_array"]
ESTIMATORS = {"classifier": MLPClassifier, "regressor": MLPRegressor}


def data(n=120, features=40, density=0.15, seed=0):
    """Sparse CSR X (n, features) and targets a network can learn from it: class labels
    (the sign of a linear function) and noisy values of it."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, features, density=density, format="csr", random_state=seed,
                  data_rvs=rng.standard_normal)  # fmt: skip
    z = X @ rng.standard_normal(features)
    return X, (z > 0).astype(int), z + 0.1 * rng.standard_normal(n)


def container(X, name, index_dtype=np.int32):
    """X in the named scipy.sparse container with index arrays of index_dtype (scipy's
    constructors pick the narrowest index type, so wider ones are set afterwards)."""
    out = getattr(sp, name)(X)
    if out.format == "coo":
        out.coords = tuple(c.astype(index_dtype) for c in out.coords)
        assert out.row.dtype == out.col.dtype == index_dtype
    else:
        out.indices, out.indptr = out.indices.astype(index_dtype), out.indptr.astype(index_dtype)
        assert out.indices.dtype == out.indptr.dtype == index_dtype
    return out


def estimator(kind, solver, **kw):
    params = dict(hidden_layer_sizes=(8,), solver=solver, random_state=0)
    if solver == "lbfgs":
        params |= dict(max_iter=20)
    else:
        params |= dict(max_iter=25, batch_size=16, learning_rate_init=0.02)
    return ESTIMATORS[kind](**(params | kw))


def target(kind, yc, yr):
    return yc if kind == "classifier" else yr


def weights(est):
    return est.coefs_ + est.intercepts_


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def assert_same_weights(ours, ref, rtol=FLOAT64_RTOL):
    assert len(ours.coefs_) == len(ref.coefs_)
    for a, b in zip(weights(ours), weights(ref), strict=True):
        assert a.dtype == b.dtype
        assert rel(a, b) <= rtol


def assert_same_predictions(ours, ref, X, X_ref, rtol=FLOAT64_RTOL):
    if isinstance(ref, MLPClassifier):
        np.testing.assert_array_equal(ours.predict(X), ref.predict(X_ref))
        assert rel(ours.predict_proba(X), ref.predict_proba(X_ref)) <= rtol
    else:
        assert rel(ours.predict(X), ref.predict(X_ref)) <= rtol


# -- sparse X fits as X.toarray() does ----------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_sparse_fit_equals_dense_fit(solver, kind, dtype):
    X, yc, yr = data()
    X = X.astype(dtype)
    y = target(kind, yc, yr)
    rtol = FLOAT64_RTOL if dtype == np.float64 else FLOAT32_RTOL[solver]
    ref = estimator(kind, solver).fit(X.toarray(), y)
    assert ref.model_.dtype == dtype  # dtype=None: the network follows X
    for name in CONTAINERS:
        for index_dtype in (np.int32, np.int64):
            Xs = container(X, name, index_dtype)
            est = estimator(kind, solver).fit(Xs, y)
            assert est.model_.dtype == dtype
            assert est.n_features_in_ == X.shape[1] and not hasattr(est, "feature_names_in_")
            assert est.n_iter_ == ref.n_iter_
            assert_same_weights(est, ref, rtol)
            assert_same_predictions(est, ref, Xs, X.toarray(), rtol)
    # the input is left as it was
    assert Xs.dtype == dtype and Xs.row.dtype == np.int64


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_dtype_rule_and_dtype_parameter(kind):
    X, yc, yr = data(n=60)
    y = target(kind, yc, yr)
    for X_dtype, dtype, network in [
        (np.float64, None, np.float64),
        (np.float32, None, np.float32),
        (np.int64, None, np.float64),  # integers: float64, as scikit-learn
        (np.float64, "float32", np.float32),
        (np.float32, "float64", np.float64),
    ]:
        Xs = (X * 3).astype(X_dtype)
        est = estimator(kind, "adam", max_iter=3, dtype=dtype).fit(Xs, y)
        assert est.model_.dtype == network
        ref = estimator(kind, "adam", max_iter=3, dtype=dtype).fit(Xs.toarray(), y)
        assert_same_weights(est, ref, FLOAT64_RTOL if network == np.float64 else 1e-5)
        predict = "predict_proba" if kind == "classifier" else "predict"
        out, ref_out = getattr(est, predict)(Xs), getattr(ref, predict)(Xs.toarray())
        assert out.dtype == ref_out.dtype  # float32 only for a float32 network and X


def test_other_sparse_formats_are_converted():
    """scikit-learn keeps CSR and CSC and converts the other formats to CSR."""
    X, y, _ = data(n=60)
    ref = estimator("classifier", "adam", max_iter=5).fit(X.toarray(), y)
    for fmt in ("lil", "dok", "bsr", "dia"):
        Xs = X.asformat(fmt)
        est = estimator("classifier", "adam", max_iter=5).fit(Xs, y)
        assert_same_weights(est, ref)
        assert_same_predictions(est, ref, Xs, X.toarray())


# -- against scikit-learn's MLP on the same sparse X ----------------------------------------


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_score_comparable_to_scikit_learn(solver, kind):
    X, yc, yr = data(n=400, seed=1)
    y = target(kind, yc, yr)
    train, test = slice(0, 300), slice(300, None)
    kw = dict(hidden_layer_sizes=(16,), solver=solver, random_state=0, max_iter=100)
    if solver != "lbfgs":
        kw |= dict(learning_rate_init=0.01, batch_size=32)
    Sk = SkMLPClassifier if kind == "classifier" else SkMLPRegressor
    ours = ESTIMATORS[kind](**kw).fit(X[train], y[train])
    theirs = Sk(**kw).fit(X[train], y[train])
    ours_score, their_score = ours.score(X[test], y[test]), theirs.score(X[test], y[test])
    assert their_score > (0.8 if kind == "classifier" else 0.7)  # a problem worth comparing
    assert ours_score >= their_score - 0.05


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("kind", ESTIMATORS)
def test_sgd_steps_equal_scikit_learn_on_sparse_X(kind, early_stopping):
    """shuffle=False: the same batches, so the same weights (and under early_stopping the
    same held-out rows: the same validation scores)."""
    X, yc, yr = data(n=150)
    y = target(kind, yc, yr)
    kw = dict(
        hidden_layer_sizes=(8,), solver="sgd", shuffle=False, random_state=0, max_iter=15,
        batch_size=20, learning_rate_init=0.05, early_stopping=early_stopping,
    )  # fmt: skip
    Sk = SkMLPClassifier if kind == "classifier" else SkMLPRegressor
    ours = ESTIMATORS[kind](**kw).fit(X, y)
    theirs = Sk(**kw).fit(X, y)
    for a, b in zip(weights(ours), theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    if early_stopping:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)


# -- early stopping, partial_fit, warm_start, targets, weights ------------------------------


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_early_stopping_holds_out_sparse_rows(solver, kind):
    X, yc, yr = data(n=200)
    y = target(kind, yc, yr)
    kw = dict(early_stopping=True, max_iter=40, n_iter_no_change=3)
    est = estimator(kind, solver, **kw).fit(X.tocsc(), y)
    ref = estimator(kind, solver, **kw).fit(X.toarray(), y)
    assert isinstance(est._val[0], CsrRows) and est._val[0].shape == (20, X.shape[1])
    assert est.n_iter_ == ref.n_iter_ and est.stopped_early_ == ref.stopped_early_
    np.testing.assert_allclose(est.validation_scores_, ref.validation_scores_, rtol=1e-10)
    np.testing.assert_allclose(est.val_loss_curve_, ref.val_loss_curve_, rtol=1e-10)
    assert_same_weights(est, ref)


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_on_sparse_chunks(solver, kind):
    X, yc, yr = data(n=150)
    y = target(kind, yc, yr)
    extra = {"classes": np.unique(yc)} if kind == "classifier" else {}
    est, ref = estimator(kind, solver), estimator(kind, solver)
    chunks = [slice(0, 50), slice(50, 100), slice(100, 150)]
    for rows, fmt in zip(chunks, ["csr", "csc", "coo"], strict=True):
        est.partial_fit(X[rows].asformat(fmt), y[rows], **extra)
        ref.partial_fit(X[rows].toarray(), y[rows], **extra)
    est.partial_fit(X[:50].toarray(), y[:50])  # dense after sparse
    ref.partial_fit(X[:50].toarray(), y[:50])
    assert est.n_iter_ == ref.n_iter_ == 4
    assert_same_weights(est, ref)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_partial_fit_under_early_stopping_keeps_sparse_validation_rows_across_pickle(kind):
    X, yc, yr = data(n=200)
    y = target(kind, yc, yr)
    extra = {"classes": np.unique(yc)} if kind == "classifier" else {}
    est = estimator(kind, "adam", early_stopping=True)
    ref = estimator(kind, "adam", early_stopping=True)
    est.partial_fit(X, y, **extra)
    ref.partial_fit(X.toarray(), y, **extra)
    est = pickle.loads(pickle.dumps(est))
    assert isinstance(est._val[0], CsrRows)
    for _ in range(3):
        est.partial_fit(X, y)
        ref.partial_fit(X.toarray(), y)
    np.testing.assert_allclose(est.validation_scores_, ref.validation_scores_, rtol=1e-10)
    assert_same_weights(est, ref)


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_warm_start_on_sparse(solver, kind):
    X, yc, yr = data()
    y = target(kind, yc, yr)
    est = estimator(kind, solver, warm_start=True, max_iter=5)
    ref = estimator(kind, solver, warm_start=True, max_iter=5)
    est.fit(X, y).fit(X.tocsc(), y)
    ref.fit(X.toarray(), y).fit(X.toarray(), y)
    assert_same_weights(est, ref)


@pytest.mark.parametrize("solver", SOLVERS)
def test_multilabel_and_multi_output_on_sparse(solver):
    X, _, _ = data()
    rng = np.random.default_rng(5)
    Z = X @ rng.standard_normal((X.shape[1], 3))
    labels = (Z > 0).astype(int)
    clf = estimator("classifier", solver).fit(X, labels)
    clf_ref = estimator("classifier", solver).fit(X.toarray(), labels)
    assert clf.n_outputs_ == 3 and clf.predict(X).shape == (120, 3)
    assert_same_weights(clf, clf_ref)
    assert_same_predictions(clf, clf_ref, X, X.toarray())
    reg = estimator("regressor", solver).fit(X.tocsc(), Z)
    reg_ref = estimator("regressor", solver).fit(X.toarray(), Z)
    assert reg.predict(X).shape == (120, 3)
    assert_same_weights(reg, reg_ref)
    assert_same_predictions(reg, reg_ref, X, X.toarray())


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_sample_weight_on_sparse(solver, kind):
    X, yc, yr = data()
    y = target(kind, yc, yr)
    w = np.random.default_rng(2).uniform(0, 2, X.shape[0])
    extra = {"class_weight": {1: 3.0}} if kind == "classifier" else {}
    est = estimator(kind, solver, **extra).fit(X.tocoo(), y, sample_weight=w)
    ref = estimator(kind, solver, **extra).fit(X.toarray(), y, sample_weight=w)
    assert_same_weights(est, ref)
    assert est.score(X, y, sample_weight=w) == pytest.approx(
        ref.score(X.toarray(), y, sample_weight=w), rel=1e-12
    )


# -- prediction --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_sparse_predict_after_dense_fit_and_dense_after_sparse(kind):
    X, yc, yr = data()
    y = target(kind, yc, yr)
    est = estimator(kind, "adam").fit(X.toarray(), y)
    dense = X.toarray()
    for name in CONTAINERS:
        Xs = container(X, name)
        assert_same_predictions(est, est, Xs, dense, rtol=1e-12)
        assert est.score(Xs, y) == pytest.approx(est.score(dense, y), rel=1e-12)
        if kind == "classifier":
            assert rel(est.predict_log_proba(Xs), est.predict_log_proba(dense)) <= 1e-12
    sparse_fit = estimator(kind, "adam").fit(X, y)
    assert_same_predictions(sparse_fit, sparse_fit, dense, X, rtol=1e-12)


def test_sparse_predict_on_a_dataframe_fit_warns_as_scikit_learn():
    X, y, _ = data(n=60)
    frame = pd.DataFrame(X.toarray(), columns=[f"f{i}" for i in range(X.shape[1])])
    for make in (MLPClassifier, SkMLPClassifier):
        est = make((4,), max_iter=3, random_state=0).fit(frame, y)
        with pytest.warns(UserWarning, match="X does not have valid feature names"):
            est.predict(X)


# -- refused input -------------------------------------------------------------------------


NONFINITE = r"Input X contains (NaN|infinity)"  # scikit-learn's message


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_X_with_nan_or_inf_is_refused(fmt, bad):
    X, y, _ = data(n=60)
    X_bad = X.copy()
    X_bad.data[7] = bad
    X_bad = X_bad.asformat(fmt)
    for make in (MLPClassifier, SkMLPClassifier):
        with pytest.raises(ValueError, match=NONFINITE):
            make((4,), max_iter=2).fit(X_bad, y)
    est = MLPClassifier((4,), max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match=NONFINITE):
        est.predict(X_bad)
    with pytest.raises(ValueError, match=NONFINITE):
        est.partial_fit(X_bad, y)


def test_sparse_X_of_the_wrong_shape_is_refused():
    X, y, _ = data(n=60)
    est = MLPClassifier((4,), max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but MLPClassifier is expecting 40"):
        est.predict(X[:, :5])
    with pytest.raises(ValueError, match="0 sample"):
        MLPClassifier((4,), max_iter=2).fit(X[:0], y[:0])


# -- never densified ------------------------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
def test_wide_sparse_X_is_never_densified(solver):
    """1,000 x 50,000 with 50 entries a row: X.toarray() would take 400 MB; fit and predict
    stay below a quarter of it (the network's first layer is 50,000 x 2; lbfgs's history
    of 10 steps over the 100,000 weights takes 20 MB)."""
    n, width = 1000, 50_000
    rng = np.random.default_rng(0)
    rows, cols = np.repeat(np.arange(n), 50), rng.integers(0, width, n * 50)
    X = sp.csr_array((rng.standard_normal(n * 50), (rows, cols)), shape=(n, width))
    y = np.arange(n) % 2
    est = MLPClassifier((2,), solver=solver, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracemalloc.start()
        try:
            est.fit(X.tocsc(), y)
            est.predict_proba(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < n * width * 8 / 4, f"peak {peak / 1e6:.0f} MB"


def test_sparse_tag():
    for est in (MLPClassifier(), MLPRegressor()):
        assert est.__sklearn_tags__().input_tags.sparse
