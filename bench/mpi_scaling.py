"""Data-parallel scaling over MPI (backprop.distributed.DataParallel), float32:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/mpi_scaling.py [--mpi 2]
        [--cases M,L] [--runs 5]

Per case, each run times, one after the other (a pair of runs sees the same machine load):
- fit-1t: one process, model.fit, 1 BLAS thread, batch b (the per-rank batch);
- fit-2t: one process, model.fit, 2 BLAS threads, batch N*b (the same global batch as N ranks);
- dp-1: `mpiexec -n 1`, DataParallel.fit, 1 BLAS thread, batch b;
- dp-N: `mpiexec -n N`, DataParallel.fit, 1 BLAS thread per rank, batch b per rank;
- fit-1t xN (sum): N independent fit-1t processes at once, their summed throughput: what N
  ranks could reach on this machine at that moment with no communication at all.
Throughput is training samples per second of one epoch's step loop (the slowest rank's time),
after a warm-up epoch. allreduce% is the share of the step loop spent in the step's Allreduce
(waiting for the slower rank included); bare% the share a bare Allreduce of the same buffer
would take (timed alone after the fit). Printed: the median over the runs of each figure and
of the paired ratios (dp-N / dp-1 is the scaling; fit-1t xN / fit-1t the most any N
processes could scale on the machine at that moment), and the load average before and after.
The GEMM rate (one thread, float32, L's largest product) is measured too, for the cost model
in docs/distributed.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

CASES = {  # name: (widths, batch per rank, steps timed)
    "M": ([784, 128, 10], 64, 600),
    "L": ([784, 1024, 1024, 10], 256, 40),
}
HERE = Path(__file__).resolve()


def _model(widths: list[int]) -> Any:  # backprop imported late: the thread settings first
    import backprop as bp

    layers: list[bp.Layer] = []
    for a, b in itertools.pairwise(widths):
        layers += [bp.Dense(a, b), bp.ReLU()]
    model = bp.Sequential(layers[:-1], dtype="float32", seed=0)
    return model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.01, momentum=0.9))


def _data(widths: list[int], rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, widths[0])).astype(np.float32)
    return X, rng.integers(0, widths[-1], rows)


def worker(mode: str, case: str, threads: int, batch: int, steps: int) -> None:
    """One timed epoch (after a warm-up one); prints a JSON line (rank 0 only for dp)."""
    import backprop as bp

    bp.set_num_threads(threads)
    if mode == "gemm":
        print(json.dumps({"gflops": gemm_rate()}))
        return
    widths = CASES[case][0]
    model = _model(widths)
    if mode == "fit":
        X, y = _data(widths, batch * steps, 0)
        model.fit(X[: batch * 5], y[: batch * 5], epochs=1, batch_size=batch, seed=0)
        history = model.fit(X, y, epochs=1, batch_size=batch, seed=0)
        seconds = history.epoch_time[0]  # the epoch's steps, as dp.stats["seconds"]
        print(json.dumps({"samples_per_s": X.shape[0] / seconds}))
        return
    from mpi4py import MPI

    from backprop.distributed import DataParallel

    comm = MPI.COMM_WORLD
    X, y = _data(widths, batch * steps, comm.Get_rank())
    dp = DataParallel(model, comm)
    dp.fit(X[: batch * 5], y[: batch * 5], epochs=1, batch_size=batch, seed=0)
    comm.Barrier()
    dp.fit(X, y, epochs=1, batch_size=batch, seed=0)
    seconds = comm.allreduce(dp.stats["seconds"], op=MPI.MAX)
    share = comm.allreduce(dp.stats["allreduce_seconds"] / dp.stats["seconds"]) / comm.size
    compute = comm.allreduce(dp.stats["seconds"] - dp.stats["allreduce_seconds"]) / comm.size
    buf = np.zeros(model.n_params + 4, dtype=np.float32)
    times = []
    for _ in range(25):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(time.perf_counter() - start)
    bare = comm.allreduce(statistics.median(times[5:]), op=MPI.MAX)
    if comm.Get_rank() == 0:
        total = X.shape[0] * comm.size
        print(json.dumps({"samples_per_s": total / seconds, "allreduce_share": share,
                          "bare_share": bare * steps / seconds, "bare_ms": bare * 1e3,
                          "compute_ms": compute / steps * 1e3,
                          "buffer_mb": buf.nbytes / 1e6}))  # fmt: skip


def gemm_rate() -> float:
    """GFLOP/s of float32 (256x1024) @ (1024x1024), L's largest product (numpy's matmul,
    the same OpenBLAS as the core's products)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(256, 1024)).astype(np.float32)
    b = rng.normal(size=(1024, 1024)).astype(np.float32)
    a @ b
    times = []
    for _ in range(20):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * 256 * 1024 * 1024 / min(times) / 1e9


