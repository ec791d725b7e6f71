"""The BLAS threads of the compiled products: set and read through the BLAS's own calls,
checked against what threadpoolctl reads from the same library."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_core as core
from backprop.threads import get_num_threads, num_threads, set_num_threads


def _threadpoolctl_count() -> int | None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") == "blas" and "openblas64" in info.get("filepath", ""):
            return int(info["num_threads"])
    return None


@pytest.fixture(autouse=True)
def _restore():
    before = get_num_threads()
    yield
    set_num_threads(before)


def test_set_num_threads_reaches_numpys_openblas() -> None:
    if core.blas_source() != "numpy" and core.blas_threads() is None:
        pytest.skip("the products go to scipy's BLAS here: threadpoolctl sets it")
    for n in (1, 2, 3):
        set_num_threads(n)
        assert get_num_threads() == n
        assert _threadpoolctl_count() in (n, None)


def test_the_context_manager_restores_the_count() -> None:
    set_num_threads(2)
    with num_threads(1):
        assert get_num_threads() == 1
    assert get_num_threads() == 2
    with pytest.raises(RuntimeError), num_threads(1):
        raise RuntimeError
    assert get_num_threads() == 2


def test_results_do_not_depend_on_the_thread_count() -> None:
    import backprop as bp

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(256, 300)).astype(np.float32), rng.integers(0, 10, 256)
    out = []
    for n in (1, 2):
        with num_threads(n):
            model = bp.Sequential([bp.Dense(300, 200), bp.ReLU(), bp.Dense(200, 10)], seed=0)
            model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.01))
            model.fit(X, y, epochs=1, batch_size=64, shuffle=False)
            out.append(model.predict(X))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=1e-6)


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="n must be >= 1"):
        set_num_threads(0)
    with pytest.raises(TypeError, match="integer"):
        set_num_threads(1.5)  # type: ignore[arg-type]
