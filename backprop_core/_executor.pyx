"""The whole-step executor: forward, loss, backward and update of a layer stack in one call.

A network is compiled into an array of ``Op`` records (a Dense product or an activation)
that read and write numbered *slots*: slot 0 is the caller's input batch, every other slot is
a preallocated (capacity, width) activation buffer with a gradient buffer of the same shape.
An activation right after a Dense runs in place in the Dense's slot (Dense backward never
needs its own output), so a Dense+activation pair costs one buffer. Parameters live in one
flat array ``theta`` (gradients in ``dtheta``), so an optimizer step is one pass over memory.

A dropout op (training mode only) writes a new slot and keeps its scaled keep-mask for the
backward pass; out of training it copies. Its random stream is the executor's own (seeded by
``seed``), so a seeded model draws the same masks on every run.

Plain SGD (no momentum, no weight decay) folds the update of each Dense with at least
AXPY_PARAMS weights into its weight-gradient product, W := W - lr X.T @ dY (beta 1), and does
not write that dW: an update step leaves no gradients to read. Gradients come from a gradient
step (MODE_GRAD), which never folds.

Faults: a batch whose loss or any gradient is not finite raises FloatingPointError before the
update (the parameters and optimizer state stay those of the previous step); ``run_epoch``
polls for signals between batches, so Ctrl-C ends it at a batch boundary.

The executor knows ops and buffers, not layers or models; ``backprop.Sequential`` builds it.
"""
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_STRIDES, PyBUF_WRITABLE,
                             PyBuffer_Release, PyObject_GetBuffer)
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.ref cimport PyObject
from cython cimport floating
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport INFINITY, fabs, isfinite, pow, sqrt
from libc.stdint cimport int32_t, int64_t, uint64_t

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset, strchr

import numpy as np

from ._activations cimport ACT_IDENTITY, _act_backward, _act_forward
from ._blas cimport _axpy, _ensure_blas, _gemm
from ._checks cimport _all_finite, _max_abs
from ._dense cimport _dense_backward, _dense_forward
from ._sparse cimport Csr, _csr_forward, _csr_max_abs, _csr_scatter, bp_csr_valid
from ._losses cimport LOSS_POISSON, LOSS_SOFTMAX_CROSS_ENTROPY, _loss
from ._optim cimport _adam_update, _adamw_update, _rmsprop_update, _sgd_update

from ._activations import ACTIVATIONS
from ._losses import LOSSES

cdef extern from *:
    """
    #if defined(__GNUC__)
    #define bp_prefetch_read(p) __builtin_prefetch((p), 0, 3)
    #else
    #define bp_prefetch_read(p) ((void)(p))
    #endif
    """
    void _prefetch "bp_prefetch_read"(const void* p) noexcept nogil

cdef extern from "Python.h":
    # declared without an exception spec: the exception they set stays pending until
    # _raise_pending() hands it to Python, after the nogil section has been left
    int _poll_signals "PyErr_CheckSignals"()
    PyObject* _call_hook "PyObject_CallFunction"(PyObject* hook, const char* fmt, ...)
    int _truth "PyObject_IsTrue"(PyObject* o)
    void _decref "Py_DecRef"(PyObject* o)

cdef enum:
    OP_DENSE = -1  # op kinds >= 0 are ActKind codes
    OP_DROPOUT = -2

cdef enum:
    # _step / _epoch results besides -1 (done) and a row index (invalid target)
    STEP_NONFINITE = -2
    STEP_INTERRUPTED = -3
    STEP_OVERFLOW = -4  # the update would make a weight or an optimizer buffer non-finite
    STEP_STOPPED = -5   # the batch hook asked to end the epoch
    POLL_WORK = 1 << 24  # multiply-adds between two signal polls in run_epoch (a few ms)
    CHUNK = 1024         # rows per forward pass of evaluate and predict unless told

cdef enum OptKind:
    OPT_NONE = 0
    OPT_SGD = 1
    OPT_ADAM = 2
    OPT_ADAMW = 3
    OPT_RMSPROP = 4

cpdef enum Mode:
    # Executor.step's modes (Python: Mode.MODE_LOSS, ...; backprop_core.MODE_LOSS, ...)
    MODE_PREDICT = -1  # forward only
    MODE_LOSS = 0      # forward + loss value
    MODE_GRAD = 1      # + backward into dtheta
    MODE_UPDATE = 2    # + optimizer step


cdef struct Op:
    int kind                  # OP_DENSE or an ActKind
    Py_ssize_t n_in, n_out    # widths; equal for activations
    double alpha              # leaky_relu slope; dropout probability
    Py_ssize_t w_off, b_off   # Dense: offsets of W (n_in, n_out) and b (n_out,) in theta
    int src, dst              # slots read and written
    bint need_dx              # Dense: propagate to the input (False for the first Dense)
    void* mask                # dropout: (capacity, n_out) keep-mask scaled by 1 / (1 - p)
    bint fusable              # Dense: W large enough to fold plain SGD into the dW product
    bint fused                # Dense: this step folds its update into the dW product


cdef struct Net:
    Op* ops
    int n_ops
    int first_param_op        # backward stops here
    int n_slots
    void** act                # per slot: (capacity, width) activations; act[0] is the input
    void** grad               # per slot: dL/d(act); grad[0] is never written
    int out_slot
    Py_ssize_t n_in, n_out
    void* theta
    void* dtheta
    Py_ssize_t n_params
    bint tiled                # the Dense ops' W and b cover theta once, in some order
    int loss_kind
    double loss_param         # Huber's delta
    bint training             # dropout active in gradient and update steps
    uint64_t rng              # splitmix64 state for dropout masks
    Py_ssize_t work           # multiply-adds of one row through the network
    int opt_kind
    double lr, momentum, beta1, beta2, eps, weight_decay
    bint nesterov
    Py_ssize_t t              # optimizer steps taken (Adam bias correction)
    double rms_alpha          # RMSprop's smoothing constant
    bint centered             # RMSprop: centered variant
    double l2                 # > 0: each batch's loss gains l2/2 sum ||W||^2 / (its weight)
    double l2_step            # this step's l2 / (batch weight): dW gains l2_step W
    double clip_norm          # > 0: gradients scaled to this global L2 norm at most
    double clip_value         # > 0: gradients clamped to [-clip_value, clip_value]
    void* state1              # SGD velocity / Adam m / RMSprop square average
    void* state2              # Adam v / RMSprop momentum buffer
    void* state3              # RMSprop (centered) gradient average
    # upper bounds of max|theta|, max|state1..3|, carried from step to step (see
    # _update_checked); w_max < 0: unknown, scan before relying on them
    double w_max, s1_max, s2_max, s3_max
    bint any_fusable          # some Dense is fusable (else plain SGD stays one pass)
    bint sparse               # this call's X is the CSR batch x (the first op, a Dense, reads
    Csr x                     # it; a folded update then writes only the rows of W it touches)


cdef inline uint64_t _splitmix64(uint64_t* state) noexcept nogil:
    """Next 64 random bits (Steele, Lea & Flood 2014): fast, and plenty for dropout masks."""
    cdef uint64_t z
    state[0] += 0x9E3779B97F4A7C15u
    z = state[0]
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu
    return z ^ (z >> 31)


cdef void _dropout_forward(Op* op, uint64_t* rng, const floating* A, floating* out,
                           floating* mask, Py_ssize_t size) noexcept nogil:
    """mask := (u >= p) / (1 - p) for u uniform in [0, 1); out := A * mask."""
    cdef Py_ssize_t i
    cdef uint64_t cut = <uint64_t>(op.alpha * 9007199254740992.0)  # p * 2^53
    cdef floating keep = <floating>(1.0 / (1.0 - op.alpha))
    for i in range(size):
        mask[i] = keep if (_splitmix64(rng) >> 11) >= cut else 0
        out[i] = A[i] * mask[i]


cdef bint _forward(Net* net, const floating* X, Py_ssize_t n, bint train,
                   bint check=False) noexcept nogil:
    """Every op over X:(n, n_in); dropout draws masks when train, else copies.

    check (the first op a Dense): stop, returning False, if its output X @ W + b is not
    finite. With W and b finite, a NaN or infinity in a row of X makes every entry of that
    row of the product NaN or infinite (x * w is NaN or infinite for every w, 0 included), so
    this check stands for a scan of X, on n_out instead of n_in values a row. Else True."""
    cdef floating* theta = <floating*>net.theta
    cdef Op* op
    cdef int k
    net.act[0] = <void*>X
    for k in range(net.n_ops):
        op = &net.ops[k]
        if op.kind == OP_DENSE and net.sparse and op.src == 0:
            _csr_forward(&net.x, n, theta + op.w_off, theta + op.b_off,
                         <floating*>net.act[op.dst], op.n_out)
        elif op.kind == OP_DENSE:
            _dense_forward(<floating*>net.act[op.src], theta + op.w_off, theta + op.b_off,
                           <floating*>net.act[op.dst], n, op.n_in, op.n_out)
            if check and k == 0 and not _all_finite(<floating*>net.act[op.dst], n * op.n_out):
                return False
        elif op.kind == OP_DROPOUT:
            if train:
                _dropout_forward(op, &net.rng, <floating*>net.act[op.src],
                                 <floating*>net.act[op.dst], <floating*>op.mask, n * op.n_out)
            else:
                memcpy(net.act[op.dst], net.act[op.src], n * op.n_out * sizeof(floating))
        elif op.kind != ACT_IDENTITY:
            _act_forward(op.kind, op.alpha, <floating*>net.act[op.src],
                         <floating*>net.act[op.dst], n, op.n_out)
    return True


