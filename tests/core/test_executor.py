"""backprop_core.Executor used directly, over guarded buffers (tests/_helpers.py): it stays
inside theta and its call buffers, refuses mismatched call buffers, bad labels, bad plans and
parameter arrays, and theta and dtheta that share memory (with the messages the package relies
on as its second line of defence), and its chunk and step_count behave as documented."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _helpers import REFUSED, Guarded, inp, out

import backprop_core as core


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


def test_core_executor_checks_buffers():
    """Second line of defence: the compiled executor refuses wrong buffers itself (here one
    built directly, as Sequential([Dense(3, 2)], dtype="float64") with MSE and SGD builds it)."""
    ex = core.Executor([("dense", 3, 2, 0, 6)], np.zeros(8), np.zeros(8))
    ex.set_loss("mse")
    ex.set_sgd(0.1)
    with pytest.raises(ValueError, match="X: expected 6 items"):
        ex.step(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="X: expected items of format 'd'"):
        ex.step(np.zeros((2, 3), np.float32), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="C-contiguous"):
        ex.step(np.zeros((3, 2)).T, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"perm must hold row indices in \[0, 2\)"):
        ex.run_epoch(np.zeros((2, 3)), np.zeros((2, 2)), np.array([0, 5]), 1)
    with pytest.raises(ValueError, match="out: expected a C-contiguous writable"):
        out = np.zeros((2, 2))
        out.flags.writeable = False
        ex.predict(np.zeros((2, 3)), out)
