"""Dense (fully connected) layer kernels: row-major, W stored (n_in, n_out); and the first
layer's kernels for CSR input (_sparse.h: csr_forward, csr_scatter; the executor uses the
inline forms in _sparse.pxd)."""
from cython cimport floating
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy

from ._blas cimport _ensure_blas, _gemm
from ._checks cimport _overlap
from ._sparse cimport Csr, _csr_forward, _csr_scatter, bp_csr_valid


cdef extern from "_simd.h" nogil:
    # bias rows and bias-gradient sums in AVX-512/AVX2/baseline clones (see _simd.h)
    void bp_add_rows_f32(float* Y, const float* b, Py_ssize_t n, Py_ssize_t m)
    void bp_add_rows_f64(double* Y, const double* b, Py_ssize_t n, Py_ssize_t m)
    void bp_colsum_f32(const float* dY, float* db, Py_ssize_t n, Py_ssize_t m)
    void bp_colsum_f64(const double* dY, double* db, Py_ssize_t n, Py_ssize_t m)


cdef enum:
    # largest W (items) that _dense_backward copies transposed on its stack for dX (32 KB
    # in float64)
    WT_MAX = 4096
    # above this many multiply-adds (OpenBLAS's small-matrix range: 100^3), the forward
    # product starts from the bias (beta 1)
    BIAS_FIRST_MIN = 1000000


