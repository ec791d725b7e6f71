from cython cimport floating

cdef Py_ssize_t _first_nonfinite_row(const floating* X, Py_ssize_t n,
                                     Py_ssize_t m) noexcept nogil

cdef bint _all_finite(const floating* x, Py_ssize_t n) noexcept nogil

cdef double _max_abs(const floating* x, Py_ssize_t n) noexcept nogil


cdef inline bint _overlap(const void* a, Py_ssize_t a_bytes, const void* b,
                          Py_ssize_t b_bytes) noexcept nogil:
    """Whether the byte ranges [a, a + a_bytes) and [b, b + b_bytes) share memory."""
    return (a_bytes > 0 and b_bytes > 0 and <const char*>a < <const char*>b + b_bytes
            and <const char*>b < <const char*>a + a_bytes)
