"""The CSR first-layer kernels (backprop_core._dense, over _sparse.h) against scipy's and
NumPy's float64 products: csr_forward (Y := X[rows] @ W + b) and csr_scatter
(W += alpha X[rows].T @ dY).

Tolerances: float64 results within 1e-12 of the reference relative to the largest magnitude
of the output (the kernels sum in a different order than scipy: ~1e-16 per term); float32
within 1e-5 relative. Invalid CSR structure is refused before any memory is read.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from backprop_core._dense import csr_forward, csr_scatter

TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _csr(n, n_in, density, dtype, seed, duplicates=False, unsorted=False):
    X = sp.random(n, n_in, density=density, format="csr", random_state=seed, dtype=np.float64)
    X = X.astype(dtype)
    indptr, indices, data = X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data
    if duplicates and X.nnz:  # every entry stored twice, halves: the same matrix
        counts = np.diff(indptr)
        rows = np.repeat(np.arange(n), counts)
        rows, indices = np.concatenate([rows, rows]), np.concatenate([indices, indices])
        data = np.concatenate([data, data]) / 2
        order = np.argsort(rows, kind="stable")
        indices, data = indices[order], data[order]
        indptr = np.concatenate([[0], np.cumsum(2 * counts)]).astype(np.int64)
    if unsorted:  # reverse the columns within each row
        for r in range(n):
            s = slice(indptr[r], indptr[r + 1])
            indices[s], data[s] = indices[s][::-1].copy(), data[s][::-1].copy()
    dense = np.zeros((n, n_in))
    np.add.at(dense, (np.repeat(np.arange(n), np.diff(indptr)), indices), data)
    return indptr, np.ascontiguousarray(indices), np.ascontiguousarray(data, dtype=dtype), dense


def _close(got, want, dtype):
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("density", [0.0, 0.01, 0.3, 1.0])
@pytest.mark.parametrize("variant", ["plain", "duplicates", "unsorted", "rows"])
def test_forward_and_scatter_match_dense(dtype, density, variant):
    rng = np.random.default_rng(7)
    n, n_in, m = 23, 37, 19
    indptr, indices, data, dense = _csr(
        n, n_in, density, dtype, 3, variant == "duplicates", variant == "unsorted"
    )
    rows = rng.permutation(n)[:11].astype(np.int64) if variant == "rows" else None
    Xr = dense if rows is None else dense[rows]
    W = rng.standard_normal((n_in, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    Y = np.full((Xr.shape[0], m), np.nan, dtype=dtype)
    csr_forward(indptr, indices, data, W, b, Y, rows)
    _close(Y, Xr @ W.astype(np.float64) + b, dtype)

    dY = rng.standard_normal((Xr.shape[0], m)).astype(dtype)
    W0 = W.copy()
    csr_scatter(indptr, indices, data, dY, -0.5, W, rows)
    _close(W, W0 - 0.5 * Xr.T @ dY.astype(np.float64), dtype)
    # rows of W whose column never occurs are not written at all (bit for bit)
    untouched = ~(Xr != 0).any(0)
    assert np.array_equal(W[untouched], W0[untouched])


def test_empty_rows_give_the_bias():
    indptr = np.zeros(5, dtype=np.int64)
    W = np.ones((3, 2))
    Y = np.empty((4, 2))
    csr_forward(indptr, np.empty(0, np.int32), np.empty(0), W, np.array([1.5, -2.0]), Y)
    assert (Y == [1.5, -2.0]).all()


@pytest.mark.parametrize(
    "indptr, indices, why",
    [
        ([0, 2, 1], [0, 1], "decreasing indptr"),
        ([0, 1, 3], [0, 1], "indptr beyond nnz"),
        ([-1, 1, 2], [0, 1], "negative indptr"),
        ([0, 1, 2], [0, 3], "column out of range"),
        ([0, 1, 2], [0, -1], "negative column"),
    ],
)
def test_invalid_structure_is_refused(indptr, indices, why):
    indptr = np.array(indptr, dtype=np.int64)
    indices = np.array(indices, dtype=np.int32)
    data = np.ones(len(indices))
    with pytest.raises(ValueError, match="not a CSR matrix"):
        csr_forward(indptr, indices, data, np.ones((3, 2)), np.zeros(2), np.empty((2, 2)))
    with pytest.raises(ValueError, match="not a CSR matrix"):
        csr_scatter(indptr, indices, data, np.ones((2, 2)), 1.0, np.ones((3, 2)))


def test_rows_out_of_range_and_aliasing_are_refused():
    indptr, indices, data, _ = _csr(4, 3, 0.5, np.float64, 0)
    with pytest.raises(ValueError, match="rows must lie"):
        csr_forward(
            indptr,
            indices,
            data,
            np.ones((3, 2)),
            np.zeros(2),
            np.empty((1, 2)),
            np.array([4], dtype=np.int64),
        )
    W = np.ones((4, 2))
    with pytest.raises(ValueError, match="shares memory"):
        csr_scatter(indptr, indices, data, W, 1.0, W[:3])
