"""One rank of the MPI tests: `mpiexec -n 2 python -m mpi4py worker.py SCENARIO OUTDIR
[REDUCTION]` (REDUCTION: DataParallel's, default "auto").

Each rank writes OUTDIR/SCENARIO-r<rank>.pkl: {name: what that part of the scenario left
(weights, optimizer state, history, the exception it raised)}; test_mpi.py compares them.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
from cases import CASES, model, shard, val_shard
from mpi4py import MPI

import backprop as bp
from backprop import reduction
from backprop.distributed import DataParallel
from backprop.reduction import step_sum

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
REDUCTION = sys.argv[3] if len(sys.argv) > 3 else "auto"


def parallel(net: bp.Sequential) -> DataParallel:
    return DataParallel(net, comm, reduction=REDUCTION)


def outcome(net: bp.Sequential, history: bp.History | None = None, **extra: Any) -> dict:
    state = net.get_state()
    return {
        "weights": state["weights"],
        "buffers": state["optimizer"]["buffers"],
        "steps": state["optimizer"]["steps"],
        "dropout_rng": state["dropout_rng"],
        "records": None if history is None else history.records,
        "stop_reason": None if history is None else history.stop_reason,
        **extra,
    }


def attempt(net: bp.Sequential, fit: Any) -> dict:
    """Run fit(); record what it raised (or its History)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = fit()
    except BaseException as e:  # KeyboardInterrupt too: the test checks every rank got it
        return outcome(net, net.history, error=type(e).__name__, message=str(e))
    return outcome(net, history, error=None, warnings=[str(w.message) for w in caught])


class At(bp.Callback):
    """At batch `batch` of the first epoch, do `action` (on the ranks that have it)."""

    def __init__(self, batch: int, action: Any) -> None:
        super().__init__()
        self.batch, self.action = batch, action

    def on_batch_end(self, batch: int, logs: Any = None) -> None:
        if batch == self.batch:
            self.action()


class StopAt(bp.Callback):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == self.epoch:
            self.model.stop_training = True


def exact(out: Path) -> dict:
    results = {}
    for name, case in CASES.items():
        net = model(case)
        if rank == 1:  # rank 0's weights must win
            net.set_weights([w + 1.0 for w in net.get_weights()])
        X, y, w = shard(case, rank)
        extra: dict[str, Any] = {}
        if name == "adam":  # file writers: rank 0 only
            extra["callbacks"] = [
                bp.EarlyStopping(monitor="val_loss", patience=50),
                bp.ModelCheckpoint(out / f"ckpt-r{rank}-{{epoch}}.npz", monitor="val_loss"),
                bp.CSVLogger(out / f"log-r{rank}.csv"),
            ]
        val = val_shard(case, rank)
        if case.get("sparse"):
            X = scipy.sparse.csr_matrix(X)
            val = (scipy.sparse.csr_matrix(val[0]), val[1]) if val is not None else None
        with DataParallel(net, comm, reduction=REDUCTION) as dp:
            history = dp.fit(X, y, sample_weight=w, validation_data=val, **case["fit"], **extra)
            method = dp.reduction_method
        results[name] = outcome(net, history, method=method, closed=dp.reduction_method)
    return results


def sums(out: Path) -> dict:
    """step_sum's sums over this job's ranks, for each method, dtype and a few sizes (parts
    of odd lengths, fewer elements than ranks): 30 steps each, the ranks held up at random
    points so that a fast rank writes its next contribution while a slow one still reads."""
    results: dict[str, Any] = {}
    for method in ("shared", "allreduce"):
        for dtype in ("float32", "float64"):
            for size in (1, 2, 37, 1001, 10_007):
                summing = step_sum(MPI, comm, size, dtype, method)
                pause = np.random.default_rng([rank, size])
                got, want = [], []
                for step in range(30):
                    data = [
                        np.random.default_rng([r, step, size]).standard_normal(size)
                        for r in range(comm.Get_size())
                    ]
                    if pause.random() < 0.3:
                        time.sleep(pause.random() * 1e-3)
                    summing.buf[:] = data[rank]
                    total = summing.reduce()
                    if pause.random() < 0.3:
                        time.sleep(pause.random() * 1e-3)
                    got.append(total.copy())
                    want.append(np.sum(data, axis=0))
                results[f"{method}-{dtype}-{size}"] = {
                    "method": summing.method,
                    "got": np.array(got),
                    "want": np.array(want),
                }
                summing.free()
    for method, size in (("auto", 3), ("auto", 2048), ("shared", 3), ("allreduce", 2048),
                         ("nccl", 3)):  # fmt: skip
        try:
            made = step_sum(MPI, comm, size, "float64", method)
            results[f"make-{method}-{size}"] = made.method
            made.free()
        except ValueError as e:
            results[f"make-{method}-{size}"] = f"ValueError: {e}"
    try:
        DataParallel(model(CASES["sgd"]), comm, reduction="ring")
    except ValueError as e:
        results["dp-ring"] = f"ValueError: {e}"
    # a /dev/shm with little room (a container's 64 MB) on one rank: every rank falls back
    # (auto) or refuses (shared), none allocates a window that would fault when touched
    if rank == 1:
        reduction.shared_memory_free = lambda: 100_000
    results["tight-auto"] = step_sum(MPI, comm, 20_000, "float32", "auto").method
    try:
        step_sum(MPI, comm, 20_000, "float32", "shared")
    except ValueError as e:
        results["tight-shared"] = f"ValueError: {e}"
    return results


