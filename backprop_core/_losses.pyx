"""Losses: the (weighted) mean value and its gradient with respect to the network output, in
one pass.

Row i of a batch of n rows has weight w_i (all 1 when w is NULL) and loss L_i; the batch loss
is sum_i w_i L_i / sum_i w_i (scikit-learn's sample_weight convention; the plain mean when
w is NULL). The element-wise losses take L_i as the mean over the row's m outputs, so the
unweighted value is the mean over all n*m elements, as torch's reduction="mean". A batch whose
weights sum to 0 has loss 0 and gradient 0.

Each kernel returns -1, or the index of the first row whose target is invalid (a class label
outside [0, m), a binary target outside [0, 1]); then ``loss`` and ``G`` are unspecified.
``G`` may be NULL when only the value is wanted. Sums accumulate in double.
"""
from cython cimport floating
from libc.float cimport DBL_MAX
from libc.math cimport INFINITY, exp, fabs, log, log1p
from libc.stdint cimport int64_t

from ._activations cimport _exp
from ._checks cimport _overlap


cdef extern from "_simd.h" nogil:
    void bp_exp_inplace_f32(float* x, Py_ssize_t n)
    double bp_renorm(double p, int64_t* e)

LOSSES = {
    "mse": LOSS_MSE,
    "softmax_cross_entropy": LOSS_SOFTMAX_CROSS_ENTROPY,
    "binary_cross_entropy": LOSS_BINARY_CROSS_ENTROPY,
    "mae": LOSS_MAE,
    "huber": LOSS_HUBER,
    "poisson": LOSS_POISSON,
}


cdef inline double _inv_total(const floating* w, Py_ssize_t n) noexcept nogil:
    """1 / sum of the row weights (1 / n without weights; 0 when they sum to 0)."""
    cdef Py_ssize_t i
    cdef double total = 0
    if w == NULL:
        return 1.0 / n
    for i in range(n):
        total += w[i]
    return 1.0 / total if total > 0 else 0.0


cdef Py_ssize_t _elementwise(int kind, double delta, const floating* Y, const floating* T,
                             const floating* w, floating* G, Py_ssize_t n, Py_ssize_t m,
                             double* loss) noexcept nogil:
    """The losses with one target per output, d = y - t (z, t for binary cross-entropy):

    mse:    l = c d^2                               l' = 2 c d   (c = param: the convention's
                                                    scale of the mean over elements)
    mae:    l = |d|                                 l' = sign(d)  (0 at d = 0, as torch)
    huber:  l = d^2 / 2 if |d| <= delta else delta (|d| - delta / 2)
                                                    l' = clip(d, -delta, delta)
    bce:    l = max(z, 0) - z t + log1p(exp(-|z|))  l' = sigmoid(z) - t   (from logits z)
    poisson: l = c (exp(z) - t z + t log t - t)     l' = c (exp(z) - t)   (log-link z, t >= 0;
            half the Poisson deviance, scikit-learn's poisson_loss; c = param as for mse)
    G := w_i l' / (m sum w); one exp per logit for bce: e = exp(-|z|) gives log1p(e) and
    sigmoid(z) = 1/(1+e) or e/(1+e).
    """
    cdef Py_ssize_t i, j
    cdef double d, t, e, a, row, wi, scale, total = 0, inv = _inv_total(w, n)
    cdef const floating* y
    cdef const floating* tt
    cdef floating* g = NULL
    for i in range(n):
        wi = 1.0 if w == NULL else w[i]
        scale = wi * inv / m
        y, tt = Y + i * m, T + i * m
        if G != NULL:
            g = G + i * m
        row = 0
        if kind == LOSS_MSE:
            for j in range(m):
                d = <double>y[j] - <double>tt[j]
                row += d * d
                if g != NULL:
                    g[j] = <floating>(2 * delta * scale * d)
            row *= delta
        elif kind == LOSS_MAE:
            for j in range(m):
                d = <double>y[j] - <double>tt[j]
                row += fabs(d)
                if g != NULL:
                    g[j] = <floating>(scale if d > 0 else (-scale if d < 0 else 0))
        elif kind == LOSS_HUBER:
            for j in range(m):
                d = <double>y[j] - <double>tt[j]
                a = fabs(d)
                row += 0.5 * d * d if a <= delta else delta * (a - 0.5 * delta)
                if g != NULL:
                    g[j] = <floating>(scale * (d if a <= delta else (delta if d > 0 else -delta)))
        elif kind == LOSS_POISSON:
            for j in range(m):
                t = tt[j]
                if not (t >= 0):
                    return i
                e = exp(<double>y[j])
                row += e - t * y[j] + (t * log(t) if t > 0 else 0) - t
                if g != NULL:
                    g[j] = <floating>(delta * scale * (e - t))
            row *= delta
        else:
            for j in range(m):
                t = tt[j]
                if not (0 <= t <= 1):
                    return i
                d = y[j]
                e = exp(-fabs(d))
                row += (d if d > 0 else 0) - d * t + log1p(e)
                if g != NULL:
                    g[j] = <floating>(scale * ((1 if d >= 0 else e) / (1 + e) - t))
        total += wi * row
    loss[0] = total * inv / m
    return -1


