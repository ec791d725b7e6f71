"""Cheap structural scans used by the Python package's validation (no temporaries)."""
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_STRIDES, PyBuffer_Release,
                             PyObject_GetBuffer)
from cython cimport floating
from libc.stdint cimport uint32_t, uint64_t


cdef Py_ssize_t _first_nonfinite_row(const floating* X, Py_ssize_t n,
                                     Py_ssize_t m) noexcept nogil:
    """A value is NaN or infinite iff its exponent bits are all ones, that is iff
    (bits & EXP) + EXP_LSB carries into the sign bit. AND/ADD/OR over a row vectorises (an
    isfinite() loop with an early exit does not): ~5-10x faster."""
    cdef Py_ssize_t i, j
    cdef const uint32_t* x32 = <const uint32_t*>X
    cdef const uint64_t* x64 = <const uint64_t*>X
    cdef uint32_t bad32
    cdef uint64_t bad64
    for i in range(n):
        if floating is float:
            bad32 = 0
            for j in range(i * m, (i + 1) * m):
                bad32 |= (x32[j] & 0x7f800000u) + 0x00800000u
            if bad32 >> 31:
                return i
        else:
            bad64 = 0
            for j in range(i * m, (i + 1) * m):
                bad64 |= (x64[j] & 0x7ff0000000000000u) + 0x0010000000000000u
            if bad64 >> 63:
                return i
    return -1


cdef bint _all_finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """No NaN or infinity in x[:n]: the test of _first_nonfinite_row, over blocks of 4096
    values so that a non-finite value ends the scan early."""
    cdef Py_ssize_t start
    for start in range(0, n, 4096):
        if _first_nonfinite_row(x + start, 1, min(4096, n - start)) >= 0:
            return False
    return True


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
