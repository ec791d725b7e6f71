"""Element-wise activations and row-wise softmax, forward and backward.

Every backward pass is written in terms of the activation's *output* A, never its input Z,
so a forward pass may overwrite Z in place (A is Z) and backward still has what it needs.
Aliasing is allowed: A may be Z, and dZ may be dA.
"""
from cython cimport floating
from libc.math cimport tanh, tanhf

from ._checks cimport _overlap


cdef extern from "_simd.h" nogil:
    # the ReLU loops in AVX-512/AVX2/baseline clones (same bits: see _simd.h)
    void bp_relu_f32(const float* Z, float* A, Py_ssize_t n)
    void bp_relu_f64(const double* Z, double* A, Py_ssize_t n)
    void bp_relu_backward_f32(const float* A, const float* dA, float* dZ, Py_ssize_t n)
    void bp_relu_backward_f64(const double* A, const double* dA, double* dZ, Py_ssize_t n)

ACTIVATIONS = {
    "identity": ACT_IDENTITY,
    "sigmoid": ACT_SIGMOID,
    "tanh": ACT_TANH,
    "relu": ACT_RELU,
    "leaky_relu": ACT_LEAKY_RELU,
    "softmax": ACT_SOFTMAX,
}


cdef floating _sigmoid(floating z) noexcept nogil:
    """1 / (1 + exp(-z)), without overflow for large |z|."""
    cdef floating e
    if z >= 0:
        return 1 / (1 + _exp(-z))
    e = _exp(z)
    return e / (1 + e)


