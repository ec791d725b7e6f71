"""Every user-facing input check, in one place.

Messages name the argument, what was expected and what was found. Inputs that already have
the right dtype, layout and shape pass through a fast path with no copy; anything else is
converted once or refused. The dtype policy (README, "Errors and guarantees"):

- float16/32/64 (and longer floats): rounded to the model's dtype; a value that overflows it
  becomes infinite and is refused as such, naming the row.
- bool and integers: converted only when every value is exactly representable in the model's
  dtype (|v| <= 2**24 for float32, 2**53 for float64); otherwise refused (ValueError, naming
  the row) rather than silently rounded. Class labels: any integer dtype, bool, or floats
  holding whole numbers.
- complex, object, strings, datetimes, structured records: refused (TypeError).
- any memory layout (Fortran order, strides, negative strides, read-only): copied to a
  C-contiguous array first; the caller's arrays are never written.
- pandas DataFrames, Series and Index: read with .to_numpy() (a DataFrame's columns to
  their common type, as NumPy promotes them); a column that does not hold numbers
  (strings, categories, dates) is refused naming it, a missing value (NA) naming its row.
- torch tensors (any device, requires_grad too): .detach().cpu().numpy() (bfloat16 and
  other types NumPy lacks through float32, exactly). Neither pandas nor torch is imported
  here: they are recognised by the module their type comes from.
- iterators, generators and other one-pass iterables (a DataLoader, a dict, a set):
  refused (TypeError) with what to pass instead.
- scipy.sparse matrices and arrays of any format (X only): converted once to CSR rows
  (_sparse.CsrRows) under the same value rules, never densified; NaN or infinity among the
  stored values is refused naming its row and column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from backprop_core import first_label_outside, first_nonfinite_row

from ._sparse import INDEX32_MAX, CsrRows, is_sparse

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


#: Largest integer magnitude below which every integer is exact in the dtype (its mantissa).
EXACT_INT_LIMIT = {np.dtype(np.float32): 2**24, np.dtype(np.float64): 2**53}


def as_numpy(a: Any, name: str) -> Any:
    """A pandas or torch object as a NumPy array (converted once, without importing
    either library); an iterator or one-pass iterable refused (TypeError) with what to pass
    instead; anything else returned as it is (np.asarray's to convert). name: e.g. "fit: X".
    """
    if isinstance(a, np.ndarray):
        return a
    library = type(a).__module__.partition(".")[0]
    if library == "pandas" and hasattr(a, "to_numpy"):
        return _from_pandas(a, name)
    if library == "torch" and hasattr(a, "detach"):
        return _from_torch(a, name)
    if isinstance(a, Iterator) or (
        isinstance(a, Iterable)
        and not isinstance(a, (Sequence, str, bytes))
        and not hasattr(a, "__array__")
        and not hasattr(a, "__array_interface__")
    ):
        raise TypeError(
            f"{name} is a {type(a).__name__}, which can be read only item by item; pass the "
            "data as one array instead (a NumPy array, a pandas DataFrame or Series, a torch "
            "tensor, nested lists). For data larger than memory, train batch by batch: call "
            "model.train_step(X_batch, y_batch) for each batch (or partial_fit of "
            "backprop.sklearn's estimators)"
        )
    return a


def _from_pandas(a: Any, name: str) -> NDArray[Any]:
    """A DataFrame, Series or Index as a NumPy array of its numbers (DataFrame columns to
    their common type)."""
    columns = list(a.dtypes.items()) if hasattr(a, "columns") else [(None, a.dtype)]
    numpy_dtypes = []
    for column, dtype in columns:
        if getattr(dtype, "kind", "O") not in "biuf":
            where = f" column {column!r}" if column is not None else ""
            hint = (
                " (.cat.codes gives the category numbers)"
                if getattr(dtype, "name", "") == "category"
                else ""
            )
            raise TypeError(
                f"{name}{where} must hold numbers (float, integer or bool), got the pandas "
                f"dtype {dtype}{hint}"
            )
        if not isinstance(dtype, np.dtype):
            # pandas' nullable types (Int64, Float64, boolean) name their NumPy dtype and
            # may hold pd.NA, which no NumPy number represents
            column_data = a if column is None else a[column]
            missing = np.asarray(column_data.isna())
            if missing.any():
                at = f" (column {column!r})" if column is not None else ""
                raise ValueError(
                    f"{name} holds a missing value (NA) in row "
                    f"{int(np.flatnonzero(missing)[0])}{at}"
                )
        numpy_dtypes.append(np.dtype(getattr(dtype, "numpy_dtype", dtype)))
    target = np.result_type(*numpy_dtypes) if numpy_dtypes else np.dtype(np.float64)
    return np.asarray(a.to_numpy(dtype=target))


def _from_torch(a: Any, name: str) -> NDArray[Any]:
    """A torch tensor (any device, requires_grad too) as a NumPy array."""
    try:
        t = a.detach()
        if getattr(t, "is_sparse", False) or getattr(t, "is_sparse_csr", False):
            t = t.to_dense()
        t = t.cpu().resolve_conj().resolve_neg()
        try:
            return np.asarray(t.numpy())
        except TypeError:  # bfloat16, float8: NumPy has no such dtype; float32 holds them
            if not t.dtype.is_floating_point:
                raise
            return np.asarray(t.float().numpy())
    except (TypeError, RuntimeError) as e:
        raise TypeError(
            f"{name}: cannot read the torch tensor as an array of numbers ({e})"
        ) from None


def _as_array(a: Any, name: str) -> NDArray[Any]:
    a = as_numpy(a, name)
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError) as e:  # ragged nested lists, unconvertible objects
            raise ValueError(f"{name} must be a rectangular array of numbers ({e})") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(
            f"{name} must be real, got complex dtype {arr.dtype} (pass .real if the "
            "imaginary parts are zero)"
        )
    if kind not in "biuf":
        raise TypeError(f"{name} must hold numbers (float, integer or bool), got dtype {arr.dtype}")
    return arr


def _check_exact_ints(a: NDArray[Any], name: str, dtype: np.dtype[Any], where: str) -> None:
    """Refuse integers that `dtype` cannot hold exactly: conversion would round them."""
    limit = EXACT_INT_LIMIT[dtype]
    if a.dtype.kind not in "iu" or np.iinfo(a.dtype).max <= limit:
        return  # bool, and integer types too narrow to exceed the limit
    bad = (a > limit) | (a < -limit) if a.dtype.kind == "i" else a > limit
    if bad.any():
        flat = int(np.flatnonzero(bad.ravel(order="C"))[0])
        index = np.unravel_index(flat, a.shape)
        row = f" (row {index[0]})" if a.ndim > 1 else f" ({name}[{index[0]}])"
        raise ValueError(
            f"{where}: {name} holds the integer {a[index]}{row}, which {dtype} cannot "
            f"represent exactly; integers are converted only when |value| <= "
            f"2**{int(np.log2(limit))} (exact in {dtype}). Convert {name} yourself "
            f"({name}.astype(np.{dtype})) if rounding is acceptable"
        )


def _convert(a: NDArray[Any], name: str, dtype: np.dtype[Any], where: str) -> NDArray[Any]:
    """a as a C-contiguous array of `dtype`, under the module's dtype policy."""
    _check_exact_ints(a, name, dtype, where)
    with np.errstate(over="ignore"):  # an overflow to inf is reported by check_finite
        # aligned too: the kernels read whole items (a buffer rebuilt by pickle or shared
        # memory may start at an odd address)
        return np.require(a, dtype=dtype, requirements=["C", "A"])


def check_finite(a: NDArray[Any], name: str, source: NDArray[Any] | None = None) -> None:
    """Refuse NaN and infinity, naming the first offending row. a: (n, m) float, C order.

    source: the array a was converted from, to tell an overflow in the conversion apart.
    """
    row = first_nonfinite_row(a)
    if row < 0:
        return
    if source is not None and source.dtype.kind == "f" and np.isfinite(source[row]).all():
        raise ValueError(
            f"{name} row {row} holds a value beyond the range of {a.dtype} "
            f"(|x| <= {np.finfo(a.dtype).max:.4g}): {source[row]!r}"
        )
    raise ValueError(f"{name} holds NaN or infinity in row {row}: {a[row]!r}")


def check_result(a: NDArray[Any], what: str, where: str, dtype: np.dtype[Any]) -> None:
    """Refuse a computed result that overflowed: FloatingPointError naming the row.
    a: (n, m) float, C order (a scalar loss: shape (1, 1)); dtype: the model's."""
    row = first_nonfinite_row(a)
    if row >= 0:
        at = f" in row {row}" if a.shape[0] > 1 else ""
        raise FloatingPointError(
            f"{where}: {what} is not finite{at} (an overflow: are the inputs or weights far "
            f"too large for {dtype}?)"
        )


def as_features(
    X: Any,
    dtype: np.dtype[Any],
    n_features: int,
    where: str,
    first_layer: str = "the model",
    sparse: bool = False,
) -> Any:
    """X as a C-contiguous (n_samples, n_features) array of `dtype`, finite and non-empty;
    a scipy.sparse X as CsrRows of `dtype` when `sparse` (the first layer reads CSR rows),
    else refused.

    first_layer names what fixes n_features, for the error message.
    """
    if is_sparse(X):
        if not sparse:
            raise ValueError(
                f"{where}: sparse X needs a model whose first layer is a Dense (it reads the "
                f"CSR rows directly); pass X.toarray(), or put the Dense first"
            )
        return _as_csr_rows(X, dtype, n_features, where, first_layer)
    source = None
    if not (
        type(X) is np.ndarray
        and X.dtype == dtype
        and X.ndim == 2
        and X.flags.c_contiguous
        and X.flags.aligned
    ):
        X = source = _as_array(X, f"{where}: X")
        if X.ndim != 2:
            hint = "; use X.reshape(1, -1) for a single sample" if X.ndim == 1 else ""
            raise ValueError(
                f"{where}: X must be 2-D (n_samples, n_features), got ndim={X.ndim} "
                f"with shape {X.shape}{hint}"
            )
    _check_rows_and_features(X.shape, n_features, where, first_layer)
    if source is not None:
        X = _convert(X, "X", dtype, where)
    check_finite(X, f"{where}: X", source)
    return X


def _check_rows_and_features(
    shape: tuple[int, ...], n_features: int, where: str, first_layer: str
) -> None:
    """A 2-D X's shape: n_features columns, at least one row."""
    if shape[1] != n_features:
        raise ValueError(f"{where}: X has {shape[1]} features, but {first_layer} expects "
                         f"{n_features}")  # fmt: skip
    if shape[0] == 0:
        raise ValueError(
            f"{where}: X is empty (0 samples); expected at least one row, got shape {shape}"
        )


def _as_csr_rows(
    X: Any, dtype: np.dtype[Any], n_features: int, where: str, first_layer: str
) -> CsrRows:
    """A scipy.sparse X (any format) or CsrRows as CsrRows of `dtype`: shape (n_samples >= 1,
    n_features), finite values; converted once (CsrRows of the dtype pass as they are)."""
    if isinstance(X, CsrRows) and X.dtype == dtype and X.shape[1] == n_features:
        return X
    if len(X.shape) != 2:
        raise ValueError(f"{where}: X must be 2-D (n_samples, n_features), got shape {X.shape}")
    _check_rows_and_features(X.shape, n_features, where, first_layer)
    if n_features > INDEX32_MAX:
        raise ValueError(f"{where}: sparse X may have at most {INDEX32_MAX} columns, got "
                         f"{n_features}")  # fmt: skip
    csr = X.tocsr()  # a COO's duplicates are summed here, a CSR's own by the core
    data = np.asarray(csr.data)
    if data.dtype.kind == "c":
        raise TypeError(f"{where}: X must be real, got complex dtype {data.dtype}")
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{where}: X must hold numbers (float, integer or bool), got dtype "
                        f"{data.dtype}")  # fmt: skip
    indptr = np.require(csr.indptr, dtype=np.int64, requirements=["C", "A"])
    values = _convert(data, "X.data", dtype, where)
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(indptr, indptr[0] + k, side="right")) - 1
        what = (f"a value beyond the range of {dtype}" if np.isfinite(data[k])
                else "NaN or infinity")  # fmt: skip
        raise ValueError(f"{where}: X holds {what} in row {row}, column {csr.indices[k]}: "
                         f"{data[k]!r}")  # fmt: skip
    indices = np.require(csr.indices, dtype=np.int32, requirements=["C", "A"])
    return CsrRows(indptr, indices, values, n_features)


