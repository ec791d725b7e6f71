from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", np.float32, np.float64)

def first_nonfinite_row(X: NDArray[F]) -> int: ...
