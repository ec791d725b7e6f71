"""Row-major GEMM over scipy's BLAS, plus a direct loop for tiny products.

The BLAS function pointers are read from ``scipy.linalg.cython_blas.__pyx_capi__`` on first
use, not cimported: a cimport would import all of ``scipy.linalg`` (about 0.5 s) whenever
``backprop_core`` is imported. Every ``def`` entry point that reaches ``_gemm`` calls
``_ensure_blas()`` first, while it still holds the GIL.
"""
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer, PyCapsule_IsValid

ctypedef void (*sgemm_t)(char*, char*, blas_int*, blas_int*, blas_int*, float*, float*,
                         blas_int*, float*, blas_int*, float*, float*,
                         blas_int*) noexcept nogil
ctypedef void (*dgemm_t)(char*, char*, blas_int*, blas_int*, blas_int*, double*, double*,
                         blas_int*, double*, blas_int*, double*, double*,
                         blas_int*) noexcept nogil

ctypedef void (*saxpy_t)(blas_int*, float*, float*, blas_int*, float*,
                         blas_int*) noexcept nogil
ctypedef void (*daxpy_t)(blas_int*, double*, double*, blas_int*, double*,
                         blas_int*) noexcept nogil

cdef sgemm_t _sgemm = NULL
cdef dgemm_t _dgemm = NULL
cdef saxpy_t _saxpy = NULL
cdef daxpy_t _daxpy = NULL

# Up to this many multiply-adds (m*n*k) a plain loop beats a BLAS call, whose fixed cost
# (argument checks, dispatch, packing) dominates. Measured by bench/gemm_threshold.py:
# the two cross near 256 with OpenBLAS 0.3.3x on these machines; see bench/NOTES.md.
cdef Py_ssize_t SMALL_GEMM = 256

_GEMM_SIGNATURE = "void (char *, char *, int *, int *, int *, "
_AXPY_SIGNATURE = "void (int *, "


cdef void* _capsule(dict capi, str name, str signature) except NULL:
    cap = capi[name]
    cdef const char* cname = PyCapsule_GetName(cap)
    if cname == NULL or not PyCapsule_IsValid(cap, cname):
        raise ImportError(f"scipy.linalg.cython_blas.{name} is not a valid capsule")
    if not (<bytes>cname).decode().startswith(signature):
        raise ImportError(f"unexpected signature for scipy BLAS {name}: {(<bytes>cname).decode()}")
    return PyCapsule_GetPointer(cap, cname)


cdef int _ensure_blas() except -1:
    global _sgemm, _dgemm, _saxpy, _daxpy
    if _sgemm != NULL:
        return 0
    from scipy.linalg import cython_blas
    capi = cython_blas.__pyx_capi__
    _daxpy = <daxpy_t>_capsule(capi, "daxpy", _AXPY_SIGNATURE)
    _saxpy = <saxpy_t>_capsule(capi, "saxpy", _AXPY_SIGNATURE)
    _dgemm = <dgemm_t>_capsule(capi, "dgemm", _GEMM_SIGNATURE)
    _sgemm = <sgemm_t>_capsule(capi, "sgemm", _GEMM_SIGNATURE)  # last: the "loaded" flag
    return 0


def blas_loaded():
    """True once the BLAS pointers have been fetched (they are fetched on first use)."""
    return _sgemm != NULL


def small_gemm_threshold():
    """m*n*k up to which products use the direct loop instead of BLAS."""
    return SMALL_GEMM


def _set_small_gemm_threshold(Py_ssize_t value):
    """For benchmarks only (not thread-safe): set the threshold, return the old one."""
    global SMALL_GEMM
    old, SMALL_GEMM = SMALL_GEMM, value
    return old


cdef inline void _gemm_loop(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                            Py_ssize_t k, floating alpha, const floating* A, Py_ssize_t lda,
                            const floating* B, Py_ssize_t ldb, floating beta, floating* C,
                            Py_ssize_t ldc) noexcept nogil:
    """C := alpha*op(A)@op(B) + beta*C, row-major, for tiny sizes. beta == 0 ignores C."""
    cdef Py_ssize_t i, j, p
    cdef floating a, s
    for i in range(m):
        if beta == 0:
            for j in range(n):
                C[i * ldc + j] = 0
        elif beta != 1:
            for j in range(n):
                C[i * ldc + j] *= beta
        if not trans_b:
            # innermost loop runs along a row of B and C: contiguous, vectorisable
            for p in range(k):
                a = alpha * (A[p * lda + i] if trans_a else A[i * lda + p])
                for j in range(n):
                    C[i * ldc + j] += a * B[p * ldb + j]
        else:
            for j in range(n):
                s = 0
                for p in range(k):
                    s = s + (A[p * lda + i] if trans_a else A[i * lda + p]) * B[j * ldb + p]
                C[i * ldc + j] += alpha * s


