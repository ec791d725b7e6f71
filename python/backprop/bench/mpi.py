"""`python -m backprop.bench --mpi N [--cases M,L] [--runs 5] [--quick] [--json PATH]`:
data-parallel scaling over MPI (backprop.distributed.DataParallel), float32.

Per case, each run times these one after the other, so the figures of a run (and their
ratios, the paired ratios) see the same machine load:
- fit-1t: one process, model.fit, 1 BLAS thread, batch b (the per-rank batch);
- fit-Nt: one process, model.fit, N BLAS threads, batch N*b (the global batch of N ranks);
- dp-1: `mpiexec -n 1`, DataParallel.fit, 1 BLAS thread, batch b;
- dp-N: `mpiexec -n N`, DataParallel.fit, 1 BLAS thread per rank, batch b per rank;
- fit-1t xN: N independent fit-1t processes at once, their summed throughput: what N ranks
  could reach on this machine at that moment with no communication at all (the ceiling).
Throughput is training samples per second of one epoch's step loop (the slowest rank's
time) after a warm-up epoch. sum% is the share of dp-N's step loop spent in the step's sum
over the ranks (DataParallel's reduction, "auto": a shared-memory sum on one machine;
waiting for the slower rank included); bare% the share a bare sum of the same buffer takes
(timed alone after the fit). The report gives, per figure, the
median over the runs with its min and max, the project's scaling goals for 2 ranks, the
load average before and after, the BLAS and threads each configuration ran with, and the
one-thread GEMM rate (L's largest product) for the cost model in docs/distributed.md.

Each configuration runs in its own processes (`python -m backprop.bench.mpi MODE ...`, the
worker below). Nothing here imports mpi4py except the `dp` worker: `--mpi` needs the `mpi`
extra (mpi4py and the mpich wheel, which ships mpiexec).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import backprop as bp
from backprop_core import blas_source

from .cases import CASES, Case, make_data
from .report import write_json
from .timing import blas_report, environment_note, load_average, machine

#: steps in the timed epoch, per case (others: from the case's work, see steps_for)
STEPS = {"M": 600, "L": 40}
#: the project's goals for 2 ranks on one 2-core machine: dp-2 / dp-1 at least this
GOALS = {"L": 1.8, "M": 1.5}
WARMUP_STEPS = 5
TIMEOUT = 600  # seconds for one configuration's processes


def steps_for(case: Case, quick: bool) -> int:
    """Steps in the timed epoch: an epoch of about 0.2-0.6 s at one thread (a tenth with
    quick, at least 4)."""
    steps = STEPS.get(case.name) or max(4, min(2000, int(1e10 // case.flops)))
    return max(4, steps // 10) if quick else steps


def flops_per_sample(case: Case) -> int:
    """Multiply-adds x2 of one sample's forward and backward pass (no dX for the input)."""
    return case.flops // case.batch


# -- the worker: one configuration, in its own process(es) -------------------------------------


def _model(case: Case) -> Any:
    act = {"relu": bp.ReLU, "sigmoid": bp.Sigmoid}[case.hidden]
    layers: list[bp.Layer] = []
    for k, (a, b) in enumerate(itertools.pairwise(case.widths)):
        layers += [act(), bp.Dense(a, b)] if k else [bp.Dense(a, b)]
    model = bp.Sequential(layers, dtype="float32", seed=0)
    loss = bp.MSE() if case.loss == "mse" else bp.SoftmaxCrossEntropy()
    return model.compile(loss, bp.SGD(lr=0.01, momentum=0.9))


def _blas() -> dict[str, Any]:
    """The BLAS the products ran on and its threads (after the timing: this loads scipy's)."""
    source = blas_source()
    rows = [r for r in blas_report() if r["owner"] == source and r["user_api"] == "blas"]
    name = "unknown (threadpoolctl is not installed)"
    if rows:
        r = rows[0]
        name = f"{source}'s {r['library']} {r['version']}, kernel {r['kernel']}"
    return {"blas": name, "threads": bp.get_num_threads()}


