"""In-place optimizer updates over flat parameter arrays (torch.optim semantics)."""
from cython cimport floating
from libc.math cimport pow, sqrt

from ._checks cimport _overlap


cdef extern from "_simd.h" nogil:
    # the loops below, in AVX-512/AVX2/baseline clones (same bits: see _simd.h)
    void bp_sgd_f32(float* w, const float* g, float* v, Py_ssize_t n, float lr, float mu,
                    int nesterov, float wd, int momentum)
    void bp_sgd_f64(double* w, const double* g, double* v, Py_ssize_t n, double lr, double mu,
                    int nesterov, double wd, int momentum)
    void bp_adam_f32(float* w, const float* g, float* m, float* v, Py_ssize_t n, float b1,
                     float b2, float c1, float c2, float wd, float step, float inv_sqrt_bc2,
                     float eps)
    void bp_adam_f64(double* w, const double* g, double* m, double* v, Py_ssize_t n, double b1,
                     double b2, double c1, double c2, double wd, double step,
                     double inv_sqrt_bc2, double eps)


cdef void _sgd_update(floating* w, const floating* g, floating* v, Py_ssize_t size,
                      double lr, double momentum, bint nesterov,
                      double weight_decay) noexcept nogil:
    """SGD step, in place on w (and v), as torch.optim.SGD with dampening=0:

    d = g + wd*w;  v := mu*v + d;  w -= lr * (d + mu*v if nesterov else v)
    With momentum == 0, v is not touched and may be NULL: w -= lr * d.
    """
    cdef floating lr_ = <floating>lr, mu = <floating>momentum, wd = <floating>weight_decay
    if floating is float:
        bp_sgd_f32(w, g, v, size, lr_, mu, nesterov, wd, momentum != 0)
    else:
        bp_sgd_f64(w, g, v, size, lr_, mu, nesterov, wd, momentum != 0)


cdef void _adam_update(floating* w, const floating* g, floating* m, floating* v,
                       Py_ssize_t size, double lr, double beta1, double beta2, double eps,
                       double weight_decay, Py_ssize_t t) noexcept nogil:
    """Adam step t (t >= 1), in place on w, m, v, as torch.optim.Adam (L2 weight decay):

    d = g + wd*w;  m := b1 m + (1-b1) d;  v := b2 v + (1-b2) d^2
    w -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """
    cdef floating b1 = <floating>beta1, b2 = <floating>beta2, wd = <floating>weight_decay
    # 1 - beta formed in double, then rounded (as torch does): rounding beta2 = 0.999 to
    # float32 first would scale v by (1 - 1.3e-5)
    cdef floating c1 = <floating>(1 - beta1), c2 = <floating>(1 - beta2)
    cdef floating step = <floating>(lr / (1 - pow(beta1, <double>t)))
    cdef floating inv_sqrt_bc2 = <floating>(1 / sqrt(1 - pow(beta2, <double>t)))
    cdef floating eps_ = <floating>eps
    if floating is float:
        bp_adam_f32(w, g, m, v, size, b1, b2, c1, c2, wd, step, inv_sqrt_bc2, eps_)
    else:
        bp_adam_f64(w, g, m, v, size, b1, b2, c1, c2, wd, step, inv_sqrt_bc2, eps_)


cdef _check_same(str who, Py_ssize_t size, arrays):
    for name, a in arrays:
        if a is not None and a.shape[0] != size:
            raise ValueError(f"{who}: {name} must have shape ({size},) like param, "
                             f"got ({a.shape[0]},)")


cdef int _check_disjoint(str who, list buffers) except -1:
    """Refuse two buffers that share memory: each is read and written element by element
    as a separate quantity, so an overlap gives wrong numbers. buffers: (name, address,
    byte size) triples."""
    cdef Py_ssize_t i, j
    for i in range(len(buffers)):
        for j in range(i + 1, len(buffers)):
            if _overlap(<void*><size_t>buffers[i][1], buffers[i][2],
                        <void*><size_t>buffers[j][1], buffers[j][2]):
                raise ValueError(f"{who}: {buffers[i][0]} shares memory with {buffers[j][0]}; "
                                 f"pass separate arrays")
    return 0


