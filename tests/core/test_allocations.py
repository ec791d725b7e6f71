"""Steady state allocates nothing: after warm-up, training calls create no batch-sized arrays.

tracemalloc sees NumPy's data buffers (NumPy reports them to it), so an array of batch size
made per call, even one freed at once, would raise the traced peak by at least its size.
"""

import tracemalloc

import numpy as np
import pytest

import backprop as bp

BATCH, N_IN, HIDDEN, N_OUT = 256, 64, 32, 10


def _model(loss):
    model = bp.Sequential([bp.Dense(N_IN, HIDDEN), bp.ReLU(), bp.Dense(HIDDEN, N_OUT)], seed=0)
    return model.compile(loss, bp.SGD(lr=1e-3))


def _data(loss, n, rng):
    X = rng.standard_normal((n, N_IN), dtype=np.float32)
    if isinstance(loss, bp.SoftmaxCrossEntropy):
        return X, rng.integers(0, N_OUT, n)
    return X, rng.standard_normal((n, N_OUT), dtype=np.float32)


def _growth(fn):
    """(peak growth, retained growth) in bytes of traced memory while fn runs."""
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fn()
        _, peak = tracemalloc.get_traced_memory()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    retained = sum(s.size_diff for s in after.compare_to(before, "lineno") if s.size_diff > 0)
    return peak - base, retained


# The smallest array of batch size here: the (batch, n_out) output or its gradient.
SMALLEST_BATCH_ARRAY = BATCH * N_OUT * 4


@pytest.mark.parametrize("loss", [bp.SoftmaxCrossEntropy(), bp.MSE()], ids=["ce", "mse"])
def test_train_step_steady_state_allocates_no_batch_arrays(loss, rng):
    model = _model(loss)
    X, y = _data(loss, BATCH, rng)
    for _ in range(10):  # warm-up: buffers sized, BLAS loaded
        model.train_step(X, y)

    def thousand_steps():
        for _ in range(1000):
            model.train_step(X, y)

    peak, retained = _growth(thousand_steps)
    assert peak < SMALLEST_BATCH_ARRAY // 4, f"peak grew by {peak} bytes"
    assert retained < 4096, f"{retained} bytes still held after 1,000 steps"


def test_fit_epoch_allocates_no_batch_arrays(rng):
    loss = bp.SoftmaxCrossEntropy()
    model = _model(loss)
    n = BATCH * 20
    X, y = _data(loss, n, rng)
    model.fit(X, y, batch_size=BATCH)  # warm-up: the gather buffers are made here

    for shuffle, allowed in ((False, 0), (True, n * 8)):  # shuffling: one (n,) permutation
        peak, retained = _growth(lambda s=shuffle: model.fit(X, y, batch_size=BATCH, shuffle=s))
        assert peak < allowed + SMALLEST_BATCH_ARRAY // 4, (shuffle, peak)
        assert retained < 4096, (shuffle, retained)


def test_the_bound_catches_a_batch_sized_allocation(rng):
    # the check above would fail if a step made one batch-sized array
    loss = bp.SoftmaxCrossEntropy()
    model = _model(loss)
    X, y = _data(loss, BATCH, rng)
    model.train_step(X, y)
    peak, _ = _growth(lambda: model.train_step(X.astype(np.float64), y))  # converted copy
    assert peak >= SMALLEST_BATCH_ARRAY // 4
