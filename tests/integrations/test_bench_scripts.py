"""bench/memory.py and bench/scaling.py: their core functions run at tiny sizes and give
figures of the documented structure (positive, finite). No memory or speed is asserted here:
the figures live in bench/NOTES.md."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name):
    """A bench/ script as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and annotations look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def memory():
    return load("memory")


@pytest.fixture(scope="module")
def scaling():
    return load("scaling")


def test_theoretical_need_counts_parameters_state_and_two_batches(memory):
    from backprop.bench.cases import CASES

    n_params = 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10
    acts = 2 * 256 * (784 + 1024 + 1024 + 10) * 4
    sgd = memory.theoretical_need(CASES["L"], "sgd")
    assert sgd == {"parameters": 4 * n_params, "gradients": 4 * n_params, "optimizer_state": 0,
                   "activations": acts, "total": 8 * n_params + acts}  # fmt: skip
    adam = memory.theoretical_need(CASES["L"], "adam")
    assert adam["optimizer_state"] == 8 * n_params
    assert adam["total"] == sgd["total"] + 8 * n_params


def test_memory_compare_in_subprocesses(memory):
    rows = memory.compare(["smoke"], ["ours", "numpy"], ["sgd"], epochs=1, repeat=1)
    assert [(r["case"], r["tool"], r["optimizer"]) for r in rows] == [
        ("smoke", "ours", "sgd"),
        ("smoke", "numpy", "sgd"),
    ]
    for r in rows:
        # at this size (0.26 MiB of weights) the net figures are within a few pages of 0
        for key in ("net_peak_mib", "model_mib", "in_fit_mib", "warm_up_mib", "ratio_to_need"):
            assert math.isfinite(r[key]), key
        assert r["ratio_to_ours"] is None or math.isfinite(r["ratio_to_ours"])
        assert r["need_mib"] > 0 and r["baseline_peak_mib"] > 0 and r["seconds"] > 0
        assert r["threads"] >= 1
        assert sum(r["need_parts_mib"].values()) == pytest.approx(r["need_mib"])
    goals = memory.goals(rows)
    assert [g["goal"] for g in goals] == ["ours / need <= 1.2"]  # no torch row: no torch goal
    assert goals[0]["pass"] == (goals[0]["measured"] <= 1.2)
    text = memory.table(rows)
    assert text.count("\n") == 3 and "| smoke | sgd | numpy |" in text


def test_memory_measure_reports_peaks(memory):
    for tool in ("ours", "numpy"):
        out = memory.measure(tool, "smoke", "sgd", 1, baseline=False)
        assert out["maxrss_kib"] > 0 and out["rss_built_kib"] > 0 and out["seconds"] > 0
        if out["peak_reset"]:  # Linux: the peak during fit, reset before it
            assert out["maxrss_kib"] >= out["fit_peak_kib"] >= out["rss_built_kib"]
    base = memory.measure("ours", "smoke", "adam", 1, baseline=True)
    assert base["baseline"] and "rss_built_kib" not in base and base["fit_peak_kib"] is None
    assert base["maxrss_kib"] >= base["rss_kib"] > 0


def test_memory_torch_fit_tiny(memory):
    pytest.importorskip("torch")
    from backprop.bench.cases import make_data

    for optimizer in ("sgd", "adam"):
        out = memory.fit_torch(memory.TINY, make_data(memory.TINY, 2), optimizer, 2)
        assert out["rss_built_kib"] > 0 and out["threads"] >= 1
        assert out["peak_reset"] in (True, False)


def test_memory_numpy_refuses_adam(memory):
    from backprop.bench.cases import make_data

    with pytest.raises(ValueError, match="SGD only"):
        memory.fit_numpy(memory.TINY, make_data(memory.TINY, 2), "adam", 1)


def test_scaling_main_writes_json_and_plot(scaling, tmp_path, capsys):
    out, png = tmp_path / "scaling.json", tmp_path / "scaling.png"
    scaling.main(["--batches", "1,4", "--widths", "16,8", "--min-seconds", "0.001",
                  "--json", str(out), "--plot", str(png)])  # fmt: skip
    report = json.loads(out.read_text())
    meta = report["meta"]
    assert {"date", "cpu", "blas", "threads", "load_average_before", "net"} <= meta.keys()
    assert meta["disturbed_points"] == sum(r["disturbed"] for r in report["results"])
    assert report["meta"]["threads"] >= 1
    rows = report["results"]
    assert [(r["width"], r["batch"]) for r in rows] == [(16, 1), (16, 4), (8, 1), (8, 4)]
    for r in rows:
        assert r["widths"] == [r["width"], r["width"], r["width"], 10]
        for key in ("seconds", "floor_seconds", "ratio", "gflops", "floor_gflops"):
            assert r[key] > 0 and math.isfinite(r[key]), key
        assert r["ratio"] == pytest.approx(r["seconds"] / r["floor_seconds"])
        assert r["calls"] >= 1 and r["repeats"] in (3, 5) and 1 <= r["tries"] <= 3
        assert r["others_cpu"] is None or r["others_cpu"] >= 0  # other processes' load
        assert r["disturbed"] in (True, False)
    text = capsys.readouterr().out
    assert "| batch | width 8 | width 16 |" in text and "| 4 |" in text
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes().startswith(b"\x89PNG")


def test_scaling_case_is_two_hidden_layers(scaling):
    case = scaling.scaling_case(32, 64)
    assert case.widths == (64, 64, 64, 10) and case.batch == 32
    assert case.hidden == "relu" and case.loss == "ce"
