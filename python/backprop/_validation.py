"""Every user-facing input check, in one place.

Messages name the argument, what was expected and what was found. Inputs that already have
the right dtype, layout and shape pass through a fast path with no copy; anything else is
converted once (when the conversion is lossless enough to be unsurprising) or refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from backprop_core import first_nonfinite_row

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def resolve_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """The model dtype: float32 or float64, from a name, type or dtype."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {resolved}")
    return resolved


def _as_array(a: Any, name: str) -> NDArray[Any]:
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return arr


def check_finite(a: NDArray[Any], name: str) -> None:
    """Refuse NaN and infinity, naming the first offending row. a: (n, m) float, C order."""
    row = first_nonfinite_row(a)
    if row >= 0:
        raise ValueError(f"{name} holds NaN or infinity in row {row}: {a[row]!r}")


def as_features(
    X: Any, dtype: np.dtype[Any], n_features: int, where: str, first_layer: str = "the model"
) -> NDArray[Any]:
    """X as a C-contiguous (n_samples, n_features) array of `dtype`, finite and non-empty.

    first_layer names what fixes n_features, for the error message.
    """
    if not (type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2 and X.flags.c_contiguous):
        X = _as_array(X, "X")
        if X.ndim != 2:
            hint = "; use X.reshape(1, -1) for a single sample" if X.ndim == 1 else ""
            raise ValueError(
                f"{where}: X must be 2-D (n_samples, n_features), got ndim={X.ndim} "
                f"with shape {X.shape}{hint}"
            )
        with np.errstate(over="ignore"):  # an overflow to inf is reported just below
            X = np.ascontiguousarray(X, dtype=dtype)
    if X.shape[1] != n_features:
        raise ValueError(
            f"{where}: X has {X.shape[1]} features, but {first_layer} expects {n_features}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{where}: X is empty (0 samples)")
    check_finite(X, "X")
    return X  # type: ignore[no-any-return]


def as_targets(
    y: Any,
    loss_name: str,
    n_samples: int,
    n_outputs: int,
    dtype: np.dtype[Any],
    where: str,
    check_range: bool = True,
) -> NDArray[Any]:
    """y in the form the loss kernel reads.

    softmax_cross_entropy: (n_samples,) int64 class labels in [0, n_outputs).
    mse, binary_cross_entropy: (n_samples, n_outputs) of `dtype`; (n_samples,) is accepted
    when n_outputs == 1. Binary targets must lie in [0, 1].
    With check_range=False the label / [0, 1] range checks are left to the kernel, which
    rejects a bad batch before it changes anything.
    """
    if loss_name == "softmax_cross_entropy":
        return _as_labels(y, n_samples, n_outputs, where, check_range)
    if not (
        type(y) is np.ndarray
        and y.dtype == dtype
        and y.ndim == 2
        and y.flags.c_contiguous
        and y.shape[1] == n_outputs
    ):
        y = _as_array(y, "y")
        if y.ndim == 1 and n_outputs == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape[1] != n_outputs:
            raise ValueError(
                f"{where}: y must have shape (n_samples, {n_outputs})"
                + (" or (n_samples,)" if n_outputs == 1 else "")
                + f" to match the model's {n_outputs} outputs, got {y.shape}"
            )
        with np.errstate(over="ignore"):
            y = np.ascontiguousarray(y, dtype=dtype)
    _check_rows(y, n_samples, where)
    check_finite(y, "y")
    if check_range and loss_name == "binary_cross_entropy":
        bad = np.flatnonzero(((y < 0) | (y > 1)).any(axis=1))
        if bad.size:
            raise ValueError(
                f"{where}: binary cross-entropy targets must lie in [0, 1]; y row {bad[0]} "
                f"is {y[bad[0]]!r}"
            )
    return y  # type: ignore[no-any-return]


def _check_rows(y: NDArray[Any], n_samples: int, where: str) -> None:
    if y.shape[0] != n_samples:
        raise ValueError(f"{where}: X has {n_samples} samples but y has {y.shape[0]}")


def _as_labels(
    y: Any, n_samples: int, n_classes: int, where: str, check_range: bool
) -> NDArray[np.int64]:
    if not (type(y) is np.ndarray and y.dtype == np.int64 and y.ndim == 1):
        y = _as_array(y, "y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(-1)
        if y.ndim != 1:
            raise ValueError(
                f"{where}: softmax cross-entropy takes y as integer class labels of shape "
                f"(n_samples,), got shape {y.shape}"
            )
        if y.dtype.kind == "f":
            if y.size and not (np.isfinite(y).all() and (y == np.round(y)).all()):
                bad = int(np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))[0])
                raise TypeError(
                    f"{where}: softmax cross-entropy takes integer class labels; y[{bad}] "
                    f"is {y[bad].item()!r}"
                )
        y = np.ascontiguousarray(y, dtype=np.int64)
    _check_rows(y, n_samples, where)
    if check_range and y.size:
        bad_idx = np.flatnonzero((y < 0) | (y >= n_classes))
        if bad_idx.size:
            i = int(bad_idx[0])
            raise ValueError(
                f"{where}: y[{i}] = {y[i]} is not a class index in [0, {n_classes}) "
                f"(the model has {n_classes} outputs)"
            )
    return y  # type: ignore[no-any-return]


def as_sample_weight(
    w: Any, n_samples: int, dtype: np.dtype[Any], where: str
) -> NDArray[Any] | None:
    """sample_weight as a C-contiguous (n_samples,) array of `dtype`: finite, >= 0, with a
    positive sum; None stays None (every row weighs 1)."""
    if w is None:
        return None
    if not (type(w) is np.ndarray and w.dtype == dtype and w.ndim == 1 and w.flags.c_contiguous):
        w = _as_array(w, "sample_weight")
        if w.ndim != 1:
            raise ValueError(
                f"{where}: sample_weight must be 1-D (n_samples,), got shape {w.shape}"
            )
        with np.errstate(over="ignore"):
            w = np.ascontiguousarray(w, dtype=dtype)
    if w.shape[0] != n_samples:
        raise ValueError(f"{where}: X has {n_samples} samples but sample_weight has {w.shape[0]}")
    check_finite(w.reshape(-1, 1), "sample_weight")
    if (w < 0).any():
        i = int(np.flatnonzero(w < 0)[0])
        raise ValueError(f"{where}: sample_weight must be >= 0; sample_weight[{i}] is {w[i]}")
    if not w.sum() > 0:
        raise ValueError(f"{where}: sample_weight must have a positive sum (all weights are 0)")
    return w  # type: ignore[no-any-return]


def check_positive(value: Any, name: str) -> float:
    """A finite float > 0."""
    v = _as_float(value, name)
    if not v > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def check_range(value: Any, name: str, lo: float, hi: float, hi_open: bool = True) -> float:
    """A finite float in [lo, hi) (or [lo, hi] with hi_open=False)."""
    v = _as_float(value, name)
    if not (lo <= v < hi if hi_open else lo <= v <= hi):
        bracket = ")" if hi_open else "]"
        raise ValueError(f"{name} must be in [{lo}, {hi}{bracket}, got {value!r}")
    return v


def check_int(value: Any, name: str, minimum: int) -> int:
    """An integer (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v
