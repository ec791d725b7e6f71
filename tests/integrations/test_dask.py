"""backprop.dask: the scikit-learn estimators under joblib's "dask" backend on a LocalCluster
of two worker processes (one thread each), the BLAS threads of the workers, and fit_blocks,
partial_fit over the row blocks of a dask array.

What is compared, and how:
- a grid search and cross_val_score on the cluster against the same search run here with
  n_jobs=1: the same best_params_, mean_test_score within rtol=1e-12 (float64 estimators
  with a random_state, so every fit is deterministic; both sides use one BLAS thread);
- estimators pickled to a worker and back: predictions and continued training bit for bit;
- fit_blocks against partial_fit called on the same blocks in the same order: bit for bit,
  here, with the blocks computed on the cluster and with misaligned blocks; dask-ml's
  Incremental (if installed) against fit_blocks: bit for bit.
Misaligned arrays, which dask.distributed can deliver, are taken (copied by the estimators'
input validation) wherever they arrive. Tiny data, a 2x2 grid and few epochs keep
the module to ~15 s on 2 cores, the cluster's start included.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.dask import _blas_thread_shares, block_order, fit_blocks, limit_blas_threads

pytest.importorskip("sklearn")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402

from backprop.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # a block of fewer rows than batch_size (the last one of some arrays here)
    pytest.mark.filterwarnings("ignore:Got `batch_size` less than 1:UserWarning"),
]

CLASSES = np.array([0, 1, 2])
GRID = {"alpha": [1e-4, 1e-1], "learning_rate_init": [1e-3, 3e-2]}


def classification(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] > 0.5).astype(int) + (X[:, 1] + X[:, 2] > 0).astype(int)
    return X, y


def regression(n: int = 80, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=n)


def classifier(**params) -> MLPClassifier:
    base = dict(hidden_layer_sizes=(8,), max_iter=15, batch_size=16, dtype="float64")
    return MLPClassifier(**{**base, "random_state": 0, **params})


def regressor(**params) -> MLPRegressor:
    base = dict(hidden_layer_sizes=(8,), max_iter=15, batch_size=16, dtype="float64")
    return MLPRegressor(**{**base, "random_state": 0, **params})


def assert_same_network(a, b) -> None:
    """The same weights and optimizer state, bit for bit."""
    sa, sb = a.model_.get_state(), b.model_.get_state()
    np.testing.assert_array_equal(sa["weights"], sb["weights"])
    assert sa["optimizer"]["steps"] == sb["optimizer"]["steps"]
    for key, buf in sa["optimizer"]["buffers"].items():
        np.testing.assert_array_equal(buf, sb["optimizer"]["buffers"][key])
    assert a.loss_curve_ == b.loss_curve_


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as c:
        c.run(bp.set_num_threads, 1)  # the tests below set them; start from the nanny's 1
        yield c


# -- the import -------------------------------------------------------------------------------


def test_import_backprop_does_not_import_dask_and_backprop_dask_shadows_nothing():
    code = (
        "import sys, backprop\n"
        "assert [m for m in ('dask', 'distributed') if m in sys.modules] == []\n"
        "import backprop.dask\n"
        "assert [m for m in ('dask', 'distributed') if m in sys.modules] == []\n"
        "import dask, dask.array\n"
        "assert dask is not backprop.dask and hasattr(dask, 'compute')\n"
        "print(dask.__file__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert Path(bp.__file__).parent not in Path(done.stdout.strip()).parents


# -- searches on the cluster ------------------------------------------------------------------


def test_grid_search_on_the_cluster_equals_the_local_run(client):
    X, y = classification()
    cv = KFold(3, shuffle=True, random_state=0)
    with bp.num_threads(1):
        local = GridSearchCV(classifier(), GRID, cv=cv, n_jobs=1).fit(X, y)
    with (
        bp.num_threads(1),  # for the refit, which runs here
        distributed.get_task_stream(client) as tasks,
        joblib.parallel_backend("dask"),
    ):
        remote = GridSearchCV(classifier(), GRID, cv=cv, n_jobs=-1).fit(X, y)
    assert tasks.data, "no task ran on the cluster"
    assert remote.best_params_ == local.best_params_
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    for key in ("mean_test_score", "std_test_score", "split0_test_score", "split2_test_score"):
        np.testing.assert_allclose(remote.cv_results_[key], local.cv_results_[key], rtol=1e-12)
    # the refit runs here in both: the same network
    assert_same_network(remote.best_estimator_, local.best_estimator_)
    # the scores differ between the grid points, so the best one is a real choice
    assert np.unique(local.cv_results_["mean_test_score"]).size > 1


def test_cross_val_score_on_the_cluster_equals_the_local_run(client):
    X, y = regression()
    with bp.num_threads(1):
        local = cross_val_score(regressor(), X, y, cv=4, n_jobs=1)
    with joblib.parallel_backend("dask"):
        remote = cross_val_score(regressor(), X, y, cv=4, n_jobs=-1)
    np.testing.assert_allclose(remote, local, rtol=1e-12)


def test_estimators_pickle_to_a_worker_and_back_bit_for_bit(client):
    """Fitted and unfitted estimators go to a worker process and back (the data as lists
    here: see the next test for numpy arrays)."""
    X, y = classification()
    Xl, yl = X.tolist(), y.tolist()
    with bp.num_threads(1):
        here = classifier().fit(X, y)
    there = client.submit(classifier().fit, Xl, yl, pure=False).result()  # fit in a worker
    assert_same_network(there, here)
    np.testing.assert_array_equal(there.predict_proba(X), here.predict_proba(X))
    # a fitted estimator sent to a worker predicts and continues training as here
    proba = client.submit(here.predict_proba, Xl, pure=False).result()
    np.testing.assert_array_equal(proba, here.predict_proba(X))
    continued = client.submit(here.partial_fit, Xl[:40], yl[:40], pure=False).result()
    with bp.num_threads(1):
        here.partial_fit(X[:40], y[:40])
    assert_same_network(continued, here)

    Xr, yr = regression()
    with bp.num_threads(1):
        reg = regressor().fit(Xr, yr)
    back = client.submit(regressor().fit, Xr.tolist(), yr.tolist(), pure=False).result()
    np.testing.assert_array_equal(back.predict(Xr), reg.predict(Xr))


def misaligned(a: np.ndarray) -> np.ndarray:
    raw = np.zeros(a.nbytes + 1, dtype=np.uint8)[1:]
    out = raw.view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def test_a_fit_on_a_worker_with_numpy_arguments(client):
    """client.submit(est.fit, X, y) with numpy X: the worker deserializes X in place from
    the message, where it may be misaligned: the estimator copies such arrays."""
    X, y = classification()
    with bp.num_threads(1):
        here = classifier().fit(X, y)
    there = client.submit(classifier().fit, X, y, pure=False).result()
    local = classifier().fit(misaligned(X), misaligned(y))
    assert_same_network(there, here)
    assert_same_network(local, here)


# -- BLAS threads on the workers -----------------------------------------------------------------


def test_limit_blas_threads_gives_each_worker_its_share(client):
    from dask.system import CPU_COUNT

    # one machine, two worker processes: each gets half of the usable cores, at least one
    want = max(1, CPU_COUNT // 2)
    client.run(bp.set_num_threads, want + 1)  # something else first
    assert set(client.run(bp.get_num_threads).values()) == {want + 1}
    shares = limit_blas_threads(client)
    assert shares == dict.fromkeys(client.run(bp.get_num_threads), want)
    assert client.run(bp.get_num_threads) == shares
    assert limit_blas_threads(client, 1) == dict.fromkeys(shares, 1)
    assert set(client.run(bp.get_num_threads).values()) == {1}
    with pytest.raises(ValueError, match="n must be >= 1"):
        limit_blas_threads(client, 0)


def test_blas_thread_shares_divide_each_hosts_cores_among_its_workers():
    hosts = {"tcp://a:1": "a", "tcp://a:2": "a", "tcp://a:3": "a", "tcp://b:1": "b"}
    cores = {"tcp://a:1": 8, "tcp://a:2": 8, "tcp://a:3": 8, "tcp://b:1": 3}
    assert _blas_thread_shares(hosts, cores) == {
        "tcp://a:1": 2,
        "tcp://a:2": 2,
        "tcp://a:3": 2,
        "tcp://b:1": 3,
    }
    many = {f"tcp://a:{i}": "a" for i in range(4)}
    assert set(_blas_thread_shares(many, dict.fromkeys(many, 2)).values()) == {1}


# -- fit_blocks ----------------------------------------------------------------------------------


def by_hand(estimator, X, y, bounds, order, sample_weight=None, **kwargs):
    """partial_fit on the blocks X[bounds[i]:bounds[i + 1]] in `order`, in memory."""
    for i in order:
        rows = slice(bounds[i], bounds[i + 1])
        if sample_weight is not None:
            kwargs["sample_weight"] = sample_weight[rows]
        estimator.partial_fit(X[rows], y[rows], **kwargs)
    return estimator


def test_fit_blocks_equals_partial_fit_on_the_same_blocks_bit_for_bit():
    X, y = classification(130)
    Xd = da.from_array(X, chunks=(30, 3))  # 5 row blocks (the last of 10 rows), 2 column blocks
    yd = da.from_array(y, chunks=30)
    bounds = [0, 30, 60, 90, 120, 130]
    order = block_order(5, 3, True, 7)
    assert order[:5] != [0, 1, 2, 3, 4] and sorted(order) == sorted([0, 1, 2, 3, 4] * 3)
    with dask.config.set(scheduler="synchronous"):
        got = fit_blocks(classifier(), Xd, yd, epochs=3, classes=CLASSES, random_state=7)
    want = by_hand(classifier(), X, y, bounds, order, classes=CLASSES)
    assert_same_network(got, want)
    assert len(got.loss_curve_) == 15

    # a regressor, y in memory, sample weights in other chunks (rechunked), blocks in order
    Xr, yr = regression()
    w = np.random.default_rng(3).uniform(0.5, 2.0, size=yr.size)
    with dask.config.set(scheduler="synchronous"):
        got = fit_blocks(
            regressor(),
            da.from_array(Xr, chunks=(25, 4)),
            yr,
            sample_weight=da.from_array(w, chunks=40),
            epochs=2,
            shuffle_blocks=False,
        )
    want = by_hand(regressor(), Xr, yr, [0, 25, 50, 75, 80], [0, 1, 2, 3] * 2, sample_weight=w)
    assert_same_network(got, want)


def test_fit_blocks_takes_misaligned_blocks():
    X, y = classification(60)
    Xd = da.from_array(misaligned(X), chunks=(20, 5))  # blocks as dask.distributed may deliver
    with dask.config.set(scheduler="synchronous"):
        got = fit_blocks(classifier(), Xd, y, classes=CLASSES, random_state=0)
    want = by_hand(classifier(), X, y, [0, 20, 40, 60], block_order(3, 1, True, 0), classes=CLASSES)
    assert_same_network(got, want)


def test_fit_blocks_computes_one_block_at_a_time():
    """Reading a block and training on it alternate: X's and y's rows of one block are read,
    then partial_fit runs on them, then the next block is read."""
    log = []

    def reader(a, name):
        def read(block_info=None):
            rows = block_info[None]["array-location"][0]
            log.append((name, rows[0]))
            return a[rows[0] : rows[1]]

        return read

    class Logged(MLPClassifier):
        def partial_fit(self, X, y, sample_weight=None, classes=None):
            log.append(("fit", X.shape[0]))
            return super().partial_fit(X, y, sample_weight=sample_weight, classes=classes)

    X, y = classification(100)
    chunks = ((20,) * 5,)
    Xd = da.map_blocks(reader(X, "X"), chunks=(*chunks, (5,)), meta=np.empty((0, 0)))
    yd = da.map_blocks(reader(y, "y"), chunks=chunks, meta=np.empty(0, dtype=y.dtype))
    with dask.config.set(scheduler="synchronous"):
        fit_blocks(Logged(max_iter=1, random_state=0), Xd, yd, classes=CLASSES, random_state=2)
    want = []
    for i in block_order(5, 1, True, 2):
        want += [{("X", 20 * i), ("y", 20 * i)}, ("fit", 20)]
    got = []
    for k in range(0, len(log), 3):
        got += [set(log[k : k + 2]), log[k + 2]]
    assert got == want


def test_fit_blocks_holds_about_one_block_in_memory():
    """32 blocks of 256 KiB (8 MiB in all, generated lazily): the peak of what Python
    allocates while training is a few blocks (the block, the estimator's shuffled copy and
    the batches), not the array."""
    n_blocks, rows = 32, 4096
    X = da.random.default_rng(0).standard_normal((n_blocks * rows, 8), chunks=(rows, 8))
    y = (X[:, 0] > 0).astype(int)
    est = MLPClassifier((4,), batch_size=512, dtype="float64", random_state=0)
    block_bytes = rows * 8 * 8
    with dask.config.set(scheduler="synchronous"):
        fit_blocks(est, X[:rows], y[:rows], classes=[0, 1])  # warm up (imports, caches)
        tracemalloc.start()
        try:
            fit_blocks(est, X, y, classes=[0, 1], random_state=0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert est.t_ > 0
    assert peak < 8 * block_bytes, f"peak {peak / block_bytes:.1f} blocks"


def test_fit_blocks_with_the_blocks_computed_on_the_cluster(client):
    X, y = classification(120)
    Xd, yd = da.from_array(X, chunks=(30, 5)), da.from_array(y, chunks=30)
    with distributed.get_task_stream(client) as tasks:
        there = fit_blocks(classifier(), Xd, yd, epochs=2, classes=CLASSES, random_state=1)
    assert tasks.data, "no block was computed on the cluster"
    with dask.config.set(scheduler="synchronous"):
        here = fit_blocks(classifier(), Xd, yd, epochs=2, classes=CLASSES, random_state=1)
    assert_same_network(there, here)


def test_dask_ml_incremental_equals_fit_blocks(client):
    """dask-ml's Incremental draws the same block order from an int random_state and calls
    partial_fit with the same arguments: the same network as fit_blocks, here and on the
    cluster, where each partial_fit is a task and the estimator goes from one worker process
    to the next."""
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = classification(120)
    Xd, yd = da.from_array(X, chunks=(30, 5)), da.from_array(y, chunks=30)
    with dask.config.set(scheduler="synchronous"):
        ours = fit_blocks(classifier(), Xd, yd, classes=CLASSES, random_state=4)
        local = wrappers.Incremental(classifier(), shuffle_blocks=True, random_state=4)
        local.fit(Xd, yd, classes=CLASSES)
    assert_same_network(local.estimator_, ours)
    remote = wrappers.Incremental(classifier(), shuffle_blocks=True, random_state=4)
    remote.fit(Xd, yd, classes=CLASSES)  # partial_fit on blocks as the workers deserialize them
    assert_same_network(remote.estimator_, ours)


def test_fit_blocks_refuses_what_it_cannot_cut():
    X, y = classification(40)
    Xd, yd = da.from_array(X, chunks=(10, 5)), da.from_array(y, chunks=10)
    with pytest.raises(TypeError, match="X must be a dask array"):
        fit_blocks(classifier(), X, y, classes=CLASSES)
    with pytest.raises(TypeError, match="has no partial_fit"):
        fit_blocks(object(), Xd, yd)
    with pytest.raises(ValueError, match="must be 2-D"):
        fit_blocks(classifier(), Xd[:, 0], yd, classes=CLASSES)
    with pytest.raises(ValueError, match="y has 39 rows, X 40"):
        fit_blocks(classifier(), Xd, y[:39], classes=CLASSES)
    with pytest.raises(ValueError, match="y has 30 rows, X 40"):
        fit_blocks(classifier(), Xd, yd[:30], classes=CLASSES)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit_blocks(classifier(), Xd, yd, epochs=0, classes=CLASSES)
    with pytest.raises(TypeError, match="random_state"):
        fit_blocks(classifier(), Xd, yd, classes=CLASSES, random_state="seed")
    with (
        dask.config.set(scheduler="synchronous"),
        pytest.raises(ValueError, match="needs classes="),
    ):
        fit_blocks(classifier(), Xd, yd)  # the estimator's own message
