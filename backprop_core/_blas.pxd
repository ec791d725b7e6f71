# The one door to BLAS. Row-major wrappers over numpy's or scipy's BLAS, fused over float/double.
from cython cimport floating

ctypedef int blas_int  # LP64 BLAS, as scipy.linalg.cython_blas exposes it

cdef int _ensure_blas() except -1

cdef void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                floating alpha, const floating* A, Py_ssize_t lda,
                const floating* B, Py_ssize_t ldb,
                floating beta, floating* C, Py_ssize_t ldc) noexcept nogil

cdef void _axpy(Py_ssize_t n, floating alpha, const floating* x, floating* y) noexcept nogil