def as_predictions(y_pred: Any, where: str) -> NDArray[Any]:
    """y_pred for a loss called directly: a C-contiguous non-empty (n, m) float32/float64
    array (float32 and float64 stay as they are, other numbers become float64), finite;
    (n,) is read as (n, 1)."""
    Y = _as_array(y_pred, "y_pred")
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    if Y.ndim != 2 or Y.shape[0] == 0:
        raise ValueError(
            f"{where}: y_pred must be a non-empty (n_samples, n_outputs) array, got shape {Y.shape}"
        )
    dtype = Y.dtype if Y.dtype in FLOAT_DTYPES else np.dtype(np.float64)
    source = Y
    Y = _convert(Y, "y_pred", dtype, where)
    check_finite(Y, "y_pred", source)
    return Y


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
    the others: (n_samples, n_outputs) of `dtype`; (n_samples,) is accepted when
    n_outputs == 1. Binary targets must lie in [0, 1], Poisson targets be >= 0.
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
        and y.flags.aligned
        and y.shape[1] == n_outputs
    ):
        y = source = _as_array(y, f"{where}: y")
        if y.ndim == 1 and n_outputs == 1:
            y = source = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape[1] != n_outputs:
            raise ValueError(
                f"{where}: y must have shape (n_samples, {n_outputs})"
                + (" or (n_samples,)" if n_outputs == 1 else "")
                + f" to match the model's {n_outputs} outputs, got {y.shape}"
            )
        _check_rows(y, n_samples, where)
        y = _convert(y, "y", dtype, where)
    else:
        source = None
        _check_rows(y, n_samples, where)
    check_finite(y, f"{where}: y", source)
    # min/max first: reductions allocate nothing, so a valid y costs no temporaries
    if check_range and loss_name == "binary_cross_entropy" and (y.min() < 0 or y.max() > 1):
        bad = np.flatnonzero(((y < 0) | (y > 1)).any(axis=1))
        if bad.size:
            raise ValueError(
                f"{where}: binary cross-entropy targets must lie in [0, 1]; y row {bad[0]} "
                f"is {y[bad[0]]!r}"
            )
    if check_range and loss_name == "poisson" and y.min() < 0:
        bad = np.flatnonzero((y < 0).any(axis=1))
        raise ValueError(f"{where}: Poisson targets must be >= 0; y row {bad[0]} is {y[bad[0]]!r}")
    return y  # type: ignore[no-any-return]


