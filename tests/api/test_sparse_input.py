"""scipy.sparse X through the public API: every entry that takes X accepts any sparse
format, converts it once (never densifying), and answers as for X.toarray(); bad sparse input
gets the same kind of clear error as dense input.

Reference: the same model fed X.toarray(); float64 results within 1e-12 relative (weights
after training within 1e-10): the CSR kernels sum in another order than BLAS.
"""

import numpy as np
import pytest
import scipy.sparse as sp

import backprop as bp
from backprop._sparse import CsrRows

FORMATS = [
    "csr_matrix",
    "csc_matrix",
    "coo_matrix",
    "csr_array",
    "coo_array",
    "lil_matrix",
    "dok_matrix",
    "bsr_matrix",
]


def _X(n=60, n_in=40, density=0.1, seed=0, dtype=np.float64):
    X = sp.random(n, n_in, density=density, format="csr", random_state=seed, dtype=np.float64)
    return X.astype(dtype)


def _model(n_in=40, loss=None, opt=None, dtype="float64", first=None):
    layers = ([first] if first else []) + [bp.Dense(n_in, 8), bp.ReLU(), bp.Dense(8, 3)]
    m = bp.Sequential(layers, dtype=dtype, seed=3)
    return m.compile(loss or bp.SoftmaxCrossEntropy(), opt or bp.SGD(lr=0.1), ["accuracy"])


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_and_entry_answers_as_dense(fmt):
    X = getattr(sp, fmt)(_X())
    Xd = X.toarray()
    y = np.arange(60) % 3
    a, b = _model(), _model()
    assert _rel(a.predict(X), b.predict(Xd)) <= 1e-12
    assert _rel(a.predict_proba(X), b.predict_proba(Xd)) <= 1e-12
    assert a.evaluate(X, y) == pytest.approx(b.evaluate(Xd, y), rel=1e-12)
    ea, eb = a.evaluate(X, y, return_dict=True), b.evaluate(Xd, y, return_dict=True)
    assert ea["accuracy"] == eb["accuracy"]
    la, ga = a.loss_and_gradient(X, y)
    lb, gb = b.loss_and_gradient(Xd, y)
    assert la == pytest.approx(lb, rel=1e-12) and _rel(ga, gb) <= 1e-12
    assert a.train_step(X, y) == pytest.approx(b.train_step(Xd, y), rel=1e-12)
    w = np.linspace(0.1, 2, 60)
    a.fit(
        X,
        y,
        epochs=2,
        batch_size=7,
        seed=1,
        sample_weight=w,
        class_weight={1: 2.0},
        validation_data=(X, y),
    )
    b.fit(
        Xd,
        y,
        epochs=2,
        batch_size=7,
        seed=1,
        sample_weight=w,
        class_weight={1: 2.0},
        validation_data=(Xd, y),
    )
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert _rel(wa, wb) <= 1e-10
    assert _rel(np.array(a.history.val_loss), np.array(b.history.val_loss)) <= 1e-10


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_index_and_value_dtypes_are_converted_once(index_dtype, dtype):
    X = _X()
    X.indices, X.indptr = X.indices.astype(index_dtype), X.indptr.astype(index_dtype)
    m = _model(dtype=dtype)
    rows = m.validate(X, np.zeros(60, dtype=np.int64))[0]
    assert isinstance(rows, CsrRows)
    assert rows.indptr.dtype == np.int64 and rows.indices.dtype == np.int32
    assert rows.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(rows.toarray(), X.toarray().astype(dtype))
    assert m.predict(X).dtype == np.dtype(dtype)


def test_duplicates_and_unsorted_columns_are_summed():
    # row 0: column 2 stored twice (1 + 2) and columns out of order; row 1 empty
    X = sp.csr_matrix(
        (np.array([4.0, 1.0, 2.0]), np.array([5, 2, 2]), np.array([0, 3, 3])), shape=(2, 40)
    )
    assert not X.has_sorted_indices
    Xd = X.toarray()
    assert Xd[0, 2] == 3.0
    a, b = _model(), _model()
    assert _rel(a.predict(X), b.predict(Xd)) <= 1e-12
    assert _rel(a.loss_and_gradient(X, [0, 1])[1], b.loss_and_gradient(Xd, [0, 1])[1]) <= 1e-12


