"""model.summary() and repr(model): the architecture as a table, with shapes and parameter counts.

The table follows Keras's Model.summary(): one row per layer with its name and type, its
output shape ((None, width): None is the batch dimension) and its parameter count, then the
totals with their memory size. Every parameter here is trainable, so "Non-trainable params"
is always 0. The optimizer's buffers (momentum's velocity, Adam's m and v: one value per
parameter each) are listed on a line of their own and, unlike Keras once its optimizer is
built, not added to the total: the total is model.count_params().

Only the layers' public attributes are read, so this module sits below model.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from .layers import Dense, Layer
from .optimizers import Optimizer


class Summarized(Protocol):
    """What the summary reads of a model (backprop.Sequential has it all)."""

    @property
    def layers(self) -> Sequence[Layer]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    @property
    def n_features_in(self) -> int: ...

    @property
    def optimizer(self) -> Optimizer | None: ...


def layer_params(layer: Layer) -> int:
    """Parameters of one layer: in * out + out for a Dense, 0 for the others."""
    return layer.n_params if isinstance(layer, Dense) else 0


def count_params(layers: Sequence[Layer]) -> int:
    """Parameters of all the layers (Keras's model.count_params())."""
    return sum(layer_params(layer) for layer in layers)


def output_widths(layers: Sequence[Layer], n_features_in: int) -> list[int]:
    """The width of each layer's output: a Dense's out_features; an activation or Dropout
    keeps the width before it."""
    widths, width = [], n_features_in
    for layer in layers:
        if isinstance(layer, Dense):
            width = layer.out_features
        widths.append(width)
    return widths


def snake_case(name: str) -> str:
    """A class name as Keras names layers: Dense -> dense, ReLU -> re_lu (keras's
    to_snake_case)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_names(layers: Sequence[Layer]) -> list[str]:
    """Keras-style names, numbered per kind within the model: dense, re_lu, dense_1, ..."""
    seen: dict[str, int] = {}
    names = []
    for layer in layers:
        base = snake_case(type(layer).__name__)
        count = seen.get(base, 0)
        seen[base] = count + 1
        names.append(base if count == 0 else f"{base}_{count}")
    return names


def readable_size(n_bytes: float) -> str:
    """Bytes as Keras's summary shows them: 37.54 KB (units of 1024), 0.00 B."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n_bytes / 1024 < 1:
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.2f} PB"


def _shape(width: int) -> str:
    return f"(None, {width})"


def format_summary(model: Summarized, name: str = "sequential") -> str:
    """The summary table of `model` as one string (lines joined by newlines, no final one)."""
    layers = list(model.layers)
    itemsize = model.dtype.itemsize
    rows = [
        (f"{n} ({type(layer).__name__})", _shape(w), f"{layer_params(layer):,}")
        for n, layer, w in zip(
            layer_names(layers), layers, output_widths(layers, model.n_features_in), strict=True
        )
    ]
    header = ("Layer (type)", "Output Shape", "Param #")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(3)]
    widths[0] = max(widths[0], 28)
    widths[1] = max(widths[1], 18)
    widths[2] = max(widths[2], 9)

    def line(cells: tuple[str, str, str]) -> str:
        return f" {cells[0]:<{widths[0]}}   {cells[1]:<{widths[1]}}   {cells[2]:>{widths[2]}}"

    rule_width = len(line(header)) + 1
    total = count_params(layers)
    out = [
        f'Model: "{name}"',
        f"Input shape: {_shape(model.n_features_in)}, dtype: {model.dtype.name}",
        "_" * rule_width,
        line(header),
        "=" * rule_width,
        *(line(r) for r in rows),
        "=" * rule_width,
        f" Total params: {total:,} ({readable_size(total * itemsize)})",
        f" Trainable params: {total:,} ({readable_size(total * itemsize)})",
        f" Non-trainable params: 0 ({readable_size(0)})",
    ]
    optimizer = model.optimizer
    if optimizer is not None:
        buffers = optimizer.buffer_names
        count = total * len(buffers)
        kept = f"{type(optimizer).__name__}'s " + (", ".join(buffers) if buffers else "none")
        out.append(
            f" Optimizer buffers: {count:,} ({readable_size(count * itemsize)}): {kept}, "
            "not in the total"
        )
    out.append("_" * rule_width)
    return "\n".join(out)


def format_repr(model: Summarized) -> str:
    """repr(model): the constructor call (valid Python) with each layer's output shape and
    parameter count as comments."""
    layers = list(model.layers)
    calls = [f"    {layer!r}," for layer in layers]
    pad = max(len(c) for c in calls) + 2
    lines = ["Sequential(["]
    width = model.n_features_in
    for call, layer, out in zip(
        calls, layers, output_widths(layers, model.n_features_in), strict=True
    ):
        note = f"{_shape(width)} -> {_shape(out)}" if isinstance(layer, Dense) else _shape(out)
        if isinstance(layer, Dense):
            note += f", {layer.n_params:,} params"
        lines.append(f"{call:<{pad}}# {note}")
        width = out
    lines.append(f"], dtype={model.dtype.name!r})  # {count_params(layers):,} params")
    return "\n".join(lines)