def _check_rows(y: NDArray[Any], n_samples: int, where: str) -> None:
    if y.shape[0] != n_samples:
        raise ValueError(f"{where}: X has {n_samples} samples but y has {y.shape[0]}")


def _as_labels(
    y: Any, n_samples: int, n_classes: int, where: str, check_range: bool
) -> NDArray[np.int64]:
    if not (
        type(y) is np.ndarray
        and y.dtype == np.int64
        and y.ndim == 1
        and y.flags.c_contiguous
        and y.flags.aligned
    ):
        y = as_numpy(y, f"{where}: y")  # its own messages (pandas columns, iterators)
        try:
            y = _as_array(y, f"{where}: y")
        except TypeError:
            found = getattr(np.asarray(y), "dtype", type(y).__name__)
            raise TypeError(
                f"{where}: softmax cross-entropy takes y as integer class labels in "
                f"[0, {n_classes}), got dtype {found}"
            ) from None
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
        _check_rows(y, n_samples, where)
        # range first: a huge uint64 or float label would wrap when cast to int64
        _check_labels(y, n_classes, where)
        y = np.require(y, dtype=np.int64, requirements=["C", "A"])
    else:
        _check_rows(y, n_samples, where)
        if check_range:
            _check_labels(y, n_classes, where)
    return y  # type: ignore[no-any-return]