cdef void _backward(Net* net, floating* theta, Py_ssize_t n, bint train,
                    bint fuse) noexcept nogil:
    cdef floating* dtheta = <floating*>net.dtheta
    cdef floating* g_out
    cdef floating* g_in
    cdef const floating* mask
    cdef Op* op
    cdef int k
    cdef Py_ssize_t i
    for k in range(net.n_ops - 1, net.first_param_op - 1, -1):
        op = &net.ops[k]
        if op.kind == OP_DENSE and net.sparse and op.src == 0:
            # a CSR input always folds when the step does: the update then moves only the
            # rows of W the batch touches (need_dx is False: it is the first op)
            op.fused = fuse
            if not op.fused:
                _weight_product(net, op, n, <floating>1, <floating>0, dtheta + op.w_off)
            _dense_backward(<floating*>NULL, theta + op.w_off, <floating*>net.grad[op.dst],
                            NULL, NULL, dtheta + op.b_off, n, op.n_in, op.n_out)
        elif op.kind == OP_DENSE:
            op.fused = fuse and op.fusable
            _dense_backward(<floating*>net.act[op.src], theta + op.w_off,
                            <floating*>net.grad[op.dst],
                            <floating*>net.grad[op.src] if op.need_dx else NULL,
                            NULL if op.fused else dtheta + op.w_off, dtheta + op.b_off, n,
                            op.n_in, op.n_out)
        elif op.kind == OP_DROPOUT:
            g_out, g_in = <floating*>net.grad[op.dst], <floating*>net.grad[op.src]
            if train:
                mask = <const floating*>op.mask
                for i in range(n * op.n_out):
                    g_in[i] = g_out[i] * mask[i]
            else:
                memcpy(g_in, g_out, n * op.n_out * sizeof(floating))
        elif op.kind != ACT_IDENTITY:
            _act_backward(op.kind, op.alpha, <floating*>net.act[op.dst],
                          <floating*>net.grad[op.dst], <floating*>net.grad[op.src], n, op.n_out)


# Parameters from which plain SGD runs as a BLAS axpy (OpenBLAS threads it above 10,000)
cdef Py_ssize_t AXPY_PARAMS = 1 << 14


cdef void _update(Net* net, floating* theta) noexcept nogil:
    net.t += 1
    if (net.opt_kind == OPT_SGD and net.momentum == 0 and net.weight_decay == 0
            and net.n_params >= AXPY_PARAMS):
        # theta -= lr dtheta on BLAS's threads: each core updates the part of theta whose
        # gradient its share of the last product wrote, where a one-thread loop would pull
        # the other core's half across (bench/NOTES.md)
        _axpy(net.n_params, <floating>-net.lr, <floating*>net.dtheta, theta)
    elif net.opt_kind == OPT_SGD:
        _sgd_update(theta, <floating*>net.dtheta, <floating*>net.state1, net.n_params, net.lr,
                    net.momentum, net.nesterov, net.weight_decay)
    elif net.opt_kind == OPT_ADAM:
        _adam_update(theta, <floating*>net.dtheta, <floating*>net.state1,
                     <floating*>net.state2, net.n_params, net.lr, net.beta1, net.beta2,
                     net.eps, net.weight_decay, net.t)
    elif net.opt_kind == OPT_ADAMW:
        _adamw_update(theta, <floating*>net.dtheta, <floating*>net.state1,
                      <floating*>net.state2, net.n_params, net.lr, net.beta1, net.beta2,
                      net.eps, net.weight_decay, net.t)
    elif net.opt_kind == OPT_RMSPROP:
        _rmsprop_update(theta, <floating*>net.dtheta, <floating*>net.state1,
                        <floating*>net.state2, <floating*>net.state3, net.n_params, net.lr,
                        net.rms_alpha, net.eps, net.weight_decay, net.momentum, net.centered)


cdef inline void _sgd_range(Net* net, floating* theta, floating* dtheta,
                            Py_ssize_t size) noexcept nogil:
    if size >= AXPY_PARAMS:
        _axpy(size, <floating>-net.lr, dtheta, theta)
    else:
        _sgd_update(theta, dtheta, NULL, size, net.lr, 0.0, False, 0.0)


cdef inline bint _folds(Net* net, int mode) noexcept nogil:
    """Whether an update step folds plain SGD into the weight-gradient products."""
    return (mode == MODE_UPDATE and (net.any_fusable or net.sparse) and net.tiled
            and net.opt_kind == OPT_SGD
            and net.momentum == 0 and net.weight_decay == 0 and net.clip_norm == 0
            and net.clip_value == 0)


cdef inline void _weight_product(Net* net, Op* op, Py_ssize_t n, floating alpha,
                                 floating beta, floating* out) noexcept nogil:
    """out := alpha X.T @ dY + beta out for Dense op over the n rows in its slot buffers: its
    weight gradient (alpha 1, beta 0) or, folded, its SGD update (alpha -lr, beta 1, out W).
    From a CSR batch the product is a scatter into the rows of out the batch touches, after
    out *= beta (skipped for beta 1: plain SGD then writes only those rows)."""
    cdef Py_ssize_t i, size = op.n_in * op.n_out
    if net.sparse and op.src == 0:
        if beta == 0:
            memset(out, 0, size * sizeof(floating))
        elif beta != 1:
            for i in range(size):
                out[i] = out[i] * beta
        _csr_scatter(&net.x, n, <floating*>net.grad[op.dst], alpha, out, op.n_out)
        return
    _gemm(True, False, op.n_in, op.n_out, n, alpha, <floating*>net.act[op.src], op.n_in,
          <floating*>net.grad[op.dst], op.n_out, beta, out, op.n_out)


cdef void _update_folded(Net* net, floating* theta, Py_ssize_t n) noexcept nogil:
    """Plain SGD where each fused Dense's W := W - lr X.T @ dY is one product (beta 1):
    its dW is neither written nor read."""
    cdef floating* dtheta = <floating*>net.dtheta
    cdef Op* op
    cdef int k
    net.t += 1
    for k in range(net.first_param_op, net.n_ops):
        op = &net.ops[k]
        if op.kind != OP_DENSE:
            continue
        if op.fused:  # with the penalty: W := (1 - lr c) W - lr X.T dY
            _weight_product(net, op, n, <floating>-net.lr,
                            <floating>(1 - net.lr * net.l2_step), theta + op.w_off)
        else:
            _sgd_range(net, theta + op.w_off, dtheta + op.w_off, op.n_in * op.n_out)
        _sgd_range(net, theta + op.b_off, dtheta + op.b_off, op.n_out)


# Largest batch for which the bound in _gradient_bound holds in float32: n rounding errors
# of at most 2**-24 each grow a sum by less than a factor 2 while n * 2**-24 < ln 2.
cdef Py_ssize_t BOUND_ROWS = 1 << 20


cdef double _gradient_bound(Net* net, floating* dtheta, Py_ssize_t n) noexcept nogil:
    """An upper bound of max|dtheta| after a backward pass over n rows (infinity when a
    gradient is not finite), reading as little as can be.

    A weight gradient dW = X.T @ dY (X:(n, n_in), dY:(n, n_out)) holds sums of n products, so
    |dW| <= n max|X| max|dY|, and with float rounding less than twice that (n <= BOUND_ROWS).
    When X and dY are finite and that bound is below half the largest float, dW is finite and
    is not read: only X and dY are, which is less memory when n (n_in + n_out) < n_in n_out, and
    memory the main thread wrote. That matters with two BLAS threads: the second thread wrote
    part of dW on the other core, so scanning dW would pull it across, and the update does
    again (bench/NOTES.md). Any other case (a non-finite X or dY, a large bound) scans dW.
    """
    cdef Op* op
    cdef int k
    cdef Py_ssize_t size
    cdef double bound, found, x_max, G = 0
    cdef int64_t terms
    cdef bint sparse
    cdef double limit = 0.5 * (FLT_MAX if floating is float else DBL_MAX)
    if not net.tiled:
        return _max_abs(dtheta, net.n_params)
    for k in range(net.first_param_op, net.n_ops):
        op = &net.ops[k]
        if op.kind != OP_DENSE:
            continue
        found = _max_abs(dtheta + op.b_off, op.n_out)
        if not isfinite(found):
            return INFINITY
        G = found if found > G else G
        size = op.n_in * op.n_out
        # from a CSR batch an entry of dW sums one product per stored entry of the batch
        # (a row may repeat a column), so the count of terms is entries, not rows
        sparse = net.sparse and op.src == 0
        terms = n
        x_max = (_csr_max_abs(&net.x, n, floating is float, &terms) if sparse
                 else 0)
        if terms <= BOUND_ROWS and (op.fused or sparse or n * (op.n_in + op.n_out) < size):
            if not sparse:
                x_max = _max_abs(<floating*>net.act[op.src], n * op.n_in)
            bound = x_max * _max_abs(<floating*>net.grad[op.dst], n * op.n_out) * <double>terms
            if bound < limit:  # also False for a NaN or infinite factor
                G = 2 * bound if 2 * bound > G else G
                continue
        if op.fused:  # not proved finite: compute it, and update from it
            _unfold_op(net, op, n, dtheta)
        found = _max_abs(dtheta + op.w_off, size)
        if not isfinite(found):
            return INFINITY
        G = found if found > G else G
    return G


# Relative slack on the update bounds: the kernels' few roundings per element each add at
# most one part in 2**24 (float32), far below this
cdef double SLACK = 1.0 + 1e-5


cdef bint _bounds_after(Net* net, double G, double half, double* w, double* s) noexcept nogil:
    """Upper bounds w of max|theta| and s[0..2] of max|state1..3| after this step's update,
    from the carried bounds and G >= max|gradient|; True when all stay below half the
    dtype's largest value (and so every new value is finite)."""
    cdef double d, v, step, decay = 1
    d = (G + net.weight_decay * net.w_max) * SLACK
    s[0] = s[1] = s[2] = 0
    if net.opt_kind == OPT_SGD:
        step = d
        if net.momentum != 0:
            v = (net.momentum * net.s1_max + d) * SLACK
            s[0] = v
            step = (d + net.momentum * v) * SLACK if net.nesterov else v
    elif net.opt_kind == OPT_RMSPROP:  # sqrt(r) + eps >= eps
        s[0] = (net.rms_alpha * net.s1_max + (1 - net.rms_alpha) * d * d) * SLACK
        if net.centered:
            s[2] = (net.rms_alpha * net.s3_max + (1 - net.rms_alpha) * d) * SLACK
        step = d / net.eps * SLACK
        if net.momentum != 0:
            step = (net.momentum * net.s2_max + step) * SLACK
            s[1] = step
    else:  # Adam, AdamW: |m_hat / (sqrt(v_hat) + eps)| <= |m| / (1 - beta1^t) / eps
        if net.opt_kind == OPT_ADAMW:
            d = G * SLACK  # decoupled: the decay acts on the weights, not the gradient
            decay = fabs(1 - net.lr * net.weight_decay)
        s[0] = (net.beta1 * net.s1_max + (1 - net.beta1) * d) * SLACK
        s[1] = (net.beta2 * net.s2_max + (1 - net.beta2) * d * d) * SLACK
        step = s[0] / (1 - pow(net.beta1, <double>(net.t + 1))) / net.eps * SLACK
    w[0] = (decay * net.w_max + net.lr * step) * SLACK
    return w[0] < half and s[0] < half and s[1] < half and s[2] < half  # False for NaN too


