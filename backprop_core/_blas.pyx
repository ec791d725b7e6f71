"""Row-major GEMM over the BLAS numpy or scipy already loaded, plus a direct loop for tiny
products.

Two sources, chosen on first use (``_ensure_blas``; every ``def`` entry point that reaches
``_gemm`` calls it first, while it still holds the GIL):
- numpy's own OpenBLAS, when numpy is the scipy-openblas64 build (the PyPI wheels): its ILP64
  CBLAS symbols ``scipy_cblas_sgemm64_`` etc. are looked up through numpy's extension module
  (dlsym searches a library's dependencies too) and checked against the direct loop once.
  It is a newer OpenBLAS than scipy's here and 8-9% faster on M's products (bench/NOTES.md),
  and it is the thread pool the caller's own numpy work already uses.
- otherwise scipy's, with the function pointers read from
  ``scipy.linalg.cython_blas.__pyx_capi__`` (not cimported: a cimport would import all of
  ``scipy.linalg``, about 0.5 s, whenever ``backprop_core`` is imported).
``BACKPROP_BLAS=scipy`` (or ``numpy``) in the environment forces one; ``blas_source()`` tells.
"""
import os

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer, PyCapsule_IsValid
from libc.stdint cimport int64_t


cdef extern from *:
    """
    /* an already loaded library's symbols; none on Windows (scipy's BLAS is used there) */
    #if defined(_WIN32)
    static void* bp_dl_loaded(const char* path) { (void)path; return NULL; }
    static void* bp_dl_symbol(void* lib, const char* name) { (void)lib; (void)name; return NULL; }
    static void bp_dl_release(void* lib) { (void)lib; }
    #else
    #include <dlfcn.h>
    /* glibc 2.34 moved these into libc with new symbol versions; binding the old ones keeps
       the wheel loadable on glibc 2.17 (manylinux2014), where they are in libdl.so.2 */
    #if defined(__GLIBC__) && defined(__x86_64__)
    __asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
    __asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
    __asm__(".symver dlclose,dlclose@GLIBC_2.2.5");
    #elif defined(__GLIBC__) && defined(__aarch64__)
    __asm__(".symver dlopen,dlopen@GLIBC_2.17");
    __asm__(".symver dlsym,dlsym@GLIBC_2.17");
    __asm__(".symver dlclose,dlclose@GLIBC_2.17");
    #endif
    static void* bp_dl_loaded(const char* path) { return dlopen(path, RTLD_NOW | RTLD_NOLOAD); }
    static void* bp_dl_symbol(void* lib, const char* name) { return dlsym(lib, name); }
    static void bp_dl_release(void* lib) { dlclose(lib); }
    #endif
    """
    void* bp_dl_loaded(const char* path)
    void* bp_dl_symbol(void* lib, const char* name)
    void bp_dl_release(void* lib)

# CBLAS (row-major calls, no operand swap), ILP64 as numpy's OpenBLAS is built
ctypedef void (*cblas_sgemm_t)(int, int, int, int64_t, int64_t, int64_t, float, const float*,
                               int64_t, const float*, int64_t, float, float*,
                               int64_t) noexcept nogil
ctypedef void (*cblas_dgemm_t)(int, int, int, int64_t, int64_t, int64_t, double, const double*,
                               int64_t, const double*, int64_t, double, double*,
                               int64_t) noexcept nogil
ctypedef void (*cblas_sgemv_t)(int, int, int64_t, int64_t, float, const float*, int64_t,
                               const float*, int64_t, float, float*, int64_t) noexcept nogil
ctypedef void (*cblas_dgemv_t)(int, int, int64_t, int64_t, double, const double*, int64_t,
                               const double*, int64_t, double, double*, int64_t) noexcept nogil
ctypedef void (*cblas_saxpy_t)(int64_t, float, const float*, int64_t, float*,
                               int64_t) noexcept nogil
ctypedef void (*cblas_daxpy_t)(int64_t, double, const double*, int64_t, double*,
                               int64_t) noexcept nogil

