"""Cheap structural scans used by the Python package's validation (no temporaries)."""
from cython cimport floating
from libc.math cimport isfinite


def first_nonfinite_row(const floating[:, ::1] X not None):
    """Index of the first row of X holding a NaN or an infinity, or -1.   X:(n, m)"""
    cdef Py_ssize_t i, j, n = X.shape[0], m = X.shape[1]
    cdef Py_ssize_t found = -1
    with nogil:
        for i in range(n):
            for j in range(m):
                if not isfinite(X[i, j]):
                    found = i
                    break
            if found >= 0:
                break
    return found
