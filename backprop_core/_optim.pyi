from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", np.float32, np.float64)

def sgd_update(
    param: NDArray[F],
    grad: NDArray[F],
    velocity: NDArray[F] | None = None,
    *,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> None: ...
def adam_update(
    param: NDArray[F],
    grad: NDArray[F],
    m: NDArray[F],
    v: NDArray[F],
    *,
    t: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None: ...
