"""PyTorch interop: model.to_torch() and the conversion behind backprop.from_torch.

torch is an optional dependency (pip install backprop-core[torch]): it is imported inside
the functions here, so `import backprop` never imports it. Only the layers' public
attributes and the model's get_weights() are read, so this module sits below model.py (which
calls it); backprop.from_torch (backprop.interop) builds the Sequential from convert().

One torch module per layer, at the same index, both ways:

  Dense(in, out)    nn.Linear(in, out): weight (out, in) = W.T, bias (out,) = b
  ReLU              nn.ReLU
  Sigmoid           nn.Sigmoid
  Tanh              nn.Tanh
  Identity          nn.Identity
  LeakyReLU(alpha)  nn.LeakyReLU(negative_slope=alpha)   (from torch: 0 <= slope <= 1)
  Softmax           nn.Softmax(dim=-1)                    (from torch: dim -1 or 1)
  Dropout(p)        nn.Dropout(p)                         (from torch: p < 1)

So the state_dict names of to_torch()'s module are "<index>.weight" and "<index>.bias" with
the index of the Dense in model.layers (model.save_weights writes them).

From torch: an nn.Linear without bias (bias=False) becomes a Dense whose bias is zero; that
bias is then an ordinary parameter, which training changes, and to_torch() gives it back as
an nn.Linear with bias. Anything else is refused with a TypeError naming its index and
type: other modules (Conv*, BatchNorm*, which has running statistics and no Dense
equivalent (fold it into the Linear before converting), nested nn.Sequential, ...) and
subclasses of the classes above (they may change forward). Values backprop cannot represent
(a Softmax over another dim, a slope outside [0, 1], p = 1) raise ValueError.

dtype: float32 or float64; from torch, that of the Linear layers' parameters (all of one
dtype) unless dtype= is given, which converts them. The training mode (train()/eval()) is
carried over both ways: to_torch() of a model in training mode gives a module whose Dropout
is active, as torch's own modules start; call .eval() for inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeAlias

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ._validation import resolve_dtype
from .layers import (
    Activation,
    Dense,
    Dropout,
    Identity,
    Layer,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)

if TYPE_CHECKING:
    import torch

    TorchSequential: TypeAlias = torch.nn.Sequential
else:
    TorchSequential = Any  # torch itself is imported only when a function here runs

Array = NDArray[Any]

SUPPORTED = ("Linear", "ReLU", "Sigmoid", "Tanh", "Identity", "LeakyReLU", "Softmax", "Dropout")


class TorchModel(Protocol):
    """What to_torch reads of a model (backprop.Sequential has it all)."""

    @property
    def layers(self) -> Sequence[Layer]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    @property
    def training(self) -> bool: ...

    def get_weights(self) -> list[Array]: ...


class Converted(NamedTuple):
    """A torch nn.Sequential as backprop sees it: what Sequential(layers, dtype=dtype) and
    set_weights(weights) rebuild, and the module's training mode."""

    layers: list[Layer]
    weights: list[Array]
    dtype: np.dtype[Any]
    training: bool


def to_torch(model: TorchModel) -> TorchSequential:
    """A torch.nn.Sequential computing what `model` computes, with copies of its weights in
    its dtype, in its training mode."""
    torch = _import_torch("to_torch")
    nn = torch.nn
    tdtype = _torch_dtype(torch, np.dtype(model.dtype))
    weights = iter(model.get_weights())
    modules: list[Any] = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            W, b = next(weights), next(weights)
            # skip_init: no random initialisation, so torch's global RNG is left alone
            linear = nn.utils.skip_init(
                nn.Linear, layer.in_features, layer.out_features, dtype=tdtype
            )
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                linear.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
            modules.append(linear)
        elif isinstance(layer, Dropout):
            modules.append(nn.Dropout(layer.p))
        elif isinstance(layer, LeakyReLU):
            modules.append(nn.LeakyReLU(negative_slope=layer.alpha))
        elif isinstance(layer, Activation) and layer.name in _TO_TORCH:
            modules.append(_TO_TORCH[layer.name](nn))
        else:
            raise TypeError(f"to_torch: layers[{i}] {layer!r} has no torch equivalent")
    module: TorchSequential = nn.Sequential(*modules)
    module.train(bool(model.training))
    return module


_TO_TORCH = {
    "relu": lambda nn: nn.ReLU(),
    "sigmoid": lambda nn: nn.Sigmoid(),
    "tanh": lambda nn: nn.Tanh(),
    "identity": lambda nn: nn.Identity(),
    "softmax": lambda nn: nn.Softmax(dim=-1),
}


