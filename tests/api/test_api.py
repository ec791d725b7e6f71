"""Packaging and public-API contracts: lazy BLAS loading, typing files, the demo."""

import pathlib
import subprocess
import sys

import pytest

import backprop as bp
import backprop_core


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_does_not_load_scipy_linalg_and_first_step_fetches_blas():
    """The BLAS pointers are fetched on first use (numpy's or scipy's: core/test_blas_source.py);
    a model whose products are all past the direct-loop threshold must work in a fresh
    interpreter where no kernel ran before."""
    out = run_python(
        "import sys, numpy as np, backprop as bp, backprop_core as core\n"
        "print('scipy.linalg' in sys.modules, core.blas_loaded())\n"
        "m = bp.Sequential([bp.Dense(64, 64), bp.ReLU(), bp.Dense(64, 3)], seed=0)\n"
        "m.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.1))\n"
        "X = np.ones((32, 64), np.float32); y = np.zeros(32, np.int64)\n"
        "print(round(m.train_step(X, y), 6) > 0, core.blas_loaded())\n"
    )
    assert out.split() == ["False", "False", "True", "True"]


def test_typing_files_ship_beside_the_packages():
    for pkg in (bp, backprop_core):
        assert (pathlib.Path(pkg.__file__).parent / "py.typed").is_file()
    core_dir = pathlib.Path(backprop_core.__file__).parent
    for name in ["_dense", "_activations", "_losses", "_optim", "_executor", "_checks", "_blas"]:
        assert (core_dir / f"{name}.pyi").is_file(), name


def test_public_names():
    for name in bp.__all__:
        assert hasattr(bp, name), name
    for name in backprop_core.__all__:
        assert hasattr(backprop_core, name), name


def test_repr_shows_the_architecture():
    model = bp.Sequential([bp.Dense(2, 3, weight_init="he"), bp.LeakyReLU(0.2), bp.Dense(3, 1)])
    text = repr(model)
    assert "Dense(2, 3, weight_init='he')" in text
    assert "LeakyReLU(alpha=0.2)" in text
    assert "dtype='float32'" in text


def test_demo_reaches_high_accuracy(capsys):
    pytest.importorskip("sklearn")
    from backprop.demo import main

    accuracy = main(["--epochs", "20"])
    out = capsys.readouterr().out
    assert "epoch 20/20" in out
    assert accuracy >= 0.95
