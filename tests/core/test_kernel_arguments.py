"""The compiled kernels called directly with mismatched buffers, bad scalars or labels, and
outputs that share memory with other arguments: a Python exception, never an out-of-bounds
access.

Every array is a slice of a larger buffer whose guard regions hold a sentinel (inputs:
NaN, so an over-read would poison an output; outputs: a marker value), and after each call
the guards must be intact. A refused call must also leave its outputs untouched (the checks
run before any write). Out-of-bounds *reads* that do not change an output are the job of
the AddressSanitizer run (scripts/asan.sh), which runs this file too. The messages of refused
calls are checked at the end.
"""

import numpy as np
import pytest
from _helpers import MARK, REFUSED, inp, out, state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backprop_core as core

MAKE = {"in": inp, "out": out, "state": state}


# -- one table of kernels: argument roles and shapes -----------------------------------------

# name -> (call(args), [(arg name, shape symbols, "in"/"out", dtype "F" or "i64")])
KERNELS = {
    "dense_forward": (
        lambda a: core.dense_forward(*a),
        [
            ("X", "ni", "in", "F"),
            ("W", "io", "in", "F"),
            ("b", "o", "in", "F"),
            ("Y", "no", "out", "F"),
        ],
    ),
    "dense_backward": (
        lambda a: core.dense_backward(*a),
        [
            ("X", "ni", "in", "F"),
            ("W", "io", "in", "F"),
            ("dY", "no", "in", "F"),
            ("dW", "io", "out", "F"),
            ("db", "o", "out", "F"),
            ("dX", "ni", "out", "F"),
        ],
    ),
    "activation_forward": (
        lambda a: core.activation_forward("tanh", *a),
        [("Z", "nm", "in", "F"), ("A", "nm", "out", "F")],
    ),
    "activation_backward": (
        lambda a: core.activation_backward("softmax", *a),
        [("A", "nm", "in", "F"), ("dA", "nm", "in", "F"), ("dZ", "nm", "out", "F")],
    ),
    **{
        loss: (
            (lambda f: lambda a: f(*a))(getattr(core, loss)),
            [
                ("Y", "nm", "in", "F"),
                ("T", "nm", "in", "F"),
                ("G", "nm", "out", "F"),
                ("w", "n", "in", "F"),
            ],
        )
        for loss in ("mse_loss", "mae_loss", "huber_loss", "binary_cross_entropy_loss")
    },
    "softmax_cross_entropy_loss": (
        lambda a: core.softmax_cross_entropy_loss(*a),
        [
            ("Z", "nm", "in", "F"),
            ("labels", "n", "in", "i64"),
            ("G", "nm", "out", "F"),
            ("w", "n", "in", "F"),
        ],
    ),
    "sgd_update": (
        lambda a: core.sgd_update(*a, lr=0.1, momentum=0.9),
        [("param", "s", "out", "F"), ("grad", "s", "in", "F"), ("velocity", "s", "state", "F")],
    ),
    "adam_update": (
        lambda a: core.adam_update(*a, t=1),
        [
            ("param", "s", "out", "F"),
            ("grad", "s", "in", "F"),
            ("m", "s", "state", "F"),
            ("v", "s", "state", "F"),
        ],
    ),
    "first_nonfinite_row": (
        lambda a: core.first_nonfinite_row(*a),
        [("X", "nm", "in", "F")],
    ),
}
SIZES = {"n": 3, "i": 4, "o": 5, "m": 2, "s": 7}


