"""The products go to numpy's OpenBLAS when numpy carries the scipy-openblas64 build, else to
scipy's (backprop_core/_blas.pyx); BACKPROP_BLAS forces one. Each source is checked in a
fresh interpreter against float64 NumPy arithmetic on the same numbers."""

import ctypes
import os
import subprocess
import sys

import pytest

CHECK = """
import numpy as np, backprop_core as core
rng = np.random.default_rng(0)
worst = 0.0
for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
    for n, i, o in ((1, 300, 2), (64, 784, 128), (33, 17, 250)):
        X, W = rng.standard_normal((n, i)).astype(dtype), rng.standard_normal((i, o)).astype(dtype)
        b, dY = rng.standard_normal(o).astype(dtype), rng.standard_normal((n, o)).astype(dtype)
        Y, dW, db, dX = (np.empty((n, o), dtype), np.empty((i, o), dtype),
                         np.empty(o, dtype), np.empty((n, i), dtype))
        core.dense_forward(X, W, b, Y)
        core.dense_backward(X, W, dY, dW, db, dX)
        X64, W64, dY64 = X.astype(float), W.astype(float), dY.astype(float)
        for got, ref in ((Y, X64 @ W64 + b), (dW, X64.T @ dY64), (dX, dY64 @ W64.T)):
            scale = np.abs(ref).max() * np.sqrt(i + n + o)
            worst = max(worst, float(np.abs(got - ref).max() / scale / tol))
print(core.blas_source(), worst <= 1.0, round(worst, 4))
"""


def run(blas: str | None, code: str = CHECK) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("BACKPROP_BLAS", None)
    if blas is not None:
        env["BACKPROP_BLAS"] = blas
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )


def numpy_has_cblas64() -> bool:
    from numpy._core import _multiarray_umath

    try:
        ctypes.CDLL(_multiarray_umath.__file__).scipy_cblas_sgemm64_  # noqa: B018
    except (OSError, AttributeError):
        return False
    return True


@pytest.mark.parametrize("blas", [None, "scipy", "numpy"])
def test_each_source_computes_the_dense_products(blas):
    if blas == "numpy" and not numpy_has_cblas64():
        pytest.skip("this numpy does not carry the scipy-openblas64 CBLAS")
    done = run(blas)
    assert done.returncode == 0, done.stderr
    source, ok, worst = done.stdout.split()
    expected = blas or ("numpy" if numpy_has_cblas64() else "scipy")
    assert source == expected
    assert ok == "True", f"error {worst} x the tolerance"


def test_the_default_needs_no_scipy_when_numpy_has_the_blas():
    if not numpy_has_cblas64():
        pytest.skip("this numpy does not carry the scipy-openblas64 CBLAS")
    done = run(None, CHECK + "import sys; print('scipy.linalg' in sys.modules)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False"


def test_an_unknown_choice_is_refused_on_first_use():
    done = run("mkl")
    assert done.returncode != 0
    assert "BACKPROP_BLAS must be 'auto', 'numpy' or 'scipy', got 'mkl'" in done.stderr
