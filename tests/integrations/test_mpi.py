"""backprop.distributed.DataParallel over MPI: two ranks launched with the mpich wheel's
mpiexec (mpi_scripts/worker.py) against single-process training on the concatenated
batches, fault handling, and a job whose rank dies. Skipped where mpi4py is not installed
(the `mpi` extra)."""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the MPI tests need the mpi extra (mpi4py, mpich)")

SCRIPTS = Path(__file__).parent / "mpi_scripts"
_beside = Path(sys.executable).parent / "mpiexec"
MPIEXEC = str(_beside) if _beside.exists() else shutil.which("mpiexec")
if MPIEXEC is None:
    pytest.skip("mpi4py is installed but no mpiexec was found", allow_module_level=True)

_spec = importlib.util.spec_from_file_location("mpi_cases", SCRIPTS / "cases.py")
assert _spec is not None and _spec.loader is not None
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

TIMEOUT = 60  # seconds for one mpiexec job; a hang fails the test instead of the run


def launch(
    scenario: str, out: Path, *args: str, ranks: int = cases.SIZE
) -> tuple[subprocess.CompletedProcess[str], float]:
    """mpiexec -n RANKS python -m mpi4py worker.py SCENARIO OUT ARGS (one BLAS thread a
    rank)."""
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "mpi4py", "worker.py"]
    start = time.monotonic()
    done = subprocess.run(
        [*cmd, scenario, str(out), *args],
        cwd=SCRIPTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return done, time.monotonic() - start


def results(scenario: str, out: Path, *args: str, ranks: int = cases.SIZE) -> list[dict]:
    done, _ = launch(scenario, out, *args, ranks=ranks)
    assert done.returncode == 0, done.stdout + done.stderr
    return [pickle.loads((out / f"{scenario}-r{r}.pkl").read_bytes()) for r in range(ranks)]


@pytest.fixture(scope="module", params=["shared", "allreduce"])
def exact(request, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path, str]:
    """The exactness scenario with each way of summing a step over the ranks."""
    out = tmp_path_factory.mktemp("mpi_exact")
    return results("exact", out, request.param), out, request.param


@pytest.fixture(scope="module", params=["shared", "allreduce"])
def faults(request, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The fault scenarios with each way of summing a step (the failure flags go through it)."""
    return results("faults", tmp_path_factory.mktemp("mpi_faults"), request.param)


# -- exactness ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(cases.CASES))
def test_the_ranks_stay_bit_identical(exact, name) -> None:
    first, second = (r[name] for r in exact[0])
    np.testing.assert_array_equal(first["weights"], second["weights"])
    for key, buf in first["buffers"].items():
        np.testing.assert_array_equal(buf, second["buffers"][key])
    assert first["steps"] == second["steps"] > 0
    assert first["records"] == second["records"]  # the same History, epoch_time included
    assert first["dropout_rng"] != second["dropout_rng"]  # each rank its own dropout stream


def test_the_fits_used_the_reduction_asked_for_and_closed_it(exact) -> None:
    for rank in exact[0]:
        for name in cases.CASES:
            assert rank[name]["method"] == exact[2]
            assert rank[name]["closed"] is None


@pytest.mark.parametrize("name", ["sgd", "adam", "empty", "float32", "sparse"])
def test_equals_single_process_training_on_the_concatenated_batches(exact, name) -> None:
    """Rank 1 started from other weights: rank 0's state was broadcast. sgd: unequal shards
    (rank 1 exhausted after 2 of 6 steps), shuffled, sample weights with zeros, l2; adam:
    validation metrics reduced over the ranks' validation shards (r2 in two passes); empty:
    rank 1 has no training rows (and rank 0 no validation rows)."""
    case = cases.CASES[name]
    got = exact[0][0][name]
    reference, records = cases.reference(case)
    rtol = 1e-10 if case["dtype"] == "float64" else 2e-5
    want = reference.get_state()
    scale = np.max(np.abs(want["weights"]))
    assert np.max(np.abs(got["weights"] - want["weights"])) <= rtol * scale
    assert got["steps"] == want["optimizer"]["steps"]
    assert len(got["records"]) == len(records) == case["fit"]["epochs"]
    for mine, theirs in zip(got["records"], records, strict=True):
        assert set(mine) == {*theirs, "lr", "epoch_time"}
        for key, value in theirs.items():
            assert mine[key] == pytest.approx(value, rel=rtol, abs=1e-12), key


def test_only_rank_0_writes_files(exact) -> None:
    out = exact[1]
    assert sorted(p.name for p in out.glob("ckpt-*")) == [f"ckpt-r0-{e}.npz" for e in (1, 2, 3)]
    assert [p.name for p in out.glob("log-*")] == ["log-r0.csv"]
    assert len((out / "log-r0.csv").read_text().splitlines()) == 1 + 3


# -- the step's sum -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sums(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return results("sums", tmp_path_factory.mktemp("mpi_sums"), ranks=3)


def test_step_sums_equal_numpy_and_are_bit_identical_across_ranks(sums) -> None:
    """3 ranks (parts of unequal length), 30 steps with the ranks held up at random points;
    against NumPy's float64 sum of the ranks' data (the same data, regenerated): float64
    within 1e-13, float32 within 1e-6 (of the largest sum's magnitude)."""
    keys = [k for k in sums[0] if k.startswith(("shared-", "allreduce-"))]
    assert len(keys) == 2 * 2 * 5
    for key in keys:
        method, dtype, _ = key.split("-")
        first = sums[0][key]
        assert first["method"] == method
        tol = 1e-13 if dtype == "float64" else 1e-6
        want = first["want"]
        assert first["got"].dtype == np.dtype(dtype)
        assert np.max(np.abs(first["got"] - want)) <= tol * max(1.0, np.max(np.abs(want))), key
        for other in sums[1:]:
            np.testing.assert_array_equal(other[key]["got"], first["got"])


def test_step_sum_methods_and_their_errors(sums) -> None:
    for rank in sums:
        # one machine: auto takes shared memory from 16 KiB (2048 float64) up
        assert rank["make-auto-3"] == rank["make-allreduce-2048"] == "allreduce"
        assert rank["make-auto-2048"] == rank["make-shared-3"] == "shared"
        assert rank["make-nccl-3"].startswith("ValueError: reduction must be one of 'auto'")
        assert "DataParallel: reduction must be one of" in rank["dp-ring"]
        assert "'ring'" in rank["dp-ring"]
        # 3 ranks' slices and the result of 80,000 bytes: more than half of 100,000 free
        assert rank["tight-auto"] == "allreduce"
        assert rank["tight-shared"].startswith("ValueError: reduction='shared' needs 0.3 MiB")


# -- faults ---------------------------------------------------------------------------------

FAULTS = {  # name: (exception on every rank, words of its message, optimizer steps taken)
    "bad_input": ("RuntimeError", ["rank 1 in setup", "X holds NaN"], 0),
    "arguments": ("ValueError", ["the same on every rank", "rank 1", "batch_size=5"], 0),
    "config": ("ValueError", ["model's config must be the same", "rank 1", "'lr': 0.5"], 0),
    "nonfinite": ("FloatingPointError", ["rank 1 in epoch 1, step 3", "loss is inf"], 2),
    "diverge": ("FloatingPointError", ["diverged in epoch 1, step 1", "overflow"], 0),
    "callback_error": ("RuntimeError", ["rank 1 in on_batch_end", "ZeroDivisionError"], 2),
    "interrupt": ("KeyboardInterrupt", ["interrupted on rank 1"], 2),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_on_one_rank_stops_every_rank_alike(faults, name) -> None:
    error, words, steps = FAULTS[name]
    first, second = (r[name] for r in faults)
    for got in (first, second):
        assert got["error"] == error, got
        for word in words:
            assert word in got["message"]
        assert got["steps"] == steps
    assert first["message"] == second["message"]
    np.testing.assert_array_equal(first["weights"], second["weights"])
    if name == "interrupt":
        assert first["stop_reason"] == second["stop_reason"] == "interrupted"


def test_on_nonfinite_stop_and_a_stop_on_one_rank_end_every_rank_alike(faults) -> None:
    for got in (r["nonfinite_stop"] for r in faults):
        assert got["error"] is None and got["stop_reason"] == "non-finite"
        assert got["steps"] == 2 and "rank 1 in epoch 1, step 3" in got["warnings"][0]
    for got in (r["stop"] for r in faults):  # only rank 0 had the callback
        assert got["stop_reason"] == "callback" and len(got["records"]) == 2
    for got in (r["after"] for r in faults):  # the ranks are still in step afterwards
        assert got["error"] is None and got["steps"] == 4
    np.testing.assert_array_equal(faults[0]["after"]["weights"], faults[1]["after"]["weights"])


# -- a rank that dies, an uncaught error ----------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "reduction"), [("kill", "shared"), ("kill", "allreduce"), ("abort", "auto")]
)
def test_the_job_ends_when_a_rank_dies_or_raises_uncaught(tmp_path, scenario, reduction) -> None:
    """kill: rank 1 SIGKILLs itself at step 4 of a long fit (rank 0 then waits in the step's
    barrier or Allreduce); abort: rank 1 raises outside fit while rank 0 waits in a Barrier
    (python -m mpi4py calls MPI_Abort). mpiexec must end the job with an error well within
    the timeout, and rank 0 must not carry on."""
    before = set(SHM.glob("mpich_shm_*"))
    try:
        done, seconds = launch(scenario, tmp_path, reduction)
    finally:
        _remove_orphans(set(SHM.glob("mpich_shm_*")) - before)
    assert done.returncode != 0
    assert seconds < TIMEOUT
    assert not list(tmp_path.glob("finished-*"))


SHM = Path("/dev/shm")


def _remove_orphans(segments: set[Path], wait: float = 5.0) -> None:
    """mpich leaves the shared-memory segment (2 MB, in RAM) of a job it ended this way:
    remove those no live process maps any more, waiting up to `wait` seconds for the job's
    processes, which may still be exiting when mpiexec returns."""
    left, deadline = set(segments), time.monotonic() + wait
    while left:
        mapped = set()
        for maps in Path("/proc").glob("[0-9]*/maps"):
            try:
                mapped.update(line.rsplit(" ", 1)[-1] for line in maps.read_text().splitlines())
            except OSError:  # the process ended, or is not ours to read
                continue
        for segment in [s for s in left if str(s) not in mapped]:
            segment.unlink(missing_ok=True)
            left.discard(segment)
        if not left or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def test_import_backprop_does_not_import_mpi4py() -> None:
    code = "import sys, backprop, backprop.distributed; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