def build(spec, dtype, sizes=SIZES, change=None):
    """Guarded arguments for one call; change = (arg index, how) breaks one argument."""
    args = []
    for k, (_, dims, role, kind) in enumerate(spec):
        shape = tuple(sizes[d] for d in dims)
        dt = np.int64 if kind == "i64" else dtype
        kw = {}
        how = change[1] if change and change[0] == k else None
        if how == "short":
            shape = (*shape[:-1], shape[-1] - 1)
        elif how == "long":
            shape = (shape[0] + 1, *shape[1:])
        elif how == "mixed-dtype":
            dt = np.float32 if dt == np.float64 else np.float64
        elif how == "int-dtype":
            dt = np.int32
        elif how == "ndim":
            shape = (*shape, 1)
        elif how == "flat" and len(shape) == 2:
            shape = (shape[0] * shape[1],)
        elif how in ("strided", "F"):
            kw["layout"] = how
        elif how == "read-only":
            kw["writable"] = False
        args.append(MAKE[role](shape, dt, **kw))
    return args


def arrays(args, change=None):
    return [None if change and change == (k, "None") else g.array for k, g in enumerate(args)]


OPTIONAL = {"dX", "G", "w"}  # None skips them (velocity is needed: the calls use momentum 0.9)
# first_nonfinite_row takes any 2-D C-contiguous float array, so it has no shape to mismatch
FREE = {"first_nonfinite_row": {"short", "long", "mixed-dtype"}}


def changes(spec):
    kernel = next(k for k, v in KERNELS.items() if v[1] is spec)
    for k, (name, dims, role, kind) in enumerate(spec):
        hows = ["short", "long", "mixed-dtype", "int-dtype", "ndim", "strided"]
        hows = [h for h in hows if h not in FREE.get(kernel, ())]
        if name not in OPTIONAL:
            hows.append("None")
        if len(dims) == 2:
            hows += ["flat", "F"]
        if role != "in":
            hows.append("read-only")
        if kind == "i64":
            hows.remove("mixed-dtype")
        for how in hows:
            yield pytest.param(k, how, id=f"{name}-{how}")


