from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", np.float32, np.float64)

ACTIVATIONS: dict[str, int]

def activation_forward(name: str, Z: NDArray[F], A: NDArray[F], alpha: float = 0.01) -> None: ...
def activation_backward(
    name: str, A: NDArray[F], dA: NDArray[F], dZ: NDArray[F], alpha: float = 0.01
) -> None: ...