cdef enum:
    CBLAS_ROW_MAJOR = 101
    CBLAS_NO_TRANS = 111
    CBLAS_TRANS = 112

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
cdef cblas_sgemm_t _cblas_sgemm = NULL
cdef cblas_dgemm_t _cblas_dgemm = NULL
cdef cblas_saxpy_t _cblas_saxpy = NULL
cdef cblas_sgemv_t _cblas_sgemv = NULL  # one-row products (NULL: they go to gemm)
cdef cblas_dgemv_t _cblas_dgemv = NULL
cdef cblas_daxpy_t _cblas_daxpy = NULL
ctypedef void (*set_threads_t)(int) noexcept nogil
ctypedef int (*get_threads_t)() noexcept nogil
cdef set_threads_t _set_threads = NULL  # numpy's OpenBLAS's own thread count calls
cdef get_threads_t _get_threads = NULL
cdef bint _cblas = False  # products go to numpy's CBLAS (set before _ready)
cdef bint _ready = False  # the pointers are loaded
_SOURCE = None

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


cdef void* _numpy_symbol(void* handle, str name):
    return bp_dl_symbol(handle, name.encode())


cdef bint _load_numpy_cblas() except -1:
    """Point the CBLAS pointers at numpy's OpenBLAS if numpy carries the scipy-openblas64
    build; True if they then reproduce the direct loop on a few products."""
    global _cblas_sgemm, _cblas_dgemm, _cblas_saxpy, _cblas_daxpy, _cblas_sgemv, _cblas_dgemv
    try:
        from numpy._core import _multiarray_umath
    except ImportError:  # numpy 1.x
        try:
            from numpy.core import _multiarray_umath
        except ImportError:
            return False
    path = getattr(_multiarray_umath, "__file__", None)
    if not path:
        return False
    cdef void* handle = bp_dl_loaded(os.fsencode(path))
    if handle == NULL:
        return False
    # numpy 2 wheels: scipy-openblas64 (prefix scipy_); numpy 1.26 wheels: openblas64_
    for prefix in ("scipy_", ""):
        _cblas_sgemm = <cblas_sgemm_t>_numpy_symbol(handle, prefix + "cblas_sgemm64_")
        _cblas_dgemm = <cblas_dgemm_t>_numpy_symbol(handle, prefix + "cblas_dgemm64_")
        _cblas_saxpy = <cblas_saxpy_t>_numpy_symbol(handle, prefix + "cblas_saxpy64_")
        _cblas_daxpy = <cblas_daxpy_t>_numpy_symbol(handle, prefix + "cblas_daxpy64_")
        _cblas_sgemv = <cblas_sgemv_t>_numpy_symbol(handle, prefix + "cblas_sgemv64_")
        _cblas_dgemv = <cblas_dgemv_t>_numpy_symbol(handle, prefix + "cblas_dgemv64_")
        if _cblas_sgemm != NULL:
            break
    global _set_threads, _get_threads
    for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                 "openblas_set_num_threads"):
        _set_threads = <set_threads_t>_numpy_symbol(handle, name)
        _get_threads = <get_threads_t>_numpy_symbol(
            handle, name.replace("set_num_threads", "get_num_threads"))
        if _set_threads != NULL and _get_threads != NULL:
            break
    bp_dl_release(handle)  # numpy's module keeps the library loaded
    if (_cblas_sgemm == NULL or _cblas_dgemm == NULL or _cblas_saxpy == NULL
            or _cblas_daxpy == NULL):
        return False
    if not (_cblas_agrees(<float>0) and _cblas_agrees(<double>0)):
        return False
    if (_cblas_sgemv == NULL or _cblas_dgemv == NULL or not _gemv_agrees(<float>0)
            or not _gemv_agrees(<double>0)):
        _cblas_sgemv, _cblas_dgemv = NULL, NULL
    return True


cdef inline void _check_operands(floating* A, floating* B) noexcept:
    """A:(15,) and B:(20,) small integers of both signs, for the binding checks below: every
    product of them is exact, so any disagreement is a wrong binding, not rounding."""
    cdef int i
    for i in range(15):
        A[i] = (i * 7) % 5 - 2
    for i in range(20):
        B[i] = (i * 3) % 7 - 3


