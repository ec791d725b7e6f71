from cython cimport floating
from libc.stdint cimport int64_t

cdef enum LossKind:
    LOSS_MSE = 0
    LOSS_SOFTMAX_CROSS_ENTROPY = 1
    LOSS_BINARY_CROSS_ENTROPY = 2
    LOSS_MAE = 3
    LOSS_HUBER = 4
    LOSS_POISSON = 5

cdef Py_ssize_t _loss(int kind, double param, const floating* Y, const void* T,
                      const floating* w, floating* G, Py_ssize_t n, Py_ssize_t m,
                      double* loss) noexcept nogil
