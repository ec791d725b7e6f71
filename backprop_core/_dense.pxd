from cython cimport floating

cdef void _dense_forward(const floating* X, const floating* W, const floating* b, floating* Y,
                         Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil

cdef void _dense_backward(const floating* X, const floating* W, const floating* dY,
                          floating* dX, floating* dW, floating* db,
                          Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil
