from cython cimport floating
from libc.math cimport exp, expf

cdef enum ActKind:
    ACT_IDENTITY = 0
    ACT_SIGMOID = 1
    ACT_TANH = 2
    ACT_RELU = 3
    ACT_LEAKY_RELU = 4
    ACT_SOFTMAX = 5

cdef void _act_forward(int kind, double alpha, const floating* Z, floating* A,
                       Py_ssize_t n, Py_ssize_t m) noexcept nogil

cdef void _act_backward(int kind, double alpha, const floating* A, const floating* dA,
                        floating* dZ, Py_ssize_t n, Py_ssize_t m) noexcept nogil


cdef inline floating _exp(floating x) noexcept nogil:
    """exp in the precision of x (expf for float32, which is several times faster)."""
    if floating is float:
        return expf(x)
    else:
        return exp(x)