def _flops_per_sample(widths: list[int]) -> int:
    """Multiply-adds x 2 of one sample's forward and backward pass (no dX for the input)."""
    products = [a * b for a, b in itertools.pairwise(widths)]
    return 2 * (3 * sum(products) - products[0])


def _env(threads: int) -> dict[str, str]:
    drop = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}


def _run(cmd: list[str], threads: int) -> dict:
    done = subprocess.run(
        cmd, env=_env(threads), capture_output=True, text=True, timeout=600, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_together(cmd: list[str], copies: int) -> dict:
    """`copies` independent one-thread processes at once: their summed throughput (what N
    ranks could reach on this machine at that moment with no communication at all)."""
    procs = [
        subprocess.Popen(cmd, env=_env(1), stdout=subprocess.PIPE, text=True) for _ in range(copies)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    rates = [json.loads(out.strip().splitlines()[-1])["samples_per_s"] for out in outs]
    return {"samples_per_s": sum(rates)}


def _mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else "mpiexec"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mpi", type=int, default=2, help="ranks N to compare with 1")
    parser.add_argument("--cases", default="M,L")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bind", action="store_true", help="mpiexec -bind-to core")
    parser.add_argument("--worker", nargs=5, metavar=("MODE", "CASE", "THREADS", "BATCH", "STEPS"))
    args = parser.parse_args()
    if args.worker:
        mode, case, threads, batch, steps = args.worker
        worker(mode, case, int(threads), int(batch), int(steps))
        return
    me = [sys.executable, str(HERE), "--worker"]
    mpi = [_mpiexec(), *(["-bind-to", "core"] if args.bind else []), "-n"]
    n = args.mpi
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}")
    gemm = _run([*me, "gemm", "L", "1", "0", "0"], 1)["gflops"]
    print(f"GEMM rate, 1 thread, float32 256x1024 @ 1024x1024: {gemm:.1f} GFLOP/s")
    for case in args.cases.split(","):
        widths, b, steps = CASES[case]
        runs: dict[str, list[float]] = {}
        for _ in range(args.runs):
            dp = [*me[1:], "dp", case, "1", str(b), str(steps)]
            fit1 = [*me, "fit", case, "1", str(b), str(steps)]
            got = {
                "fit-1t": _run(fit1, 1),
                "fit-2t": _run([*me, "fit", case, "2", str(n * b), str(steps)], 2),
                "dp-1": _run([*mpi, "1", sys.executable, *dp], 1),
                f"dp-{n}": _run([*mpi, str(n), sys.executable, *dp], 1),
                f"fit-1t x{n} (sum)": _run_together(fit1, n),
            }
            for name, r in got.items():
                runs.setdefault(name, []).append(r["samples_per_s"])
            runs.setdefault(f"dp-{n} / dp-1", []).append(
                got[f"dp-{n}"]["samples_per_s"] / got["dp-1"]["samples_per_s"]
            )
            runs.setdefault(f"dp-{n} / fit-1t x{n}", []).append(
                got[f"dp-{n}"]["samples_per_s"] / got[f"fit-1t x{n} (sum)"]["samples_per_s"]
            )
            runs.setdefault(f"fit-1t x{n} / fit-1t", []).append(
                got[f"fit-1t x{n} (sum)"]["samples_per_s"] / got["fit-1t"]["samples_per_s"]
            )
            runs.setdefault(f"dp-{n} / fit-2t", []).append(
                got[f"dp-{n}"]["samples_per_s"] / got["fit-2t"]["samples_per_s"]
            )
            runs.setdefault(f"dp-{n} allreduce%", []).append(
                100 * got[f"dp-{n}"]["allreduce_share"]
            )
            runs.setdefault(f"dp-{n} bare%", []).append(100 * got[f"dp-{n}"]["bare_share"])
            runs.setdefault(f"dp-{n} bare ms", []).append(got[f"dp-{n}"]["bare_ms"])
            for name in ("dp-1", f"dp-{n}"):  # a step's time outside the Allreduce
                runs.setdefault(f"{name} compute ms", []).append(got[name]["compute_ms"])
        flops = _flops_per_sample(widths)
        rate = statistics.median(runs["fit-1t"]) * flops / 1e9
        print(f"\ncase {case}: {widths}, batch {b} per rank, {steps} steps, float32, "
              f"median of {args.runs} paired runs (min - max); fit-1t runs the step's "
              f"{flops / 1e6:.2f} MFLOP per sample at {rate:.1f} GFLOP/s")  # fmt: skip
        for name, values in runs.items():
            print(f"  {name:18s} {statistics.median(values):12,.3f}   "
                  f"({min(values):,.3f} - {max(values):,.3f})")  # fmt: skip
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
