"""The comparison runner (`python -m backprop.bench`): it runs, in float32 and float64 and in
--inference mode, its JSON has the documented structure, and its tools compute the same
training step or forward pass (so the timings compare like with like), and a tool whose
package is missing is skipped with the reason. No speed is asserted here; speed lives in
bench/."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from backprop import bench

TOLS = {"rtol": 1e-4, "atol": 1e-6}  # float32 steps, summed in different orders
TOLS64 = {"rtol": 1e-10, "atol": 1e-12}


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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["T", "S"])
def test_tools_take_the_same_step(name, dtype):
    """Two steps of each tool from the same weights give the same losses: the first checks
    forward and loss, the second that the update was the same; in float64, to float64's
    precision (so every tool computed in float64)."""
    case = bench.CASES[name]
    data = bench.make_data(case, 4, dtype=dtype)
    model = bench.build_ours(case, data)
    assert model.dtype == dtype and data.Xb.dtype == dtype
    assert all(W.dtype == dtype for W, _ in data.init)
    tools = ["ours", "numpy", "torch1"]
    losses = {}
    for tool in tools:
        step = bench.BUILDERS[tool](case, data)
        losses[tool] = [float(step.call()), float(step.call())]
    for tool in tools[1:]:
        tols = TOLS64 if dtype == "float64" else TOLS
        np.testing.assert_allclose(losses[tool], losses["ours"], **tols, err_msg=tool)


def test_float64_data_holds_the_float32_values():
    case = bench.CASES["S"]
    d32, d64 = bench.make_data(case, 2), bench.make_data(case, 2, dtype="float64")
    assert d64.X.dtype == np.float64 and np.array_equal(d64.X, d32.X.astype(np.float64))
    assert np.array_equal(d64.y, d32.y)


def test_runner_quick_float32_and_float64(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "backprop.bench", "--quick", "--cases", "T,M", "--tools",
         "ours,numpy,gemm", "--dtype", "float32,float64", "--repeat", "1", "--no-import-time",
         "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["dtypes"] == ["float32", "float64"]
    assert report["meta"]["dtype"] == "float32,float64"
    rows = {(r["case"], r["dtype"], r["tool"]): r for r in report["results"]}
    assert len(rows) == len(report["results"]) == 2 * 2 * 3
    for (case, dtype, _), r in rows.items():
        ours = rows[(case, dtype, "ours")]
        assert r["ratio_to_ours"] == pytest.approx(r["seconds"] / ours["seconds"])
        assert r["timings"] == [r["seconds"]]  # one round: its timing is the median
        assert r["paired_ratio_to_ours"] == pytest.approx(r["ratio_to_ours"])
    goals = {(t["case"], t["dtype"], t["target"]): t for t in report["targets"]}
    assert ("M", "float64", "NumPy / train_step >= 1.5") in goals
    assert ("M", "float32", "train_step / GEMM floor <= 1.3") in goals
    assert not any(d == "float64" and c == "T" for c, d, _ in goals)  # no float64 goal on T
    m64 = goals[("M", "float64", "NumPy / train_step >= 1.5")]
    numpy64 = rows[("M", "float64", "numpy")]["seconds"]
    assert m64["measured"] == pytest.approx(numpy64 / rows[("M", "float64", "ours")]["seconds"])
    assert [t["case"] for t in report["targets"]][-1] == "-"  # import time: once, last
    assert "Median time per training step, float32" in proc.stdout
    assert "Median time per training step, float64" in proc.stdout
    assert "| M | float64 | NumPy / train_step >= 1.5 |" in proc.stdout


def test_runner_inference_quick(tmp_path):
    out = tmp_path / "inference.json"
    proc = subprocess.run(
        [sys.executable, "-m", "backprop.bench", "--inference", "--quick", "--cases",
         "S b1,Mb1", "--repeat", "2", "--no-import-time", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["mode"] == "inference"
    assert report["cases"] == ["S b1", "M b1"] and report["threads"] == [1, 2]
    assert report["tools"] == ["predict", "onnxruntime", "torch_infer"]
    meta = report["meta"]
    assert meta["dtype"] == "float32" and meta["repeat"] == 2
    assert "onnxruntime" in meta["versions"] and "torch" in meta["versions"]
    assert meta["blas"] and meta["load_average_before"] is not None
    rows = {(r["case"], r["threads"], r["tool"]): r for r in report["results"]}
    assert len(rows) == len(report["results"]) == 2 * 2 * 3
    for (case, threads, _), r in rows.items():
        assert r["seconds"] > 0 and len(r["timings"]) == 2 and r["gflops"] > 0
        ours = rows[(case, threads, "predict")]["timings"]
        paired = np.median([a / b for a, b in zip(r["timings"], ours, strict=True)])
        assert r["ratio_to_ours"] == pytest.approx(paired)
    goals = {(t["case"], t["threads"]): t for t in report["targets"]}
    assert goals.keys() == {(c, n) for c in ("S b1", "M b1") for n in (1, 2)}
    for (case, threads), t in goals.items():
        assert t["target"] == "onnxruntime / predict >= 1"
        assert t["measured"] == rows[(case, threads, "onnxruntime")]["ratio_to_ours"]
        assert t["pass"] == (t["measured"] >= 1)
    assert "| M b1 | 784-128-10 | 1 | 2 | **" in proc.stdout
    assert "| S b1 | 2 | onnxruntime / predict >= 1 |" in proc.stdout
    assert "numpy: openblas" in proc.stdout  # the BLAS, printed


@pytest.mark.parametrize("label", ["S b32", "M b1", "L b2"])
def test_predict_tools_compute_the_same_outputs(label):
    case = bench.inference_case(label)
    data = bench.make_data(case, 1)
    expected = bench.build_ours(case, data).predict(data.Xb)
    assert expected.shape == (case.batch, case.widths[-1])
    for tool in bench.INFERENCE_TOOLS:
        step = bench.INFERENCE_BUILDERS[tool](case, data, 1)
        if step.before is not None:
            step.before()
        out = np.asarray(step.call())
        assert out.dtype == np.float32, tool
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5, err_msg=tool)


def test_inference_cases():
    case = bench.inference_case("M b64")
    assert case.name == "M b64" and case.batch == 64 and case.widths == (784, 128, 10)
    assert bench.inference_case(" Lb256 ").name == "L b256"
    for bad in ("Q b1", "M", "M b0", "b64"):
        with pytest.raises(ValueError, match="unknown predict case"):
            bench.inference_case(bad)
    assert [bench.inference_case(c).name for c in bench.INFERENCE_CASES] == list(
        bench.INFERENCE_CASES
    )


def test_inference_options():
    args = bench.parse_args(["--inference"])
    assert args.cases == ",".join(bench.INFERENCE_CASES)
    assert args.tools == "predict,onnxruntime,torch_infer"
    assert bench.parse_args(["--inference", "--quick", "--repeat", "1"]).repeat == 1
    assert bench.parse_args([]).tools == ",".join(bench.TOOLS)  # training: unchanged
    assert bench.parse_args(["--dtype", "float64,float32"]).dtype == "float64,float32"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dtype", "float16"], "--dtype: unknown dtype 'float16'"),
        (["--inference", "--repeat", "3"], "--repeat must be >= 5"),
        (["--inference", "--dtype", "float64"], "--dtype does not apply to --inference"),
        (["--inference", "--plot", "x.png"], "--plot does not apply to --inference"),
    ],
)
def test_options_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert message in capsys.readouterr().err


def test_runner_rejects_unknown_predict_case_and_tool():
    for argv, message in (
        (["--cases", "Q b1"], "unknown predict case 'Q b1'"),
        (["--tools", "predict,ours"], "unknown predict tool 'ours'"),
    ):
        args = bench.parse_args(["--inference", "--quick", *argv])
        with pytest.raises(SystemExit, match=message):
            bench.run(args)


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


def test_float64_targets():
    res = {("M", "ours"): 1.0, ("M", "numpy"): 1.6, ("M", "gemm"): 0.9}
    res |= {("L", "ours"): 1.0, ("L", "gemm"): 0.8, ("L", "numpy"): 2.0, ("T", "ours"): 1.0}
    rows = bench.targets(res, None, dtype="float64", import_row=False)
    assert [(r["case"], r["dtype"], r["target"]) for r in rows] == [
        ("M", "float64", "NumPy / train_step >= 1.5"),
        ("L", "float64", "train_step / GEMM floor <= 1.10"),
    ]  # XL not run; T, S and the PyTorch goals are float32's
    assert rows[0]["measured"] == pytest.approx(1.6) and rows[0]["pass"] is True
    assert rows[1]["measured"] == pytest.approx(1.25) and rows[1]["pass"] is False


def test_inference_targets():
    res = {("M b64", 1, "onnxruntime"): 1.2, ("M b64", 2, "onnxruntime"): 0.9}
    res |= {("M b64", 1, "torch_infer"): 3.0, ("M b64", 1, "predict"): 1.0}
    rows = bench.inference_targets(res)
    assert [(r["case"], r["threads"], r["pass"]) for r in rows] == [
        ("M b64", 1, True),
        ("M b64", 2, False),
    ]


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


def test_a_missing_package_skips_its_predict_tools(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    assert bench.available("onnxruntime") == (
        "onnxruntime is not installed (pip install 'backprop-core[onnx]')"
    )
    assert "torch is not installed" in bench.available("torch_infer")
    args = bench.parse_args(["--inference", "--quick", "--cases", "S b1", "--threads", "1"])
    args.repeat = 1
    report = bench.run(args)
    assert report["tools"] == ["predict"]
    assert [(r["tool"], r["threads"]) for r in report["results"]] == [("predict", 1)]
    assert report["results"][0]["ratio_to_ours"] == 1.0
    assert {s["tool"]: s["reason"] for s in report["skipped"]} == {
        "onnxruntime": "onnxruntime is not installed (pip install 'backprop-core[onnx]')",
        "torch_infer": "torch is not installed (pip install 'backprop-core[bench]')",
    }
    assert report["targets"] == []  # no onnxruntime figure: no goal scored
    bench.print_report(report)
    printed = capsys.readouterr().out
    assert "skipped onnxruntime (*): onnxruntime is not installed" in printed


def test_import_time_from_fresh_interpreters(monkeypatch):
    # as a wheel runs it, from cached bytecode, even where the environment forbids writing it
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    imp = bench.timing.import_time(1)
    assert imp["runs"] == 1
    assert 0 < imp["import_seconds"] < imp["process_wall_seconds"]
    assert imp["numpy_import_seconds"] > 0