def gemm_rate() -> float:
    """GFLOP/s of float32 (256x1024) @ (1024x1024), L's largest product (numpy's matmul)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 1024), dtype=np.float32)
    b = rng.standard_normal((1024, 1024), dtype=np.float32)
    a @ b
    times = []
    for _ in range(20):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * 256 * 1024 * 1024 / min(times) / 1e9


def worker(mode: str, case_name: str, threads: int, batch: int, steps: int) -> dict[str, Any]:
    """One configuration: a warm-up epoch, then one timed epoch; the figures (for dp: the
    same on every rank)."""
    bp.set_num_threads(threads)
    if mode == "gemm":
        return {"gflops": gemm_rate(), **_blas()}
    case = CASES[case_name]
    case = dataclasses.replace(case, batch=batch)
    model = _model(case)
    warm = batch * WARMUP_STEPS
    if mode == "fit":
        data = make_data(case, steps, seed=0)
        model.fit(data.X[:warm], data.y[:warm], epochs=1, batch_size=batch, seed=0)
        history = model.fit(data.X, data.y, epochs=1, batch_size=batch, seed=0)
        seconds = history.epoch_time[0]  # the epoch's steps, as DataParallel's stats
        return {"samples_per_s": data.X.shape[0] / seconds, **_blas()}
    if mode != "dp":
        raise SystemExit(f"unknown worker mode {mode!r}")
    from mpi4py import MPI  # the mpi extra: only in the dp worker

    from ..distributed import DataParallel
    from ..reduction import step_sum

    comm = MPI.COMM_WORLD
    data = make_data(case, steps, seed=comm.Get_rank())
    dp = DataParallel(model, comm)
    dp.fit(data.X[:warm], data.y[:warm], epochs=1, batch_size=batch, seed=0)
    comm.Barrier()
    dp.fit(data.X, data.y, epochs=1, batch_size=batch, seed=0)
    stats = dp.stats
    seconds = comm.allreduce(stats["seconds"], op=MPI.MAX)
    share = comm.allreduce(stats["allreduce_seconds"] / stats["seconds"]) / comm.size
    compute = comm.allreduce(stats["seconds"] - stats["allreduce_seconds"]) / comm.size
    method = dp.reduction_method
    assert method is not None  # fit made the sum
    dp.close()
    summing = step_sum(MPI, comm, model.n_params + 4, np.float32, method)  # as the step's
    times = []
    for _ in range(25):
        comm.Barrier()
        start = time.perf_counter()
        summing.reduce()
        times.append(time.perf_counter() - start)
    summing.free()
    bare = comm.allreduce(statistics.median(times[5:]), op=MPI.MAX)
    return {
        "samples_per_s": data.X.shape[0] * comm.size / seconds,
        "sum_share": share,
        "bare_share": bare * stats["steps"] / seconds,
        "bare_ms": bare * 1e3,
        "compute_ms": compute / stats["steps"] * 1e3,
        "buffer_mb": summing.buf.nbytes / 1e6,
        "reduction": method,
        "ranks": comm.size,
        "rank": comm.Get_rank(),
        "mpi": " ".join(MPI.Get_library_version().splitlines()[0].split()),
        **_blas(),
    }


def _worker_main(argv: list[str]) -> None:
    mode, case, threads, batch, steps = argv
    out = worker(mode, case, int(threads), int(batch), int(steps))
    if out.get("rank", 0) == 0:  # dp: every rank has the same figures
        print(json.dumps(out), flush=True)


# -- the driver --------------------------------------------------------------------------------


def mpiexec() -> str | None:
    """The mpich wheel's mpiexec beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _env(threads: int) -> dict[str, str]:
    return os.environ | {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}


def _last_json(out: str, cmd: list[str]) -> dict[str, Any]:
    lines = out.strip().splitlines()
    if not lines:
        raise SystemExit(f"--mpi: {' '.join(cmd)} printed nothing")
    return dict(json.loads(lines[-1]))