def sgd_update(floating[::1] param not None, const floating[::1] grad not None,
               floating[::1] velocity=None, *, double lr, double momentum=0.0,
               bint nesterov=False, double weight_decay=0.0):
    """In place: param -= lr * step (see _sgd_update).   param, grad, velocity:(size,)

    velocity is required when momentum != 0 and is updated in place. The arrays must not
    share memory.
    """
    cdef Py_ssize_t size = param.shape[0]
    _check_same("sgd_update", size, (("grad", grad), ("velocity", velocity)))
    if momentum != 0 and velocity is None:
        raise ValueError("sgd_update: momentum != 0 needs a velocity buffer")
    if size == 0:
        return
    cdef floating* v = NULL if velocity is None else &velocity[0]
    cdef Py_ssize_t nbytes = size * sizeof(floating)
    _check_disjoint("sgd_update", [("param", <size_t>&param[0], nbytes),
                                   ("grad", <size_t>&grad[0], nbytes),
                                   ("velocity", <size_t>v, nbytes if v != NULL else 0)])
    with nogil:
        _sgd_update(&param[0], &grad[0], v, size, lr, momentum, nesterov, weight_decay)


def adam_update(floating[::1] param not None, const floating[::1] grad not None,
                floating[::1] m not None, floating[::1] v not None, *, Py_ssize_t t,
                double lr=1e-3, double beta1=0.9, double beta2=0.999, double eps=1e-8,
                double weight_decay=0.0):
    """In place: Adam step number t (1-based) on param, m, v.   param, grad, m, v:(size,),
    not sharing memory."""
    cdef Py_ssize_t size = param.shape[0]
    _check_same("adam_update", size, (("grad", grad), ("m", m), ("v", v)))
    if t < 1:
        raise ValueError(f"adam_update: t must be >= 1, got {t}")
    if size == 0:
        return
    cdef Py_ssize_t nbytes = size * sizeof(floating)
    _check_disjoint("adam_update", [("param", <size_t>&param[0], nbytes),
                                    ("grad", <size_t>&grad[0], nbytes),
                                    ("m", <size_t>&m[0], nbytes), ("v", <size_t>&v[0], nbytes)])
    with nogil:
        _adam_update(&param[0], &grad[0], &m[0], &v[0], size, lr, beta1, beta2, eps,
                     weight_decay, t)


cdef void _adamw_update(floating* w, const floating* g, floating* m, floating* v,
                        Py_ssize_t size, double lr, double beta1, double beta2, double eps,
                        double weight_decay, Py_ssize_t t) noexcept nogil:
    """AdamW step t (t >= 1), in place, as torch.optim.AdamW (decoupled weight decay):

    w *= 1 - lr wd;  m := b1 m + (1-b1) g;  v := b2 v + (1-b2) g^2
    w -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """
    cdef Py_ssize_t i
    cdef floating b1 = <floating>beta1, b2 = <floating>beta2, e = <floating>eps
    cdef floating c1 = <floating>(1 - beta1), c2 = <floating>(1 - beta2)
    cdef floating step = <floating>(lr / (1 - pow(beta1, <double>t)))
    cdef floating inv = <floating>(1 / sqrt(1 - pow(beta2, <double>t)))
    cdef floating decay = <floating>(1 - lr * weight_decay)
    cdef floating d, mi, vi
    for i in range(size):
        d = g[i]
        mi = b1 * m[i] + c1 * d
        vi = b2 * v[i] + c2 * d * d
        m[i] = mi
        v[i] = vi
        w[i] = w[i] * decay - step * mi / (sqrt(vi) * inv + e)


cdef void _rmsprop_update(floating* w, const floating* g, floating* sq, floating* buf,
                          floating* avg_g, Py_ssize_t size, double lr, double alpha, double eps,
                          double weight_decay, double momentum, bint centered) noexcept nogil:
    """RMSprop step, in place, as torch.optim.RMSprop:

    d = g + wd w;  s := a s + (1-a) d^2;  centered: q := q + (1-a)(d - q), r = s - q^2
    (clamped at 0: rounding can make it negative where torch takes the root of it);
    r = s otherwise;  u = d / (sqrt(r) + eps);  momentum: b := mu b + u, w -= lr b; else
    w -= lr u.  buf (momentum) and avg_g (centered) may be NULL when unused.
    """
    cdef Py_ssize_t i
    cdef floating a = <floating>alpha, c = <floating>(1 - alpha), e = <floating>eps
    cdef floating wd = <floating>weight_decay, mu = <floating>momentum, lr_ = <floating>lr
    cdef floating d, s, q, r, u
    for i in range(size):
        d = g[i] + wd * w[i]
        s = a * sq[i] + c * d * d
        sq[i] = s
        r = s
        if centered:
            q = avg_g[i] + c * (d - avg_g[i])
            avg_g[i] = q
            r = s - q * q
            if r < 0:
                r = 0
        u = d / (sqrt(r) + e)
        if momentum != 0:
            u = mu * buf[i] + u
            buf[i] = u
        w[i] = w[i] - lr_ * u