CASES = [
    pytest.param(kernel, k, how, id=f"{kernel}-{p.id}")
    for kernel, (_, spec) in KERNELS.items()
    for p in changes(spec)
    for k, how in [p.values]
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_matching_buffers_are_accepted_and_stay_in_bounds(kernel, dtype):
    call, spec = KERNELS[kernel]
    args = build(spec, dtype)
    call(arrays(args))
    assert all(g.intact() for g in args)
    for g, (_, _, role, _) in zip(args, spec, strict=True):
        if role == "out" and kernel != "first_nonfinite_row":
            assert not (g.array == MARK).any(), "an output was not fully written"
            assert np.isfinite(g.array).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,k,how", CASES)
def test_one_mismatched_buffer_is_refused(kernel, k, how, dtype):
    call, spec = KERNELS[kernel]
    args = build(spec, dtype, change=(k, how))
    with pytest.raises(REFUSED):
        call(arrays(args, (k, how)))
    for g, (_, _, role, _) in zip(args, spec, strict=True):
        assert g.intact()
        if role != "in" and g.array.dtype.kind == "f":
            start = MARK if role == "out" else 0
            assert (g.array == start).all(), "a refused call wrote an output"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optional_outputs_may_be_none(dtype):
    """dX, G and (without momentum) velocity are optional: None skips them."""
    args = build(KERNELS["dense_backward"][1], dtype)
    core.dense_backward(*arrays(args)[:5], None)
    args = build(KERNELS["mse_loss"][1], dtype)
    assert np.isfinite(core.mse_loss(args[0].array, args[1].array, None))
    args = build(KERNELS["sgd_update"][1], dtype)
    core.sgd_update(args[0].array, args[1].array, None, lr=0.1)
    assert all(g.intact() for g in args)


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_row_batches(n):
    """n = 0 is a no-op for the dense and activation kernels (gradients of an empty batch are
    zero) and refused by the losses; n = 1 works everywhere."""
    sizes = dict(SIZES, n=n)
    for kernel in (
        "dense_forward",
        "dense_backward",
        "activation_forward",
        "activation_backward",
        "first_nonfinite_row",
    ):
        call, spec = KERNELS[kernel]
        args = build(spec, np.float64, sizes)
        result = call(arrays(args))
        assert all(g.intact() for g in args)
        if kernel == "dense_backward":
            assert (args[3].array == 0).all() if n == 0 else np.isfinite(args[3].array).all()
        if kernel == "first_nonfinite_row":
            assert result == -1
    for kernel in (
        "mse_loss",
        "mae_loss",
        "huber_loss",
        "binary_cross_entropy_loss",
        "softmax_cross_entropy_loss",
    ):
        call, spec = KERNELS[kernel]
        args = build(spec, np.float64, sizes)
        if n == 0:
            with pytest.raises(ValueError, match="must be non-empty"):
                call(arrays(args))
        else:
            assert np.isfinite(call(arrays(args)))
        assert all(g.intact() for g in args)


@pytest.mark.parametrize("label", [-1, 2, 2**40, -(2**62)])
def test_label_out_of_range_is_refused_by_the_kernel(label):
    call, spec = KERNELS["softmax_cross_entropy_loss"]
    args = build(spec, np.float64)
    args[1].array[1] = label
    with pytest.raises(ValueError, match=rf"labels\[1\] = {label} is not a class index"):
        call(arrays(args))
    assert all(g.intact() for g in args)


def test_bad_scalars():
    p, g, m, v = (np.zeros(3) for _ in range(4))
    with pytest.raises(ValueError, match="delta must be > 0"):
        core.huber_loss(np.zeros((2, 2)), np.zeros((2, 2)), delta=0.0)
    with pytest.raises(ValueError, match="t must be >= 1"):
        core.adam_update(p, g, m, v, t=0)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        core.activation_forward("gelu", np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        core.activation_forward("leaky_relu", np.zeros((2, 2)), np.zeros((2, 2)), alpha=-1.0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        core.activation_backward("leaky_relu", *(np.zeros((2, 2)),) * 3, alpha=float("nan"))
    with pytest.raises(ValueError, match="unknown activation None"):
        core.activation_forward(None, np.zeros((2, 2)), np.zeros((2, 2)))


# -- random shapes, dtypes and layouts: accepted exactly when consistent ---------------------


@st.composite
def fuzz_calls(draw):
    kernel = draw(st.sampled_from(sorted(KERNELS)))
    spec = KERNELS[kernel][1]
    sizes = {d: draw(st.integers(1, 4)) for d in "nioms"}
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    per_arg = []
    for _, dims, _, kind in spec:
        shape = tuple(sizes[d] for d in dims)
        if draw(st.integers(0, 3)) == 0:  # perturb this array's shape
            shape = tuple(
                draw(
                    st.lists(
                        st.integers(0, 5),
                        min_size=len(dims),
                        max_size=len(dims) + (draw(st.integers(0, 1))),
                    )
                )
            )
        dt = np.int64 if kind == "i64" else dtype
        if draw(st.integers(0, 5)) == 0:
            dt = draw(st.sampled_from([np.float32, np.float64, np.int64, np.int32]))
        layout = draw(st.sampled_from(["C"] * 4 + ["F", "strided"]))
        writable = draw(st.integers(0, 5)) > 0
        per_arg.append((shape, dt, layout, writable))
    return kernel, sizes, dtype, per_arg


def consistent(spec, arrays):
    """Whether the core should accept these arrays: one float dtype (int64 labels), the
    right ndim, C order, writable outputs, and dimensions that agree with each other."""
    floats = {a.dtype for (_, _, _, kind), a in zip(spec, arrays, strict=True) if kind == "F"}
    if len(floats) != 1 or floats.pop() not in (np.float32, np.float64):
        return False
    bound = {}
    for (_, dims, role, kind), a in zip(spec, arrays, strict=True):
        if kind == "i64" and a.dtype != np.int64:
            return False
        if a.ndim != len(dims) or not a.flags.c_contiguous:
            return False
        if role != "in" and not a.flags.writeable:
            return False
        for d, s in zip(dims, a.shape, strict=True):
            if bound.setdefault(d, s) != s:
                return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzz_calls())
def test_random_buffers_are_accepted_exactly_when_consistent(case):
    kernel, _, _, per_arg = case
    call, spec = KERNELS[kernel]
    args = []
    for (_, _, role, _), (shape, dt, layout, writable) in zip(spec, per_arg, strict=True):
        args.append(MAKE[role](shape, dt, layout=layout, writable=writable))
    arrays_ = [g.array for g in args]
    try:
        call(arrays_)
        accepted = True
    except REFUSED:
        accepted = False
    assert all(g.intact() for g in args)
    if accepted:
        assert consistent(spec, arrays_), f"{kernel} accepted {per_arg}"
    elif consistent(spec, arrays_) and all(a.size for a in arrays_):
        pytest.fail(f"{kernel} refused consistent buffers {per_arg}")


# -- messages: what a refused call says ------------------------------------------------------


def test_dense_rejects_mismatched_shapes():
    X, W, b = np.zeros((2, 3)), np.zeros((4, 2)), np.zeros(2)
    with pytest.raises(ValueError, match=r"X\(2, 3\) W\(4, 2\)"):
        core.dense_forward(X, W, b, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="incompatible shapes"):
        core.dense_backward(np.zeros((2, 4)), W, np.zeros((2, 2)), W.copy(), b, np.zeros((3, 4)))


def test_dense_rejects_mixed_dtypes_and_strided_arrays():
    X = np.zeros((2, 3), np.float32)
    # a second line of defence: the Python package never lets this reach the kernels
    with pytest.raises((TypeError, ValueError), match=r"dtype|signature"):
        core.dense_forward(X, np.zeros((3, 2)), np.zeros(2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="contiguous"):
        core.dense_forward(np.zeros((3, 2)).T, np.zeros((3, 2)), np.zeros(2), np.zeros((2, 2)))


def test_activation_errors():
    Z = np.zeros((2, 2))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        core.activation_forward("gelu", Z, Z)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        core.activation_forward("leaky_relu", Z, Z, alpha=-1.0)
    with pytest.raises(ValueError, match="one shape"):
        core.activation_forward("relu", Z, np.zeros((2, 3)))


def test_loss_kernels_reject_bad_weights():
    Y = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"w must have shape \(3,\)"):
        core.mse_loss(Y, Y, None, np.ones(2))
    with pytest.raises(ValueError, match="delta must be > 0"):
        core.huber_loss(Y, Y, delta=0.0)


def test_loss_kernels_reject_bad_targets():
    Z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"labels\[1\] = 4 is not a class index in \[0, 4\)"):
        core.softmax_cross_entropy_loss(Z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"labels\[2\] = -1"):
        core.softmax_cross_entropy_loss(Z, np.array([0, 1, -1]))
    with pytest.raises(ValueError, match="row 1 holds a target outside"):
        core.binary_cross_entropy_loss(Z, np.array([[0, 1, 0, 1], [0, 2, 0, 0], [0] * 4], float))
    with pytest.raises(ValueError, match="shape"):
        core.mse_loss(Z, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-empty"):
        core.mse_loss(np.zeros((0, 4)), np.zeros((0, 4)))


def test_optimizer_kernel_errors():
    p = np.zeros(3)
    with pytest.raises(ValueError, match="velocity"):
        core.sgd_update(p, np.zeros(3), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"grad must have shape \(3,\)"):
        core.sgd_update(p, np.zeros(4), lr=0.1)
    with pytest.raises(ValueError, match="t must be >= 1"):
        core.adam_update(p, p.copy(), p.copy(), p.copy(), t=0)


# -- aliasing: outputs that share memory with other arguments ---------------------------------


def pooled(spec, dtype, place=None, shift=1):
    """Every argument a view into one pool, disjoint unless place = (k, j): then argument k
    starts `shift` elements into argument j (shift 0: the very same memory)."""
    shapes = [tuple(SIZES[d] for d in dims) for _, dims, _, _ in spec]
    sizes = [int(np.prod(s)) for s in shapes]
    starts = list(np.cumsum([0, *sizes[:-1]]) + 4)
    if place is not None:
        k, j = place
        starts[k] = starts[j] + shift
    pool = np.random.default_rng(0).uniform(0.1, 0.9, sum(sizes) + 64).astype(dtype)
    return [
        pool[s : s + n].reshape(shape) for s, n, shape in zip(starts, sizes, shapes, strict=True)
    ]


DISJOINT = ["dense_forward", "dense_backward", "sgd_update", "adam_update"]
ALIAS_CASES = [
    pytest.param(kernel, k, j, shift, id=f"{kernel}-{spec[k][0]}-on-{spec[j][0]}-{shift}")
    for kernel in DISJOINT
    for spec in [KERNELS[kernel][1]]
    for k, (_, _, role, _) in enumerate(spec)
    if role != "in"
    for j in range(len(spec))
    if j != k
    for shift in (0, 1)
    if shift == 1 or spec[k][1] == spec[j][1]  # exact aliasing needs one shape
]


@pytest.mark.parametrize("kernel,k,j,shift", ALIAS_CASES)
def test_outputs_sharing_memory_with_another_argument_are_refused(kernel, k, j, shift):
    """Dense products and optimizer steps read their inputs while writing their outputs:
    any overlap would give wrong numbers, so it is refused before anything is written."""
    call, spec = KERNELS[kernel]
    args = pooled(spec, np.float64, place=(k, j), shift=shift)
    snapshot = [a.copy() for a in args]
    with pytest.raises(ValueError, match=r"shares memory with"):
        call(args)
    for a, b in zip(args, snapshot, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernel", ["activation_forward", "activation_backward"])
@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "softmax", "leaky_relu"])
def test_activations_run_in_place_but_refuse_a_shifted_overlap(kernel, name):
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((3, 4))
    dA = rng.standard_normal((3, 4))
    fwd, bwd = core.activation_forward, core.activation_backward
    if kernel == "activation_forward":
        expected = np.empty_like(Z)
        fwd(name, Z, expected)
        inplace = Z.copy()
        fwd(name, inplace, inplace)  # A is Z
        np.testing.assert_array_equal(inplace, expected)
        pool = np.concatenate([Z.ravel(), np.zeros(4)])
        with pytest.raises(ValueError, match="A partly overlaps Z"):
            fwd(name, pool[:12].reshape(3, 4), pool[4:16].reshape(3, 4))
        np.testing.assert_array_equal(pool[:12], Z.ravel())
    else:
        A = np.empty_like(Z)
        fwd(name, Z, A)
        expected = np.empty_like(Z)
        bwd(name, A, dA, expected)
        inplace = dA.copy()
        bwd(name, A, inplace, inplace)  # dZ is dA
        np.testing.assert_array_equal(inplace, expected)
        pool = np.concatenate([dA.ravel(), np.zeros(4)])
        with pytest.raises(ValueError, match="dZ partly overlaps dA"):
            bwd(name, A, pool[:12].reshape(3, 4), pool[4:16].reshape(3, 4))
        pool = np.concatenate([A.ravel(), np.zeros(4)])
        with pytest.raises(ValueError, match="dZ partly overlaps A"):
            bwd(name, pool[:12].reshape(3, 4), dA, pool[1:13].reshape(3, 4))


@pytest.mark.parametrize("case", ["ce-G-is-Z", "mse-G-shifted-on-Y"])
def test_loss_gradients_sharing_memory_with_the_outputs_are_refused(case):
    rng = np.random.default_rng(0)
    Z, T = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match=r"shares memory|overlaps"):
        if case == "ce-G-is-Z":
            core.softmax_cross_entropy_loss(Z, np.array([0, 1, 2]), Z)
        else:
            pool = np.concatenate([Z.ravel(), np.zeros(4)])
            core.mse_loss(pool[:12].reshape(3, 4), T, pool[1:13].reshape(3, 4))