cdef void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                floating alpha, const floating* A, Py_ssize_t lda,
                const floating* B, Py_ssize_t ldb,
                floating beta, floating* C, Py_ssize_t ldc) noexcept nogil:
    """C := alpha*op(A)@op(B) + beta*C with A, B, C row-major; C is (m, n), k the inner size.

    BLAS is column-major, and a row-major matrix is its transpose in column-major order, so
    we ask BLAS for C.T = op(B).T @ op(A).T: swap the operands, keep each one's flag.
    """
    if m == 0 or n == 0:
        return
    if m * n * k <= SMALL_GEMM:
        _gemm_loop(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
        return
    cdef char ta = b"t" if trans_a else b"n"
    cdef char tb = b"t" if trans_b else b"n"
    cdef blas_int bm = <blas_int>n, bn = <blas_int>m, bk = <blas_int>k
    cdef blas_int blda = <blas_int>ldb, bldb = <blas_int>lda, bldc = <blas_int>ldc
    # BLAS does not write A or B; cython_blas just lacks the const qualifiers.
    if floating is float:
        _sgemm(&tb, &ta, &bm, &bn, &bk, &alpha, <float*>B, &blda, <float*>A, &bldb,
               &beta, C, &bldc)
    else:
        _dgemm(&tb, &ta, &bm, &bn, &bk, &alpha, <double*>B, &blda, <double*>A, &bldb,
               &beta, C, &bldc)


cdef void _axpy(Py_ssize_t n, floating alpha, const floating* x, floating* y) noexcept nogil:
    """y += alpha * x   x, y:(n,) contiguous, through BLAS (which may split it across its
    threads and round alpha * x[i] + y[i] once, with a fused multiply-add)."""
    cdef blas_int chunk, one = 1
    cdef Py_ssize_t start = 0
    while start < n:
        chunk = <blas_int>min(n - start, 1 << 30)  # blas_int is 32-bit
        if floating is float:
            _saxpy(&chunk, &alpha, <float*>x + start, &one, y + start, &one)
        else:
            _daxpy(&chunk, &alpha, <double*>x + start, &one, y + start, &one)
        start += chunk


cdef struct _Product:
    bint trans_a, trans_b
    Py_ssize_t m, n, k
    void* A
    void* B
    void* C


def _gemm_floor(list products, Py_ssize_t calls):
    """For benchmarks only: run the products `calls` times through `_gemm`, without the GIL.

    products: [(trans_a, trans_b, m, n, k, A, B, C), ...], C := op(A) @ op(B) row-major,
    A, B, C 1-D C-contiguous arrays of one dtype (float32 or float64) holding at least
    m*k, k*n and m*n items. The matrix-product time of a training step with no other work:
    the floor a whole step can approach.
    """
    _ensure_blas()
    cdef Py_ssize_t i, _c, count = len(products)
    cdef _Product* p = <_Product*>PyMem_Malloc(max(count, 1) * sizeof(_Product))
    if p == NULL:
        raise MemoryError()
    cdef bint single = True
    try:
        for i, (ta, tb, m, n, k, A, B, C) in enumerate(products):
            if not (A.dtype == B.dtype == C.dtype and A.dtype.kind == "f"
                    and A.dtype.itemsize in (4, 8)):
                raise TypeError("A, B, C must share a float32/float64 dtype")
            if i > 0 and single != (A.dtype.itemsize == 4):
                raise TypeError("all products must share one dtype")
            single = A.dtype.itemsize == 4
            if (A.ndim != 1 or B.ndim != 1 or C.ndim != 1 or not C.flags.writeable
                    or not (A.flags.c_contiguous and B.flags.c_contiguous
                            and C.flags.c_contiguous)
                    or A.size < m * k or B.size < k * n or C.size < m * n):
                raise ValueError(f"product {i}: arrays too small or not 1-D C-contiguous")
            p[i].trans_a, p[i].trans_b, p[i].m, p[i].n, p[i].k = ta, tb, m, n, k
            p[i].A = <void*><size_t>A.ctypes.data
            p[i].B = <void*><size_t>B.ctypes.data
            p[i].C = <void*><size_t>C.ctypes.data
        with nogil:
            for _c in range(calls):
                for i in range(count):
                    if single:
                        _gemm(p[i].trans_a, p[i].trans_b, p[i].m, p[i].n, p[i].k, <float>1,
                              <float*>p[i].A, p[i].m if p[i].trans_a else p[i].k,
                              <float*>p[i].B, p[i].k if p[i].trans_b else p[i].n, <float>0,
                              <float*>p[i].C, p[i].n)
                    else:
                        _gemm(p[i].trans_a, p[i].trans_b, p[i].m, p[i].n, p[i].k, <double>1,
                              <double*>p[i].A, p[i].m if p[i].trans_a else p[i].k,
                              <double*>p[i].B, p[i].k if p[i].trans_b else p[i].n, <double>0,
                              <double*>p[i].C, p[i].n)
    finally:
        PyMem_Free(p)
