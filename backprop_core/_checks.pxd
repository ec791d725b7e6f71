from cython cimport floating

cdef Py_ssize_t _first_nonfinite_row(const floating* X, Py_ssize_t n,
                                     Py_ssize_t m) noexcept nogil

cdef bint _all_finite(const floating* x, Py_ssize_t n) noexcept nogil
