"""Models from other frameworks' objects: backprop.from_torch.

The conversion itself (and model.to_torch) lives in torch_interop, below model.py; this
module, above it, builds the Sequential.
"""

from __future__ import annotations

from typing import Any

from numpy.typing import DTypeLike

from . import torch_interop
from .model import Sequential


def from_torch(
    module: Any, *, dtype: DTypeLike | None = None, seed: int | None = None
) -> Sequential:
    """A Sequential computing what the torch.nn.Sequential `module` computes, with copies of
    its weights (nn.Linear's weight (out, in) becomes W (in, out)) and its training mode.

    Supported: nn.Linear (also bias=False: a zero bias, trainable from then on), nn.ReLU,
    nn.Sigmoid, nn.Tanh, nn.Identity, nn.LeakyReLU (slope in [0, 1]), nn.Softmax (dim -1
    or 1), nn.Dropout (p < 1), exactly these classes; module[i] becomes model.layers[i], so
    model.to_torch() gives the same structure back (with the same state_dict names).
    dtype: "float32" or "float64"; by default that of the Linear layers' parameters.
    seed: the model's seed (its shuffling and dropout streams; the weights come from torch).
    Raises TypeError for a module it cannot represent (naming its index and type) and
    ValueError for values it cannot represent, both before building anything.
    """
    converted = torch_interop.convert(module, dtype, "from_torch")
    try:
        model = Sequential(converted.layers, dtype=converted.dtype, seed=seed)
    except ValueError as e:
        raise ValueError(f"from_torch: {e} (layers[i] is module[i])") from None
    model.set_weights(converted.weights)
    if not converted.training:
        model.eval()
    return model