def faults(out: Path) -> dict:
    case = CASES["adam"]
    results = {}
    X, y, _ = shard(case, rank)

    def run(name: str, *, net: bp.Sequential | None = None, Xr: Any = X, **kwargs: Any) -> None:
        net = net or model(case)
        kw = {"epochs": 2, "batch_size": 4, "shuffle": False} | kwargs
        results[name] = attempt(net, lambda: parallel(net).fit(Xr, y, **kw))

    bad = X.copy()
    if rank == 1:
        bad[3, 1] = np.nan
    run("bad_input", Xr=bad)
    run("arguments", batch_size=4 if rank == 0 else 5)
    other = {"optimizer": ("Adam", {"lr": 0.5})} if rank == 1 else {}
    run("config", net=model(case | other))

    def runs(name: str, yr: Any, **kwargs: Any) -> None:
        results[name] = attempt(net, lambda: parallel(net).fit(X, yr, **kwargs))

    huge = y.copy()
    if rank == 1:
        huge[9] = 1e200  # in the third batch: its loss overflows on rank 1 alone
    for name, on_nonfinite in (("nonfinite", "raise"), ("nonfinite_stop", "stop")):
        net = model(case)
        runs(name, huge, epochs=2, batch_size=4, shuffle=False, on_nonfinite=on_nonfinite)
    # finite losses and gradients, but the summed gradient's update overflows everywhere
    net = model(case | {"optimizer": ("SGD", {"lr": 1e200})})
    runs("diverge", y + 1e120, epochs=1, batch_size=4, shuffle=False)
    boom = At(1, lambda: 1 / 0) if rank == 1 else At(1, lambda: None)
    run("callback_error", callbacks=[boom])
    ctrl_c = At(1, lambda: os.kill(os.getpid(), signal.SIGINT)) if rank == 1 else None
    run("interrupt", callbacks=[ctrl_c] if ctrl_c else None)
    run("stop", epochs=4, callbacks=[StopAt(1)] if rank == 0 else None)
    # still in step after all that: a last fit that works
    run("after", epochs=1)
    return results


def kill(out: Path) -> dict:
    case = CASES["adam"]
    net = model(case)
    X, y, _ = shard(case, rank, rows=4000)
    die = At(3, lambda: os.kill(os.getpid(), signal.SIGKILL)) if rank == 1 else None
    parallel(net).fit(X, y, epochs=1000, batch_size=4, callbacks=[die] if die else None)
    (out / f"finished-r{rank}").write_text("the job went on")  # must not happen
    return {}


def abort(out: Path) -> dict:
    if rank == 1:
        raise ValueError("an uncaught error on rank 1 (python -m mpi4py aborts the job)")
    comm.Barrier()  # would wait forever without the abort
    (out / f"finished-r{rank}").write_text("the job went on")
    return {}


def main() -> None:
    scenario, out = sys.argv[1], Path(sys.argv[2])
    scenarios = {"exact": exact, "sums": sums, "faults": faults, "kill": kill, "abort": abort}
    results = scenarios[scenario](out)
    with open(out / f"{scenario}-r{rank}.pkl", "wb") as f:
        pickle.dump(results, f)


if __name__ == "__main__":
    main()