cdef Py_ssize_t _softmax_cross_entropy(const floating* Z, const int64_t* labels,
                                       const floating* w, floating* G, Py_ssize_t n,
                                       Py_ssize_t m, double* loss) noexcept nogil:
    """L_i = logsumexp(Z[i]) - Z[i, y_i]; G := w_i (softmax(Z) - onehot(y)) / sum w.

    One exp per logit: the exponentials are stored in G, then scaled into the gradient.
    """
    cdef Py_ssize_t i, j
    cdef int64_t y
    cdef const floating* z
    cdef floating* g
    cdef floating zmax, e
    cdef double s, wi, scale, total = 0, inv = _inv_total(w, n)
    if floating is float:
        if G != NULL:
            return _softmax_cross_entropy_f32(Z, labels, w, G, n, m, inv, loss)
    for i in range(n):
        y = labels[i]
        if y < 0 or y >= m:
            return i
        wi = 1.0 if w == NULL else w[i]
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
            scale = wi * inv
            e = <floating>(scale / s)
            for j in range(m):
                g[j] *= e
            g[y] -= <floating>scale
        total += wi * (zmax + log(s) - z[y])
    loss[0] = total * inv
    return -1


cdef Py_ssize_t _softmax_cross_entropy_f32(const float* Z, const int64_t* labels,
                                           const float* w, float* G, Py_ssize_t n,
                                           Py_ssize_t m, double inv, double* loss) noexcept nogil:
    """_softmax_cross_entropy for float32 with a gradient, in fewer cycles per row (a
    64-32-10 step spent a seventh of its time here; bench/NOTES.md): all n*m exponentials
    in one vectorised pass over G; the row max by a select (a compare-and-branch per logit
    mispredicts on random logits); row sums in two interleaved chains; and without row
    weights, sum_i log(s_i) as the log of the running product of the s_i (one libm log per
    batch: each s_i is in [1, m], and the product is renormalised exactly by bp_renorm)."""
    cdef Py_ssize_t i, j
    cdef int64_t y, e2 = 0
    cdef const float* z
    cdef float* g
    cdef float zmax, zj, e
    cdef double s, s1, wi, scale, prod = 1, total = 0
    for i in range(n):  # G := Z - rowmax; the loss's zmax - z[y] part
        y = labels[i]
        if y < 0 or y >= m:
            return i
        z, g = Z + i * m, G + i * m
        zmax = z[0]
        for j in range(1, m):
            zj = z[j]
            zmax = zj if zj > zmax else zmax
        for j in range(m):
            g[j] = z[j] - zmax
        total -= (1.0 if w == NULL else w[i]) * g[y]
    bp_exp_inplace_f32(G, n * m)
    for i in range(n):  # the log-sum-exp part, and G scaled into the gradient
        y = labels[i]
        wi = 1.0 if w == NULL else w[i]
        g = G + i * m
        s, s1 = 0, 0
        for j in range(0, m - 1, 2):
            s += g[j]
            s1 += g[j + 1]
        if m % 2:
            s += g[m - 1]
        s += s1
        if w == NULL and s <= DBL_MAX:  # (a NaN or infinite s goes to log, and shows)
            prod = bp_renorm(prod * s, &e2)
        else:
            total += wi * log(s)
        scale = wi * inv
        e = <float>(scale / s)
        for j in range(m):
            g[j] *= e
        g[y] -= <float>scale
    if w == NULL:
        total += e2 * 0.6931471805599453 + log(prod)
    loss[0] = total * inv
    return -1


