"""Weights in safetensors files with PyTorch's names and layout: model.save_weights(path) and
model.load_weights(path).

The file holds one tensor pair per Dense layer, named as the state_dict of model.to_torch():
"<i>.weight" (out, in), the transpose of W, and "<i>.bias" (out,), where i is the Dense's
index in model.layers (to_torch() puts each layer at its own index). So
safetensors.torch.load_file(path) loads into model.to_torch() with
load_state_dict(strict=True), and a file saved from the state_dict of the equivalent
torch.nn.Sequential (safetensors.torch.save_file) loads here. The header's metadata is
{"format": "pt"}, the mark Hugging Face's loaders expect of PyTorch-layout files.

Only the weights: no architecture, loss or optimizer state (model.save keeps all of those).
The safetensors package is an optional dependency (pip install safetensors, or
backprop-core[torch]), imported inside the functions. This module reads only the layers'
public attributes and calls get_weights / set_weights, so it sits below model.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ._atomic import write_bytes
from .layers import Dense, Layer

Array = NDArray[Any]

#: safetensors dtypes load_weights accepts (converted to the model's dtype, as
#: torch's load_state_dict converts)
FLOAT_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}


class WeightsModel(Protocol):
    """What the weights file reads and writes of a model (backprop.Sequential has it all)."""

    @property
    def layers(self) -> Sequence[Layer]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    def get_weights(self) -> list[Array]: ...

    def set_weights(self, weights: Sequence[Any]) -> None: ...


def expected(model: WeightsModel) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, in get_weights() order: "<i>.weight" (out, in), "<i>.bias"."""
    names: dict[str, tuple[int, ...]] = {}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            names[f"{i}.weight"] = (layer.out_features, layer.in_features)
            names[f"{i}.bias"] = (layer.out_features,)
    return names


def state_dict(model: WeightsModel) -> dict[str, Array]:
    """The weights as to_torch()'s state_dict holds them (new numpy arrays, C-contiguous)."""
    weights = model.get_weights()
    out: dict[str, Array] = {}
    for k, name in enumerate(expected(model)):
        w = weights[k]
        out[name] = np.ascontiguousarray(w.T if name.endswith(".weight") else w)
    return out


def save_weights(model: WeightsModel, path: str | os.PathLike[str]) -> None:
    """Write the model's weights to `path` as a safetensors file, atomically."""
    numpy_api = _import_safetensors("save_weights")
    data = numpy_api.save(state_dict(model), metadata={"format": "pt"})
    write_bytes(path, data, "save_weights")


def load_weights(model: WeightsModel, path: str | os.PathLike[str]) -> None:
    """Set the model's weights from the safetensors file at `path`.

    Every check comes first; nothing changes on error: a file that is not safetensors
    (ValueError), missing or unexpected names (ValueError, naming them), a shape other than
    the layer's (ValueError), a dtype other than float16/32/64 (TypeError), values that
    are NaN or infinite in the model's dtype (ValueError, naming the tensor).
    """
    _import_safetensors("load_weights")
    from safetensors import safe_open

    name = os.fspath(path)
    if not stat.S_ISREG(os.stat(name).st_mode):  # OSError for a missing file
        raise ValueError(f"load_weights: {name}: not a regular file")
    want = expected(model)
    try:
        handle = safe_open(name, framework="numpy")
    except Exception as e:  # safetensors' own error type: the header is bad
        raise ValueError(f"load_weights: {name}: not a safetensors file ({e})") from None
    with handle as f:
        found = set(f.keys())
        missing = [k for k in want if k not in found]
        unexpected = sorted(found - want.keys())
        if missing or unexpected:
            raise ValueError(
                f"load_weights: {name} does not match the model's layers: "
                f"missing {missing}, unexpected {unexpected!r:.300}; expected "
                f'{list(want)!r:.300} ("<index in model.layers>.weight" / ".bias")'
            )
        for key, shape in want.items():
            tensor = f.get_slice(key)
            got, dtype = tuple(tensor.get_shape()), tensor.get_dtype()
            if got != shape:
                what = "(out_features, in_features)" if key.endswith("weight") else "(out,)"
                raise ValueError(
                    f"load_weights: {name}: {key!r} has shape {got}; the model needs "
                    f"{what} = {shape}"
                )
            if dtype not in FLOAT_DTYPES:
                raise TypeError(
                    f"load_weights: {name}: {key!r} is {dtype}; expected a float tensor "
                    f"({', '.join(FLOAT_DTYPES)}; convert bfloat16 to float32 first)"
                )
        weights = []
        for key in want:
            value = np.asarray(f.get_tensor(key))
            with np.errstate(over="ignore"):
                value = value.astype(model.dtype)
            if not np.isfinite(value).all():
                raise ValueError(
                    f"load_weights: {name}: {key!r} holds NaN or infinity (in the model's "
                    f"dtype {np.dtype(model.dtype).name})"
                )
            weights.append(value.T if key.endswith(".weight") else value)
    model.set_weights(weights)


def _import_safetensors(where: str) -> Any:
    try:
        import safetensors.numpy
    except ImportError as e:
        raise ImportError(f"{where} needs the safetensors package: pip install safetensors") from e
    return safetensors.numpy
