"""Sparse X: the CSR rows the compiled core reads.

_validation.as_features converts any scipy.sparse matrix or array (CSR, CSC, COO, ...) once to
`CsrRows`: indptr (n + 1,) int64, indices (nnz,) int32, data (nnz,) of the model's dtype. The
core's first Dense reads it as it is: unsorted columns and duplicate entries are fine
(duplicates are summed, as scipy sums them), and rows are never densified. scipy is not
imported here: a sparse matrix is recognised by the module its type comes from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Largest column count the core's int32 column indices hold.
INDEX32_MAX = 2**31 - 1


class CsrRows:
    """n rows of a CSR matrix as the core reads them (see the module docstring).

    indptr holds absolute offsets into indices and data, so a block of rows is a slice of
    indptr over the same indices and data (no copy). ``format == "csr"`` is what the core
    tests for.
    """

    format = "csr"
    ndim = 2
    __slots__ = ("data", "indices", "indptr", "shape")

    def __init__(
        self,
        indptr: NDArray[np.int64],
        indices: NDArray[np.int32],
        data: NDArray[Any],
        n_columns: int,
    ) -> None:
        self.indptr, self.indices, self.data = indptr, indices, data
        self.shape = (len(indptr) - 1, n_columns)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    def __getitem__(self, rows: slice | NDArray[np.integer[Any]]) -> CsrRows:
        """A block of rows (a slice with step 1: shares the arrays) or the rows at the
        given indices, in that order (copied)."""
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.shape[0])
            if step == 1:
                stop = max(start, stop)
                return CsrRows(self.indptr[start : stop + 1], self.indices, self.data,
                               self.shape[1])  # fmt: skip
            rows = np.arange(start, stop, step)
        take = np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[take], self.indptr[take + 1]
        counts = ends - starts
        indptr = np.zeros(len(take) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        # the positions of the taken rows' entries: each row's run start..end, concatenated
        at = np.repeat(starts - indptr[:-1], counts) + np.arange(indptr[-1], dtype=np.int64)
        return CsrRows(indptr, self.indices[at], self.data[at], self.shape[1])

    def toarray(self) -> NDArray[Any]:
        """The dense (n, n_columns) array (duplicates summed)."""
        out = np.zeros(self.shape, dtype=self.data.dtype)
        first = self.indptr[0]
        entries = slice(first, self.indptr[-1])
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        np.add.at(out, (rows, self.indices[entries]), self.data[entries])
        return out

    def tocsr(self) -> CsrRows:
        """These rows with indptr from 0 over their own entries (for a change of dtype)."""
        first, last = int(self.indptr[0]), int(self.indptr[-1])
        return CsrRows(self.indptr - first, self.indices[first:last], self.data[first:last],
                       self.shape[1])  # fmt: skip

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1] - self.indptr[0])

    def __repr__(self) -> str:
        return f"<CsrRows {self.shape[0]}x{self.shape[1]}, {self.nnz} entries, {self.dtype}>"


def is_sparse(X: Any) -> bool:
    """Whether X is a scipy.sparse matrix or array, or already CsrRows."""
    return isinstance(X, CsrRows) or (
        type(X).__module__.startswith("scipy.sparse") and hasattr(X, "tocsr")
    )
