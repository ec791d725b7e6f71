from cython cimport floating

cdef void _sgd_update(floating* w, const floating* g, floating* v, Py_ssize_t size,
                      double lr, double momentum, bint nesterov,
                      double weight_decay) noexcept nogil

cdef void _adam_update(floating* w, const floating* g, floating* m, floating* v,
                       Py_ssize_t size, double lr, double beta1, double beta2, double eps,
                       double weight_decay, Py_ssize_t t) noexcept nogil

cdef void _adamw_update(floating* w, const floating* g, floating* m, floating* v,
                        Py_ssize_t size, double lr, double beta1, double beta2, double eps,
                        double weight_decay, Py_ssize_t t) noexcept nogil

cdef void _rmsprop_update(floating* w, const floating* g, floating* sq, floating* buf,
                          floating* avg_g, Py_ssize_t size, double lr, double alpha, double eps,
                          double weight_decay, double momentum, bint centered) noexcept nogil
