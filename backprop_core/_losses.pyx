"""Losses: the mean value and its gradient with respect to the network output, in one pass.

Each kernel returns -1, or the index of the first row whose target is invalid (a class label
outside [0, m), a binary target outside [0, 1]); then ``loss`` and ``G`` are unspecified.
``G`` may be NULL when only the value is wanted. Sums accumulate in double.
"""
from cython cimport floating
from libc.math cimport exp, fabs, log, log1p
from libc.stdint cimport int64_t

from ._activations cimport _exp

LOSSES = {
    "mse": LOSS_MSE,
    "softmax_cross_entropy": LOSS_SOFTMAX_CROSS_ENTROPY,
    "binary_cross_entropy": LOSS_BINARY_CROSS_ENTROPY,
}


cdef Py_ssize_t _mse(const floating* Y, const floating* T, floating* G,
                     Py_ssize_t n, Py_ssize_t m, double* loss) noexcept nogil:
    """L = mean((Y - T)**2) over all n*m elements; G := 2 (Y - T) / (n m)."""
    cdef Py_ssize_t i, size = n * m
    cdef double d, total = 0, scale = 2.0 / size
    for i in range(size):
        d = <double>Y[i] - <double>T[i]
        total += d * d
        if G != NULL:
            G[i] = <floating>(scale * d)
    loss[0] = total / size
    return -1


cdef Py_ssize_t _softmax_cross_entropy(const floating* Z, const int64_t* labels, floating* G,
                                       Py_ssize_t n, Py_ssize_t m, double* loss) noexcept nogil:
    """L = mean_i(logsumexp(Z[i]) - Z[i, y_i]); G := (softmax(Z) - onehot(y)) / n.

    One exp per logit: the exponentials are stored in G, then scaled into the gradient.
    """
    cdef Py_ssize_t i, j
    cdef int64_t y
    cdef const floating* z
    cdef floating* g
    cdef floating zmax, e
    cdef double s, total = 0, inv_n = 1.0 / n
    for i in range(n):
        y = labels[i]
        if y < 0 or y >= m:
            return i
        z = Z + i * m
        zmax = z[0]
        for j in range(1, m):
            if z[j] > zmax:
                zmax = z[j]
        s = 0
        if G == NULL:
            for j in range(m):
                s += _exp(z[j] - zmax)
        else:
            g = G + i * m
            for j in range(m):
                e = _exp(z[j] - zmax)
                g[j] = e
                s += e
            e = <floating>(inv_n / s)
            for j in range(m):
                g[j] *= e
            g[y] -= <floating>inv_n
        total += zmax + log(s) - z[y]
    loss[0] = total * inv_n
    return -1


cdef Py_ssize_t _binary_cross_entropy(const floating* Z, const floating* T, floating* G,
                                      Py_ssize_t n, Py_ssize_t m, double* loss) noexcept nogil:
    """From logits Z: L = mean(max(Z,0) - Z T + log1p(exp(-|Z|))); G := (sigmoid(Z) - T)/(n m).

    One exp per logit: e = exp(-|z|) gives both log1p(e) and sigmoid(z) (1/(1+e) or e/(1+e)).
    """
    cdef Py_ssize_t i, size = n * m
    cdef double z, t, e, total = 0, inv = 1.0 / size
    for i in range(size):
        t = T[i]
        if not (0 <= t <= 1):
            return i // m
        z = Z[i]
        e = exp(-fabs(z))
        total += (z if z > 0 else 0) - z * t + log1p(e)
        if G != NULL:
            G[i] = <floating>(((1 if z >= 0 else e) / (1 + e) - t) * inv)
    loss[0] = total * inv
    return -1


cdef Py_ssize_t _loss(int kind, const floating* Y, const void* T, floating* G,
                      Py_ssize_t n, Py_ssize_t m, double* loss) noexcept nogil:
    """Dispatch on kind. Y, G:(n, m); T:(n,) int64 labels or (n, m) floating targets."""
    if kind == LOSS_SOFTMAX_CROSS_ENTROPY:
        return _softmax_cross_entropy(Y, <const int64_t*>T, G, n, m, loss)
    if kind == LOSS_BINARY_CROSS_ENTROPY:
        return _binary_cross_entropy(Y, <const floating*>T, G, n, m, loss)
    return _mse(Y, <const floating*>T, G, n, m, loss)


cdef double _elementwise(str who, int kind, const floating[:, ::1] Y,
                         const floating[:, ::1] T, floating[:, ::1] G) except? -1:
    """Shape checks and the call for the losses whose targets have Y's shape."""
    yshape = (Y.shape[0], Y.shape[1])
    _check_output(who, yshape, G)
    if (T.shape[0], T.shape[1]) != yshape:
        raise ValueError(f"{who}: T must have the shape of Y {yshape}, "
                         f"got {(T.shape[0], T.shape[1])}")
    cdef double loss
    cdef Py_ssize_t bad
    cdef floating* g = NULL if G is None else &G[0, 0]
    with nogil:
        bad = _loss(kind, &Y[0, 0], &T[0, 0], g, Y.shape[0], Y.shape[1], &loss)
    if bad >= 0:
        raise ValueError(f"{who}: T row {bad} holds a target outside [0, 1]")
    return loss


cdef _check_output(str who, tuple yshape, G):
    if yshape[0] == 0 or yshape[1] == 0:
        raise ValueError(f"{who}: Y must be non-empty, got shape {yshape}")
    if G is not None and tuple(G.shape) != yshape:
        raise ValueError(f"{who}: G must have the shape of Y {yshape}, got {tuple(G.shape)}")


def mse_loss(const floating[:, ::1] Y not None, const floating[:, ::1] T not None,
             floating[:, ::1] G=None):
    """mean((Y - T)**2); writes G := dL/dY unless G is None.   Y, T, G:(n, m)"""
    return _elementwise("mse_loss", LOSS_MSE, Y, T, G)


def binary_cross_entropy_loss(const floating[:, ::1] Z not None, const floating[:, ::1] T not None,
                              floating[:, ::1] G=None):
    """mean BCE from logits; writes G := dL/dZ unless G is None.   Z, T, G:(n, m), T in [0, 1]"""
    return _elementwise("binary_cross_entropy_loss", LOSS_BINARY_CROSS_ENTROPY, Z, T, G)


def softmax_cross_entropy_loss(const floating[:, ::1] Z not None,
                               const int64_t[::1] labels not None, floating[:, ::1] G=None):
    """mean(logsumexp(Z) - Z[y]) from logits; writes G := dL/dZ unless G is None.

    Z, G:(n, m) labels:(n,) int64 in [0, m)
    """
    yshape = (Z.shape[0], Z.shape[1])
    _check_output("softmax_cross_entropy_loss", yshape, G)
    if labels.shape[0] != Z.shape[0]:
        raise ValueError(f"softmax_cross_entropy_loss: labels must have shape ({Z.shape[0]},), "
                         f"got ({labels.shape[0]},)")
    cdef double loss
    cdef Py_ssize_t bad
    cdef floating* g = NULL if G is None else &G[0, 0]
    with nogil:
        bad = _softmax_cross_entropy(&Z[0, 0], &labels[0], g, Z.shape[0], Z.shape[1], &loss)
    if bad >= 0:
        raise ValueError(f"softmax_cross_entropy_loss: labels[{bad}] = {labels[bad]} is not a "
                         f"class index in [0, {Z.shape[1]})")
    return loss
