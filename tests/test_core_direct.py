"""The compiled kernels called directly with mismatched buffers: a Python exception, never an
out-of-bounds access.

Every array is a slice of a larger buffer whose guard regions hold a sentinel (inputs:
NaN, so an over-read would poison an output; outputs: a marker value), and after each call
the guards must be intact. A refused call must also leave its outputs untouched (the checks
run before any write). Out-of-bounds *reads* that do not change an output are the job of
the AddressSanitizer run (scripts/asan.sh), which runs this file too.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backprop_core as core

GUARD = 16  # elements each side
MARK = -12345.0
REFUSED = (ValueError, TypeError, BufferError)


class Guarded:
    """An array of `shape` and `dtype` inside a buffer with GUARD elements either side."""

    def __init__(self, shape, dtype, fill, guard, layout="C", writable=True):
        self.dtype = np.dtype(dtype)
        size = int(np.prod(shape))
        factor = 2 if layout == "strided" else 1
        self.buf = np.full(size * factor + 2 * GUARD, guard, dtype=self.dtype)
        inner = self.buf[GUARD : GUARD + size * factor]
        if layout == "strided":
            inner = inner[::2]
        inner[...] = fill if np.isscalar(fill) else np.asarray(fill).ravel()
        if layout == "F":
            self.array = inner.reshape(shape[::-1]).T if len(shape) > 1 else inner
        else:
            self.array = inner.reshape(shape)
        self.guard = guard
        self.array.flags.writeable = writable

    def intact(self):
        for part in (self.buf[:GUARD], self.buf[-GUARD:]):
            if np.isnan(self.guard):
                assert np.isnan(part).all(), "guard region written"
            else:
                assert (part == self.guard).all(), "guard region written"
        return True


def inp(shape, dtype=np.float64, rng=None, **kw):
    """A guarded input of random values (integers: label 0, valid for any class count)."""
    rng = rng or np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        fill = rng.uniform(0.1, 0.9, shape)  # valid as BCE targets too
        return Guarded(shape, dtype, fill, np.nan, **kw)
    return Guarded(shape, dtype, 0, -7, **kw)


def out(shape, dtype=np.float64, **kw):
    return Guarded(shape, dtype, MARK, MARK, **kw)


def state(shape, dtype=np.float64, **kw):
    """An optimizer buffer: read and written, starts at zero."""
    return Guarded(shape, dtype, 0, MARK, **kw)


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


# -- the Executor -----------------------------------------------------------------------------


def executor(dtype=np.float64, loss="mse", opt=True, theta_guard=None):
    """Dense(3, 4) -> tanh -> Dense(4, 2) over guarded theta/dtheta."""
    n_params = 3 * 4 + 4 + 4 * 2 + 2
    theta = Guarded((n_params,), dtype, 0.1, np.nan)
    dtheta = out((n_params,), dtype)
    ops = [("dense", 3, 4, 0, 12), ("tanh", 4, 0.0), ("dense", 4, 2, 16, 24)]
    ex = core.Executor(ops, theta.array, dtheta.array)
    ex.set_loss(loss)
    if opt:
        ex.set_adam(0.01, 0.9, 0.999, 1e-8)
    return ex, theta, dtheta


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_executor_stays_inside_theta_and_its_buffers(dtype):
    ex, theta, dtheta = executor(dtype)
    X, T = inp((10, 3), dtype), inp((10, 2), dtype)
    for mode in (core.MODE_LOSS, core.MODE_GRAD, core.MODE_UPDATE):
        assert np.isfinite(ex.step(X.array, T.array, mode))
    perm = np.random.default_rng(0).permutation(10)
    assert np.isfinite(ex.run_epoch(X.array, T.array, perm, 3))
    assert np.isfinite(ex.run_epoch(X.array, T.array, None, 4))
    assert np.isfinite(ex.evaluate(X.array, T.array, chunk=3))
    w = inp((10,), dtype)  # row weights: an over-read of them would read the NaN guard
    for mode in (core.MODE_LOSS, core.MODE_GRAD, core.MODE_UPDATE):
        assert np.isfinite(ex.step(X.array, T.array, mode, sample_weight=w.array))
    assert np.isfinite(ex.run_epoch(X.array, T.array, perm, 3, sample_weight=w.array))
    assert np.isfinite(ex.evaluate(X.array, T.array, chunk=3, sample_weight=w.array))
    Y = out((10, 2), dtype)
    ex.predict(X.array, Y.array, chunk=4)
    assert np.isfinite(Y.array).all()
    assert all(g.intact() for g in (theta, dtheta, X, T, Y, w))
    assert np.isfinite(theta.array).all()


def test_executor_refuses_mismatched_call_buffers():
    ex, theta, dtheta = executor()
    X, T = inp((4, 3)).array, inp((4, 2)).array
    read_only = np.zeros((4, 2))
    read_only.flags.writeable = False
    bad_calls = {
        "X too narrow": lambda: ex.step(np.zeros((4, 2)), T),
        "X too wide": lambda: ex.step(np.zeros((4, 4)), T),
        "X float32": lambda: ex.step(X.astype(np.float32), T),
        "X int64": lambda: ex.step(X.astype(np.int64), T),
        "X strided": lambda: ex.step(np.repeat(X, 2, axis=1)[:, ::2], T),
        "X Fortran": lambda: ex.step(np.asfortranarray(X), T),
        "X None": lambda: ex.step(None, T),
        "X list": lambda: ex.step(X.tolist(), T),
        "T short": lambda: ex.step(X, T[:3]),
        "T wide": lambda: ex.step(X, np.zeros((4, 3))),
        "T float32": lambda: ex.step(X, T.astype(np.float32)),
        "T None": lambda: ex.step(X, None),
        "mode past MODE_UPDATE": lambda: ex.step(X, T, core.MODE_UPDATE + 1),
        "mode MODE_PREDICT": lambda: ex.step(X, T, core.Mode.MODE_PREDICT),
        "empty X": lambda: ex.step(np.zeros((0, 3)), np.zeros((0, 2))),
        "batch 0": lambda: ex.run_epoch(X, T, None, 0),
        "batch -5": lambda: ex.run_epoch(X, T, None, -5),
        "perm too big": lambda: ex.run_epoch(X, T, np.array([0, 1, 2, 4]), 2),
        "perm negative": lambda: ex.run_epoch(X, T, np.array([0, -1, 2, 3]), 2),
        "perm short": lambda: ex.run_epoch(X, T, np.array([0, 1, 2]), 2),
        "perm int32": lambda: ex.run_epoch(X, T, np.arange(4, dtype=np.int32), 2),
        "perm float": lambda: ex.run_epoch(X, T, np.arange(4.0), 2),
        "out short": lambda: ex.predict(X, np.zeros((3, 2))),
        "out float32": lambda: ex.predict(X, np.zeros((4, 2), np.float32)),
        "out read-only": lambda: ex.predict(X, read_only),
        "out None": lambda: ex.predict(X, None),
        "evaluate T short": lambda: ex.evaluate(X, T[:2]),
        "sample_weight short": lambda: ex.step(X, T, core.MODE_UPDATE, sample_weight=np.ones(3)),
        "sample_weight long": lambda: ex.run_epoch(X, T, None, 2, sample_weight=np.ones(5)),
        "sample_weight float32": lambda: ex.evaluate(X, T, 8, sample_weight=np.ones(4, np.float32)),
        "sample_weight strided": lambda: ex.step(
            X, T, core.MODE_GRAD, sample_weight=np.ones(8)[::2]
        ),
        "sample_weight 2-D": lambda: ex.step(X, T, core.MODE_GRAD, sample_weight=np.ones((4, 2))),
    }
    before = theta.array.copy()
    failures = []
    for name, bad in bad_calls.items():
        try:
            bad()
            failures.append(name)
        except REFUSED:
            pass
    assert not failures, f"accepted: {failures}"
    np.testing.assert_array_equal(theta.array, before)
    assert theta.intact() and dtheta.intact()
    assert np.isfinite(ex.step(X, T))  # still usable afterwards


def test_executor_labels_are_checked():
    """A batch with a bad label is refused before it changes anything (run_epoch: batches
    before it have been applied; fit checks every label before calling it)."""
    ex, theta, _ = executor(loss="softmax_cross_entropy")
    X = inp((4, 3)).array
    before = theta.array.copy()
    for labels in ([0, 1, 2, 1], [0, -1, 1, 1], [0, 1, 1, 2**62], [0, 1, 1, -(2**63)]):
        with pytest.raises(ValueError, match="is not a class index in"):
            ex.step(X, np.array(labels, np.int64))
        with pytest.raises(ValueError, match="is not a class index in"):
            ex.run_epoch(X, np.array(labels, np.int64), np.array([3, 2, 1, 0]), 4)
    with pytest.raises(ValueError, match="T: expected items of format"):
        ex.step(X, np.array([0, 1, 1, 0], np.int32))
    np.testing.assert_array_equal(theta.array, before)


def test_executor_chunk_below_one_is_one():
    ex, *_ = executor()
    X, T = inp((5, 3)).array, inp((5, 2)).array
    expected = ex.evaluate(X, T)
    for chunk in (0, -3):
        assert ex.evaluate(X, T, chunk=chunk) == pytest.approx(expected, rel=1e-12)


def test_executor_step_count_is_settable_and_checked():
    """step_count (Adam's t) counts update steps and may be restored, but not below zero."""
    ex, *_ = executor()
    X, T = inp((4, 3)).array, inp((4, 2)).array
    ex.step(X, T, core.MODE_GRAD)
    assert ex.step_count == 0
    ex.step(X, T, core.MODE_UPDATE)
    assert ex.step_count == 1
    ex.step_count = 7
    with pytest.raises(ValueError, match="step_count must be >= 0"):
        ex.step_count = -1
    assert ex.step_count == 7


@pytest.mark.parametrize(
    "ops,match",
    [
        ([], "ops must not be empty"),
        ([("relu", 3, 0.0)], "at least one dense"),
        ([("dense", 3, 4, 0, 12), ("dense", 3, 2, 16, 24)], "expects 3 inputs, gets 4"),
        ([("dense", 3, 4, 0, 12), ("relu", 5, 0.0)], "does not match"),
        ([("dense", 3, 4, 20, 12)], "outside theta"),
        ([("dense", 3, 4, 0, 25)], "outside theta"),
        ([("dense", 3, 4, -1, 12)], "outside theta"),
        ([("dense", 0, 4, 0, 12)], "widths must be >= 1"),
        ([("dense", 3, 4, 0, 12), ("gelu", 4, 0.0)], "unknown activation"),
        ([("dense", 3, 4, 0, 12), ("dropout", 4, 1.0)], "dropout probability"),
        ([("dense", 3, 4, 0, 12), ("dropout", 4, -0.5)], "dropout probability"),
        ([("dense", 3, 4, 0, 12), ("dropout", 5, 0.5)], "does not match"),
        ([("dense", 3, 4)], "values to unpack"),
    ],
)
def test_executor_refuses_bad_plans(ops, match):
    theta, dtheta = np.zeros(26), np.zeros(26)
    with pytest.raises(REFUSED, match=match):
        core.Executor(ops, theta, dtheta)


@pytest.mark.parametrize(
    "theta,dtheta",
    [
        (np.zeros(26, np.float32), np.zeros(26)),
        (np.zeros(26, np.int64), np.zeros(26, np.int64)),
        (np.zeros(52)[::2], np.zeros(26)),
        (np.zeros(26), np.zeros(25)),
        (np.zeros((2, 13)), np.zeros((2, 13))),
        ([0.0] * 26, np.zeros(26)),
    ],
    ids=["mixed", "int", "strided", "lengths", "2-D", "list"],
)
def test_executor_refuses_bad_parameter_arrays(theta, dtheta):
    with pytest.raises(REFUSED):
        core.Executor([("dense", 3, 4, 0, 12)], theta, dtheta)


def test_executor_refuses_read_only_parameters():
    theta = np.zeros(16)
    theta.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        core.Executor([("dense", 3, 4, 0, 12)], theta, np.zeros(16))


@pytest.mark.parametrize(
    "overlap",
    ["same-array", "same-memory-another-view", "shifted", "one-element"],
)
def test_executor_refuses_theta_and_dtheta_sharing_memory(overlap):
    """A gradient written into dtheta must never land on the parameters it is computed from:
    any overlap of theta and dtheta is refused; disjoint parts of one buffer are fine."""
    pool = np.zeros(40)
    theta = pool[:16]
    dtheta = {
        "same-array": theta,
        "same-memory-another-view": pool[:16].view(),
        "shifted": pool[4:20],
        "one-element": pool[15:31],
    }[overlap]
    with pytest.raises(ValueError, match="theta and dtheta must not share memory"):
        core.Executor([("dense", 3, 4, 0, 12)], theta, dtheta)
    ex = core.Executor([("dense", 3, 4, 0, 12)], theta, pool[16:32])  # adjacent, disjoint
    ex.set_loss("mse")
    ex.step(np.ones((2, 3)), np.ones((2, 4)), core.MODE_GRAD)
    np.testing.assert_array_equal(pool[:16], 0)  # the gradient went to dtheta only
    assert np.any(pool[16:32] != 0) and (pool[32:] == 0).all()


@pytest.mark.parametrize(
    "op",
    [("dense", 1, 2, 2**63 - 2, 0), ("dense", 2**62, 4, 0, 0)],
    ids=["offset-overflow", "size-overflow"],
)
def test_executor_refuses_plans_whose_offsets_overflow(op):
    with pytest.raises(ValueError, match="outside theta"):
        core.Executor([op], np.zeros(8), np.zeros(8))


def test_executor_takes_the_row_count_from_the_buffer_not_len():
    """Run in a child process: the bug crashes the interpreter."""
    code = textwrap.dedent(
        """
        import sys
        sys.path[:] = [p for p in sys.path if p]  # not the current directory's source tree
        import numpy as np, backprop_core as core
        class Liar(np.ndarray):
            def __len__(self):
                return 2**61
        ex = core.Executor([("dense", 4, 1, 0, 4)], np.zeros(5), np.zeros(5))
        ex.set_loss("mse")
        X = np.zeros((0, 4)).view(Liar)
        try:
            ex.evaluate(X, np.zeros((0, 1)).view(Liar), chunk=4)
        except (ValueError, TypeError, BufferError):
            print("refused")
        """
    )
    # under scripts/asan.sh, the child's report goes to its stderr, not to the run's reports
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(
        o for o in env.get("ASAN_OPTIONS", "").split(":") if not o.startswith("log_path")
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert run.returncode == 0 and run.stdout.strip() == "refused", run.stderr[-500:]


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
