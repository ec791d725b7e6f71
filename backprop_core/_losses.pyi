from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", np.float32, np.float64)

LOSSES: dict[str, int]

def mse_loss(
    Y: NDArray[F],
    T: NDArray[F],
    G: NDArray[F] | None = None,
    w: NDArray[F] | None = None,
    scale: float = 1.0,
) -> float: ...
def mae_loss(
    Y: NDArray[F], T: NDArray[F], G: NDArray[F] | None = None, w: NDArray[F] | None = None
) -> float: ...
def huber_loss(
    Y: NDArray[F],
    T: NDArray[F],
    G: NDArray[F] | None = None,
    w: NDArray[F] | None = None,
    delta: float = 1.0,
) -> float: ...
def softmax_cross_entropy_loss(
    Z: NDArray[F], labels: NDArray[np.int64], G: NDArray[F] | None = None,
    w: NDArray[F] | None = None,
) -> float: ...
def binary_cross_entropy_loss(
    Z: NDArray[F], T: NDArray[F], G: NDArray[F] | None = None, w: NDArray[F] | None = None
) -> float: ...
def poisson_loss(
    Z: NDArray[F],
    T: NDArray[F],
    G: NDArray[F] | None = None,
    w: NDArray[F] | None = None,
    scale: float = 1.0,
) -> float: ...