def _check_labels(y: NDArray[Any], n_classes: int, where: str) -> None:
    if y.dtype == np.int64 and y.flags.c_contiguous and y.flags.aligned:
        i = first_label_outside(y, n_classes)  # one pass in C
    elif y.size == 0 or (y.min() >= 0 and y.max() < n_classes):
        return  # min/max allocate nothing; the masks below are for a bad y only
    else:
        bad_idx = np.flatnonzero((y < 0) | (y >= n_classes))
        i = int(bad_idx[0]) if bad_idx.size else -1
    if i >= 0:
        raise ValueError(
            f"{where}: y[{i}] = {y[i]} is not a class index in [0, {n_classes}) "
            f"(the model has {n_classes} outputs)"
        )


def as_sample_weight(
    w: Any, n_samples: int, dtype: np.dtype[Any], where: str
) -> NDArray[Any] | None:
    """sample_weight as a C-contiguous (n_samples,) array of `dtype`: finite, >= 0, with a
    positive sum; None stays None (every row weighs 1)."""
    if w is None:
        return None
    if not (
        type(w) is np.ndarray
        and w.dtype == dtype
        and w.ndim == 1
        and w.flags.c_contiguous
        and w.flags.aligned
    ):
        w = _as_array(w, f"{where}: sample_weight")
        if w.ndim != 1:
            raise ValueError(
                f"{where}: sample_weight must be 1-D (n_samples,), got shape {w.shape}"
            )
        if w.shape[0] == n_samples:
            w = _convert(w, "sample_weight", dtype, where)
    if w.shape[0] != n_samples:
        raise ValueError(f"{where}: X has {n_samples} samples but sample_weight has {w.shape[0]}")
    check_finite(w.reshape(-1, 1), f"{where}: sample_weight")
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


