"""The comparison runner's cases (backprop.bench.CASES), this library's train_step and fit
per step: `pytest bench/test_cases.py`. XL (about 0.5 s a step) only with
BACKPROP_BENCH_XL=1. The side-by-side figures with the peers come from
`python -m backprop.bench`; this suite tracks our own regressions between saved runs."""

import os

import numpy as np
import pytest

from backprop import bench

CASES = ["T", "S", "M", "L"] + (["XL"] if os.environ.get("BACKPROP_BENCH_XL") == "1" else [])


def _setup(name):
    case = bench.CASES[name]
    data = bench.make_data(case, bench.fit_batches(case, quick=True))
    return case, data


@pytest.mark.parametrize("name", CASES)
def test_train_step(benchmark, name):
    case, data = _setup(name)
    model = bench.build_ours(case, data)
    benchmark.group = f"case-{name}"
    benchmark.extra_info.update(layers=case.label, batch=case.batch, flops=case.flops)
    rounds = {"XL": 3, "L": 10}.get(name)
    if rounds:
        loss = benchmark.pedantic(
            model.train_step, (data.Xb, data.yb), rounds=rounds, warmup_rounds=1
        )
    else:
        loss = benchmark(model.train_step, data.Xb, data.yb)
    assert np.isfinite(loss)


@pytest.mark.parametrize("name", CASES)
def test_fit_per_epoch(benchmark, name):
    """One epoch of fit over n_batches batches (extra_info); divide by it for per step."""
    case, data = _setup(name)
    model = bench.build_ours(case, data)
    benchmark.group = f"case-{name}"
    benchmark.extra_info.update(layers=case.label, batch=case.batch, n_batches=data.n_batches)
    history = benchmark.pedantic(
        model.fit,
        (data.X, data.y),
        {"batch_size": case.batch},
        rounds={"XL": 2, "L": 3}.get(name, 10),
        warmup_rounds=1,
    )
    assert np.isfinite(history.loss[-1])
