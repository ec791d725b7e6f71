from typing import Any

from numpy.typing import NDArray

def first_nonfinite_row(X: NDArray[Any]) -> int: ...