cdef void _softmax_rows(const floating* Z, floating* A, Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    """A[i] := exp(Z[i] - max Z[i]) / sum(...)   Z, A:(n, m); A may be Z."""
    cdef Py_ssize_t i, j
    cdef floating zmax, s
    for i in range(n):
        zmax = Z[i * m]
        for j in range(1, m):
            if Z[i * m + j] > zmax:
                zmax = Z[i * m + j]
        s = 0
        for j in range(m):
            A[i * m + j] = _exp(Z[i * m + j] - zmax)
            s = s + A[i * m + j]
        s = 1 / s
        for j in range(m):
            A[i * m + j] *= s


cdef void _act_forward(int kind, double alpha, const floating* Z, floating* A,
                       Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    """A := f(Z)   Z, A:(n, m); A may be Z."""
    cdef Py_ssize_t i, size = n * m
    cdef floating z, a = <floating>alpha
    if kind == ACT_SOFTMAX:
        _softmax_rows(Z, A, n, m)
    elif kind == ACT_RELU:
        if floating is float:
            bp_relu_f32(Z, A, size)
        else:
            bp_relu_f64(Z, A, size)
    elif kind == ACT_LEAKY_RELU:
        for i in range(size):
            z = Z[i]
            A[i] = z if z > 0 else a * z
    elif kind == ACT_SIGMOID:
        for i in range(size):
            A[i] = _sigmoid(Z[i])
    elif kind == ACT_TANH:
        for i in range(size):
            if floating is float:
                A[i] = tanhf(Z[i])
            else:
                A[i] = tanh(Z[i])
    elif A != Z:  # identity
        for i in range(size):
            A[i] = Z[i]


cdef void _act_backward(int kind, double alpha, const floating* A, const floating* dA,
                        floating* dZ, Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    """dZ := dA * f'(Z), with f' written from A = f(Z)   A, dA, dZ:(n, m); dZ may be dA."""
    cdef Py_ssize_t i, j, size = n * m
    cdef floating a, d, dot, slope = <floating>alpha
    if kind == ACT_SOFTMAX:
        # dZ[i] = A[i] * (dA[i] - <dA[i], A[i]>)
        for i in range(n):
            dot = 0
            for j in range(m):
                dot = dot + dA[i * m + j] * A[i * m + j]
            for j in range(m):
                dZ[i * m + j] = A[i * m + j] * (dA[i * m + j] - dot)
    elif kind == ACT_RELU:
        # branch-free (a branch per element mispredicted on every sign change: NOTES.md)
        if floating is float:
            bp_relu_backward_f32(A, dA, dZ, size)
        else:
            bp_relu_backward_f64(A, dA, dZ, size)
    elif kind == ACT_LEAKY_RELU:
        # alpha >= 0 keeps sign(A) == sign(Z), so A tells which side Z was on
        for i in range(size):
            d = dA[i]
            dZ[i] = d if A[i] > 0 else slope * d
    elif kind == ACT_SIGMOID:
        for i in range(size):
            a = A[i]
            dZ[i] = dA[i] * a * (1 - a)
    elif kind == ACT_TANH:
        for i in range(size):
            a = A[i]
            dZ[i] = dA[i] * (1 - a * a)
    elif dZ != dA:  # identity
        for i in range(size):
            dZ[i] = dA[i]


cdef int _check_alias(str who, str out, const void* o, str inp, const void* i,
                      Py_ssize_t nbytes) except -1:
    """An output may be its input exactly (in place, element by element), never a shifted
    view of it: then values would be overwritten before they are read."""
    if o != i and _overlap(o, nbytes, i, nbytes):
        raise ValueError(f"{who}: {out} partly overlaps {inp}; pass the same array (in place) "
                         f"or separate arrays")
    return 0


cdef int _kind(str name, double alpha) except -1:
    try:
        kind = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}") from None
    if kind == ACT_LEAKY_RELU and not alpha >= 0:
        raise ValueError(f"leaky_relu: alpha must be >= 0, got {alpha}")
    return kind


def activation_forward(str name, const floating[:, ::1] Z not None, floating[:, ::1] A not None,
                       double alpha=0.01):
    """A := f(Z), row-wise for softmax   Z, A:(n, m); A may be the same array as Z."""
    cdef int kind = _kind(name, alpha)
    if Z.shape[0] != A.shape[0] or Z.shape[1] != A.shape[1]:
        raise ValueError(f"activation_forward: Z and A must have one shape, got "
                         f"({Z.shape[0]}, {Z.shape[1]}) and ({A.shape[0]}, {A.shape[1]})")
    if Z.shape[0] == 0 or Z.shape[1] == 0:
        return
    cdef Py_ssize_t nbytes = Z.shape[0] * Z.shape[1] * sizeof(floating)
    _check_alias("activation_forward", "A", &A[0, 0], "Z", &Z[0, 0], nbytes)
    with nogil:
        _act_forward(kind, alpha, &Z[0, 0], &A[0, 0], Z.shape[0], Z.shape[1])


def activation_backward(str name, const floating[:, ::1] A not None,
                        const floating[:, ::1] dA not None, floating[:, ::1] dZ not None,
                        double alpha=0.01):
    """dZ := dA * f'(Z) given A = f(Z)   A, dA, dZ:(n, m); dZ may be the same array as dA."""
    cdef int kind = _kind(name, alpha)
    if (A.shape[0] != dA.shape[0] or A.shape[1] != dA.shape[1]
            or A.shape[0] != dZ.shape[0] or A.shape[1] != dZ.shape[1]):
        raise ValueError(f"activation_backward: A, dA and dZ must have one shape, got "
                         f"({A.shape[0]}, {A.shape[1]}), ({dA.shape[0]}, {dA.shape[1]}) and "
                         f"({dZ.shape[0]}, {dZ.shape[1]})")
    if A.shape[0] == 0 or A.shape[1] == 0:
        return
    cdef Py_ssize_t nbytes = A.shape[0] * A.shape[1] * sizeof(floating)
    _check_alias("activation_backward", "dZ", &dZ[0, 0], "dA", &dA[0, 0], nbytes)
    _check_alias("activation_backward", "dZ", &dZ[0, 0], "A", &A[0, 0], nbytes)
    with nogil:
        _act_backward(kind, alpha, &A[0, 0], &dA[0, 0], &dZ[0, 0], A.shape[0], A.shape[1])