def convert(module: Any, dtype: DTypeLike | None = None, where: str = "from_torch") -> Converted:
    """The layers, weights ([W0, b0, ...], W (in, out)), dtype and training mode of a
    torch.nn.Sequential; raises TypeError / ValueError naming the module at fault."""
    torch = _import_torch(where)
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(
            f"{where}: module must be a torch.nn.Sequential, got {type(module).__name__}"
        )
    children = list(module.children())
    if not children:
        raise ValueError(f"{where}: the torch Sequential is empty")
    target = _target_dtype(torch, children, dtype, where)
    tdtype = _torch_dtype(torch, target)
    layers: list[Layer] = []
    weights: list[Array] = []
    for i, child in enumerate(children):
        kind = type(child)
        name = f"{where}: module[{i}] ({kind.__name__})"
        if kind is nn.Linear:
            W = _param(torch, child.weight, tdtype, f"{name} weight")
            if child.bias is None:
                b = np.zeros(child.out_features, dtype=target)
            else:
                b = _param(torch, child.bias, tdtype, f"{name} bias")
            layers.append(Dense(child.in_features, child.out_features))
            weights += [np.ascontiguousarray(W.T), b]
        elif kind is nn.Dropout:
            layers.append(_build(lambda c=child: Dropout(c.p), name))
        elif kind is nn.LeakyReLU:
            layers.append(_build(lambda c=child: LeakyReLU(c.negative_slope), name))
        elif kind is nn.Softmax:
            if child.dim not in (-1, 1):
                raise ValueError(
                    f"{name}: dim={child.dim}; backprop's Softmax normalises each row of its "
                    "(batch, width) input, as nn.Softmax(dim=-1) or dim=1"
                )
            layers.append(Softmax())
        elif kind in (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Identity):
            layers.append(_FROM_TORCH[kind.__name__]())
        else:
            hint = ""
            if "BatchNorm" in kind.__name__:
                hint = " (fold the batch normalisation into the Linear before it first)"
            elif kind is nn.Sequential:
                hint = " (flatten nested Sequentials into one)"
            raise TypeError(
                f"{name} has no backprop equivalent{hint}; supported: exactly "
                f"{', '.join(SUPPORTED)} (Linear also without bias)"
            )
    return Converted(layers, weights, target, bool(module.training))


_FROM_TORCH: dict[str, type[Layer]] = {
    "ReLU": ReLU,
    "Sigmoid": Sigmoid,
    "Tanh": Tanh,
    "Identity": Identity,
}


def _build(make: Any, name: str) -> Layer:
    try:
        layer: Layer = make()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: {e}") from None
    return layer


def _target_dtype(torch: Any, children: list[Any], dtype: DTypeLike | None, where: str) -> Any:
    """The model dtype: `dtype`, or else that of every Linear's parameters."""
    if dtype is not None:
        return resolve_dtype(dtype)
    found = {
        p.dtype: i
        for i, child in enumerate(children)
        if type(child) is torch.nn.Linear
        for p in child.parameters()
    }
    if not found:
        return np.dtype(np.float32)
    if len(found) > 1:
        raise ValueError(
            f"{where}: the Linear layers' parameters are of several dtypes "
            f"({', '.join(sorted(str(d) for d in found))}); give dtype='float32' or 'float64'"
        )
    [(tdtype, i)] = found.items()
    if tdtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"{where}: module[{i}] (Linear) has {tdtype} parameters; backprop computes in "
            "float32 or float64: give dtype='float32' or 'float64' to convert them"
        )
    return np.dtype(np.float32 if tdtype == torch.float32 else np.float64)


def _param(torch: Any, p: Any, tdtype: Any, name: str) -> Array:
    """A parameter as a new numpy array of the target dtype, checked finite."""
    try:
        with torch.no_grad():
            a: Array = p.detach().to(device="cpu", dtype=tdtype).numpy().copy()
    except (RuntimeError, NotImplementedError, ValueError) as e:  # meta tensors, lazy modules
        raise ValueError(f"{name}: its values cannot be read ({e})") from None
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinity (in {a.dtype})")
    return a


def _torch_dtype(torch: Any, dtype: np.dtype[Any]) -> Any:
    return torch.float32 if dtype == np.float32 else torch.float64


def _import_torch(where: str) -> Any:
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"{where} needs PyTorch: pip install torch (or backprop-core[torch])"
        ) from e
    return torch