cdef Py_ssize_t _loss(int kind, double param, const floating* Y, const void* T,
                      const floating* w, floating* G, Py_ssize_t n, Py_ssize_t m,
                      double* loss) noexcept nogil:
    """Dispatch on kind. Y, G:(n, m); T:(n,) int64 labels or (n, m) floating targets;
    w:(n,) row weights or NULL; param: Huber's delta."""
    if kind == LOSS_SOFTMAX_CROSS_ENTROPY:
        return _softmax_cross_entropy(Y, <const int64_t*>T, w, G, n, m, loss)
    return _elementwise(kind, param, Y, <const floating*>T, w, G, n, m, loss)


cdef double _call(str who, int kind, double param, const floating[:, ::1] Y, const void* T,
                  Py_ssize_t t_bytes, const floating[::1] w, floating[:, ::1] G) except? -1:
    """Shape and aliasing checks shared by every loss, then the kernel without the GIL.
    T: t_bytes of targets or labels."""
    cdef Py_ssize_t n = Y.shape[0], m = Y.shape[1], bad
    cdef Py_ssize_t g_bytes = n * m * sizeof(floating)
    cdef double loss = 0
    if n == 0 or m == 0:
        raise ValueError(f"{who}: Y must be non-empty, got shape {(n, m)}")
    if G is not None and (G.shape[0], G.shape[1]) != (n, m):
        raise ValueError(f"{who}: G must have the shape of Y {(n, m)}, got "
                         f"{(G.shape[0], G.shape[1])}")
    if w is not None and w.shape[0] != n:
        raise ValueError(f"{who}: w must have shape ({n},), got ({w.shape[0]},)")
    if G is not None:
        # G is written while Y, T and w are still being read
        for other, ptr, nbytes in (("Y", <size_t>&Y[0, 0], g_bytes), ("T", <size_t>T, t_bytes),
                                   ("w", 0 if w is None else <size_t>&w[0],
                                    n * sizeof(floating))):
            if ptr and _overlap(&G[0, 0], g_bytes, <void*><size_t>ptr, nbytes):
                raise ValueError(f"{who}: G shares memory with {other}; give G its own array")
    cdef floating* g = NULL if G is None else &G[0, 0]
    cdef const floating* wp = NULL
    if w is not None:
        wp = &w[0]
    with nogil:
        bad = _loss(kind, param, &Y[0, 0], T, wp, g, n, m, &loss)
    if bad >= 0:
        if kind == LOSS_SOFTMAX_CROSS_ENTROPY:
            raise ValueError(f"{who}: labels[{bad}] = {(<const int64_t*>T)[bad]} is not a "
                             f"class index in [0, {m})")
        raise ValueError(f"{who}: T row {bad} holds a target outside [0, 1]")
    return loss


cdef double _with_targets(str who, int kind, double param, const floating[:, ::1] Y,
                          const floating[:, ::1] T, const floating[::1] w,
                          floating[:, ::1] G) except? -1:
    if (T.shape[0], T.shape[1]) != (Y.shape[0], Y.shape[1]):
        raise ValueError(f"{who}: T must have the shape of Y {(Y.shape[0], Y.shape[1])}, "
                         f"got {(T.shape[0], T.shape[1])}")
    return _call(who, kind, param, Y, &T[0, 0] if T.shape[0] * T.shape[1] else NULL,
                 T.shape[0] * T.shape[1] * sizeof(floating), w, G)


