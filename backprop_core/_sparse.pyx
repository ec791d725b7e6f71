"""First-layer kernels for CSR input (see _sparse.h): the Python entries, for tests and for
callers with their own loop. The executor uses the inline forms in _sparse.pxd."""
from cython cimport floating
from libc.stdint cimport int32_t, int64_t

from ._checks cimport _overlap


cdef int _check(str who, const int64_t[::1] indptr, const int32_t[::1] indices, Py_ssize_t nnz,
                Py_ssize_t n_in, const int64_t[::1] rows, Py_ssize_t m, Py_ssize_t out_rows,
                Py_ssize_t b_len) except -1:
    cdef Py_ssize_t n_csr = indptr.shape[0] - 1, i
    cdef bint ok
    if n_csr < 0:
        raise ValueError(f"{who}: indptr must hold at least one offset")
    if indices.shape[0] != nnz:
        raise ValueError(f"{who}: indices and data must have one length, got "
                         f"{indices.shape[0]} and {nnz}")
    n = n_csr if rows is None else rows.shape[0]
    if out_rows != n or b_len != m:
        raise ValueError(f"{who}: expected {n} output rows of {m} items")
    with nogil:
        ok = bp_csr_valid(&indptr[0], &indices[0] if nnz > 0 else NULL, n_csr, nnz, n_in)
    if not ok:
        raise ValueError(f"{who}: not a CSR matrix of {n_in} columns (indptr must rise from "
                         f">= 0 to <= nnz, indices lie in [0, {n_in}))")
    if rows is not None:
        for i in range(rows.shape[0]):
            if not 0 <= rows[i] < n_csr:
                raise ValueError(f"{who}: rows must lie in [0, {n_csr})")
    return 0


cdef Csr _csr(const int64_t[::1] indptr, const int32_t[::1] indices, const floating[::1] data,
              const int64_t[::1] rows):
    """The Csr record of checked arrays (rows None: every row in order)."""
    cdef Csr x
    x.indptr, x.indices, x.data = &indptr[0], NULL, NULL
    if indices.shape[0]:
        x.indices, x.data = &indices[0], &data[0]
    x.rows = &rows[0] if rows is not None and rows.shape[0] else NULL
    x.first = 0
    return x


def csr_forward(const int64_t[::1] indptr not None, const int32_t[::1] indices not None,
                const floating[::1] data not None, const floating[:, ::1] W not None,
                const floating[::1] b not None, floating[:, ::1] Y not None,
                const int64_t[::1] rows=None):
    """Y := X[rows] @ W + b   X: CSR (indptr (N+1,) int64, indices (nnz,) int32, data (nnz,)),
    rows: (n,) int64 or None (all N rows), W:(n_in, m) b:(m,) Y:(n, m)."""
    cdef Py_ssize_t n = Y.shape[0], m = W.shape[1]
    _check("csr_forward", indptr, indices, data.shape[0], W.shape[0], rows, m, n, b.shape[0])
    if Y.shape[1] != m:
        raise ValueError(f"csr_forward: Y must have {m} columns, got {Y.shape[1]}")
    if n == 0 or m == 0:
        return
    if _overlap(&Y[0, 0], n * m * sizeof(floating), &W[0, 0], W.shape[0] * m * sizeof(floating)):
        raise ValueError("csr_forward: Y shares memory with W; pass separate arrays")
    cdef Csr x = _csr(indptr, indices, data, rows)
    with nogil:
        _csr_forward(&x, n, &W[0, 0], &b[0], &Y[0, 0], m)


def csr_scatter(const int64_t[::1] indptr not None, const int32_t[::1] indices not None,
                const floating[::1] data not None, const floating[:, ::1] dY not None,
                floating alpha, floating[:, ::1] W not None, const int64_t[::1] rows=None):
    """W += alpha X[rows].T @ dY, writing only the rows of W whose columns occur.
    X as in csr_forward; dY:(n, m) W:(n_in, m)."""
    cdef Py_ssize_t n = dY.shape[0], m = W.shape[1]
    _check("csr_scatter", indptr, indices, data.shape[0], W.shape[0], rows, m, n, dY.shape[1])
    if n == 0 or m == 0:
        return
    if _overlap(&dY[0, 0], n * m * sizeof(floating), &W[0, 0],
                W.shape[0] * m * sizeof(floating)):
        raise ValueError("csr_scatter: W shares memory with dY; pass separate arrays")
    cdef Csr x = _csr(indptr, indices, data, rows)
    with nogil:
        _csr_scatter(&x, n, &dY[0, 0], alpha, &W[0, 0], m)
