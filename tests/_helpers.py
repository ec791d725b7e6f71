"""Helpers shared by test modules (tests/ is on sys.path: pyproject's pytest `pythonpath`).

Guarded buffers for calling backprop_core directly (tests/core/test_kernel_arguments.py and
tests/core/test_executor.py): every array is a slice of a larger buffer whose guard regions
hold a sentinel (inputs: NaN, so an over-read would poison an output; outputs: a marker
value), and `intact()` checks that no call wrote there.
"""

import numpy as np

GUARD = 16  # elements each side
MARK = -12345.0
REFUSED = (ValueError, TypeError, BufferError)


class Guarded:
    """An array of `shape` and `dtype` inside a buffer with GUARD elements either side."""

    def __init__(self, shape, dtype, fill, guard, layout="C", writable=True):
        self.dtype = np.dtype(dtype)
        size = int(np.prod(shape))
        factor = 2 if layout == "strided" else 1
        self.buf = np.full(size * factor + 2 * GUARD, guard, dtype=self.dtype)
        inner = self.buf[GUARD : GUARD + size * factor]
        if layout == "strided":
            inner = inner[::2]
        inner[...] = fill if np.isscalar(fill) else np.asarray(fill).ravel()
        if layout == "F":
            self.array = inner.reshape(shape[::-1]).T if len(shape) > 1 else inner
        else:
            self.array = inner.reshape(shape)
        self.guard = guard
        self.array.flags.writeable = writable

    def intact(self):
        for part in (self.buf[:GUARD], self.buf[-GUARD:]):
            if np.isnan(self.guard):
                assert np.isnan(part).all(), "guard region written"
            else:
                assert (part == self.guard).all(), "guard region written"
        return True


def inp(shape, dtype=np.float64, rng=None, **kw):
    """A guarded input of random values (integers: label 0, valid for any class count)."""
    rng = rng or np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        fill = rng.uniform(0.1, 0.9, shape)  # valid as BCE targets too
        return Guarded(shape, dtype, fill, np.nan, **kw)
    return Guarded(shape, dtype, 0, -7, **kw)


def out(shape, dtype=np.float64, **kw):
    return Guarded(shape, dtype, MARK, MARK, **kw)


def state(shape, dtype=np.float64, **kw):
    """An optimizer buffer: read and written, starts at zero."""
    return Guarded(shape, dtype, 0, MARK, **kw)