def mse_loss(const floating[:, ::1] Y not None, const floating[:, ::1] T not None,
             floating[:, ::1] G=None, const floating[::1] w=None, double scale=1.0):
    """scale times the weighted mean of mean_j (Y - T)**2; writes G := dL/dY unless G is
    None. scale > 0 gives the other conventions: m (sum over outputs), 1/2 (halved), m/2.

    Y, T, G:(n, m) w:(n,) row weights (None: all 1)
    """
    if not (scale > 0 and scale < INFINITY):
        raise ValueError(f"mse_loss: scale must be finite and > 0, got {scale}")
    return _with_targets("mse_loss", LOSS_MSE, scale, Y, T, w, G)


def poisson_loss(const floating[:, ::1] Z not None, const floating[:, ::1] T not None,
                 floating[:, ::1] G=None, const floating[::1] w=None, double scale=1.0):
    """scale times the weighted mean of mean_j (exp(Z) - T Z + T log T - T): half the Poisson
    deviance of the means exp(Z) (log link, T >= 0); writes G := dL/dZ unless G is None.
    scale = m sums over the outputs (scikit-learn's poisson_loss).

    Z, T, G:(n, m) w:(n,) row weights (None: all 1)
    """
    if not (scale > 0 and scale < INFINITY):
        raise ValueError(f"poisson_loss: scale must be finite and > 0, got {scale}")
    return _with_targets("poisson_loss", LOSS_POISSON, scale, Z, T, w, G)


def mae_loss(const floating[:, ::1] Y not None, const floating[:, ::1] T not None,
             floating[:, ::1] G=None, const floating[::1] w=None):
    """Weighted mean of mean_j |Y - T|; writes G := dL/dY unless G is None.

    Y, T, G:(n, m) w:(n,) row weights (None: all 1)
    """
    return _with_targets("mae_loss", LOSS_MAE, 0.0, Y, T, w, G)


def huber_loss(const floating[:, ::1] Y not None, const floating[:, ::1] T not None,
               floating[:, ::1] G=None, const floating[::1] w=None, double delta=1.0):
    """Weighted mean of mean_j huber_delta(Y - T), as torch.nn.HuberLoss; writes G := dL/dY
    unless G is None.   Y, T, G:(n, m) w:(n,) row weights (None: all 1), delta > 0
    """
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    return _with_targets("huber_loss", LOSS_HUBER, delta, Y, T, w, G)


def binary_cross_entropy_loss(const floating[:, ::1] Z not None, const floating[:, ::1] T not None,
                              floating[:, ::1] G=None, const floating[::1] w=None):
    """Weighted mean BCE from logits; writes G := dL/dZ unless G is None.

    Z, T, G:(n, m) T in [0, 1], w:(n,) row weights (None: all 1)
    """
    return _with_targets("binary_cross_entropy_loss", LOSS_BINARY_CROSS_ENTROPY, 0.0, Z, T, w, G)


def softmax_cross_entropy_loss(const floating[:, ::1] Z not None,
                               const int64_t[::1] labels not None, floating[:, ::1] G=None,
                               const floating[::1] w=None):
    """Weighted mean of logsumexp(Z) - Z[y] from logits; writes G := dL/dZ unless G is None.

    Z, G:(n, m) labels:(n,) int64 in [0, m) w:(n,) row weights (None: all 1)
    """
    if labels.shape[0] != Z.shape[0]:
        raise ValueError(f"softmax_cross_entropy_loss: labels must have shape ({Z.shape[0]},), "
                         f"got ({labels.shape[0]},)")
    return _call("softmax_cross_entropy_loss", LOSS_SOFTMAX_CROSS_ENTROPY, 0.0, Z,
                 &labels[0] if labels.shape[0] else NULL, labels.shape[0] * sizeof(int64_t), w, G)