cdef void _scan_bounds(Net* net, floating* theta) noexcept nogil:
    """The exact max|.| of theta and of the optimizer buffers."""
    net.w_max = _max_abs(theta, net.n_params)
    net.s1_max = 0 if net.state1 == NULL else _max_abs(<floating*>net.state1, net.n_params)
    net.s2_max = 0 if net.state2 == NULL else _max_abs(<floating*>net.state2, net.n_params)
    net.s3_max = 0 if net.state3 == NULL else _max_abs(<floating*>net.state3, net.n_params)


cdef bint _dry_update(Net* net, floating* theta, double top) noexcept nogil:
    """Whether the update computed element by element, without writing it, keeps every new
    weight and buffer finite (below top: the largest value less a millionth, a margin for
    the kernels' own rounding); if so, the carried bounds become the maxima of the new
    values (the slow path, for steps the bounds cannot clear). The formulas are the update
    kernels' (_optim.pyx, _simd.h)."""
    cdef floating* g = <floating*>net.dtheta
    cdef floating* s1 = <floating*>net.state1
    cdef floating* s2 = <floating*>net.state2
    cdef floating* s3 = <floating*>net.state3
    cdef floating lr = <floating>net.lr, mu = <floating>net.momentum
    cdef floating wd = <floating>net.weight_decay, b1 = <floating>net.beta1
    cdef floating b2 = <floating>net.beta2, eps = <floating>net.eps
    cdef floating c1 = <floating>(1 - net.beta1), c2 = <floating>(1 - net.beta2)
    cdef floating ra = <floating>net.rms_alpha, rc = <floating>(1 - net.rms_alpha)
    cdef floating step = <floating>(net.lr / (1 - pow(net.beta1, <double>(net.t + 1))))
    cdef floating inv = <floating>(1 / sqrt(1 - pow(net.beta2, <double>(net.t + 1))))
    cdef floating decay = <floating>(1 - net.lr * net.weight_decay)
    cdef floating d, a, b, c, r, u, nw
    cdef double w_max = 0, m1 = 0, m2 = 0, m3 = 0
    cdef Py_ssize_t i
    for i in range(net.n_params):
        a = b = c = 0
        if net.opt_kind == OPT_SGD:
            d = g[i] + wd * theta[i]
            if net.momentum == 0:
                nw = theta[i] - lr * d
            else:
                a = mu * s1[i] + d
                nw = theta[i] - lr * (d + mu * a if net.nesterov else a)
        elif net.opt_kind == OPT_RMSPROP:
            d = g[i] + wd * theta[i]
            a = ra * s1[i] + rc * d * d
            r = a
            if net.centered:
                c = s3[i] + rc * (d - s3[i])
                r = a - c * c
                if r < 0:
                    r = 0
            u = d / (sqrt(r) + eps)
            if net.momentum != 0:
                u = mu * s2[i] + u
                b = u
            nw = theta[i] - lr * u
        elif net.opt_kind == OPT_ADAMW:
            d = g[i]
            a = b1 * s1[i] + c1 * d
            b = b2 * s2[i] + c2 * d * d
            nw = theta[i] * decay - step * a / (sqrt(b) * inv + eps)
        else:
            d = g[i] + wd * theta[i]
            a = b1 * s1[i] + c1 * d
            b = b2 * s2[i] + c2 * d * d
            nw = theta[i] - step * a / (sqrt(b) * inv + eps)
        # (NaN fails every comparison, so the test below catches it)
        if not (fabs(nw) < top and fabs(a) < top and fabs(b) < top and fabs(c) < top):
            return False
        w_max = fabs(nw) if fabs(nw) > w_max else w_max
        m1 = fabs(a) if fabs(a) > m1 else m1
        m2 = fabs(b) if fabs(b) > m2 else m2
        m3 = fabs(c) if fabs(c) > m3 else m3
    net.w_max, net.s1_max, net.s2_max, net.s3_max = (w_max * SLACK, m1 * SLACK, m2 * SLACK,
                                                     m3 * SLACK)
    return True


cdef double _clip(Net* net, floating* dtheta, double G) noexcept nogil:
    """Clip the gradients as torch.nn.utils.clip_grad_norm_ then clip_grad_value_ would:
    scale all by clip_norm / (||g|| + 1e-6) when that is below 1, then clamp each to
    [-clip_value, clip_value]. Returns the bound G after clipping."""
    cdef Py_ssize_t i
    cdef double total = 0, coef
    cdef floating c, cv
    if net.clip_norm > 0:
        for i in range(net.n_params):
            total += <double>dtheta[i] * <double>dtheta[i]
        coef = net.clip_norm / (sqrt(total) + 1e-6)
        if coef < 1:
            c = <floating>coef
            for i in range(net.n_params):
                dtheta[i] = dtheta[i] * c
            G = G * coef * SLACK
    if net.clip_value > 0:
        cv = <floating>net.clip_value
        for i in range(net.n_params):
            if dtheta[i] > cv:
                dtheta[i] = cv
            elif dtheta[i] < -cv:
                dtheta[i] = -cv
        G = G if G < net.clip_value else net.clip_value
    return G


cdef bint _update_checked(Net* net, floating* theta, double G, Py_ssize_t n,
                          bint fuse) noexcept nogil:
    """The optimizer step, unless it would make a weight or an optimizer buffer non-finite:
    then nothing is written and False is returned.

    Decided without reading theta in ordinary training: bounds of max|theta| and of the
    buffers are carried from step to step (each update raises them by what it can add), and
    a step clears when they stay below half the largest value. Only a step they cannot clear
    rescans them exactly, and if that does not clear it either, the update is computed once
    without writing (_dry_update), which decides exactly. Parameters written from outside
    between calls must be reported (Executor.parameters_changed) so the bounds are rescanned.
    """
    cdef double half = 0.5 * (FLT_MAX if floating is float else DBL_MAX)
    cdef double w
    cdef double s[3]
    if net.w_max < 0:
        _scan_bounds(net, theta)
    if not _bounds_after(net, G, half, &w, s):
        _scan_bounds(net, theta)
        if not _bounds_after(net, G, half, &w, s):
            _unfold(net, <floating*>net.dtheta, n)  # the dry run reads every gradient
            if not _dry_update(net, theta, 2 * half * (1 - 1e-6)):
                return False
            w, s[0], s[1], s[2] = net.w_max, net.s1_max, net.s2_max, net.s3_max
            fuse = False
    if fuse:
        _update_folded(net, theta, n)
    else:
        _update(net, theta)
    net.w_max, net.s1_max, net.s2_max, net.s3_max = w, s[0], s[1], s[2]
    return True


cdef void _unfold(Net* net, floating* dtheta, Py_ssize_t n) noexcept nogil:
    """Compute into dtheta every weight gradient this step would fold into its update."""
    cdef Op* op
    cdef int k
    for k in range(net.first_param_op, net.n_ops):
        op = &net.ops[k]
        if op.kind == OP_DENSE and op.fused:
            _unfold_op(net, op, n, dtheta)


cdef void _unfold_op(Net* net, Op* op, Py_ssize_t n, floating* dtheta) noexcept nogil:
    """Write a folded Dense's dW (X.T dY, plus the penalty's c W) after all; it is then
    updated from dtheta like any other."""
    cdef Py_ssize_t i
    cdef floating c = <floating>net.l2_step
    cdef const floating* theta = <const floating*>net.theta
    op.fused = False
    _weight_product(net, op, n, <floating>1, <floating>0, dtheta + op.w_off)
    if net.l2_step > 0:
        for i in range(op.n_in * op.n_out):
            dtheta[op.w_off + i] += c * theta[op.w_off + i]


cdef Py_ssize_t _step(Net* net, const floating* X, const void* T, const floating* w,
                      Py_ssize_t n, int mode, double* loss) noexcept nogil:
    """Forward X:(n, n_in), loss against T (row weights w or NULL), then (by mode) backward
    and update. A folded update does not write the dW of the large Dense layers.

    Returns -1; the batch row of the first invalid target; or, in update mode,
    STEP_NONFINITE when the loss or a gradient is not finite. Nothing is updated unless -1.
    """
    cdef floating* out
    cdef Py_ssize_t bad
    cdef double G, wsum
    cdef bint train = net.training and mode >= MODE_GRAD
    cdef bint fuse = _folds(net, mode)
    _forward(net, X, n, train)
    out = <floating*>net.act[net.out_slot]
    bad = _loss(net.loss_kind, net.loss_param, out, T, w,
                <floating*>net.grad[net.out_slot] if mode else NULL, n, net.n_out, loss)
    if mode == MODE_LOSS:
        return bad
    net.l2_step = 0
    if net.l2 > 0 and bad < 0:
        wsum = _weight(w, n)
        net.l2_step = net.l2 / wsum if wsum > 0 else 0
        loss[0] += 0.5 * net.l2_step * _sum_squares(net, <floating*>net.theta)
    if bad >= 0 or (mode == MODE_UPDATE and not isfinite(loss[0])):
        return bad if bad >= 0 else STEP_NONFINITE
    _backward(net, <floating*>net.theta, n, train, fuse)
    if net.l2_step > 0:
        _add_penalty(net, <floating*>net.theta, <floating*>net.dtheta)
    if mode == MODE_UPDATE:
        G = _gradient_bound(net, <floating*>net.dtheta, n)
        if not isfinite(G):
            return STEP_NONFINITE
        if net.l2_step > 0:  # bound-proved and folded layers: X.T dY plus c W
            if net.w_max < 0:
                _scan_bounds(net, <floating*>net.theta)
            G = (G + net.l2_step * net.w_max) * SLACK
        if net.clip_norm > 0 or net.clip_value > 0:
            G = _clip(net, <floating*>net.dtheta, G)
        if not _update_checked(net, <floating*>net.theta, G, n, fuse):
            return STEP_OVERFLOW
    return -1


cdef double _sum_squares(Net* net, floating* theta) noexcept nogil:
    """sum ||W||^2 over the Dense weights (not the biases), in double."""
    cdef Op* op
    cdef int k
    cdef Py_ssize_t i
    cdef double total = 0
    for k in range(net.first_param_op, net.n_ops):
        op = &net.ops[k]
        if op.kind == OP_DENSE:
            for i in range(op.n_in * op.n_out):
                total += <double>theta[op.w_off + i] * <double>theta[op.w_off + i]
    return total


