"""Sparse X against the dense path and PyTorch: the first Dense reading CSR rows must compute
what it computes on X.toarray().

Tolerances (float64): gradients within 1e-12 of the dense path's, relative to the largest
gradient magnitude of the layer (the CSR kernels sum a row's entries in another order than
BLAS: ~1e-16 per term); weights after up to 5 steps, or after fit epochs, within 1e-10
relative to the largest weight (rounding differences grow a little per step); PyTorch's
torch.sparse CSR @ dense with torch.optim.SGD within 1e-10 likewise. float32: 1e-4 relative.
"""

import numpy as np
import pytest
import scipy.sparse as sp

import backprop as bp

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Sparse:UserWarning")  # torch: CSR is beta


def _data(n, n_in, density, seed, empty_rows=0, empty_cols=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, n_in, density=density, format="lil", random_state=seed, dtype=np.float64)
    X = X.multiply(rng.uniform(-2, 2, (n, n_in))).tolil()  # signed values
    for r in rng.choice(n, empty_rows, replace=False):
        X[r, :] = 0
    for c in rng.choice(n_in, empty_cols, replace=False):
        X[:, c] = 0
    return X.tocsr(), rng.integers(0, 4, n)


def _model(n_in, optimizer, dtype="float64", hidden=9, l2=0.0):
    m = bp.Sequential([bp.Dense(n_in, hidden), bp.Tanh(), bp.Dense(hidden, 4)], dtype=dtype, seed=5)
    return m.compile(bp.SoftmaxCrossEntropy(), optimizer, l2=l2)


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