cdef bint _gemv_agrees(floating kind) noexcept:
    """One-row products through gemv (_gemm's route for m == 1) against the direct loop,
    each transpose pair, with exact small integers."""
    cdef floating A[15]
    cdef floating B[20]
    cdef floating C[4]
    cdef floating D[4]
    cdef int i, ta, tb
    _check_operands(A, B)
    for ta in range(2):
        for tb in range(2):
            for i in range(4):
                C[i] = i
                D[i] = i
            # op(A):(1, 5) from A as (1, 5) or, transposed, its column 0 of a (5, 3)
            _gemm_loop(ta, tb, 1, 4, 5, <floating>2, A, 3 if ta else 5, B, 5 if tb else 4,
                       <floating>1, C, 4)
            _gemv_row(ta, tb, 4, 5, <floating>2, A, 3 if ta else 5, B, 5 if tb else 4,
                      <floating>1, D)
            for i in range(4):
                if C[i] != D[i]:
                    return False
    return True


cdef inline void _gemv_row(bint trans_a, bint trans_b, Py_ssize_t n, Py_ssize_t k,
                           floating alpha, const floating* A, Py_ssize_t lda,
                           const floating* B, Py_ssize_t ldb, floating beta,
                           floating* C) noexcept nogil:
    """C:(1, n) := alpha op(A) @ op(B) + beta C for one row op(A):(1, k), through gemv:
    C.T = op(B).T @ op(A).T, op(A)'s row read with stride lda when A is transposed."""
    cdef int64_t incx = lda if trans_a else 1
    # row-major B:(k, n) -> y = B.T x (CblasTrans); transposed B:(n, k) -> y = B x
    if floating is float:
        if trans_b:
            _cblas_sgemv(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, n, k, alpha, B, ldb, A, incx, beta,
                         C, 1)
        else:
            _cblas_sgemv(CBLAS_ROW_MAJOR, CBLAS_TRANS, k, n, alpha, B, ldb, A, incx, beta, C,
                         1)
    else:
        if trans_b:
            _cblas_dgemv(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, n, k, alpha, B, ldb, A, incx, beta,
                         C, 1)
        else:
            _cblas_dgemv(CBLAS_ROW_MAJOR, CBLAS_TRANS, k, n, alpha, B, ldb, A, incx, beta, C,
                         1)


cdef bint _cblas_agrees(floating kind) noexcept:
    """Every transpose pair of a (3, 5) @ (5, 4) product, and an axpy, through the CBLAS
    pointers against the direct loop (exact small integers: any disagreement is a wrong
    binding, not rounding)."""
    cdef floating A[15]
    cdef floating B[20]
    cdef floating C[12]
    cdef floating D[12]
    cdef floating y[12]
    cdef int i, ta, tb
    _check_operands(A, B)
    for ta in range(2):
        for tb in range(2):
            for i in range(12):
                C[i] = i
                D[i] = i
            _gemm_loop(ta, tb, 3, 4, 5, <floating>2, A, 3 if ta else 5, B, 5 if tb else 4,
                       <floating>1, C, 4)
            if floating is float:
                _cblas_sgemm(CBLAS_ROW_MAJOR, CBLAS_TRANS if ta else CBLAS_NO_TRANS,
                             CBLAS_TRANS if tb else CBLAS_NO_TRANS, 3, 4, 5, 2, A,
                             3 if ta else 5, B, 5 if tb else 4, 1, D, 4)
            else:
                _cblas_dgemm(CBLAS_ROW_MAJOR, CBLAS_TRANS if ta else CBLAS_NO_TRANS,
                             CBLAS_TRANS if tb else CBLAS_NO_TRANS, 3, 4, 5, 2, A,
                             3 if ta else 5, B, 5 if tb else 4, 1, D, 4)
            for i in range(12):
                if C[i] != D[i]:
                    return False
    for i in range(12):
        y[i] = i
    if floating is float:
        _cblas_saxpy(12, -3, C, 1, y, 1)
    else:
        _cblas_daxpy(12, -3, C, 1, y, 1)
    for i in range(12):
        if y[i] != i - 3 * C[i]:
            return False
    return True


