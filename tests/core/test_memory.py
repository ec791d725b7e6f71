"""Resident memory stays flat over many calls and many models (Linux: /proc/self/statm).

The bounds are generous (a few MB over a warm-up baseline) but far below what a leak would
cost here: every call converts its float64 input to a fresh float32 array, so a leaked
conversion, buffer or Py_buffer export would add >= 1 kB per call (>= 100 MB over the run),
and each model holds ~1 MB of parameters and buffers (>= 100 MB over 200 models).
"""

import gc
import os

import numpy as np
import pytest

import backprop as bp

pytestmark = [
    pytest.mark.skipif(
        not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc/self/statm"
    ),
    pytest.mark.skipif(
        "libasan" in os.environ.get("LD_PRELOAD", ""),
        reason="under AddressSanitizer freed memory sits in its quarantine",
    ),
]
BOUND_MB = 20


def rss_mb():
    gc.collect()
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_100k_train_steps_leave_memory_flat():
    rng = np.random.default_rng(0)
    model = bp.Sequential([bp.Dense(8, 16), bp.Tanh(), bp.Dense(16, 4)], seed=0)
    model.compile(bp.MSE(), bp.Adam(lr=1e-4))
    X = rng.standard_normal((32, 8))  # float64: converted to a new float32 array per call
    y = rng.standard_normal((32, 4))
    for _ in range(5_000):
        model.train_step(X, y)
    before = rss_mb()
    for _ in range(100_000):
        model.train_step(X, y)
    grown = rss_mb() - before
    assert grown < BOUND_MB, f"RSS grew by {grown:.1f} MB over 100,000 train_step calls"
    assert model.optimizer.steps == 105_000
    assert np.isfinite(model.evaluate(X, y))


def test_other_entry_points_leave_memory_flat():
    rng = np.random.default_rng(1)
    model = bp.Sequential([bp.Dense(8, 16), bp.ReLU(), bp.Dense(16, 3)], seed=0)
    model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.01, momentum=0.9))
    X = rng.standard_normal((64, 8))
    y = rng.integers(0, 3, 64).astype(np.int32)  # converted to int64 per call

    def calls():
        model.gradients(X, y)
        model.evaluate(X, y)
        model.predict_proba(X)
        model.fit(X, y, epochs=1, batch_size=16, validation_data=(X, y))

    for _ in range(500):
        calls()
    before = rss_mb()
    for _ in range(10_000):
        calls()
    grown = rss_mb() - before
    assert grown < BOUND_MB, f"RSS grew by {grown:.1f} MB over 10,000 rounds of calls"


def test_repeated_model_creation_leaves_memory_flat():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((32, 256)).astype(np.float32)
    y = rng.integers(0, 10, 32)

    def one_model():
        model = bp.Sequential([bp.Dense(256, 256), bp.ReLU(), bp.Dense(256, 10)], seed=0)
        model.compile(bp.SoftmaxCrossEntropy(), bp.Adam())
        model.train_step(X, y)  # allocates the activation buffers and Adam's state
        model.fit(X, y, epochs=1, batch_size=8)  # and fit's gather buffers
        return model.predict(X[:1])

    for _ in range(20):
        one_model()
    before = rss_mb()
    for _ in range(200):
        one_model()
    grown = rss_mb() - before
    assert grown < BOUND_MB, f"RSS grew by {grown:.1f} MB over 200 models"
