"""The runner's sparse case (backprop.bench.sparse): its data has the stated shape, density
and TF-IDF form, and a quick run of this library's tools gives a complete report."""

import json
import subprocess
import sys

import numpy as np
import pytest

from backprop.bench import sparse


def test_zipf_tfidf_has_the_stated_form():
    X, y = sparse.zipf_tfidf(rows=300, columns=2000, density=0.01, seed=1)
    assert X.shape == (300, 2000) and X.dtype == np.float32
    assert X.nnz == 300 * 20  # exactly density x columns distinct columns a row
    assert all(len(np.unique(X[r].indices)) == 20 for r in range(300))
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(1)).A1, 1.0, rtol=1e-5)  # L2 rows
    assert (X.data > 0).all() and set(np.unique(y)) <= set(range(sparse.CLASSES))
    counts = np.bincount(X.indices, minlength=2000)
    assert counts.max() > 20 * np.median(counts[counts > 0])  # Zipf: a few columns dominate
    assert sparse.touched_rows(X, np.arange(300), 100) == sum(
        len(np.unique(X[i : i + 100].indices)) for i in range(0, 300, 100)
    )


def test_quick_run_of_the_runner_case(tmp_path):
    out = tmp_path / "sparse.json"
    cmd = [sys.executable, "-m", "backprop.bench", "--cases", "sparse", "--quick",
           "--tools", "ours_sgd,ours_adam", "--no-import-time", "--json", str(out)]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "backprop fit, SGD" in run.stdout and "floor" in run.stdout
    report = json.loads(out.read_text())
    assert report["mode"] == "sparse" and report["shape"] == [2000, 50000]
    assert set(report["seconds"]) == {"ours_sgd", "ours_adam"}
    for value in [*report["seconds"].values(), *report["floor"].values()]:
        assert np.isfinite(value) and value > 0
    assert report["meta"]["blas"] is not None and report["ratios"] == {}


def test_sparse_runs_alone():
    from backprop.bench.runner import parse_args, run

    with pytest.raises(SystemExit, match="sparse runs alone"):
        run(parse_args(["--cases", "S,sparse", "--quick"]))
