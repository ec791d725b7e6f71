"""The runner's --mpi mode (`python -m backprop.bench --mpi 2`, backprop.bench.mpi): run for
real in a quick setting (a short epoch, one run, the mpich wheel's mpiexec), its JSON has the
documented structure and finite positive figures; and the bench package imports no mpi4py.
No speed is asserted here; the measured scaling lives in bench/NOTES.md."""

import json
import math
import subprocess
import sys

import pytest

from backprop import bench


def test_mpi_mode_quick_case_m_writes_json(tmp_path):
    pytest.importorskip("mpi4py", reason="--mpi needs the mpi extra (mpi4py, mpich)")
    out = tmp_path / "mpi.json"
    proc = subprocess.run(
        [sys.executable, "-m", "backprop.bench", "--mpi", "2", "--cases", "M", "--runs", "1",
         "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["mode"] == "mpi" and report["cases"] == ["M"]
    meta = report["meta"]
    assert meta["ranks"] == 2 and meta["runs"] == 1 and meta["quick"] is True
    assert meta["mpi_library"] and meta["mpi4py"] and meta["dtype"] == "float32"
    assert meta["gemm_gflops_1_thread"] > 0
    (result,) = report["results"]
    assert result["case"] == "M" and result["widths"] == [784, 128, 10]
    assert result["batch_per_rank"] == 64 and result["steps"] == 60  # a tenth with --quick
    assert result["buffer_mb"] == pytest.approx((101_770 + 4) * 4 / 1e6)
    assert result["reduction"] == "shared"  # "auto" on one machine, 0.4 MB
    configs = result["configurations"]
    assert list(configs) == ["fit-1t", "fit-2t", "dp-1", "dp-2", "fit-1t x2"]
    for name, c in configs.items():  # the BLAS threads each configuration's products used
        assert c["threads"] == (2 if name == "fit-2t" else 1), name
        assert c["blas"]
    figures = result["figures"]
    assert set(configs) | {"dp-2 / dp-1", "fit-1t x2 / fit-1t", "dp-2 sum %"} <= set(figures)
    for name, f in figures.items():
        assert f["runs"] == [f["median"]] == [f["min"]] == [f["max"]], name
        assert math.isfinite(f["median"]) and f["median"] > 0, name
    assert figures["dp-2 sum %"]["median"] < 100
    rates = {k: figures[k]["median"] for k in ("dp-1", "dp-2", "fit-1t", "fit-1t x2")}
    assert figures["dp-2 / dp-1"]["median"] == pytest.approx(rates["dp-2"] / rates["dp-1"])
    assert figures["fit-1t x2 / fit-1t"]["median"] == pytest.approx(
        rates["fit-1t x2"] / rates["fit-1t"]
    )
    (goal,) = report["goals"]
    assert goal["case"] == "M" and goal["target"] == "dp-2 / dp-1 >= 1.5"
    assert goal["measured"] == figures["dp-2 / dp-1"]["median"]
    assert goal["ceiling"] == figures["fit-1t x2 / fit-1t"]["median"]
    assert goal["pass"] == (goal["measured"] >= 1.5)
    assert "load average (1, 5, 15 min) before:" in proc.stdout
    assert "BLAS threads per process (dp: per rank): fit-1t 1, fit-2t 2, dp-1 1, dp-2 1, " in (
        proc.stdout
    )
    assert "| M | dp-2 / dp-1 >= 1.5 |" in proc.stdout


def test_mpi_options():
    args = bench.parse_args(["--mpi", "2"])
    assert args.mpi == 2 and args.cases == "M,L" and args.repeat is None  # 5 runs
    args = bench.parse_args(["--mpi", "3", "--cases", "S", "--runs", "2"])
    assert args.cases == "S" and args.repeat == 2
    assert bench.parse_args([]).mpi is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mpi", "1"], "--mpi must be >= 2"),
        (["--mpi", "2", "--threads", "1"], "--threads does not apply to --mpi"),
        (["--mpi", "2", "--tools", "ours"], "--tools does not apply to --mpi"),
        (["--mpi", "2", "--runs", "0"], "--repeat must be >= 1"),
    ],
)
def test_mpi_options_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert message in capsys.readouterr().err


def test_the_bench_package_imports_no_mpi4py():
    code = "import sys, backprop.bench; print({'mpi4py', 'backprop.bench.mpi'} & set(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "set()"