#: the largest count the core takes (its index type, Py_ssize_t, on 64-bit platforms)
INDEX_MAX = 2**63 - 1


def check_int(value: Any, name: str, minimum: int, maximum: float = INDEX_MAX) -> int:
    """An integer (not a bool) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r:.100}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r:.100}")
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r:.100}")
    return int(value)


def check_seed(value: Any, name: str) -> int | None:
    """None or an integer >= 0 (what numpy.random.default_rng takes as an entropy value)."""
    return None if value is None else check_int(value, name, 0, math.inf)


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r:.100}")
    try:
        v = float(value)
    except OverflowError:  # an integer beyond any float
        v = math.inf
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r:.100}")
    return v


# -- configs: {"class": name, "config": {...}} specs of registered classes --------------------


def spec_of(obj: Any, registry: Mapping[str, type[Any]], what: str) -> dict[str, Any]:
    """{"class": ..., "config": obj.get_config()} for an instance of a registered class."""
    name = type(obj).__name__
    if registry.get(name) is not type(obj):
        raise TypeError(
            f"cannot describe {what} of type {name}: only the built-in classes "
            f"{sorted(registry)} have a config, so only they are saved (a file never holds "
            "code)"
        )
    return {"class": name, "config": obj.get_config()}


def from_spec(spec: Any, registry: Mapping[str, type[Any]], what: str) -> Any:
    """The object a spec describes: registry[spec["class"]](**spec["config"])."""
    if (
        not isinstance(spec, dict)
        or spec.keys() != {"class", "config"}
        or not isinstance(spec["config"], dict)
    ):
        raise ValueError(f"{what} must be {{'class': ..., 'config': {{...}}}}, got {spec!r:.200}")
    name = spec.get("class")
    cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"{what}: unknown class {name!r}; known: {sorted(registry)}")
    if not all(isinstance(k, str) for k in spec["config"]):
        raise ValueError(f"{what}: config keys must be strings")
    try:
        return cls(**spec["config"])
    except TypeError as e:  # unexpected or missing keyword
        raise ValueError(f"{what}: {e}") from None
