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