cdef int _ensure_blas() except -1:
    global _sgemm, _dgemm, _saxpy, _daxpy, _cblas, _ready, _SOURCE
    if _ready:
        return 0
    choice = os.environ.get("BACKPROP_BLAS", "auto")
    if choice not in ("auto", "numpy", "scipy"):
        raise ValueError(f"BACKPROP_BLAS must be 'auto', 'numpy' or 'scipy', got {choice!r}")
    if choice != "scipy" and _load_numpy_cblas():
        _cblas, _SOURCE = True, "numpy"
    elif choice == "numpy":
        raise ImportError("BACKPROP_BLAS=numpy, but numpy does not carry the scipy-openblas64 "
                          "CBLAS (scipy_cblas_sgemm64_) or it failed the check")
    else:
        from scipy.linalg import cython_blas
        capi = cython_blas.__pyx_capi__
        _daxpy = <daxpy_t>_capsule(capi, "daxpy", _AXPY_SIGNATURE)
        _saxpy = <saxpy_t>_capsule(capi, "saxpy", _AXPY_SIGNATURE)
        _dgemm = <dgemm_t>_capsule(capi, "dgemm", _GEMM_SIGNATURE)
        _sgemm = <sgemm_t>_capsule(capi, "sgemm", _GEMM_SIGNATURE)
        _SOURCE = "scipy"
    _ready = True  # last: other threads test it without the pointers' lock
    return 0


def blas_loaded():
    """True once the BLAS pointers have been fetched (they are fetched on first use)."""
    return _ready


def blas_threads():
    """The number of threads of the BLAS the products go to, or None if this module cannot
    tell (scipy's BLAS: use threadpoolctl)."""
    _ensure_blas()
    if _cblas and _get_threads != NULL:
        return _get_threads()
    return None


def set_blas_threads(int n):
    """Use n >= 1 threads in the BLAS the products go to; False if this module cannot set
    it (scipy's BLAS: use threadpoolctl). numpy's own products share that BLAS."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _ensure_blas()
    if _cblas and _set_threads != NULL:
        _set_threads(n)
        return True
    return False


def blas_source():
    """Whose BLAS the products go to: "numpy" (its OpenBLAS), "scipy", or None before the
    first use. BACKPROP_BLAS=numpy|scipy in the environment chooses; the default prefers
    numpy's."""
    return _SOURCE


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
    """C := alpha*op(A)@op(B) + beta*C, row-major, for tiny sizes. beta == 0 ignores C.

    One dot product per item, strides chosen once: at T's sizes (k, n <= 3) a vectorised row
    update spent its time in loop set-up and aliasing checks (bench/NOTES.md)."""
    cdef Py_ssize_t i, j, p
    cdef Py_ssize_t a_i = 1 if trans_a else lda, a_p = lda if trans_a else 1
    cdef Py_ssize_t b_p = 1 if trans_b else ldb, b_j = ldb if trans_b else 1
    cdef floating s
    for i in range(m):
        for j in range(n):
            s = 0
            for p in range(k):
                s = s + A[i * a_i + p * a_p] * B[p * b_p + j * b_j]
            if beta == 0:
                C[i * ldc + j] = alpha * s
            else:
                C[i * ldc + j] = alpha * s + beta * C[i * ldc + j]


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
    if m == 1 and _cblas_sgemv != NULL:
        # one row (batch 1): OpenBLAS's gemm still packs B, its gemv streams it (M's 784x128
        # float32 product: 46 -> 13 us here, bench/NOTES.md)
        _gemv_row(trans_a, trans_b, n, k, alpha, A, lda, B, ldb, beta, C)
        return
    if _cblas:
        if floating is float:
            _cblas_sgemm(CBLAS_ROW_MAJOR, CBLAS_TRANS if trans_a else CBLAS_NO_TRANS,
                         CBLAS_TRANS if trans_b else CBLAS_NO_TRANS, m, n, k, alpha, A, lda,
                         B, ldb, beta, C, ldc)
        else:
            _cblas_dgemm(CBLAS_ROW_MAJOR, CBLAS_TRANS if trans_a else CBLAS_NO_TRANS,
                         CBLAS_TRANS if trans_b else CBLAS_NO_TRANS, m, n, k, alpha, A, lda,
                         B, ldb, beta, C, ldc)
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
    if _cblas:
        if floating is float:
            _cblas_saxpy(n, alpha, x, 1, y, 1)
        else:
            _cblas_daxpy(n, alpha, x, 1, y, 1)
        return
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
