"""Dask: the scikit-learn estimators on a cluster, and training over arrays larger than memory.

import backprop.dask
from dask.distributed import Client
client = Client("tcp://scheduler:8786")
backprop.dask.limit_blas_threads(client)  # each worker: its share of its machine's cores
with joblib.parallel_backend("dask"):
    GridSearchCV(MLPClassifier(dtype="float64", random_state=0), grid).fit(X, y)
backprop.dask.fit_blocks(MLPClassifier(), X_dask, y_dask, epochs=3, classes=[0, 1])

Searches need nothing from this module: backprop.sklearn's estimators pickle (network config
and state, bit for bit), so joblib's "dask" backend sends them to the workers as they are.
fit_blocks trains through partial_fit over a dask array one row block at a time, computing
each block where dask computes (on the cluster when a Client is active) and training in
this process. The functions import dask when called (the `dask` extra: dask[distributed]);
importing this module does not, nor does `import backprop`. Docs: docs/dask.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

from ._validation import check_int
from .threads import set_num_threads

__all__ = ["block_order", "fit_blocks", "limit_blas_threads"]

E = TypeVar("E")


# -- BLAS threads on the workers ------------------------------------------------------------


def _usable_cores() -> int:
    """The cores this process may use: its CPU affinity and cgroup quota (dask's count)."""
    from dask.system import CPU_COUNT

    return int(CPU_COUNT)


def _blas_thread_shares(hosts: Mapping[str, str], cores: Mapping[str, int]) -> dict[str, int]:
    """Each worker's share of its machine: max(1, its usable cores // the worker processes on
    its host). hosts and cores: worker address -> host, and -> usable cores it reports."""
    per_host = Counter(hosts.values())
    return {addr: max(1, int(cores[addr]) // per_host[host]) for addr, host in hosts.items()}


def limit_blas_threads(client: Any, n: int | None = None) -> dict[str, int]:
    """Set each current worker's BLAS threads (backprop.set_num_threads) to its share of its
    machine, max(1, usable cores // worker processes on the same host), or to `n` if given;
    client: a dask.distributed Client. Returns {worker address: threads set}.

    Usable cores are those the worker process may run on (CPU affinity, cgroup quota: dask's
    CPU_COUNT); a host is the host part of the worker's address. A worker with several
    threads (threads_per_worker) shares its process's one BLAS pool among them. dask's nanny
    starts worker processes with OPENBLAS_NUM_THREADS=1, so without this call each uses one
    thread; workers that join later start so too: call again after scaling."""
    if n is not None:
        n = check_int(n, "limit_blas_threads: n", 1, 1 << 16)
        return {addr: n for addr in client.run(set_num_threads, n)}
    from distributed.comm.addressing import get_address_host

    cores = client.run(_usable_cores)
    shares = _blas_thread_shares({addr: get_address_host(addr) for addr in cores}, cores)
    for threads in sorted(set(shares.values())):
        group = [addr for addr, t in shares.items() if t == threads]
        client.run(set_num_threads, threads, workers=group)
    return shares


# -- training over the blocks of a dask array ------------------------------------------------


def _is_dask_array(a: Any) -> bool:
    return hasattr(a, "chunks") and hasattr(a, "blocks") and hasattr(a, "dask")


def _order_rng(random_state: Any) -> Any:
    if random_state is None or isinstance(random_state, (int, np.integer)):
        if isinstance(random_state, bool):
            raise TypeError("random_state must be None, an int or a generator, got a bool")
        return np.random.RandomState(random_state)
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    raise TypeError(
        "random_state must be None, an int, a numpy RandomState or Generator, "
        f"got {type(random_state).__name__}"
    )


def _row_parts(a: Any, name: str, X: Any, bounds: list[int] | None) -> Any:
    """`a` cut into X's row blocks: a function of the block index giving a dask array or a
    numpy slice."""
    if _is_dask_array(a):
        if a.numblocks[0] == X.numblocks[0] and a.chunks[0] == X.chunks[0]:
            aligned = a
        elif bounds is None:
            if a.numblocks[0] != X.numblocks[0]:
                raise ValueError(
                    f"fit_blocks: {name} has {a.numblocks[0]} row blocks and X "
                    f"{X.numblocks[0]}; X's row chunk sizes are unknown, so {name} cannot be "
                    "cut to them (X.compute_chunk_sizes() first)"
                )
            aligned = a  # same number of blocks of unknown sizes: checked once computed
        else:
            if any(math.isnan(c) for c in a.chunks[0]) or a.shape[0] != X.shape[0]:
                raise ValueError(f"fit_blocks: {name} has {a.shape[0]} rows, X {X.shape[0]}")
            aligned = a.rechunk({0: X.chunks[0]})
        return lambda i: aligned.blocks[i]
    if bounds is None:
        raise ValueError(
            f"fit_blocks: X's row chunk sizes are unknown, so the in-memory {name} cannot be "
            "cut to them (X.compute_chunk_sizes() first, or pass a dask array)"
        )
    arr = np.asarray(a)
    if arr.ndim == 0 or arr.shape[0] != bounds[-1]:
        raise ValueError(
            f"fit_blocks: {name} has {arr.shape[0] if arr.ndim else 0} rows, X {bounds[-1]}"
        )
    return lambda i: arr[bounds[i] : bounds[i + 1]]


def block_order(n_blocks: int, epochs: int, shuffle_blocks: bool, random_state: Any) -> list[int]:
    """The blocks fit_blocks visits, in order: range(n_blocks) per epoch, each epoch in a new
    random order drawn from random_state if shuffle_blocks (an int seed gives the first epoch
    the order dask-ml's Incremental draws with it)."""
    n_blocks = check_int(n_blocks, "block_order: n_blocks", 0)
    epochs = check_int(epochs, "block_order: epochs", 1)
    rng = _order_rng(random_state) if shuffle_blocks else None
    order: list[int] = []
    for _ in range(epochs):
        one = list(range(n_blocks))
        if rng is not None:
            rng.shuffle(one)
        order += one
    return order


def fit_blocks(
    estimator: E,
    X: Any,
    y: Any,
    *,
    epochs: int = 1,
    classes: Any = None,
    sample_weight: Any = None,
    shuffle_blocks: bool = True,
    random_state: Any = None,
) -> E:
    """Train `estimator` through partial_fit on the row blocks of the dask array X, one block
    at a time: each block (with its rows of y and sample_weight) is computed, by dask's
    current scheduler (a distributed Client's cluster if one is active), passed to
    estimator.partial_fit in this process and let go before the next is computed, so one
    block's rows are held here at a time. Returns the estimator, trained in place.

    X: a 2-D dask array (n_samples, n_features), chunked along the rows (column chunks are
    joined per block); y and sample_weight: dask arrays (rechunked to X's row blocks if they
    differ) or in-memory arrays of n_samples rows; epochs: passes over all the blocks;
    classes: passed to every partial_fit call (a classifier needs it on its first);
    shuffle_blocks / random_state: each pass visits the blocks in a new random order from
    random_state (None, an int, a numpy RandomState or Generator), else in order. Rows mix
    only within a block (the estimator's own shuffle): blocks should not be sorted by label.

    The result is the same as calling estimator.partial_fit on the computed blocks in the
    same order (block_order(...)) in memory, bit for bit."""
    import dask.base

    compute: Any = dask.base.compute  # untyped in dask
    if not hasattr(estimator, "partial_fit"):
        raise TypeError(f"fit_blocks: {type(estimator).__name__} has no partial_fit")
    if not _is_dask_array(X):
        raise TypeError(
            f"fit_blocks: X must be a dask array, got {type(X).__name__} (a dask DataFrame: "
            "X.to_dask_array(lengths=True))"
        )
    if X.ndim != 2:
        raise ValueError(f"fit_blocks: X must be 2-D (n_samples, n_features), got {X.ndim}-D")
    epochs = check_int(epochs, "fit_blocks: epochs", 1)
    n_blocks = X.numblocks[0]
    known = not any(math.isnan(c) for c in X.chunks[0])
    bounds = [0, *np.cumsum(X.chunks[0]).astype(int).tolist()] if known else None
    parts = [lambda i: X.blocks[i], _row_parts(y, "y", X, bounds)]
    if sample_weight is not None:
        parts.append(_row_parts(sample_weight, "sample_weight", X, bounds))
    kwargs: dict[str, Any] = {} if classes is None else {"classes": classes}

    for i in block_order(n_blocks, epochs, shuffle_blocks, random_state):
        _fit_block(estimator, i, compute(*(part(i) for part in parts)), kwargs)
    return estimator


def _fit_block(estimator: Any, i: int, block: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """One partial_fit on a computed block (X, y[, sample_weight]); the block's arrays go
    when this returns. Arrays that dask.distributed delivers can sit at addresses that are
    not a multiple of their item size (its messages' frames): the estimators' own input
    validation copies those (this library's and scikit-learn's)."""
    n_rows = block[0].shape[0]
    for name, a in zip(("y", "sample_weight"), block[1:], strict=False):
        if a.shape[0] != n_rows:
            raise ValueError(
                f"fit_blocks: block {i} has {n_rows} rows of X and {a.shape[0]} of {name}"
            )
    if n_rows == 0:
        return
    if len(block) == 3:
        kwargs = {**kwargs, "sample_weight": block[2]}
    estimator.partial_fit(block[0], block[1], **kwargs)
