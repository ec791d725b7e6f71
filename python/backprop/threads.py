"""How many threads the BLAS behind the compiled products uses.

The core's products go to numpy's own OpenBLAS when numpy carries it (the PyPI wheels), so
these calls also set the threads of numpy's own matrix products in this process; with
scipy's BLAS instead (BACKPROP_BLAS=scipy), they go through threadpoolctl (an optional
dependency) and limit every BLAS loaded in the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from backprop_core import blas_threads, set_blas_threads

from ._validation import check_int


def set_num_threads(n: int) -> None:
    """Use n >= 1 BLAS threads for the products from now on (and for numpy's: one pool)."""
    n = check_int(n, "set_num_threads: n", 1, 1 << 16)
    if set_blas_threads(n):
        return
    _threadpoolctl().threadpool_limits(limits=n, user_api="blas")


def get_num_threads() -> int:
    """The BLAS threads the products use now."""
    found = blas_threads()
    if found is not None:
        return found
    infos = [i for i in _threadpoolctl().threadpool_info() if i.get("user_api") == "blas"]
    return max((int(i["num_threads"]) for i in infos), default=1)


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """with bp.num_threads(1): ... runs the block with n BLAS threads, then restores."""
    before = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(before)


def _threadpoolctl() -> Any:
    try:
        import threadpoolctl
    except ImportError:
        raise ImportError(
            "setting threads for scipy's BLAS needs threadpoolctl: pip install threadpoolctl"
        ) from None
    return threadpoolctl
