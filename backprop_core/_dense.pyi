from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", np.float32, np.float64)

def dense_forward(X: NDArray[F], W: NDArray[F], b: NDArray[F], Y: NDArray[F]) -> None: ...
def dense_backward(
    X: NDArray[F],
    W: NDArray[F],
    dY: NDArray[F],
    dW: NDArray[F],
    db: NDArray[F],
    dX: NDArray[F] | None = None,
) -> None: ...
def csr_forward(
    indptr: NDArray[np.int64],
    indices: NDArray[np.int32],
    data: NDArray[F],
    W: NDArray[F],
    b: NDArray[F],
    Y: NDArray[F],
    rows: NDArray[np.int64] | None = None,
) -> None: ...
def csr_scatter(
    indptr: NDArray[np.int64],
    indices: NDArray[np.int32],
    data: NDArray[F],
    dY: NDArray[F],
    alpha: float,
    W: NDArray[F],
    rows: NDArray[np.int64] | None = None,
) -> None: ...