def _run(cmd: list[str], threads: int) -> dict[str, Any]:
    done = subprocess.run(
        cmd, env=_env(threads), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise SystemExit(
            f"--mpi: {' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
        )
    return _last_json(done.stdout, cmd)


def _run_together(cmd: list[str], copies: int) -> dict[str, Any]:
    """`copies` independent one-thread processes at once: their summed throughput."""
    procs = [
        subprocess.Popen(
            cmd, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(copies)
    ]
    outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"--mpi: {' '.join(cmd)} failed (exit {p.returncode}):\n{err[-3000:]}")
    got = [_last_json(out, cmd) for out, _ in outs]
    return {**got[0], "samples_per_s": sum(g["samples_per_s"] for g in got)}


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the configurations on the chosen cases, `args.repeat` paired runs (default 5);
    the report --json writes."""
    n = int(args.mpi)
    runs = args.repeat if args.repeat is not None else 5
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            raise SystemExit(f"--cases: unknown case {c!r}; choose from {','.join(CASES)}")
    try:
        import mpi4py  # the package only (no MPI library loaded): its version
    except ImportError:
        raise SystemExit(
            "--mpi needs mpi4py and an MPI: pip install 'backprop-core[mpi]'"
        ) from None
    launcher = mpiexec()
    if launcher is None:
        raise SystemExit("--mpi: no mpiexec found (the mpich wheel ships one: pip install mpich)")
    me = [sys.executable, "-m", "backprop.bench.mpi"]
    dp = [sys.executable, "-m", "mpi4py", "-m", "backprop.bench.mpi", "dp"]  # aborts on error
    print(environment_note(), flush=True)
    load_before = load_average()
    gemm = _run([*me, "gemm", "L", "1", "0", "0"], 1)
    print(f"GEMM rate, 1 thread, float32 256x1024 @ 1024x1024: {gemm['gflops']:.1f} GFLOP/s")
    fit_n, dp_n, together = f"fit-{n}t", f"dp-{n}", f"fit-1t x{n}"
    results: list[dict[str, Any]] = []
    mpi_library = ""
    for name in cases:
        case = CASES[name]
        b, steps = case.batch, steps_for(case, args.quick)
        per_run: dict[str, list[float]] = {}
        configs: dict[str, dict[str, Any]] = {}
        for i in range(runs):
            fit1 = [*me, "fit", name, "1", str(b), str(steps)]
            got = {
                "fit-1t": _run(fit1, 1),
                fit_n: _run([*me, "fit", name, str(n), str(n * b), str(steps)], n),
                "dp-1": _run([launcher, "-n", "1", *dp, name, "1", str(b), str(steps)], 1),
                dp_n: _run([launcher, "-n", str(n), *dp, name, "1", str(b), str(steps)], 1),
                together: _run_together(fit1, n),
            }
            rate = {k: float(v["samples_per_s"]) for k, v in got.items()}
            figures = {
                **rate,
                f"{dp_n} / dp-1": rate[dp_n] / rate["dp-1"],
                f"{together} / fit-1t": rate[together] / rate["fit-1t"],
                f"{dp_n} / {together}": rate[dp_n] / rate[together],
                f"{dp_n} / {fit_n}": rate[dp_n] / rate[fit_n],
                f"{dp_n} sum %": 100 * got[dp_n]["sum_share"],
                f"{dp_n} bare sum %": 100 * got[dp_n]["bare_share"],
                f"{dp_n} bare sum ms": got[dp_n]["bare_ms"],
                "dp-1 compute ms": got["dp-1"]["compute_ms"],
                f"{dp_n} compute ms": got[dp_n]["compute_ms"],
            }
            for k, v in figures.items():
                per_run.setdefault(k, []).append(float(v))
            line = ", ".join(f"{k} {rate[k]:,.0f}" for k in rate)
            print(f"  {name} run {i + 1}/{runs}: {line} samples/s", flush=True)
            configs = {k: {"blas": v["blas"], "threads": v["threads"]} for k, v in got.items()}
            mpi_library = got[dp_n]["mpi"]
            buffer_mb = got[dp_n]["buffer_mb"]
            reduction = got[dp_n]["reduction"]
        results.append(
            {
                "case": name,
                "widths": list(case.widths),
                "batch_per_rank": b,
                "steps": steps,
                "flops_per_sample": flops_per_sample(case),
                "buffer_mb": buffer_mb,
                "reduction": reduction,
                "configurations": configs,
                "figures": {k: _summary(v) for k, v in per_run.items()},
            }
        )
    goals = []
    if n == 2:
        for r in results:
            if r["case"] in GOALS:
                measured = r["figures"][f"{dp_n} / dp-1"]["median"]
                goals.append(
                    {
                        "case": r["case"],
                        "target": f"{dp_n} / dp-1 >= {GOALS[r['case']]}",
                        "measured": measured,
                        "ceiling": r["figures"][f"{together} / fit-1t"]["median"],
                        "pass": measured >= GOALS[r["case"]],
                    }
                )
    meta = machine(("mpi4py",)) | {
        "mpi4py": mpi4py.__version__,
        "mpi_library": mpi_library,
        "dtype": "float32",
        "ranks": n,
        "runs": runs,
        "quick": bool(args.quick),
        "gemm_gflops_1_thread": gemm["gflops"],
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    return {"mode": "mpi", "meta": meta, "cases": cases, "results": results, "goals": goals}


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def print_report(report: dict[str, Any]) -> None:
    meta = report["meta"]
    n = meta["ranks"]
    print()
    print(meta["environment"])
    print(f"{meta['date']} | {meta['cpu']} | {meta['cpus']} CPUs | Python {meta['python']}")
    print(
        f"backprop {meta['backprop']}, numpy {meta['numpy']}, mpi4py {meta['mpi4py']}, "
        f"{meta['mpi_library']}; {meta['dtype']}"
    )
    print(
        f"load average (1, 5, 15 min) before: {meta['load_average_before']}, after: "
        f"{meta['load_average_after']} (other processes share the CPUs when above 0)"
    )
    print(f"GEMM rate, 1 thread: {meta['gemm_gflops_1_thread']:.1f} GFLOP/s")
    for r in report["results"]:
        rate = r["figures"]["fit-1t"]["median"] * r["flops_per_sample"] / 1e9
        print(
            f"\ncase {r['case']}: {'-'.join(map(str, r['widths']))}, batch {r['batch_per_rank']} "
            f"per rank, {r['steps']} steps, a {r['buffer_mb']:.2f} MB buffer summed by "
            f"{r.get('reduction', 'allreduce')} each step; median of "
            f"{meta['runs']} paired runs (min - max); fit-1t runs "
            f"{r['flops_per_sample'] / 1e6:.2f} MFLOP per sample at {rate:.1f} GFLOP/s"
        )
        configs = r["configurations"]
        threads = ", ".join(f"{k} {c['threads']}" for k, c in configs.items())
        for blas in dict.fromkeys(c["blas"] for c in configs.values()):
            print(f"  BLAS: {blas}")
        print(f"  BLAS threads per process (dp: per rank): {threads}")
        for name, f in r["figures"].items():
            spread = f"({_fmt(f['min'])} - {_fmt(f['max'])})"
            print(f"  {name:<26} {_fmt(f['median']):>10}   {spread}")
    if report["goals"]:
        print(f"\nThe project's scaling goals ({n} ranks; ceiling: fit-1t x{n} / fit-1t, the most")
        print(f"{n} processes could gain on this machine during the run):")
        print("| case | target | measured | ceiling | pass |\n|---|---|---|---|---|")
        for g in report["goals"]:
            ok = "pass" if g["pass"] else "FAIL"
            print(
                f"| {g['case']} | {g['target']} | {g['measured']:.2f} | {g['ceiling']:.2f} | {ok} |"
            )


def main(args: argparse.Namespace) -> None:
    """The runner's --mpi mode: run, print, and write the --json file."""
    report = run(args)
    print_report(report)
    if args.json:
        write_json(report, args.json)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":  # a worker: python -m backprop.bench.mpi MODE CASE THREADS BATCH STEPS
    _worker_main(sys.argv[1:])
