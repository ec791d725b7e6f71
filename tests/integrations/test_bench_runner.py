"""The comparison runner (`python -m backprop.bench`): it runs, its JSON has the documented
structure, and its tools compute the same training step (so the timings compare like with
like). No speed is asserted here; speed lives in bench/."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from backprop import bench

TOLS = {"rtol": 1e-4, "atol": 1e-6}  # float32 steps, summed in different orders


def test_runner_quick_case_t_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_L2_SIZE"}  # just one set
    env["OPENBLAS_CORETYPE"] = "Haswell"  # the runner keeps it, and says so on top
    proc = subprocess.run(
        [sys.executable, "-m", "backprop.bench", "--quick", "--cases", "T", "--tools",
         "ours,ours_fit,numpy,gemm", "--repeat", "1", "--no-import-time", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(out.read_text())
    note = report["meta"]["environment"]
    assert note.startswith("environment: NOTE: OPENBLAS_CORETYPE=Haswell is set")
    assert "OPENBLAS_L2_SIZE=" not in note
    assert "Haswell kernel" in note  # the kernel OpenBLAS runs, from threadpoolctl
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m backprop.bench" in note
    assert "\n\n" + note + "\n" in proc.stdout  # atop the report
    assert proc.stdout.startswith(note.split(" (")[0])  # and before the first timing
    assert report["cases"] == ["T"]
    assert report["tools"] == ["ours", "ours_fit", "numpy", "gemm"]
    assert {"date", "cpu", "blas", "environment"} <= report["meta"].keys()
    rows = {r["tool"]: r for r in report["results"]}
    assert rows.keys() == {"ours", "ours_fit", "numpy", "gemm"}
    for r in rows.values():
        assert r["case"] == "T" and r["seconds"] > 0 and r["repeats"] == 1
        assert r["ratio_to_ours"] == pytest.approx(r["seconds"] / rows["ours"]["seconds"])
    assert rows["ours_fit"]["steps_per_call"] > 1  # per step, over one epoch
    t_targets = [t for t in report["targets"] if t["case"] == "T"]
    assert [t["target"] for t in t_targets] == [
        "NumPy / train_step >= 20",
        "NumPy / fit >= 90",
    ]
    for t in t_targets:
        assert t["pass"] == (t["measured"] >= (20 if "train_step" in t["target"] else 90))
    assert report["import_time"] is None
    assert "| T | 2-3-1" in proc.stdout


def test_runner_rejects_unknown_case():
    proc = subprocess.run(
        [sys.executable, "-m", "backprop.bench", "--cases", "Q", "--no-import-time"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0 and "unknown case 'Q'" in proc.stderr


@pytest.mark.parametrize("name", ["T", "S"])
def test_tools_take_the_same_step(name):
    """Two steps of each tool from the same weights give the same losses: the first checks
    forward and loss, the second that the update was the same."""
    case = bench.CASES[name]
    data = bench.make_data(case, 4)
    bench.build_ours(case, data)
    tools = ["ours", "numpy", "torch1"]
    losses = {}
    for tool in tools:
        step = bench.BUILDERS[tool](case, data)
        losses[tool] = [float(step.call()), float(step.call())]
    for tool in tools[1:]:
        np.testing.assert_allclose(losses[tool], losses["ours"], **TOLS, err_msg=tool)


def test_gemm_floor_computes_the_products(rng):
    from backprop_core._blas import _gemm_floor

    for m, n, k in ((3, 2, 1), (33, 17, 20)):  # the direct loop and BLAS
        for ta in (False, True):
            for tb in (False, True):
                A = rng.standard_normal(m * k, dtype=np.float32)
                B = rng.standard_normal(k * n, dtype=np.float32)
                C = np.full(m * n, np.nan, np.float32)
                _gemm_floor([(ta, tb, m, n, k, A, B, C)], 2)
                opA = A.reshape(k, m).T if ta else A.reshape(m, k)
                opB = B.reshape(n, k).T if tb else B.reshape(k, n)
                expected = opA.astype(np.float64) @ opB
                np.testing.assert_allclose(C.reshape(m, n), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="too small"):
        _gemm_floor([(False, False, 4, 4, 4, A[:3], B, C)], 1)


def test_targets_arithmetic():
    res = {("L", "ours"): 1.0, ("L", "torch1"): 2.0, ("L", "torch2"): 0.5}
    res |= {("L", "numpy"): 3.0, ("L", "gemm"): 0.95}
    one = {r["target"]: r for r in bench.targets(res, 0.2, threads=1) if r["case"] == "L"}
    assert one["PyTorch 1 thread / train_step > 1"]["measured"] == 2.0
    assert one["PyTorch 1 thread / train_step > 1"]["pass"] is True
    assert one["train_step / GEMM floor <= 1.10"]["measured"] == pytest.approx(1 / 0.95)
    assert one["train_step / GEMM floor <= 1.10"]["pass"] is True
    assert one["NumPy / train_step > 1"]["pass"] is True
    best = {r["target"]: r for r in bench.targets(res, 0.2) if r["case"] in ("L", "-")}
    assert best["best PyTorch / train_step > 1"]["measured"] == 0.5
    assert best["best PyTorch / train_step > 1"]["pass"] is False
    assert best["import backprop < 0.15 s"]["pass"] is False
    assert not any(r["case"] == "M" for r in bench.targets(res, None))  # M not run


def test_a_missing_package_skips_its_tools(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert "torch is not installed" in bench.available("torch1")
    assert bench.available("numpy") is None
    args = bench.parse_args(["--cases", "T", "--tools", "ours,torch2", "--repeat", "1"])
    args.no_import_time, args.quick = True, True
    report = bench.run(args)
    assert [r["tool"] for r in report["results"]] == ["ours"]
    assert report["skipped"][0]["tool"] == "torch2"
    assert "pip install" in report["skipped"][0]["reason"]
