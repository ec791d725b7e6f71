from cython cimport floating
from libc.stdint cimport int32_t, int64_t

cdef extern from "_sparse.h" nogil:
    void bp_csr_forward_f32(const int64_t* indptr, const int32_t* indices, const float* data,
                            const int64_t* rows, Py_ssize_t first, Py_ssize_t n, const float* W,
                            const float* b, float* Y, Py_ssize_t m)
    void bp_csr_forward_f64(const int64_t* indptr, const int32_t* indices, const double* data,
                            const int64_t* rows, Py_ssize_t first, Py_ssize_t n,
                            const double* W, const double* b, double* Y, Py_ssize_t m)
    void bp_csr_scatter_f32(const int64_t* indptr, const int32_t* indices, const float* data,
                            const int64_t* rows, Py_ssize_t first, Py_ssize_t n,
                            const float* dY, float alpha, float* W, Py_ssize_t m)
    void bp_csr_scatter_f64(const int64_t* indptr, const int32_t* indices, const double* data,
                            const int64_t* rows, Py_ssize_t first, Py_ssize_t n,
                            const double* dY, double alpha, double* W, Py_ssize_t m)
    double bp_csr_max_abs_f32(const int64_t* indptr, const float* data, const int64_t* rows,
                              Py_ssize_t first, Py_ssize_t n, int64_t* count)
    double bp_csr_max_abs_f64(const int64_t* indptr, const double* data, const int64_t* rows,
                              Py_ssize_t first, Py_ssize_t n, int64_t* count)
    bint bp_csr_valid(const int64_t* indptr, const int32_t* indices, Py_ssize_t n,
                      Py_ssize_t nnz, Py_ssize_t n_in)


cdef struct Csr:
    # a CSR batch: the rows rows[0..n) of the matrix (rows NULL: first, first + 1, ...)
    const int64_t* indptr     # absolute offsets into indices and data
    const int32_t* indices    # columns
    const void* data          # values, of the network's dtype
    const int64_t* rows
    Py_ssize_t first


cdef inline void _csr_forward(const Csr* x, Py_ssize_t n, const floating* W, const floating* b,
                              floating* Y, Py_ssize_t m) noexcept nogil:
    """Y := X @ W + b for the batch's n rows   W:(n_in, m) b:(m,) Y:(n, m)"""
    if floating is float:
        bp_csr_forward_f32(x.indptr, x.indices, <const float*>x.data, x.rows, x.first, n, W, b,
                           Y, m)
    else:
        bp_csr_forward_f64(x.indptr, x.indices, <const double*>x.data, x.rows, x.first, n, W,
                           b, Y, m)


cdef inline void _csr_scatter(const Csr* x, Py_ssize_t n, const floating* dY, floating alpha,
                              floating* W, Py_ssize_t m) noexcept nogil:
    """W += alpha X.T @ dY for the batch's n rows, touching only the rows of W that occur
    dY:(n, m) W:(n_in, m)"""
    if floating is float:
        bp_csr_scatter_f32(x.indptr, x.indices, <const float*>x.data, x.rows, x.first, n, dY,
                           alpha, W, m)
    else:
        bp_csr_scatter_f64(x.indptr, x.indices, <const double*>x.data, x.rows, x.first, n, dY,
                           alpha, W, m)


cdef inline double _csr_max_abs(const Csr* x, Py_ssize_t n, bint single,
                                int64_t* count) noexcept nogil:
    """max |value| over the batch's n rows' entries; *count := their number"""
    if single:
        return bp_csr_max_abs_f32(x.indptr, <const float*>x.data, x.rows, x.first, n, count)
    return bp_csr_max_abs_f64(x.indptr, <const double*>x.data, x.rows, x.first, n, count)
