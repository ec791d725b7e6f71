"""Cheap structural scans used by the Python package's validation (no temporaries)."""
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_STRIDES, PyBuffer_Release,
                             PyObject_GetBuffer)
from cython cimport floating
from libc.math cimport INFINITY
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy


cdef extern from "_simd.h" nogil:
    bint bp_all_finite_f32(const float* x, Py_ssize_t n)
    bint bp_all_finite_f64(const double* x, Py_ssize_t n)
    uint32_t bp_max_abs_bits_f32(const float* x, Py_ssize_t n)
    uint64_t bp_max_abs_bits_f64(const double* x, Py_ssize_t n)
    bint bp_any_label_outside(const int64_t* y, Py_ssize_t n, int64_t k)


cdef inline bint _finite(const floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return bp_all_finite_f32(x, n)
    else:
        return bp_all_finite_f64(x, n)


cdef Py_ssize_t _first_nonfinite_row(const floating* X, Py_ssize_t n,
                                     Py_ssize_t m) noexcept nogil:
    """Index of the first row of X:(n, m) holding a NaN or an infinity, or -1."""
    cdef Py_ssize_t i
    for i in range(n):
        if not _finite(X + i * m, m):
            return i
    return -1


cdef bint _all_finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """No NaN or infinity in x[:n]; blocks of 4096 values end the scan early."""
    cdef Py_ssize_t start
    for start in range(0, n, 4096):
        if not _finite(x + start, min(4096, n - start)):
            return False
    return True


cdef double _max_abs(const floating* x, Py_ssize_t n) noexcept nogil:
    """max |x[:n]| (0 for n == 0), or infinity if x holds a NaN or an infinity."""
    cdef uint32_t b32
    cdef uint64_t b64
    cdef float f32
    cdef double f64
    if floating is float:
        b32 = bp_max_abs_bits_f32(x, n)
        if b32 >= 0x7f800000u:
            return INFINITY
        memcpy(&f32, &b32, sizeof(float))
        return f32
    else:
        b64 = bp_max_abs_bits_f64(x, n)
        if b64 >= 0x7ff0000000000000u:
            return INFINITY
        memcpy(&f64, &b64, sizeof(double))
        return f64


def first_nonfinite_row(X):
    """Index of the first row of X holding a NaN or an infinity, or -1.

    X:(n, m) C-contiguous float32 or float64. Not a fused function: this runs on every
    training call, and reading the buffer directly costs a tenth of a fused dispatch.
    """
    cdef Py_buffer view
    cdef Py_ssize_t found = -1, n, m
    cdef char kind
    PyObject_GetBuffer(X, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_STRIDES)
    kind = view.format[0] if view.format != NULL and view.format[1] == 0 else 0
    if view.ndim != 2 or (kind != b"f" and kind != b"d"):
        PyBuffer_Release(&view)
        raise TypeError("first_nonfinite_row: X must be a 2-D C-contiguous float32 or float64 "
                        "array")
    n, m = view.shape[0], view.shape[1]
    with nogil:
        if kind == b"f":
            found = _first_nonfinite_row(<const float*>view.buf, n, m)
        else:
            found = _first_nonfinite_row(<const double*>view.buf, n, m)
    PyBuffer_Release(&view)
    return found


cdef Py_ssize_t _first_label_outside(const int64_t* y, Py_ssize_t n,
                                     int64_t k) noexcept nogil:
    """Index of the first y[i] outside [0, k), or -1: blocks of 4096 tested by the
    vectorised scan, the one block that fails searched."""
    cdef Py_ssize_t start, i
    for start in range(0, n, 4096):
        if bp_any_label_outside(y + start, min(4096, n - start), k):
            for i in range(start, min(start + 4096, n)):
                if y[i] < 0 or y[i] >= k:
                    return i
    return -1


def first_label_outside(y, long long n_classes):
    """Index of the first label of y:(n,) C-contiguous int64 outside [0, n_classes), or -1
    (n_classes >= 1)."""
    cdef Py_buffer view
    cdef Py_ssize_t found
    cdef char kind
    if n_classes < 1:
        raise ValueError(f"first_label_outside: n_classes must be >= 1, got {n_classes}")
    PyObject_GetBuffer(y, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_STRIDES)
    kind = view.format[0] if view.format != NULL and view.format[1] == 0 else 0
    if view.ndim != 1 or view.itemsize != 8 or (kind != b"l" and kind != b"q"):
        PyBuffer_Release(&view)
        raise TypeError("first_label_outside: y must be a 1-D C-contiguous int64 array")
    with nogil:
        found = _first_label_outside(<const int64_t*>view.buf, view.shape[0], n_classes)
    PyBuffer_Release(&view)
    return found