def test_integer_and_bool_values_follow_the_dense_rules():
    m = _model(dtype="float32")
    X = sp.csr_matrix(np.eye(3, 40, dtype=np.int64) * (2**24 + 1))
    with pytest.raises(ValueError, match=r"predict: X.data holds the integer 16777217"):
        m.predict(X)
    Xb = sp.csr_matrix(np.eye(3, 40, dtype=bool))
    np.testing.assert_allclose(m.predict(Xb), m.predict(Xb.toarray().astype(np.float32)), rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_naming_row_and_column(bad):
    X = _X().tolil()
    X[17, 23] = bad
    m = _model()
    before = [w.copy() for w in m.get_weights()]
    for call in (
        lambda: m.fit(X, np.zeros(60, np.int64)),
        lambda: m.predict(X),
        lambda: m.train_step(X, np.zeros(60, np.int64)),
    ):
        with pytest.raises(ValueError, match="NaN or infinity in row 17, column 23"):
            call()
    assert all(np.array_equal(w, w0) for w, w0 in zip(m.get_weights(), before, strict=True))


def test_a_value_beyond_float32_is_refused():
    X = sp.csr_matrix(([1e300], ([4], [7])), shape=(5, 40))
    with pytest.raises(ValueError, match="beyond the range of float32 in row 4, column 7"):
        _model(dtype="float32").predict(X)


def test_shape_errors_are_the_dense_ones():
    m = _model()
    with pytest.raises(ValueError, match="predict: X has 41 features, but the first layer"):
        m.predict(sp.csr_matrix((3, 41)))
    with pytest.raises(ValueError, match="predict: X is empty"):
        m.predict(sp.csr_matrix((0, 40)))
    with pytest.raises(TypeError, match="X must be real"):
        m.predict(sp.csr_matrix(np.eye(2, 40, dtype=complex)))


def test_a_model_that_does_not_start_with_dense_refuses_sparse_x():
    m = _model(first=bp.Dropout(0.2))
    with pytest.raises(ValueError, match="sparse X needs a model whose first layer is a Dense"):
        m.fit(_X(), np.zeros(60, np.int64))
    with pytest.raises(ValueError, match="first layer is a Dense"):
        m.predict(_X())
    assert m.predict(_X().toarray()).shape == (60, 3)  # dense still works


def test_the_core_refuses_a_malformed_csr_without_reading_out_of_bounds():
    """Objects that claim to be CSR but break its invariants never reach the kernels."""
    m = _model()
    X = _X()
    rows = m.validate(X, np.zeros(60, np.int64))[0]
    broken = CsrRows(rows.indptr.copy(), rows.indices.copy(), rows.data, 40)
    broken.indices[3] = 40  # a column beyond n_in
    with pytest.raises(ValueError, match="not a CSR matrix of 40 columns"):
        m.predict(broken)
    broken = CsrRows(rows.indptr.copy(), rows.indices, rows.data, 40)
    broken.indptr[-1] += 5  # beyond the stored entries
    with pytest.raises(ValueError, match="not a CSR matrix"):
        m.predict(broken)


def test_validation_split_and_hooks_during_a_sparse_epoch():
    """A per-batch callback that predicts on other (dense) data mid-epoch must not disturb
    the epoch's CSR batches."""
    X, Xd = _X(), _X().toarray()
    y = np.arange(60) % 3
    probe = np.ones((2, 40))

    class Probe(bp.Callback):
        def on_batch_end(self, batch, logs):
            self.model.predict(probe)
            self.model.evaluate(sp.csr_matrix(probe), [0, 1])

    a, b = _model(), _model()
    ha = a.fit(X, y, epochs=2, batch_size=8, seed=2, validation_split=0.25, callbacks=[Probe()])
    hb = b.fit(Xd, y, epochs=2, batch_size=8, seed=2, validation_split=0.25)
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-10)
    np.testing.assert_allclose(ha.val_loss, hb.val_loss, rtol=1e-10)


def test_csr_rows_slices_and_takes_rows():
    X = _X(n=30, n_in=12, density=0.3)
    rows = _model(n_in=12).validate(X, np.zeros(30, np.int64))[0]
    np.testing.assert_array_equal(rows[5:17].toarray(), X.toarray()[5:17])
    np.testing.assert_array_equal(rows[::-2].toarray(), X.toarray()[::-2])
    pick = np.array([29, 0, 0, 14])
    np.testing.assert_array_equal(rows[pick].toarray(), X.toarray()[pick])
    np.testing.assert_array_equal(
        rows[5:17][pick[1:] % 12].toarray(), X.toarray()[5:17][pick[1:] % 12]
    )


def test_explain_shows_a_sparse_batch_as_its_dense_rows():
    m = bp.Sequential([bp.Dense(3, 2), bp.Sigmoid(), bp.Dense(2, 1)], dtype="float64", seed=0)
    m.compile(bp.MSE())
    X = sp.csr_matrix(np.array([[0.0, 1.5, 0.0], [2.0, 0.0, 0.0]]))
    y = np.array([[1.0], [0.0]])
    assert str(bp.explain(m, X, y)) == str(bp.explain(m, X.toarray(), y))
    with pytest.raises(ValueError, match="explain shows at most 8"):
        bp.explain(m, sp.csr_matrix((9, 3)), np.zeros((9, 1)))
