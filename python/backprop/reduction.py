"""The sum over MPI ranks that a data-parallel step takes: every rank writes its
contribution into `buf` and `reduce()` returns the elementwise sum over the ranks, the same
array (bit for bit) on every rank. Two ways, one interface:

- AllreduceSum: one in-place MPI Allreduce of `buf` (any communicator);
- SharedSum: ranks on one machine (an MPI-3 shared-memory window): each rank's `buf` is its
  slice of the window; after a barrier, rank r sums part r of every slice, in rank order,
  into the window's result; after a second barrier every rank reads that result. Each rank
  reads its 1/p of every slice once, where mpich's shared-memory Allreduce copies the whole
  buffer through its cells: on 2 ranks here 0.4 MB sums in 0.03 ms against 0.25, 7.45 MB
  in 0.3 against 3 ms (bench/NOTES.md).

The result is kept apart from the slices, so a rank that writes its next contribution while
another still reads the sums races nothing: it has passed the second barrier, so every part
is summed, and nobody writes the result again before the next step's first barrier.

mpi4py is not imported here: the caller passes its MPI module.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]

__all__ = [
    "METHODS",
    "AllreduceSum",
    "SharedSum",
    "StepSum",
    "shared_memory_free",
    "step_sum",
]

#: step_sum's `method`s
METHODS = ("auto", "allreduce", "shared")

# parts and slices start on 64-byte boundaries: ranks never write one cache line
_ALIGN = 64

#: "auto" sums smaller buffers with an Allreduce: one small message beats the two barriers
#: (on 2 ranks here, 4,000 float32 took 16 us either way; 100,000: 32 against 260 us)
SHARED_MIN_BYTES = 16384


#: where mpich (and Open MPI) keep shared-memory segments on Linux
SHM_DIR = "/dev/shm"


def shared_memory_free() -> int | None:
    """Free bytes in SHM_DIR (None where there is no such directory). A window larger than
    that would fault (SIGBUS) when touched, not fail to allocate: containers often give
    /dev/shm only 64 MB."""
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _stride(size: int, dtype: np.dtype[Any]) -> int:
    """Bytes of one rank's slice: `size` items, rounded up to whole cache lines."""
    return -(-size * dtype.itemsize // _ALIGN) * _ALIGN


class StepSum(Protocol):
    method: str
    buf: Array

    def reduce(self) -> Array: ...

    def free(self) -> None: ...


class AllreduceSum:
    """buf: (size,) of the dtype; reduce() sums it over `comm` in place and returns it."""

    method = "allreduce"

    def __init__(self, mpi: Any, comm: Any, size: int, dtype: Any) -> None:
        self._mpi = mpi
        self._comm = comm
        self.buf: Array = np.zeros(size, dtype=dtype)

    def reduce(self) -> Array:
        self._comm.Allreduce(self._mpi.IN_PLACE, self.buf, op=self._mpi.SUM)
        return self.buf

    def free(self) -> None:
        pass


class SharedSum:
    """buf: (size,) of the dtype, this rank's slice of a shared-memory window over `node`
    (ranks that share memory); reduce() returns the sums, read-only (the window's result,
    valid until this rank's next reduce()). Collective: made and freed by every rank."""

    method = "shared"

    def __init__(self, mpi: Any, node: Any, size: int, dtype: Any) -> None:
        dt = np.dtype(dtype)
        p, rank = node.Get_size(), node.Get_rank()
        stride = _stride(size, dt)
        # rank 0 also holds the result, after its slice
        nbytes = stride * (2 if rank == 0 else 1)
        self._mpi = mpi
        self._node = node
        self._win = mpi.Win.Allocate_shared(nbytes, dt.itemsize, comm=node)
        self._win.Lock_all(mpi.MODE_NOCHECK)
        slices = [self._view(q, size, dt, 0) for q in range(p)]
        self._slices = slices
        self.buf: Array = slices[rank]
        self.buf[:] = 0
        result = self._view(0, size, dt, stride)
        step = _ALIGN // dt.itemsize
        bounds = [min(size, -(-size * k // p // step) * step) for k in range(p + 1)]
        lo, hi = bounds[rank], bounds[rank + 1]
        self._part = result[lo:hi]
        self._parts = [s[lo:hi] for s in slices]
        result.flags.writeable = False
        self._result = result

    def _view(self, rank: int, size: int, dtype: np.dtype[Any], offset: int) -> Array:
        memory, _ = self._win.Shared_query(rank)
        return np.frombuffer(memory, dtype=dtype, count=size, offset=offset)

    def _barrier(self) -> None:
        # the MPI-3 shared-memory idiom: make this rank's stores visible, meet, then see
        # the others'
        self._win.Sync()
        self._node.Barrier()
        self._win.Sync()

    def reduce(self) -> Array:
        self._barrier()
        parts = self._parts
        if len(parts) == 1:
            self._part[...] = parts[0]
        else:
            np.add(parts[0], parts[1], out=self._part)
            for part in parts[2:]:
                np.add(self._part, part, out=self._part)
        self._barrier()
        return self._result

    def free(self) -> None:
        """Release the window (collective over the node's ranks)."""
        if self._win is not None:
            self._win.Unlock_all()
            self._win.Free()
            self._win = None
            self._node.Free()


def step_sum(mpi: Any, comm: Any, size: int, dtype: Any, method: str = "auto") -> StepSum:
    """The step's sum of (size,) buffers of `dtype` over `comm` (collective): "shared" (all
    ranks on one machine, the window at most half the free shared memory; raises ValueError
    otherwise, on every rank), "allreduce", or "auto": shared when `comm` has more than one
    rank, all share one machine, the buffer holds at least SHARED_MIN_BYTES and the window
    fits so, else allreduce."""
    if method not in METHODS:
        raise ValueError(
            f"reduction must be one of {', '.join(map(repr, METHODS))}, got {method!r:.100}"
        )
    small = size * np.dtype(dtype).itemsize < SHARED_MIN_BYTES
    if method == "allreduce" or (method == "auto" and (comm.Get_size() == 1 or small)):
        return AllreduceSum(mpi, comm, size, dtype)
    node = comm.Split_type(mpi.COMM_TYPE_SHARED)
    if node.Get_size() != comm.Get_size():
        node.Free()
        if method == "shared":
            raise ValueError(
                "reduction='shared' needs every rank of comm on one machine (shared memory); "
                "use 'allreduce' or 'auto'"
            )
        return AllreduceSum(mpi, comm, size, dtype)
    need = (node.Get_size() + 1) * _stride(size, np.dtype(dtype))  # the slices and the result
    free = shared_memory_free()
    # the ranks decide together: a rank that went its own way would wait forever
    fits = bool(node.allreduce(free is None or need <= free // 2, op=mpi.LAND))
    if not fits:
        node.Free()
        if method == "shared":
            raise ValueError(
                f"reduction='shared' needs {need / 2**20:.1f} MiB of shared memory, more than "
                f"half of what {SHM_DIR} has free on some rank; use 'allreduce' or 'auto' "
                f"(or give {SHM_DIR} more room)"
            )
        return AllreduceSum(mpi, comm, size, dtype)
    return SharedSum(mpi, node, size, dtype)