cdef void _add_penalty(Net* net, floating* theta, floating* dtheta) noexcept nogil:
    """dW += l2_step W for every Dense whose dW the backward pass wrote (a folded one takes
    the penalty in its update's product instead)."""
    cdef Op* op
    cdef int k
    cdef Py_ssize_t i
    cdef floating c = <floating>net.l2_step
    for k in range(net.first_param_op, net.n_ops):
        op = &net.ops[k]
        if op.kind == OP_DENSE and not op.fused:
            for i in range(op.n_in * op.n_out):
                dtheta[op.w_off + i] += c * theta[op.w_off + i]


cdef Py_ssize_t _apply(Net* net, floating* theta) noexcept nogil:
    """The optimizer step from the gradients already in dtheta (none folded), clipped and
    checked as a training step's: -1, STEP_NONFINITE or STEP_OVERFLOW."""
    cdef double G = _max_abs(<floating*>net.dtheta, net.n_params)
    if not isfinite(G):
        return STEP_NONFINITE
    net.l2_step = 0  # the caller's gradient holds whatever penalty it wants
    if net.clip_norm > 0 or net.clip_value > 0:
        G = _clip(net, <floating*>net.dtheta, G)
    if not _update_checked(net, theta, G, 0, False):
        return STEP_OVERFLOW
    return -1


cdef inline double _weight(const floating* w, Py_ssize_t n) noexcept nogil:
    """Total weight of n rows (n when unweighted)."""
    cdef Py_ssize_t i
    cdef double total = 0
    if w == NULL:
        return <double>n
    for i in range(n):
        total += w[i]
    return total


cdef Py_ssize_t _epoch(Net* net, const floating* X, const char* T, Py_ssize_t t_row,
                       const floating* W, const int64_t* perm, Py_ssize_t N, Py_ssize_t batch,
                       floating* xb, char* tb, floating* wb, double* mean_loss,
                       Py_ssize_t* at, PyObject* hook, bint* busy) noexcept nogil:
    """One pass of mini-batch steps over X:(N, n_in) in the order perm (NULL: as stored).

    Shuffled batches are gathered into xb/tb/wb (a CSR X, net.x with X NULL, is read in
    place through perm instead); t_row is the byte size of one target row;
    W:(N,) row weights or NULL. mean_loss := the weighted mean of the batch losses. hook
    (NULL: none) is called after each batch as hook(batch index, batch loss), with the GIL
    and the executor free (*busy cleared) so it may use the model; a true result ends the
    epoch there. Returns -1; STEP_STOPPED; the dataset row of the first invalid target; or
    STEP_NONFINITE / STEP_OVERFLOW / STEP_INTERRUPTED (a signal handler's or the hook's
    exception pending) and *at := the first row of the batch not taken.
    """
    cdef Py_ssize_t start, nb, r, src, bad, index = 0
    cdef Py_ssize_t n_in = net.n_in, work = 0
    cdef double loss, total = 0, weight = 0, wsum
    cdef PyObject* result
    cdef int stop
    cdef const floating* w
    cdef const floating* xs
    cdef Csr x
    cdef bint sparse
    start = 0
    while start < N:
        at[0] = start
        nb = batch if N - start > batch else N - start
        if perm == NULL:
            w = W + start if W != NULL else W  # (a NULL in a ternary drops const)
            net.x.rows, net.x.first = NULL, start
            xs = <const floating*>NULL if net.sparse else X + start * n_in
            bad = _step(net, xs, T + start * t_row, w, nb, MODE_UPDATE, &loss)
            if bad >= 0:
                return start + bad
        else:
            net.x.rows = perm + start
            for r in range(nb):
                src = perm[start + r]
                if not net.sparse:
                    memcpy(xb + r * n_in, X + src * n_in, n_in * sizeof(floating))
                memcpy(tb + r * t_row, T + src * t_row, t_row)
                if W != NULL:
                    wb[r] = W[src]
            w = NULL if W == NULL else wb
            if not net.sparse:
                _prefetch_rows(X, perm, start + nb, N, batch, n_in)
            bad = _step(net, xb, tb, w, nb, MODE_UPDATE, &loss)
            if bad >= 0:
                return perm[start + bad]
        if bad != -1:
            return bad
        wsum = _weight(w, nb)
        total += loss * wsum
        weight += wsum
        start += nb
        work += nb * net.work
        if hook != NULL:
            x, sparse = net.x, net.sparse  # calls from the hook set their own input
            with gil:
                busy[0] = False
                result = _call_hook(hook, "nd", index, loss)
                busy[0] = True
                stop = -1 if result == NULL else _truth(result)
                if result != NULL:
                    _decref(result)
            net.x, net.sparse = x, sparse
            if stop != 0:
                at[0] = start
                mean_loss[0] = total / weight if weight > 0 else 0.0
                return STEP_STOPPED if stop > 0 else STEP_INTERRUPTED
        index += 1
        if work >= POLL_WORK and start < N:
            work = 0
            with gil:
                if _poll_signals() < 0:
                    at[0] = start
                    return STEP_INTERRUPTED
    mean_loss[0] = total / weight if weight > 0 else 0.0
    return -1


# Largest batch (bytes of X) whose rows _prefetch_rows asks for: the caches must hold them
# beside what the step itself reads
cdef Py_ssize_t PREFETCH_BYTES = 1 << 18


cdef inline void _prefetch_rows(const floating* X, const int64_t* perm, Py_ssize_t start,
                                Py_ssize_t N, Py_ssize_t batch,
                                Py_ssize_t n_in) noexcept nogil:
    """Ask for the rows of X of the batch starting at perm[start] while this step computes:
    shuffled rows are cache misses the hardware cannot foresee, and the gather would wait
    for each in turn."""
    cdef Py_ssize_t r, i, end = start + batch if N - start > batch else N
    cdef Py_ssize_t row_bytes = n_in * sizeof(floating)
    cdef const char* p
    if (end - start) * row_bytes > PREFETCH_BYTES:
        return
    for r in range(start, end):
        p = <const char*>(X + perm[r] * n_in)
        for i in range(0, row_bytes, 64):
            _prefetch(p + i)


cdef Py_ssize_t _evaluate(Net* net, const floating* X, const char* T, Py_ssize_t t_row,
                          const floating* W, Py_ssize_t N, Py_ssize_t chunk,
                          double* mean_loss) noexcept nogil:
    """Weighted mean loss over X:(N, n_in) in chunks of at most `chunk` rows, no gradients."""
    cdef Py_ssize_t nb, bad
    cdef double loss, wsum, total = 0, weight = 0
    cdef const floating* w
    cdef const floating* xs
    cdef Py_ssize_t start = 0
    while start < N:
        nb = chunk if N - start > chunk else N - start
        w = W + start if W != NULL else W
        net.x.first = start
        xs = <const floating*>NULL if net.sparse else X + start * net.n_in
        bad = _step(net, xs, T + start * t_row, w, nb, MODE_LOSS, &loss)
        if bad >= 0:
            return start + bad
        wsum = _weight(w, nb)
        total += loss * wsum
        weight += wsum
        start += nb
    mean_loss[0] = total / weight if weight > 0 else 0.0
    return -1


cdef bint _predict(Net* net, const floating* X, Py_ssize_t N, Py_ssize_t chunk,
                   floating* out, bint check) noexcept nogil:
    """out := network(X)   X:(N, n_in) out:(N, n_out), in chunks of at most `chunk` rows.
    False (out partly written) if check and a first product is not finite (_forward)."""
    cdef Py_ssize_t nb, start = 0
    while start < N:
        nb = chunk if N - start > chunk else N - start
        net.x.first = start
        if not _forward(net, <const floating*>NULL if net.sparse else X + start * net.n_in,
                        nb, False, check):
            return False
        memcpy(out + start * net.n_out, net.act[net.out_slot],
               nb * net.n_out * sizeof(floating))
        start += nb
    return True


cdef enum CallKind:
    CALL_STEP = 0
    CALL_EPOCH = 1
    CALL_EVALUATE = 2
    CALL_PREDICT = 3
    CALL_APPLY = 4


cdef struct Call:
    # one compiled entry's arguments, whatever the dtype (see _run)
    int kind                  # CallKind
    int mode                  # CALL_STEP: a Mode
    const void* x             # X:(n, n_in)
    const void* t             # targets, t_row bytes per row
    Py_ssize_t t_row
    const void* w             # row weights (n,) or NULL
    const int64_t* perm       # CALL_EPOCH: row order or NULL
    Py_ssize_t n              # rows
    Py_ssize_t rows           # CALL_EPOCH: batch size; CALL_EVALUATE/PREDICT: chunk
    void* gx                  # CALL_EPOCH: gathered batch X, T, w
    void* gt
    void* gw
    void* out                 # CALL_PREDICT: (n, n_out)
    bint check                # CALL_PREDICT: stop at a non-finite first product (_forward)
    PyObject* hook            # CALL_EPOCH: called after each batch, or NULL
    bint* busy                # CALL_EPOCH: the executor's busy flag (free during the hook)
    double loss               # result: the (weighted mean) loss
    Py_ssize_t at             # result of CALL_EPOCH: first row of the batch not taken


cdef Py_ssize_t _call(Net* net, Call* c, floating* theta) noexcept nogil:
    """Run the entry c describes in the dtype of theta (net.theta)."""
    if c.kind == CALL_STEP:
        return _step(net, <const floating*>c.x, c.t, <const floating*>c.w, c.n, c.mode,
                     &c.loss)
    if c.kind == CALL_EPOCH:
        return _epoch(net, <const floating*>c.x, <const char*>c.t, c.t_row,
                      <const floating*>c.w, c.perm, c.n, c.rows, <floating*>c.gx,
                      <char*>c.gt, <floating*>c.gw, &c.loss, &c.at, c.hook, c.busy)
    if c.kind == CALL_EVALUATE:
        return _evaluate(net, <const floating*>c.x, <const char*>c.t, c.t_row,
                         <const floating*>c.w, c.n, c.rows, &c.loss)
    if c.kind == CALL_APPLY:
        return _apply(net, theta)
    if not _predict(net, <const floating*>c.x, c.n, c.rows, <floating*>c.out, c.check):
        return STEP_NONFINITE
    return -1


cdef inline Py_ssize_t _run(Net* net, Call* c, bint single) noexcept nogil:
    """The one float32/float64 dispatch of the executor's entries."""
    if single:
        return _call(net, c, <float*>net.theta)
    return _call(net, c, <double*>net.theta)