cdef void _dense_forward(const floating* X, const floating* W, const floating* b, floating* Y,
                         Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """Y := X @ W + b   X:(n, n_in) W:(n_in, n_out) b:(n_out,) Y:(n, n_out)"""
    cdef Py_ssize_t i
    if n * n_out * n_in <= BIAS_FIRST_MIN:
        # small products: OpenBLAS's small-matrix kernels are faster with beta 0 (0.32 vs
        # 0.46 us at 32x32x10)
        _gemm(False, False, n, n_out, n_in, <floating>1, X, n_in, W, n_out, <floating>0, Y,
              n_out)
        if floating is float:
            bp_add_rows_f32(Y, b, n, n_out)
        else:
            bp_add_rows_f64(Y, b, n, n_out)
        return
    # b in every row, then the product added to it (beta 1): one pass over Y besides the
    # product instead of two (BLAS zeroing Y for beta 0, then b added)
    for i in range(n):
        memcpy(Y + i * n_out, b, n_out * sizeof(floating))
    _gemm(False, False, n, n_out, n_in, <floating>1, X, n_in, W, n_out, <floating>1, Y, n_out)


cdef void _dense_backward(const floating* X, const floating* W, const floating* dY,
                          floating* dX, floating* dW, floating* db,
                          Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """dW := X.T @ dY, db := dY.sum(0), dX := dY @ W.T (skipped when dX is NULL).

    X:(n, n_in) W:(n_in, n_out) dY:(n, n_out) dX:(n, n_in) dW:(n_in, n_out) db:(n_out,)
    Gradients are overwritten, not accumulated.
    """
    cdef Py_ssize_t i, j
    cdef floating wt[WT_MAX]
    if dW != NULL:
        _gemm(True, False, n_in, n_out, n, <floating>1, X, n_in, dY, n_out, <floating>0, dW,
              n_out)
    if floating is float:
        bp_colsum_f32(dY, db, n, n_out)
    else:
        bp_colsum_f64(dY, db, n, n_out)
    if dX == NULL:
        return
    if n_in * n_out > WT_MAX:
        _gemm(False, True, n, n_in, n_out, <floating>1, dY, n_out, W, n_out, <floating>0,
              dX, n_in)
        return
    # OpenBLAS's small-matrix kernels skip this transposed form (dY @ W.T packs, 0.49 us at
    # 32x32x10) but not the plain one on W.T copied (0.24 us, and ~0.05 us for the copy)
    for i in range(n_in):
        for j in range(n_out):
            wt[j * n_in + i] = W[i * n_out + j]
    _gemm(False, False, n, n_in, n_out, <floating>1, dY, n_out, wt, n_in, <floating>0, dX, n_in)


cdef int _check_disjoint(str who, list outputs, list inputs) except -1:
    """Refuse an output that shares memory with an input or another output: the products
    read their inputs while the outputs are written, so any overlap gives wrong numbers.
    outputs, inputs: (name, address, byte size) triples."""
    cdef Py_ssize_t k
    for k, (name, addr, size) in enumerate(outputs):
        for other, o_addr, o_size in inputs + outputs[k + 1:]:
            if _overlap(<void*><size_t>addr, size, <void*><size_t>o_addr, o_size):
                raise ValueError(f"{who}: {name} shares memory with {other}; pass separate "
                                 f"arrays")
    return 0


cdef str _shape(Py_ssize_t* shape, int ndim):
    return "(" + ", ".join([str(shape[i]) for i in range(ndim)]) + ("," if ndim == 1 else "") + ")"


def dense_forward(const floating[:, ::1] X not None, const floating[:, ::1] W not None,
                  const floating[::1] b not None, floating[:, ::1] Y not None):
    """Y := X @ W + b   X:(n, n_in) W:(n_in, n_out) b:(n_out,) Y:(n, n_out). Writes Y, which
    must not share memory with X, W or b."""
    cdef Py_ssize_t n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    if W.shape[0] != n_in or b.shape[0] != n_out or Y.shape[0] != n or Y.shape[1] != n_out:
        raise ValueError(
            f"dense_forward: incompatible shapes X{_shape(X.shape, 2)} "
            f"W{_shape(W.shape, 2)} b{_shape(b.shape, 1)} Y{_shape(Y.shape, 2)}; "
            f"expected X:(n, n_in) W:(n_in, n_out) b:(n_out,) Y:(n, n_out)")
    if n == 0 or n_out == 0:
        return
    cdef Py_ssize_t item = sizeof(floating)
    _check_disjoint("dense_forward", [("Y", <size_t>&Y[0, 0], n * n_out * item)],
                    [("X", <size_t>&X[0, 0], n * n_in * item),
                     ("W", <size_t>&W[0, 0], n_in * n_out * item),
                     ("b", <size_t>&b[0], n_out * item)])
    _ensure_blas()
    with nogil:
        _dense_forward(&X[0, 0], &W[0, 0], &b[0], &Y[0, 0], n, n_in, n_out)


def dense_backward(const floating[:, ::1] X not None, const floating[:, ::1] W not None,
                   const floating[:, ::1] dY not None, floating[:, ::1] dW not None,
                   floating[::1] db not None, floating[:, ::1] dX=None):
    """dW := X.T @ dY, db := dY.sum(0), and dX := dY @ W.T unless dX is None.

    X:(n, n_in) W:(n_in, n_out) dY:(n, n_out) dW:(n_in, n_out) db:(n_out,) dX:(n, n_in)
    The outputs dW, db, dX must not share memory with the inputs or each other.
    """
    cdef Py_ssize_t n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    if (W.shape[0] != n_in or dY.shape[0] != n or dY.shape[1] != n_out
            or dW.shape[0] != n_in or dW.shape[1] != n_out or db.shape[0] != n_out
            or (dX is not None and (dX.shape[0] != n or dX.shape[1] != n_in))):
        raise ValueError(
            f"dense_backward: incompatible shapes X{_shape(X.shape, 2)} "
            f"W{_shape(W.shape, 2)} dY{_shape(dY.shape, 2)} dW{_shape(dW.shape, 2)} "
            f"db{_shape(db.shape, 1)}" + ("" if dX is None else f" dX{_shape(dX.shape, 2)}"))
    cdef Py_ssize_t i, j
    if n_in == 0 or n_out == 0:
        # zero-width: dW has no items, but db and dX are still written (db sums dY's
        # columns, each dX item is a sum over no outputs)
        for j in range(n_out):
            db[j] = 0
            for i in range(n):
                db[j] += dY[i, j]
        if dX is not None:
            for i in range(n):
                for j in range(n_in):
                    dX[i, j] = 0
        return
    _ensure_blas()
    cdef floating* dx_ptr = NULL
    cdef const floating* x_ptr = &X[0, 0] if n > 0 else NULL
    cdef const floating* dy_ptr = &dY[0, 0] if n > 0 else NULL
    if dX is not None and n > 0:
        dx_ptr = &dX[0, 0]
    cdef Py_ssize_t item = sizeof(floating)
    _check_disjoint("dense_backward",
                    [("dW", <size_t>&dW[0, 0], n_in * n_out * item),
                     ("db", <size_t>&db[0], n_out * item),
                     ("dX", <size_t>dx_ptr, n * n_in * item if dx_ptr != NULL else 0)],
                    [("X", <size_t>x_ptr, n * n_in * item),
                     ("W", <size_t>&W[0, 0], n_in * n_out * item),
                     ("dY", <size_t>dy_ptr, n * n_out * item)])
    with nogil:
        _dense_backward(x_ptr, &W[0, 0], dy_ptr, dx_ptr, &dW[0, 0], &db[0], n, n_in, n_out)


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