SHAPES = [  # (rows, columns, density, empty rows, empty columns)
    (1, 1, 1.0, 0, 0),
    (17, 5, 0.0, 0, 0),
    (40, 300, 0.01, 10, 50),
    (64, 33, 0.3, 5, 3),
    (31, 12, 1.0, 0, 0),
    (128, 2000, 0.002, 20, 0),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_gradients_equal_the_dense_path(shape, l2):
    n, n_in, density, er, ec = shape
    X, y = _data(n, n_in, density, 1, er, ec)
    a, b = _model(n_in, bp.SGD(lr=0.1), l2=l2), _model(n_in, bp.SGD(lr=0.1), l2=l2)
    la, ga = a.loss_and_gradient(X, y)
    lb, gb = b.loss_and_gradient(X.toarray(), y)
    assert la == pytest.approx(lb, rel=1e-12)
    assert _rel(ga, gb) <= 1e-12
    pairs = zip(a.gradients(X, y), b.gradients(X.toarray(), y), strict=True)
    for (dWa, dba), (dWb, dbb) in pairs:
        assert _rel(dWa, dWb) <= 1e-12 or np.abs(dWb).max() == 0 == np.abs(dWa).max()
        assert _rel(dba, dbb) <= 1e-12


OPTIMIZERS = {
    "sgd": lambda: bp.SGD(lr=0.2),  # the first layer folds: only touched rows move
    "sgd-momentum": lambda: bp.SGD(lr=0.1, momentum=0.9, nesterov=True),
    "sgd-decay": lambda: bp.SGD(lr=0.1, weight_decay=0.01),
    "adam": lambda: bp.Adam(lr=0.01),
    "adamw": lambda: bp.AdamW(lr=0.01, weight_decay=0.1),
    "rmsprop": lambda: bp.RMSprop(lr=0.01, momentum=0.5, centered=True),
    "sgd-clip": lambda: bp.SGD(lr=0.5, clipnorm=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("shape", SHAPES[2:5])
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_five_steps_equal_the_dense_path(name, shape, l2):
    n, n_in, density, er, ec = shape
    X, y = _data(n, n_in, density, 2, er, ec)
    a, b = _model(n_in, OPTIMIZERS[name](), l2=l2), _model(n_in, OPTIMIZERS[name](), l2=l2)
    Xd = X.toarray()
    for step in range(5):
        rows = slice(step * 7 % n, step * 7 % n + 16)
        a.train_step(X[rows], y[rows])
        b.train_step(Xd[rows], y[rows])
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert _rel(wa, wb) <= 1e-10


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_fit_epochs_equal_the_dense_path(shuffle, name):
    X, y = _data(203, 150, 0.05, 3, 7, 11)
    a, b = _model(150, OPTIMIZERS[name]()), _model(150, OPTIMIZERS[name]())
    ha = a.fit(X, y, epochs=3, batch_size=16, shuffle=shuffle, seed=4, validation_split=0.1)
    hb = b.fit(
        X.toarray(), y, epochs=3, batch_size=16, shuffle=shuffle, seed=4, validation_split=0.1
    )
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-10)
    np.testing.assert_allclose(ha.val_loss, hb.val_loss, rtol=1e-10)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert _rel(wa, wb) <= 1e-10
    assert _rel(a.predict(X), b.predict(X.toarray())) <= 1e-12
    assert a.evaluate(X, y) == pytest.approx(b.evaluate(X.toarray(), y), rel=1e-12)


def test_float32_matches_the_dense_path():
    X, y = _data(100, 400, 0.02, 4, 3, 30)
    a = _model(400, bp.Adam(lr=0.01), dtype="float32")
    b = _model(400, bp.Adam(lr=0.01), dtype="float32")
    a.fit(X, y, epochs=2, batch_size=10, seed=1)
    b.fit(X.toarray(), y, epochs=2, batch_size=10, seed=1)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert _rel(wa, wb) <= 1e-4


def test_sgd_steps_match_torch_sparse_csr():
    """Five plain-SGD steps with the first layer's product as torch.sparse CSR @ dense."""
    X, y = _data(80, 500, 0.01, 5, 10, 100)
    model = _model(500, bp.SGD(lr=0.3), hidden=32)
    W1, b1, W2, b2 = (torch.tensor(w, requires_grad=True) for w in model.get_weights())
    opt = torch.optim.SGD([W1, b1, W2, b2], lr=0.3)
    for step in range(5):
        rows = slice(step * 16, step * 16 + 16)
        Xb = X[rows]
        xt = torch.sparse_csr_tensor(
            torch.tensor(Xb.indptr, dtype=torch.int64),
            torch.tensor(Xb.indices, dtype=torch.int64),
            torch.tensor(Xb.data),
            size=Xb.shape,
        )
        opt.zero_grad()
        logits = torch.tanh(xt @ W1 + b1) @ W2 + b2
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y[rows]))
        loss.backward()
        opt.step()
        assert model.train_step(Xb, y[rows]) == pytest.approx(loss.item(), rel=1e-12)
    for ours, theirs in zip(model.get_weights(), (W1, b1, W2, b2), strict=True):
        assert _rel(ours, theirs.detach().numpy()) <= 1e-10


def test_folded_update_touches_only_the_batch_columns():
    """Plain SGD writes only the rows of W1 whose columns occur in the batch."""
    X, y = _data(32, 1000, 0.003, 6)
    model = _model(1000, bp.SGD(lr=0.5))
    W1 = model.get_weights()[0]
    model.train_step(X, y)
    moved = (model.get_weights()[0] != W1).any(axis=1)
    assert moved.any()
    assert not moved[np.setdiff1d(np.arange(1000), X.indices)].any()


@pytest.mark.parametrize("optimizer", [bp.SGD(lr=1e30), bp.SGD(lr=1e30, momentum=0.5)])
def test_an_overflowing_sparse_step_is_refused(optimizer):
    """The update bound covers the CSR layer, folded (plain SGD) or not."""
    X, y = _data(16, 50, 0.2, 7)
    X = X * 1e30
    model = bp.Sequential([bp.Dense(50, 9), bp.ReLU(), bp.Dense(9, 4)], dtype="float32", seed=5)
    model.compile(bp.SoftmaxCrossEntropy(), optimizer)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(FloatingPointError):
        model.train_step(X.astype(np.float32), y)
    for w, w0 in zip(model.get_weights(), before, strict=True):
        assert np.array_equal(w, w0)