cdef void* _acquire(Py_buffer* view, obj, str name, const char* kinds, Py_ssize_t itemsize,
                    Py_ssize_t count, bint writable) except NULL:
    """Fill *view with obj's buffer, checked against what the caller needs (format char in
    kinds, item size, item count, C order). *view must be zeroed on entry and has obj NULL
    again if this fails (the buffer protocol requires exporters to reset it), so the caller's
    PyBuffer_Release(view) is always safe. No Python objects are made on success: this runs
    on every training call."""
    cdef int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT
    cdef const char* fmt
    if writable:
        flags |= PyBUF_WRITABLE
    try:
        PyObject_GetBuffer(obj, view, flags)
    except (BufferError, TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected a C-contiguous{' writable' if writable else ''}"
                         f" array ({e})") from None
    fmt = view.format
    if fmt == NULL:
        fmt = "B"
    if fmt[0] == b"@" or fmt[0] == b"=":
        fmt += 1
    if view.itemsize != itemsize or fmt[0] == 0 or fmt[1] != 0 or strchr(kinds, fmt[0]) == NULL:
        got, got_size = (<bytes>fmt).decode(), view.itemsize
        PyBuffer_Release(view)
        raise ValueError(f"{name}: expected items of format {(<bytes>kinds).decode()!r} and "
                         f"size {itemsize}, got format {got!r} and size {got_size}")
    if view.len % itemsize or view.len // itemsize != count:
        got_count = view.len // itemsize
        PyBuffer_Release(view)
        raise ValueError(f"{name}: expected {count} items, got {got_count}")
    return view.buf


