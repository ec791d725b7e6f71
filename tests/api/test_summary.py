"""model.summary(), count_params() and repr(model), checked against Keras's own summary of the
same architecture (names, types, output shapes, parameter counts, totals with their memory
size) and PyTorch's parameter count."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import backprop as bp


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # torch is a test dependency already
    return pytest.importorskip("keras")


# Each case: our layers, and the same network in Keras (a layer class of the same name, so
# the rows match name for name), its input width and the dtype.
CASES = {
    "relu-dropout": (
        lambda: [bp.Dense(64, 128), bp.ReLU(), bp.Dropout(0.2), bp.Dense(128, 10)],
        lambda L: [L.Dense(128), L.ReLU(), L.Dropout(0.2), L.Dense(10)],
        64,
        "float32",
    ),
    "leaky-softmax-float64": (
        lambda: [bp.Dense(3, 5), bp.LeakyReLU(0.1), bp.Dense(5, 5), bp.Identity(),
                 bp.Dense(5, 4), bp.Softmax()],
        lambda L: [L.Dense(5), L.LeakyReLU(negative_slope=0.1), L.Dense(5), L.Identity(),
                   L.Dense(4), L.Softmax()],
        3,
        "float64",
    ),
    "one-dense": (lambda: [bp.Dense(1, 1)], lambda L: [L.Dense(1)], 1, "float32"),
    "wide": (
        lambda: [bp.Dense(784, 1024), bp.ReLU(), bp.Dense(1024, 1024), bp.ReLU(),
                 bp.Dense(1024, 10)],
        lambda L: [L.Dense(1024), L.ReLU(), L.Dense(1024), L.ReLU(), L.Dense(10)],
        784,
        "float32",
    ),
}  # fmt: skip


def _keras_summary(case: str) -> tuple[list[tuple[str, str, str]], list[str], int]:
    """Keras's summary of the case: rows (layer (type), output shape, param #), the three
    params lines, and model.count_params()."""
    keras = _keras()
    _, make, width, dtype = CASES[case]
    keras.backend.clear_session()  # layer names count from dense, dense_1, ... again
    layers = make(keras.layers)
    for layer in layers:
        layer.dtype_policy = keras.dtype_policies.DTypePolicy(dtype)
    model = keras.Sequential([keras.Input((width,)), *layers])
    text: list[str] = []
    model.summary(print_fn=text.append)
    assert len(text) == 1  # Keras 3 calls print_fn once with the whole table
    rows = []
    for line in text[0].splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 3 and cells[0] != "Layer (type)":
            rows.append((cells[0], cells[1], cells[2]))
    totals = [line.strip() for line in text[0].splitlines() if "params:" in line]
    return rows, totals, int(model.count_params())


def _ours(case: str) -> bp.Sequential:
    make, _, _, dtype = CASES[case]
    return bp.Sequential(make(), dtype=dtype, seed=0)


def _our_rows(text: str) -> list[tuple[str, str, str]]:
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("=")))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("="):
            break
        m = re.fullmatch(r" (\S+ \(\w+\))\s+(\(None, \d+\))\s+([\d,]+)", line)
        assert m, line
        rows.append((m[1], m[2], m[3]))
    return rows


@pytest.mark.parametrize("case", list(CASES))
def test_summary_rows_and_totals_are_keras_own(case: str) -> None:
    """Name (type), output shape and param # per layer, and the Total / Trainable /
    Non-trainable lines (with the memory size of the dtype), equal Keras's summary of the
    same network exactly."""
    keras_rows, keras_totals, keras_count = _keras_summary(case)
    model = _ours(case)
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert len(lines) == 1
    text = lines[0]
    assert _our_rows(text) == keras_rows
    assert [line.strip() for line in text.splitlines() if "params:" in line] == keras_totals
    assert model.count_params() == keras_count == model.n_params


@pytest.mark.parametrize("case", list(CASES))
def test_count_params_is_torchs(case: str) -> None:
    torch = pytest.importorskip("torch")
    model = _ours(case)
    modules = [
        torch.nn.Linear(layer.in_features, layer.out_features)
        for layer in model.layers
        if isinstance(layer, bp.Dense)
    ]
    assert model.count_params() == sum(p.numel() for m in modules for p in m.parameters())
    # and the weights themselves: the sum of get_weights() sizes
    assert model.count_params() == sum(w.size for w in model.get_weights())


def test_summary_prints_the_same_text_by_default(capsys) -> None:
    model = _ours("relu-dropout")
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert model.summary() is None  # as Keras's
    assert capsys.readouterr().out == lines[0] + "\n"
    assert 'Model: "sequential"' in lines[0]
    assert "Input shape: (None, 64), dtype: float32" in lines[0]


@pytest.mark.parametrize(
    ("optimizer", "buffers"),
    [
        (bp.Adam(lr=0.01), "Adam's m, v"),
        (bp.SGD(lr=0.1, momentum=0.9), "SGD's velocity"),
        (bp.SGD(lr=0.1), "SGD's none"),
    ],
    ids=["adam", "momentum", "sgd"],
)
def test_optimizer_buffers_line_counts_the_optimizer_state(optimizer, buffers: str) -> None:
    """The count is the size of the buffers get_state() holds (the reference: the state API),
    in the model's dtype; they are not in the total (which stays count_params())."""
    model = bp.Sequential([bp.Dense(4, 8), bp.Tanh(), bp.Dense(8, 2)], dtype="float64", seed=0)
    model.compile(bp.MSE(), optimizer)
    rng = np.random.default_rng(0)
    model.train_step(rng.normal(size=(5, 4)), rng.normal(size=(5, 2)))
    state = model.get_state()["optimizer"]["buffers"]
    count = sum(v.size for v in state.values())
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    line = next(line for line in lines[0].splitlines() if "Optimizer buffers" in line)
    n_bytes = count * 8  # float64; sizes as Keras shows them (units of 1024)
    size = f"{n_bytes:.2f} B" if n_bytes < 1024 else f"{n_bytes / 1024:.2f} KB"
    assert line == f" Optimizer buffers: {count:,} ({size}): {buffers}, not in the total"
    assert f"Total params: {model.count_params():,} " in lines[0]
    uncompiled = bp.Sequential([bp.Dense(4, 8)], seed=0)
    text: list[str] = []
    uncompiled.summary(print_fn=text.append)
    assert "Optimizer" not in text[0]


