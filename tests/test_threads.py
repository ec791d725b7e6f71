"""Threads: the compiled calls release the GIL, separate models train independently and
reproducibly in parallel, and one model used from two threads at once refuses the second
call (RuntimeError) instead of corrupting anything.

Progress is measured in counts, never in time. To make "did the other thread run while the
kernel ran?" a yes/no question, the GIL switch interval is raised to 10 s during those tests:
a thread that holds the GIL then keeps it until it blocks or releases it explicitly, so the
watching thread runs only while the kernel has released it (a control case that holds the
GIL shows the count stays near zero then).
"""

import contextlib
import sys
import threading
import time

import numpy as np
import pytest

import backprop as bp
import backprop_core as core


@contextlib.contextmanager
def one_blas_thread():
    """Pin BLAS to one thread (bit-for-bit reproducibility of products, and fair sharing of
    the two cores these tests may run on) when threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - the bench extra installs it
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def sticky_gil():
    old = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def progress_during(work):
    """How many loop iterations this thread completes while another thread runs work()."""
    started, done = threading.Event(), threading.Event()
    errors = []

    def worker():
        started.set()
        try:
            work()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        done.set()

    count = 0
    with sticky_gil():
        thread = threading.Thread(target=worker)
        thread.start()
        started.wait()
        while not done.is_set():
            count += 1
            time.sleep(0)  # releases the GIL: lets the worker take it back
        thread.join()
    assert not errors, errors
    return count


@pytest.fixture(scope="module")
def big():
    """A model and data whose calls each take a noticeable fraction of a second."""
    model = bp.Sequential([bp.Dense(256, 512), bp.ReLU(), bp.Dense(512, 10)], seed=0)
    model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=1e-3))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4096, 256)).astype(np.float32)
    y = rng.integers(0, 10, 4096)
    return model, X, y


CALLS = {
    "fit": lambda m, X, y: m.fit(X, y, epochs=1, batch_size=128, shuffle=True),
    "train_step": lambda m, X, y: m.train_step(X, y),
    "gradients": lambda m, X, y: m.gradients(X, y),
    "evaluate": lambda m, X, y: m.evaluate(X, y),
    "predict": lambda m, X, y: m.predict(X),
    "dense_forward": lambda m, X, y: core.dense_forward(
        X, m.layers[0].W, m.layers[0].b, np.empty((len(X), 512), np.float32)
    ),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_compiled_calls_release_the_gil(big, call):
    model, X, y = big
    with one_blas_thread():
        CALLS[call](model, X, y)  # warm-up: buffers, BLAS pointers
        count = progress_during(lambda: CALLS[call](model, X, y))
    # holding the GIL for the whole call would allow ~0 iterations (see the control below)
    assert count >= 50, count


def test_control_a_call_that_holds_the_gil_blocks_the_other_thread(big):
    """The measurement can fail: a C call that keeps the GIL (NumPy's sort of a large object
    array, which calls back into Python for every comparison) lets the main thread make
    almost no progress."""
    keys = np.random.default_rng(0).integers(0, 10**9, 300_000).astype(object)
    count = progress_during(lambda: np.sort(keys))
    assert count < 50, count


def _train(model, X, y, epochs):
    model.fit(X, y, epochs=epochs, batch_size=32, shuffle=True, seed=1)
    for _ in range(20):
        model.train_step(X[:64], y[:64])
    return [p.copy() for p in model.parameters()]


def _two_jobs():
    rng = np.random.default_rng(3)
    XA = rng.standard_normal((1024, 64))
    yA = rng.integers(0, 5, 1024)
    XB = rng.standard_normal((1024, 32)).astype(np.float32)
    yB = rng.standard_normal((1024, 4)).astype(np.float32)

    def model_a():
        m = bp.Sequential([bp.Dense(64, 128), bp.Tanh(), bp.Dense(128, 5)], dtype="float64", seed=1)
        return m.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.05, momentum=0.9))

    def model_b():
        m = bp.Sequential([bp.Dense(32, 96), bp.ReLU(), bp.Dense(96, 4)], seed=2)
        return m.compile(bp.MSE(), bp.Adam(lr=1e-3))

    return (model_a, XA, yA), (model_b, XB, yB)


def test_two_models_in_two_threads_give_exactly_their_results_alone():
    jobs = _two_jobs()
    with one_blas_thread():
        alone = [_train(make(), X, y, epochs=8) for make, X, y in jobs]
        models = [make() for make, _, _ in jobs]
        results: list = [None, None]
        barrier = threading.Barrier(2)

        def run(i):
            _, X, y = jobs[i]
            barrier.wait()
            results[i] = _train(models[i], X, y, epochs=8)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for together, solo in zip(results, alone, strict=True):
        assert together is not None
        for p, q in zip(together, solo, strict=True):
            np.testing.assert_array_equal(p, q)


def test_one_model_from_two_threads_is_refused_never_corrupted():
    """Both threads call train_step on one batch; a call that finds the model busy raises
    RuntimeError before touching anything, so the final weights are exactly those of
    (successful steps) sequential steps, however the calls interleaved."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 128)).astype(np.float32)
    y = rng.integers(0, 10, 512)

    def make():
        m = bp.Sequential([bp.Dense(128, 256), bp.ReLU(), bp.Dense(256, 10)], seed=0)
        return m.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.01, momentum=0.9))

    model = make()
    done = threading.Event()
    steps = {"a": 0, "b": 0}
    refused = {"a": 0, "b": 0, "b_read": 0}
    other_errors: list[BaseException] = []

    def thread_a():
        try:
            while steps["a"] < 150:
                try:
                    model.train_step(X, y)
                    steps["a"] += 1
                except RuntimeError as e:
                    assert "in use by another thread" in str(e)
                    refused["a"] += 1
                time.sleep(0)  # a window between steps for the other thread's train_step
        except BaseException as e:  # pragma: no cover - reported below
            other_errors.append(e)
        finally:
            done.set()

    with one_blas_thread():
        t = threading.Thread(target=thread_a)
        t.start()
        while not done.is_set():
            for name in ("train_step", "evaluate", "gradients"):
                try:
                    getattr(model, name)(X, y)
                    steps["b"] += name == "train_step"
                except RuntimeError as e:
                    assert "in use by another thread" in str(e)
                    refused["b" if name == "train_step" else "b_read"] += 1
                time.sleep(0)
        t.join()
        assert not other_errors, other_errors
        reference = make()
        for _ in range(steps["a"] + steps["b"]):
            reference.train_step(X, y)
    assert refused["a"] + refused["b"] + refused["b_read"] > 0, "the threads never overlapped"
    assert steps["b"] > 0
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        np.testing.assert_array_equal(p, q)
    assert model.optimizer.steps == steps["a"] + steps["b"]


def test_configuration_changes_are_refused_while_training():
    """compile() (a fresh optimizer state) in the middle of another thread's fit would change
    the step under it: refused too."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8192, 256)).astype(np.float32)
    y = rng.integers(0, 10, 8192)
    model = bp.Sequential([bp.Dense(256, 256), bp.ReLU(), bp.Dense(256, 10)], seed=0)
    model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=1e-3))
    entered = threading.Event()
    outcome: list = []

    def attempt():
        entered.wait()
        while t.is_alive():
            try:
                model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=1.0))
                time.sleep(0)
            except RuntimeError as e:
                outcome.append(str(e))
                return

    def train():
        entered.set()
        for _ in range(3):
            with contextlib.suppress(RuntimeError):  # compile() may hold it for a moment
                model.fit(X, y, epochs=1)

    t = threading.Thread(target=train)
    with one_blas_thread():
        a = threading.Thread(target=attempt)
        a.start()
        t.start()
        t.join()
        a.join()
    assert outcome and "in use by another thread" in outcome[0]
