"""train_step's fast path (Executor.step(..., exact=True)): inputs that need no conversion
are checked in C and run at once; anything else falls back to the full validation. Both
paths must give the same result and refuse the same inputs.

The fast path itself is the core's: the tests call backprop_core.Executor directly, over
the network the models below compile to and a copy of such a model's weights, and compare
with the model's validated path."""

import numpy as np
import pytest

import backprop as bp
import backprop_core as core


def _model(loss, n_out, dtype="float32"):
    m = bp.Sequential([bp.Dense(3, 5), bp.Tanh(), bp.Dense(5, n_out)], dtype=dtype, seed=0)
    return m.compile(loss, bp.SGD(lr=0.1))


def _compiled(model):
    """A core Executor running `model`'s network (Dense(3, 5), tanh, Dense(5, n_out)) with
    its loss and plain SGD(lr=0.1), over a copy of its weights (ex.theta)."""
    n_out = model.n_outputs
    ops = [("dense", 3, 5, 0, 15), ("tanh", 5, 0.0), ("dense", 5, n_out, 20, 20 + 5 * n_out)]
    theta = model.get_state()["weights"]  # a copy, laid out as the ops say
    ex = core.Executor(ops, theta, np.zeros_like(theta))
    ex.set_loss(model.loss.name, model.loss.param)
    ex.set_sgd(0.1)
    return ex


def _fast_step(ex, X, y, sample_weight=None):
    return ex.step(X, y, core.MODE_UPDATE, sample_weight=sample_weight, exact=True)


@pytest.fixture
def data(rng):
    X = rng.standard_normal((37, 3), dtype=np.float32)  # 37*3 items: a vector tail too
    return X, rng.integers(0, 4, 37), rng.standard_normal((37, 2), dtype=np.float32)


def test_exact_inputs_run_and_match_the_validated_path(data):
    X, labels, targets = data
    for loss, y, n_out in ((bp.SoftmaxCrossEntropy(), labels, 4), (bp.MSE(), targets, 2)):
        fast, slow = _model(loss, n_out), _model(loss, n_out)
        ex = _compiled(fast)
        loss_fast = _fast_step(ex, X, y)
        assert loss_fast is not None
        # a Fortran-ordered copy is not exact: validated and converted, then stepped
        loss_slow = slow.train_step(np.asfortranarray(X), y)
        assert loss_fast == loss_slow
        np.testing.assert_array_equal(ex.theta, slow.get_state()["weights"])
        assert not np.array_equal(ex.theta, fast.get_state()["weights"])  # the step moved it
        # and through the model, from the same state: exact inputs against converted ones
        fast.set_state(slow.get_state())
        assert fast.train_step(X, y) == slow.train_step(np.asfortranarray(X), y)
        for a, b in zip(fast.parameters(), slow.parameters(), strict=True):
            np.testing.assert_array_equal(a, b)


def _not_exact_cases(X, labels):
    nan_last = X.copy()
    nan_last[-1, -1] = np.nan
    inf_first = X.copy()
    inf_first[0, 0] = -np.inf
    return {
        "float64 X": (X.astype(np.float64), labels),
        "Fortran X": (np.asfortranarray(X), labels),
        "strided X": (np.repeat(X, 2, axis=0)[::2], labels),
        "1-D X": (X[0], labels[:1]),
        "wrong width": (np.ones((37, 4), np.float32), labels),
        "empty X": (X[:0], labels[:0]),
        "NaN in the last item": (nan_last, labels),
        "inf in the first item": (inf_first, labels),
        "list X": (X.tolist(), labels),
        "int32 labels": (X, labels.astype(np.int32)),
        "2-D labels": (X, labels.reshape(-1, 1)),
        "strided labels": (X, np.repeat(labels, 2)[::2]),
        "fewer labels": (X, labels[:-1]),
        "float labels": (X, labels.astype(np.float32)),
    }


def test_anything_else_is_declined_without_running(data):
    X, labels, _ = data
    ex = _compiled(_model(bp.SoftmaxCrossEntropy(), 4))
    before = ex.theta.copy()
    for name, (Xc, yc) in _not_exact_cases(X, labels).items():
        assert _fast_step(ex, Xc, yc) is None, name
    weights = np.ones(37, np.float32)  # row weights always take the validated path
    assert _fast_step(ex, X, labels, weights) is None
    assert ex.step_count == 0
    np.testing.assert_array_equal(ex.theta, before)
    assert _fast_step(ex, X, labels) is not None and ex.step_count == 1  # the control


def test_declined_targets_for_mse(data):
    X, _, targets = data
    ex = _compiled(_model(bp.MSE(), 2))
    bad = targets.copy()
    bad[-1, -1] = np.inf
    for yc in (targets.astype(np.float64), targets[:, :1], targets.T.copy().T, bad):
        assert _fast_step(ex, X, yc) is None
    assert ex.step_count == 0
    single = _model(bp.MSE(), 1)
    assert _fast_step(_compiled(single), X, targets[:, 0].copy()) is None  # 1-D y: converted
    assert np.isfinite(single.train_step(X, targets[:, 0]))


def test_declined_inputs_get_the_validated_outcome(data):
    X, labels, _ = data
    fast, slow = _model(bp.SoftmaxCrossEntropy(), 4), _model(bp.SoftmaxCrossEntropy(), 4)
    strided = np.repeat(labels, 2)[::2]
    assert not strided.flags.c_contiguous
    assert fast.train_step(X, strided) == slow.train_step(X, labels)
    nan_last = X.copy()
    nan_last[-1, -1] = np.nan
    with pytest.raises(ValueError, match="X holds NaN or infinity in row 36"):
        fast.train_step(nan_last, labels)
    with pytest.raises(ValueError, match=r"y\[3\] = 9 is not a class index"):
        fast.train_step(X, np.where(np.arange(37) == 3, 9, labels))


def test_float64_model_fast_path(data):
    X, labels, _ = data
    X64 = X.astype(np.float64)
    ex = _compiled(_model(bp.SoftmaxCrossEntropy(), 4, dtype="float64"))
    assert _fast_step(ex, X, labels) is None  # float32 X: converted
    assert _fast_step(ex, X64, labels) is not None