def test_repr_is_the_constructor_call_with_shapes_and_counts() -> None:
    """repr(model) evaluates to the same architecture; its comments give each layer's output
    shape (Keras's) and each Dense's parameter count; str(model) is the same."""
    keras_rows, _, _ = _keras_summary("leaky-softmax-float64")
    model = _ours("leaky-softmax-float64")
    text = repr(model)
    assert str(model) == text
    rebuilt = eval(text, {k: getattr(bp, k) for k in bp.__all__})
    assert rebuilt.get_config()["layers"] == model.get_config()["layers"]
    assert rebuilt.dtype == model.dtype
    comments = [line.partition("# ")[2] for line in text.splitlines()[1:-1]]
    for comment, (_, shape, params), layer in zip(comments, keras_rows, model.layers, strict=True):
        if isinstance(layer, bp.Dense):
            assert comment == f"(None, {layer.in_features}) -> {shape}, {params} params"
        else:
            assert comment == shape
    assert text.splitlines()[-1].endswith(f"# {model.count_params():,} params")


def test_layer_names_number_each_kind_as_keras_does() -> None:
    keras_rows, _, _ = _keras_summary("wide")
    ours = _our_rows(_summary_text(_ours("wide")))
    assert [r[0] for r in ours] == [r[0] for r in keras_rows]
    assert [r[0].split()[0] for r in ours] == ["dense", "re_lu", "dense_1", "re_lu_1", "dense_2"]


def _summary_text(model: bp.Sequential) -> str:
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    return lines[0]