cdef class Executor:
    """Compiled plan of a layer stack over flat parameters theta and gradients dtheta.

    ops: list of ("dense", n_in, n_out, w_off, b_off), ("dropout", width, p) or
    (activation_name, width, alpha).
    theta, dtheta: 1-D C-contiguous float32 or float64 arrays of one dtype, distinct memory;
    they are used in place (the caller's views of them see every update). dtheta holds the
    gradients of the last MODE_GRAD step; an update step may leave parts of it stale.
    """
    cdef Net net
    cdef readonly object dtype
    cdef readonly object theta, dtheta
    cdef Py_ssize_t _capacity
    cdef object _state1, _state2, _state3
    cdef list _buffers
    cdef bint _busy
    cdef Py_ssize_t _itemsize
    cdef bytes _fmt
    cdef list _widths
    cdef object _gather_x, _gather_t, _gather_w  # fit's shuffled batch (bytes for targets)
    cdef int _epochs           # run_epoch calls under way (a batch hook may nest calls)
    cdef unsigned long _owner  # the thread that claimed the executor (0: none)
    cdef int _claims           # its nested claims
    cdef int _readers          # predict calls under way (each on its own buffers)
    cdef list _pool            # idle _Slots for predict

    def __cinit__(self, list ops, theta, dtheta):
        self.net.ops = NULL
        self.net.act = NULL
        self.net.grad = NULL

    def __init__(self, list ops, theta, dtheta):
        if not isinstance(theta, np.ndarray) or not isinstance(dtheta, np.ndarray):
            raise TypeError("theta and dtheta must be numpy arrays")
        if theta.dtype not in (np.float32, np.float64) or dtheta.dtype != theta.dtype:
            raise TypeError(f"theta and dtheta must share a float32/float64 dtype, got "
                            f"{theta.dtype} and {dtheta.dtype}")
        if (theta.ndim != 1 or theta.shape != dtheta.shape or not theta.flags.c_contiguous
                or not dtheta.flags.c_contiguous or not theta.flags.writeable
                or not dtheta.flags.writeable):
            raise ValueError("theta and dtheta must be writable 1-D C-contiguous arrays of "
                             "one shape")
        if np.shares_memory(theta, dtheta):
            raise ValueError("theta and dtheta must not share memory (a gradient would "
                             "overwrite the parameters it is computed from)")
        if not ops:
            raise ValueError("ops must not be empty")
        self.dtype = theta.dtype
        self._itemsize = theta.dtype.itemsize
        self._fmt = b"f" if theta.dtype == np.float32 else b"d"
        self.theta, self.dtheta = theta, dtheta
        self.net.n_params = theta.shape[0]
        self.net.n_ops = len(ops)
        self.net.ops = <Op*>calloc(len(ops), sizeof(Op))
        if self.net.ops == NULL:
            raise MemoryError()
        self._plan(ops)
        self.net.act = <void**>calloc(self.net.n_slots, sizeof(void*))
        self.net.grad = <void**>calloc(self.net.n_slots, sizeof(void*))
        if self.net.act == NULL or self.net.grad == NULL:
            raise MemoryError()
        self.net.theta = <void*><size_t>theta.ctypes.data
        self.net.dtheta = <void*><size_t>dtheta.ctypes.data
        self.net.loss_kind = -1
        self.net.opt_kind = OPT_NONE
        self.net.training = True
        self.net.rng = 0
        self.net.w_max = -1
        self._capacity = 0
        self._buffers = []
        self._pool = []

    def __dealloc__(self):
        free(self.net.ops)
        free(self.net.act)
        free(self.net.grad)

    cdef _plan(self, list ops):
        """Fill net.ops and assign slots (see the module docstring)."""
        cdef Op* op
        cdef int k, slot = 0, n_slots = 1
        cdef Py_ssize_t width = -1
        cdef bint slot_from_dense = False
        cdef bint seen_param = False
        widths = [0]
        self.net.first_param_op = -1
        for k, spec in enumerate(ops):
            op = &self.net.ops[k]
            op.src = slot
            if spec[0] == "dense":
                _, n_in, n_out, w_off, b_off = spec
                if n_in < 1 or n_out < 1:
                    raise ValueError(f"op {k}: dense widths must be >= 1")
                # in Python ints: huge offsets must not wrap around in Py_ssize_t
                if (w_off < 0 or b_off < 0 or w_off + n_in * n_out > self.net.n_params
                        or b_off + n_out > self.net.n_params):
                    raise ValueError(f"op {k}: dense parameters fall outside theta")
                op.n_in, op.n_out, op.w_off, op.b_off = n_in, n_out, w_off, b_off
                if width >= 0 and op.n_in != width:
                    raise ValueError(f"op {k}: dense expects {op.n_in} inputs, gets {width}")
                if width < 0:
                    self.net.n_in = op.n_in
                op.kind = OP_DENSE
                op.need_dx = seen_param
                op.fusable = op.n_in * op.n_out >= AXPY_PARAMS
                self.net.any_fusable = self.net.any_fusable or op.fusable
                if not seen_param:
                    self.net.first_param_op = k
                seen_param = True
                slot, slot_from_dense = n_slots, True
                n_slots += 1
                widths.append(op.n_out)
                width = op.n_out
                self.net.work += op.n_in * op.n_out
            elif spec[0] == "dropout":
                _, op.n_out, op.alpha = spec
                op.kind = OP_DROPOUT
                op.n_in = op.n_out
                if op.n_out < 1 or (width >= 0 and op.n_out != width):
                    raise ValueError(f"op {k}: dropout width {op.n_out} does not match its "
                                     f"input width {width}")
                if not 0 <= op.alpha < 1:
                    raise ValueError(f"op {k}: dropout probability must be in [0, 1), got "
                                     f"{op.alpha}")
                if width < 0:
                    self.net.n_in = width = op.n_out
                # a new slot: the input may be X, or an output another op's backward needs
                slot, slot_from_dense = n_slots, False
                n_slots += 1
                widths.append(op.n_out)
            else:
                name, op.n_out, op.alpha = spec
                if name not in ACTIVATIONS:
                    raise ValueError(f"op {k}: unknown activation {name!r}")
                op.kind = ACTIVATIONS[name]
                op.n_in = op.n_out
                if op.n_out < 1 or (width >= 0 and op.n_out != width):
                    raise ValueError(f"op {k}: activation width {op.n_out} does not match "
                                     f"its input width {width}")
                if width < 0:
                    self.net.n_in = width = op.n_out
                if op.kind != ACT_IDENTITY and not (slot != 0 and slot_from_dense):
                    # its input is the caller's X or another activation's output, which
                    # that activation's backward still needs: write a new slot
                    slot, slot_from_dense = n_slots, False
                    n_slots += 1
                    widths.append(op.n_out)
                elif op.kind != ACT_IDENTITY:
                    slot_from_dense = False
            op.dst = slot
        if not seen_param:
            raise ValueError("ops must hold at least one dense op")
        # the gradient bound (see _gradient_bound) covers only gradients the ops write
        ranges = sorted([(o[3], o[1] * o[2]) for o in ops if o[0] == "dense"]
                        + [(o[4], o[2]) for o in ops if o[0] == "dense"])
        end = 0
        for start, size in ranges:
            end = start + size if start == end else -1
        self.net.tiled = end == self.net.n_params
        self.net.n_slots = n_slots
        self.net.out_slot = slot
        self.net.n_out = width
        self._widths = widths

    cdef int _reserve(self, Py_ssize_t capacity) except -1:
        if capacity <= self._capacity:
            return 0
        cdef int k
        buffers = []
        for s in range(1, self.net.n_slots):
            a = np.zeros(capacity * self._widths[s], dtype=self.dtype)
            g = np.zeros(capacity * self._widths[s], dtype=self.dtype)
            self.net.act[s] = <void*><size_t>a.ctypes.data
            self.net.grad[s] = <void*><size_t>g.ctypes.data
            buffers += [a, g]
        for k in range(self.net.n_ops):
            if self.net.ops[k].kind == OP_DROPOUT:
                a = np.zeros(capacity * self.net.ops[k].n_out, dtype=self.dtype)
                self.net.ops[k].mask = <void*><size_t>a.ctypes.data
                buffers.append(a)
        self._buffers = buffers
        self._capacity = capacity
        return 0

    def set_loss(self, str name, double param=1.0):
        """Choose the loss: one of LOSSES; param is Huber's delta (> 0)."""
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
        if not param > 0:
            raise ValueError(f"param must be > 0, got {param}")
        self._check_configurable("the loss")
        self.net.loss_kind = LOSSES[name]
        self.net.loss_param = param

    @property
    def training(self):
        """Dropout is active in gradient and update steps while True (the default)."""
        return self.net.training

    @training.setter
    def training(self, bint value):
        self._check_idle()
        self.net.training = value

    def seed(self, uint64_t value):
        """Restart the dropout masks' random stream from value (rng_state, for one)."""
        self._check_idle()
        self.net.rng = value

    @property
    def rng_state(self):
        """The dropout stream's state: seed(rng_state) continues the stream from here."""
        return self.net.rng

    def set_sgd(self, double lr, double momentum=0.0, bint nesterov=False,
                double weight_decay=0.0):
        """Use SGD; a fresh zero velocity when momentum != 0."""
        self._check_configurable("the optimizer")
        self._buffers_for(momentum != 0, False, False)
        self.net.opt_kind = OPT_SGD
        self.net.lr, self.net.momentum, self.net.nesterov = lr, momentum, nesterov
        self.net.weight_decay = weight_decay
        self.net.t = 0
        self.net.w_max = -1

    def set_adam(self, double lr, double beta1, double beta2, double eps,
                 double weight_decay=0.0):
        """Use Adam with fresh zero moments."""
        self._check_configurable("the optimizer")
        self._buffers_for(True, True, False)
        self.net.opt_kind = OPT_ADAM
        self.net.lr, self.net.beta1, self.net.beta2 = lr, beta1, beta2
        self.net.eps, self.net.weight_decay = eps, weight_decay
        self.net.t = 0
        self.net.w_max = -1

    def set_adamw(self, double lr, double beta1, double beta2, double eps,
                  double weight_decay=0.01):
        """Use AdamW (decoupled weight decay) with fresh zero moments."""
        self.set_adam(lr, beta1, beta2, eps, weight_decay)
        self.net.opt_kind = OPT_ADAMW

    def set_rmsprop(self, double lr, double alpha=0.99, double eps=1e-8,
                    double weight_decay=0.0, double momentum=0.0, bint centered=False):
        """Use RMSprop with fresh zero buffers (square average; momentum buffer when
        momentum != 0; gradient average when centered)."""
        self._check_configurable("the optimizer")
        self._buffers_for(True, momentum != 0, centered)
        self.net.opt_kind = OPT_RMSPROP
        self.net.lr, self.net.rms_alpha, self.net.eps = lr, alpha, eps
        self.net.weight_decay, self.net.momentum, self.net.centered = (weight_decay, momentum,
                                                                       centered)
        self.net.t = 0
        self.net.w_max = -1

    def set_l2(self, double alpha=0.0):
        """scikit-learn's alpha: each batch's loss gains alpha/2 sum ||W||^2 / (the batch's
        weight: its rows, or its sample weights' sum), Dense weights only, not biases; its
        gradient alpha W / (batch weight) joins dW. 0 turns it off."""
        if not (alpha >= 0 and alpha < INFINITY):
            raise ValueError(f"alpha must be finite and >= 0, got {alpha}")
        self._check_configurable("the penalty")
        self.net.l2 = alpha

    def set_clip(self, double norm=0.0, double value=0.0):
        """Clip every step's gradients before the update: to global L2 norm `norm` (as
        torch.nn.utils.clip_grad_norm_), then each to [-value, value]; 0 turns one off."""
        if not (norm >= 0 and value >= 0):
            raise ValueError(f"clip norm and value must be >= 0, got {norm} and {value}")
        self._check_configurable("the clipping")
        self.net.clip_norm, self.net.clip_value = norm, value

    cdef _buffers_for(self, bint one, bint two, bint three):
        """Fresh zero optimizer buffers state1..3 (None / NULL where not used)."""
        self._state1 = np.zeros_like(self.theta) if one else None
        self._state2 = np.zeros_like(self.theta) if two else None
        self._state3 = np.zeros_like(self.theta) if three else None
        self.net.state1 = (<void*><size_t>self._state1.ctypes.data if one else NULL)
        self.net.state2 = (<void*><size_t>self._state2.ctypes.data if two else NULL)
        self.net.state3 = (<void*><size_t>self._state3.ctypes.data if three else NULL)
        self.net.momentum = 0
        self.net.centered = False

    @property
    def lr(self):
        return self.net.lr

    @lr.setter
    def lr(self, double value):
        self.net.lr = value

    @property
    def step_count(self):
        """Optimizer steps taken since the optimizer was set (Adam's bias correction uses
        it); settable, to restore a saved optimizer state."""
        return self.net.t

    @step_count.setter
    def step_count(self, Py_ssize_t value):
        if value < 0:
            raise ValueError(f"step_count must be >= 0, got {value}")
        self._check_idle()
        self.net.t = value

    @property
    def optimizer_state(self):
        """The optimizer's buffers (views, updated in place): SGD's velocity; Adam's and
        AdamW's m and v; RMSprop's square_avg, momentum_buffer, grad_avg (those in use)."""
        if self.net.opt_kind == OPT_ADAM or self.net.opt_kind == OPT_ADAMW:
            names = ("m", "v", "")
        elif self.net.opt_kind == OPT_RMSPROP:
            names = ("square_avg", "momentum_buffer", "grad_avg")
        else:
            names = ("velocity", "", "")
        return {k: a for k, a in zip(names, (self._state1, self._state2, self._state3))
                if a is not None}

    cdef int _check_idle(self) except -1:
        """Refuse a training or state call while another call runs (or another thread holds
        a claim), predictions included."""
        self._check_writer()
        if self._readers:
            raise RuntimeError(_IN_USE)
        return 0

    cdef int _check_writer(self) except -1:
        """Refuse a call while a training or state call runs, or another thread holds a
        claim (predictions may overlap each other)."""
        if self._busy or (self._owner != 0 and self._owner != PyThread_get_thread_ident()):
            raise RuntimeError(_IN_USE)
        return 0

    cdef int _check_configurable(self, str what) except -1:
        """Refuse a change of loss or optimizer from a batch hook: the running epoch reads
        its targets and buffers as set when it started."""
        self._check_idle()
        if self._epochs:
            raise RuntimeError(f"{what} cannot change while an epoch runs (from a batch hook)")
        return 0

    def claim(self):
        """Reserve the executor for the calling thread until release(): every call from
        another thread is refused meanwhile (fit holds it for its whole run; the callbacks it
        runs, in its thread, still may call). Claims by one thread nest."""
        self._check_idle()
        self._owner = PyThread_get_thread_ident()
        self._claims += 1

    def release(self):
        """End one claim() of the calling thread."""
        if self._owner != PyThread_get_thread_ident() or self._claims == 0:
            raise RuntimeError("release: the executor is not claimed by this thread")
        self._claims -= 1
        if self._claims == 0:
            self._owner = 0

    def snapshot(self):
        """(theta, {buffer name: buffer}, step_count, rng_state), copied in one go: no other
        thread's call can run while they are taken (nor is one running: then this raises)."""
        self._check_idle()
        self._busy = True
        try:
            buffers = {k: v.copy() for k, v in self.optimizer_state.items()}
            return self.theta.copy(), buffers, self.net.t, self.net.rng
        finally:
            self._busy = False

    def restore(self, theta=None, dict buffers=None, step_count=None, rng_state=None):
        """Write what is given in one go (arrays of theta's dtype and size; buffers by the
        names optimizer_state has): the counterpart of snapshot. The caller checks values."""
        cdef uint64_t rng = self.net.rng
        cdef Py_ssize_t t = self.net.t
        self._check_idle()
        if step_count is not None:
            if step_count < 0:
                raise ValueError(f"step_count must be >= 0, got {step_count}")
            t = step_count
        if rng_state is not None:
            rng = rng_state
        state = self.optimizer_state
        if buffers is not None and sorted(buffers) != sorted(state):
            raise ValueError(f"buffers must be {sorted(state)}, got {sorted(buffers)}")
        self._busy = True
        try:
            if theta is not None:
                self.theta[...] = theta
            for k, v in (buffers or {}).items():
                state[k][...] = v
            self.net.t, self.net.rng = t, rng
            self.net.w_max = -1
        finally:
            self._busy = False

    def parameters_changed(self):
        """Say that theta or an optimizer buffer was written from outside the executor's calls:
        the bounds that let an update skip reading them (see _update_checked) are rescanned
        at the next update. restore() and set_sgd/set_adam do this themselves."""
        self._check_idle()
        self.net.w_max = -1

    cdef int _enter(self, int mode, Py_ssize_t n) except -1:
        """Check the call can run and mark the executor busy; the caller clears _busy in a
        finally block. Runs with the GIL and calls no Python code before setting _busy, so
        two threads cannot both pass."""
        _ensure_blas()  # first: it may import scipy, which lets other threads run
        self._check_idle()
        if self.net.loss_kind < 0 and mode != MODE_PREDICT:
            raise RuntimeError("no loss set: call model.compile(loss=..., optimizer=...) first")
        if mode == MODE_UPDATE and self.net.opt_kind == OPT_NONE:
            raise RuntimeError("no optimizer set: call model.compile(loss=..., "
                               "optimizer=...) first")
        if n < 1:
            raise ValueError(f"X must hold at least one row, got {n}")
        self._busy = True
        return 0

    cdef const void* _input(self, Net* net, Py_buffer* buf, X, Py_ssize_t n) except? NULL:
        """Pointer to X:(n, n_in) of the network's dtype; or, for a CSR X, NULL with net.x
        and net.sparse set (buf then holds three views: indptr, indices, data)."""
        cdef const int64_t* indptr
        cdef const int32_t* indices
        cdef Py_ssize_t nnz
        cdef bint ok
        if not _is_csr(X):
            return _acquire(buf, X, "X", self._fmt, self._itemsize, _count(n, self.net.n_in),
                            False)
        if self.net.ops[0].kind != OP_DENSE:
            raise ValueError("sparse X needs a network whose first layer is Dense (it reads "
                             "the CSR rows); densify X or put the Dense first")
        if X.shape[1] != self.net.n_in:
            raise ValueError(f"X: expected {self.net.n_in} columns, got {X.shape[1]}")
        nnz = len(X.data)
        indptr = <const int64_t*>_acquire(&buf[0], X.indptr, "X.indptr", b"lq",
                                          sizeof(int64_t), n + 1, False)
        indices = NULL
        net.x.data = NULL
        if nnz:  # (an empty buffer may have no address, which _acquire takes for a failure)
            indices = <const int32_t*>_acquire(&buf[1], X.indices, "X.indices", b"il",
                                               sizeof(int32_t), nnz, False)
            net.x.data = _acquire(&buf[2], X.data, "X.data", self._fmt, self._itemsize, nnz,
                                  False)
        with nogil:
            ok = bp_csr_valid(indptr, indices, n, nnz, self.net.n_in)
        if not ok:
            raise ValueError(f"X: not a CSR matrix of {self.net.n_in} columns (indptr must "
                             f"rise from >= 0 to <= nnz; indices lie in [0, n_in))")
        net.x.indptr, net.x.indices = indptr, indices
        net.x.rows, net.x.first = NULL, 0
        net.sparse = True
        return NULL

    cdef const void* _weights(self, Py_buffer* buf, sample_weight, Py_ssize_t n) except? NULL:
        """Pointer to the row weights sample_weight:(n,) of the network's dtype, or NULL for
        None."""
        if sample_weight is None:
            return NULL
        return _acquire(buf, sample_weight, "sample_weight", self._fmt, self._itemsize, n,
                        False)

    cdef void* _targets(self, Py_buffer* buf, T, Py_ssize_t n, Py_ssize_t* row_bytes) except NULL:
        """Pointer to T: (n,) int64 labels for softmax cross-entropy, else (n, n_out) of the
        network's dtype. Sets row_bytes to the size of one target row."""
        if self.net.loss_kind == LOSS_SOFTMAX_CROSS_ENTROPY:
            row_bytes[0] = sizeof(int64_t)
            return _acquire(buf, T, "T", b"lq", sizeof(int64_t), n, False)
        row_bytes[0] = self._itemsize * self.net.n_out
        return _acquire(buf, T, "T", self._fmt, self._itemsize, _count(n, self.net.n_out), False)

    def step(self, X, T, int mode=MODE_UPDATE, sample_weight=None, bint exact=False, out=None):
        """One batch: forward X:(n, n_in), loss against T, and by mode backward / update.

        mode: MODE_LOSS (loss only), MODE_GRAD (also the gradients into dtheta) or
        MODE_UPDATE (also an optimizer step).
        T: (n,) int64 labels for softmax cross-entropy, else (n, n_out) of the dtype.
        sample_weight: (n,) row weights of the dtype, or None. Returns the (weighted) mean
        loss. exact=True is the fast path for inputs that need no conversion: it returns
        None, running nothing, unless sample_weight is None, X is a finite 2-D C-contiguous
        (n >= 1, n_in) array of the dtype and T exactly the shape and dtype above (finite).
        out: with MODE_GRAD, a (n_params,) array of the dtype that receives a copy of the
        gradients before any other call can overwrite them.
        """
        if not MODE_LOSS <= mode <= MODE_UPDATE:
            raise ValueError(f"mode must be MODE_LOSS, MODE_GRAD or MODE_UPDATE, got {mode}")
        cdef Py_ssize_t n, bad
        cdef Py_buffer bx[3]
        cdef Py_buffer bt, bw
        cdef Call c
        memset(&c, 0, sizeof(Call))
        memset(bx, 0, sizeof(bx))
        memset(&bt, 0, sizeof(Py_buffer))
        memset(&bw, 0, sizeof(Py_buffer))
        if exact:
            # the fast path keeps the buffers _exact took (taking them twice cost ~0.1 us)
            if sample_weight is not None or not self._exact(X, T, &bx[0], &bt):
                return None
            n = bx[0].shape[0]
        else:
            n = _rows(X)
        try:
            self._enter(mode, n)
        except BaseException:
            PyBuffer_Release(&bx[0])
            PyBuffer_Release(&bt)
            raise
        try:
            if exact:
                c.x, c.t = bx[0].buf, bt.buf
            else:
                c.x = self._input(&self.net, bx, X, n)
                c.t = self._targets(&bt, T, n, &c.t_row)
                c.w = self._weights(&bw, sample_weight, n)
            if out is not None and (mode != MODE_GRAD or not isinstance(out, np.ndarray)
                                    or out.dtype != self.dtype or out.shape != self.theta.shape
                                    or np.shares_memory(out, self.theta)):
                raise ValueError("out: a (n_params,) array of the dtype, for MODE_GRAD only")
            if n > self._capacity:  # after the checks: n comes from len(X), not the buffer
                self._reserve(n)
            c.kind, c.mode, c.n = CALL_STEP, mode, n
            with nogil:
                bad = _run(&self.net, &c, self._itemsize == 4)
            if out is not None and bad == -1:
                out[...] = self.dtheta
        finally:
            self._busy = self.net.sparse = False
            _release(bx, 3)
            PyBuffer_Release(&bt)
            PyBuffer_Release(&bw)
        if bad >= 0:
            raise _invalid_target(self.net.loss_kind, bad, self.net.n_out, T)
        if bad == STEP_NONFINITE:
            raise FloatingPointError(f"the loss ({c.loss}) or a gradient is not finite; no "
                                     f"update was made (the parameters are unchanged)")
        if bad == STEP_OVERFLOW:
            raise FloatingPointError(_OVERFLOW)
        return c.loss

    def run_epoch(self, X, T, perm, Py_ssize_t batch_size, sample_weight=None, on_batch=None):
        """Mini-batch updates over all of X:(N, n_in), T (and row weights sample_weight:(N,)
        or None) in the order perm:(N,) int64 (or None: as stored). Returns the mean of the
        batch losses weighted by batch weight (by batch size without sample_weight).

        on_batch: None, or called after each batch as on_batch(batch index, batch loss)
        (the model may be used from it); a true result ends the epoch after that batch, and
        the mean is then over the batches taken. Without it the epoch never leaves compiled
        code but to poll for signals.
        Raises FloatingPointError at the first batch with a non-finite loss or gradient, and
        KeyboardInterrupt (or whatever a signal handler, or on_batch, raises) at a batch
        boundary; the earlier batches' updates stay made, the failing one's is not."""
        if on_batch is not None and not callable(on_batch):
            raise TypeError(f"on_batch must be callable or None, got {on_batch!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        cdef Py_ssize_t N = _rows(X), bad
        # T, gathered X, gathered weights, perm, gathered T, weights, X (3 views if CSR)
        cdef Py_buffer views[9]
        cdef Call c
        memset(&c, 0, sizeof(Call))
        memset(views, 0, sizeof(views))
        self._enter(MODE_UPDATE, N)
        try:
            batch_size = min(batch_size, N)
            self._reserve(batch_size)
            c.x = self._input(&self.net, &views[6], X, N)
            c.t = self._targets(&views[0], T, N, &c.t_row)
            if not self.net.sparse and (  # (a CSR X is read in place through perm)
                    self._gather_x is None or len(self._gather_x) < batch_size * self.net.n_in):
                self._gather_x = np.empty(batch_size * self.net.n_in, dtype=self.dtype)
            if self._gather_t is None or len(self._gather_t) < batch_size * c.t_row:
                self._gather_t = np.empty(batch_size * c.t_row, dtype=np.uint8)
            if not self.net.sparse:
                c.gx = _acquire(&views[1], self._gather_x, "gather", self._fmt,
                                self._itemsize, len(self._gather_x), True)
            c.gt = _acquire(&views[4], self._gather_t, "gather", b"B", 1, len(self._gather_t),
                            True)
            c.w = self._weights(&views[5], sample_weight, N)
            if c.w != NULL:
                if self._gather_w is None or len(self._gather_w) < batch_size:
                    self._gather_w = np.empty(batch_size, dtype=self.dtype)
                c.gw = _acquire(&views[2], self._gather_w, "gather", self._fmt, self._itemsize,
                                len(self._gather_w), True)
            if perm is not None:
                c.perm = <const int64_t*>_acquire(&views[3], perm, "perm", b"lq",
                                                  sizeof(int64_t), N, False)
                if not _in_range(c.perm, N):
                    raise ValueError(f"perm must hold row indices in [0, {N})")
            c.kind, c.n, c.rows = CALL_EPOCH, N, batch_size
            if on_batch is not None:
                c.hook, c.busy = <PyObject*>on_batch, &self._busy
            self._epochs += 1
            try:
                with nogil:
                    bad = _run(&self.net, &c, self._itemsize == 4)
            finally:
                self._epochs -= 1
        finally:
            self._busy = self.net.sparse = False
            _release(views, 9)
        if bad >= 0:
            raise _invalid_target(self.net.loss_kind, bad, self.net.n_out, T)
        if bad == STEP_INTERRUPTED:
            _raise_pending()
        if bad == STEP_NONFINITE or bad == STEP_OVERFLOW:
            what = "the loss or a gradient is not finite" if bad == STEP_NONFINITE else _OVERFLOW
            raise FloatingPointError(
                f"{what}: in the batch starting at row {c.at} of the epoch "
                f"({c.at // batch_size} batches done); no update was made for it")
        return c.loss

    def apply_gradient(self, grad, double scale=1.0):
        """One optimizer step from the flat gradient scale * grad, grad:(n_params,) of the
        dtype (e.g. the sum over data-parallel ranks, scale 1 / their total weight), clipped
        and checked like a training step's: a non-finite gradient, or an update that would
        overflow, raises FloatingPointError and changes nothing."""
        cdef Py_buffer bg
        cdef Call c
        cdef Py_ssize_t bad
        memset(&c, 0, sizeof(Call))
        memset(&bg, 0, sizeof(Py_buffer))
        self._enter(MODE_UPDATE, 1)
        try:
            _acquire(&bg, grad, "grad", self._fmt, self._itemsize, self.net.n_params, False)
            if np.shares_memory(grad, self.theta):
                raise ValueError("grad must not share memory with the parameters")
            if scale == 1.0:
                self.dtheta[...] = grad
            else:
                np.multiply(grad, scale, out=self.dtheta)
            c.kind = CALL_APPLY
            with nogil:
                bad = _run(&self.net, &c, self._itemsize == 4)
        finally:
            self._busy = False
            PyBuffer_Release(&bg)
        if bad == STEP_NONFINITE:
            raise FloatingPointError("the gradient is not finite; no update was made (the "
                                     "parameters are unchanged)")
        if bad == STEP_OVERFLOW:
            raise FloatingPointError(_OVERFLOW)

    def evaluate(self, X, T, Py_ssize_t chunk=CHUNK, sample_weight=None):
        """(Weighted) mean loss over X:(N, n_in) against T (row weights sample_weight:(N,) or
        None), without gradients or dropout, `chunk` rows at a time."""
        cdef Py_ssize_t N = _rows(X), bad
        cdef Py_buffer bx[3]
        cdef Py_buffer bt, bw
        cdef Call c
        memset(&c, 0, sizeof(Call))
        memset(bx, 0, sizeof(bx))
        memset(&bt, 0, sizeof(Py_buffer))
        memset(&bw, 0, sizeof(Py_buffer))
        self._enter(MODE_LOSS, N)
        try:
            c.rows = self._chunk(chunk, N)
            c.x = self._input(&self.net, bx, X, N)
            c.t = self._targets(&bt, T, N, &c.t_row)
            c.w = self._weights(&bw, sample_weight, N)
            c.kind, c.n = CALL_EVALUATE, N
            with nogil:
                bad = _run(&self.net, &c, self._itemsize == 4)
        finally:
            self._busy = self.net.sparse = False
            _release(bx, 3)
            PyBuffer_Release(&bt)
            PyBuffer_Release(&bw)
        if bad >= 0:
            raise _invalid_target(self.net.loss_kind, bad, self.net.n_out, T)
        return c.loss

    def predict_exact(self, X):
        """network(X) as a new (N, n_out) array of the dtype, if X is exactly what predict
        reads: a finite, aligned, C-contiguous (N >= 1, n_in) buffer of the dtype; else None
        (the caller converts and checks X, with its messages). None too if the output is not
        finite (the caller's checked path then says why). With a Dense first, a non-finite X
        is found by its product (see _forward), which is smaller to scan than X."""
        cdef Py_buffer bx
        cdef Py_ssize_t N
        cdef bint ok
        # a first Dense checks its product in place of X (_forward); a first activation
        # could map a non-finite value to a finite one (-inf to 0), so X is scanned then
        cdef bint dense_first = self.net.ops[0].kind == OP_DENSE
        memset(&bx, 0, sizeof(Py_buffer))
        if not _view(&bx, X, self._fmt, self._itemsize, 2):
            return None
        N = bx.shape[0]
        ok = (N >= 1 and bx.shape[1] == self.net.n_in
              and (<size_t>bx.buf) % <size_t>self._itemsize == 0)
        if ok and not dense_first:
            if N * self.net.n_in < NOGIL_SCAN:
                ok = _finite(bx.buf, N * self.net.n_in, self._itemsize == 4)
            else:  # a long scan lets other threads run
                with nogil:
                    ok = _finite(bx.buf, N * self.net.n_in, self._itemsize == 4)
        PyBuffer_Release(&bx)
        if not ok:
            return None
        out = np.empty((N, self.net.n_out), dtype=self.dtype)
        if not self._predict_into(X, out, CHUNK, dense_first):
            return None
        _view(&bx, out, self._fmt, self._itemsize, 2)  # (.ctypes.data costs ~2 us)
        ok = _finite(bx.buf, N * self.net.n_out, self._itemsize == 4)
        PyBuffer_Release(&bx)
        return out if ok else None

    def predict(self, X, out, Py_ssize_t chunk=CHUNK):
        """out := network(X)   X:(N, n_in) out:(N, n_out), both of the network's dtype.

        Calls from several threads may run at once: each runs on its own activation buffers
        (kept for the next call), reading the shared weights. Training and state calls are
        refused while any runs, and a predict from another thread while one of those runs."""
        self._predict_into(X, out, chunk, False)

    cdef bint _predict_into(self, X, out, Py_ssize_t chunk, bint check) except -1:
        """predict; with check, False if a first product is not finite (out then partly
        written), else True."""
        cdef Py_ssize_t N = _rows(X), bad = -1
        cdef Py_buffer bx[3]
        cdef Py_buffer bo
        cdef Call c
        cdef Net net  # this call's view of the network: its own buffers and input
        cdef _Slots slots = None
        memset(&c, 0, sizeof(Call))
        memset(bx, 0, sizeof(bx))
        memset(&bo, 0, sizeof(Py_buffer))
        _ensure_blas()
        self._check_writer()
        if N < 1:
            raise ValueError(f"X must hold at least one row, got {N}")
        self._readers += 1
        try:
            c.rows = max(1, min(chunk, N))
            slots = self._slots(c.rows)
            net = self.net
            net.act, net.sparse = slots.act, False
            c.x = self._input(&net, bx, X, N)
            c.out = _acquire(&bo, out, "out", self._fmt, self._itemsize,
                             _count(N, self.net.n_out), True)
            c.kind, c.n, c.check = CALL_PREDICT, N, check
            with nogil:
                bad = _run(&net, &c, self._itemsize == 4)
        finally:
            self._readers -= 1
            if slots is not None:
                self._pool.append(slots)
            _release(bx, 3)
            PyBuffer_Release(&bo)
        return bad == -1

    cdef _Slots _slots(self, Py_ssize_t rows):
        """Forward-pass buffers for `rows` rows: an idle set from the pool if it is large
        enough, else a new one (the pool holds at most one set per concurrent predict)."""
        cdef _Slots slots
        if self._pool:
            slots = self._pool.pop()
            if slots.capacity >= rows:
                return slots
        slots = _Slots(self.net.n_slots)
        slots.capacity = rows
        for s in range(1, self.net.n_slots):
            a = np.empty(rows * self._widths[s], dtype=self.dtype)
            slots.act[s] = <void*><size_t>a.ctypes.data
            slots.arrays.append(a)
        return slots

    cdef bint _exact(self, X, T, Py_buffer* bx, Py_buffer* bt) except -1:
        """True if X, T are exactly what a step reads (see step), with finite values; then
        *bx and *bt hold their buffers (the caller releases them), else both are released."""
        cdef Py_ssize_t n, count
        cdef bint ok
        cdef bint labels = self.net.loss_kind == LOSS_SOFTMAX_CROSS_ENTROPY
        if not _view(bx, X, self._fmt, self._itemsize, 2):
            return False
        n = bx.shape[0]
        ok = n >= 1 and bx.shape[1] == self.net.n_in
        if ok:
            ok = (_view(bt, T, b"lq", sizeof(int64_t), 1) if labels
                  else _view(bt, T, self._fmt, self._itemsize, 2))
            if ok:
                ok = bt.shape[0] == n and (labels or bt.shape[1] == self.net.n_out)
                if ok and not labels:
                    ok = _finite(bt.buf, n * self.net.n_out, self._itemsize == 4)
            if ok:
                count = n * self.net.n_in
                if count < NOGIL_SCAN:
                    ok = _finite(bx.buf, count, self._itemsize == 4)
                else:
                    # a long scan lets other threads run, as the validated path's does: a
                    # thread waiting for this model gets its turn while the model is idle
                    with nogil:
                        ok = _finite(bx.buf, count, self._itemsize == 4)
        if not ok:
            PyBuffer_Release(bt)  # safe when not taken: _view leaves obj NULL then
            PyBuffer_Release(bx)
        return ok

    cdef Py_ssize_t _chunk(self, Py_ssize_t chunk, Py_ssize_t N) except -1:
        """Rows per forward pass: at least 1, at most `chunk` unless the buffers already hold
        more (then use them all)."""
        self._reserve(max(1, min(chunk, N)))
        return self._capacity


_IN_USE = ("this model is in use by another thread; a model runs one training or state call "
           "at a time, and none while another thread predicts (predictions may overlap each "
           "other; give each training thread its own model)")


cdef class _Slots:
    """One set of forward-pass buffers: act[s] is slot s's (capacity, width) activations
    (act[0], the input, is set per call)."""
    cdef void** act
    cdef Py_ssize_t capacity
    cdef list arrays

    def __cinit__(self, int n_slots):
        self.act = <void**>calloc(n_slots, sizeof(void*))
        if self.act == NULL:
            raise MemoryError()
        self.arrays = []

    def __dealloc__(self):
        free(self.act)


_OVERFLOW = ("the update would make a weight or an optimizer buffer overflow the model's "
             "dtype (non-finite); no update was made (the parameters and optimizer state are "
             "unchanged)")


# X items from which the fast path's finiteness scan releases the GIL (64 KB of float32:
# ~2 us of scanning against ~0.1 us for the release)
cdef Py_ssize_t NOGIL_SCAN = 16384


cdef bint _view(Py_buffer* view, obj, const char* kinds, Py_ssize_t itemsize,
                int ndim) except -1:
    """Fill *view with obj's C-contiguous buffer and return True if it has `ndim`
    dimensions and items of a format in `kinds` and size `itemsize`; else release it (if
    taken) and return False. Never raises for a mismatch: the exact-input test."""
    cdef const char* fmt
    try:
        PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_STRIDES)
    except (BufferError, TypeError, ValueError):
        return False
    fmt = view.format
    if fmt != NULL and (fmt[0] == b"@" or fmt[0] == b"="):
        fmt += 1
    if (view.ndim == ndim and view.itemsize == itemsize and fmt != NULL and fmt[0] != 0
            and fmt[1] == 0 and strchr(kinds, fmt[0]) != NULL):
        return True
    PyBuffer_Release(view)
    return False


cdef inline bint _is_csr(X):
    """Whether X is a scipy.sparse CSR matrix or array (duck-typed: scipy is not imported)."""
    return getattr(X, "format", None) == "csr"


cdef Py_ssize_t _rows(X) except -1:
    """Rows of X: len(X), or a sparse matrix's shape[0] (its len() is an error)."""
    return X.shape[0] if _is_csr(X) else len(X)


cdef void _release(Py_buffer* views, int count) noexcept:
    cdef int i
    for i in range(count):
        PyBuffer_Release(&views[i])


cdef Py_ssize_t _count(Py_ssize_t rows, Py_ssize_t width) except -1:
    """rows * width items, refused where rows * width * 8 bytes would overflow Py_ssize_t
    (rows comes from len(), which an object may report as anything)."""
    if rows > PY_SSIZE_T_MAX // 8 // width:
        raise ValueError(f"{rows} rows of {width} items are more than any buffer can hold")
    return rows * width


cdef int _raise_pending() except -1:
    """Hand the exception a signal handler raised inside _epoch (still pending) to Python."""
    return -1


cdef inline bint _finite(const void* p, Py_ssize_t count, bint single) noexcept nogil:
    """No NaN or infinity among `count` float32 (single) or float64 values."""
    if single:
        return _all_finite(<const float*>p, count)
    return _all_finite(<const double*>p, count)


cdef bint _in_range(const int64_t* p, Py_ssize_t n) noexcept nogil:
    """Every index in [0, n): all the kernels need to stay in bounds."""
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] < 0 or p[i] >= n:
            return False
    return True


cdef object _invalid_target(int loss_kind, Py_ssize_t row, Py_ssize_t n_out, T):
    """The error for the first invalid target, found by a loss kernel at dataset row `row`."""
    if loss_kind == LOSS_SOFTMAX_CROSS_ENTROPY:
        return ValueError(f"y[{row}] = {T[row]} is not a class index in [0, {n_out})")
    if loss_kind == LOSS_POISSON:
        return ValueError(f"y row {row} holds a negative target (Poisson): {T[row]!r}")
    return ValueError(f"y row {row} holds a target outside [0, 1] (binary cross-entropy): "
                      f"{T[row]!r}")
