"""ONNX export: model.to_onnx(path) and the scikit-learn estimators' to_onnx(path).

The `onnx` package is an optional dependency (pip install backprop-core[onnx]): it is
imported inside the functions here, so `import backprop` never imports it. Only the layers'
public attributes and the model's get_weights() are read, so this module sits below
model.py (which calls it).

The graph, opset OPSET unless asked otherwise (MIN_OPSET and up):

  input  "X"   (batch, n_features_in) of the model's dtype (float32 or float64); the batch
               axis is dynamic (the symbol "batch"), so one file takes any batch size
  Dense        Gemm(h, W, b), W (in, out) and b (out,) stored as initializers
  ReLU         Relu
  Sigmoid      Sigmoid
  Tanh         Tanh
  Softmax      Softmax(axis=-1)
  LeakyReLU    float32: LeakyRelu(alpha)
               float64: Where(Greater(h, 0), h, Mul(h, alpha)), alpha a float64 constant:
               onnxruntime's CPU provider has no float64 LeakyRelu kernel (opset < 16 fails
               to load; from 16 it runs the op's function body, which casts the float32
               attribute alpha, off by ~2e-8 relative), and an attribute alpha is float32
  Identity     Identity
  Dropout      Identity (the exported graph is for inference: predict never drops)
  output "Y"   (batch, n_outputs): model.predict's values (logits for the cross-entropy
               losses), or with probabilities=True what predict_proba gives (the loss's
               fused activation, Softmax or Sigmoid, appended)

Every op has float and double kernels in onnxruntime's CPU provider. The estimators'
exports (export_classifier, export_regressor) add no ZipMap and no label output: the
classifier's output "probabilities" is (batch, n_classes) in the order of classes_ (for two
classes [1 - p, p] from the one sigmoid output), the regressor's "Y" is (batch,) for one
target and (batch, n_targets) otherwise, as their predict_proba / predict give them; the
values are of the model's dtype (predict_proba and predict cast to float64 afterwards).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ._atomic import write_bytes
from .layers import Activation, Dense, Dropout, Layer, LeakyReLU
from .losses import Loss

if TYPE_CHECKING:
    import onnx

Array = NDArray[Any]

#: the opset the exporter targets unless told otherwise (onnxruntime >= 1.13 runs it)
OPSET = 17
#: the oldest opset accepted: Softmax has its per-axis definition from 13 on
MIN_OPSET = 13
INPUT = "X"
OUTPUT = "Y"
PROBABILITIES = "probabilities"
#: a protobuf message, and so an ONNX file without external data, is at most 2 GiB
MAX_BYTES = 2**31 - 1

# element-wise activations exported as the one ONNX op of the same meaning, in both dtypes
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "identity": "Identity"}
_HEADS = ("outputs", "probabilities", "class_probabilities", "column")


class ExportModel(Protocol):
    """What the exporter reads of a model (backprop.Sequential has it all)."""

    @property
    def layers(self) -> Sequence[Layer]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    @property
    def n_features_in(self) -> int: ...

    @property
    def n_outputs(self) -> int: ...

    @property
    def loss(self) -> Loss | None: ...

    def get_weights(self) -> list[Array]: ...


def export(
    model: ExportModel,
    path: str | os.PathLike[str],
    *,
    probabilities: bool = False,
    opset: int = OPSET,
) -> None:
    """Write `model` to `path` as an ONNX model (atomically): input "X", output "Y", the
    values of model.predict, or with probabilities=True those of model.predict_proba."""
    if not isinstance(probabilities, (bool, np.bool_)):
        raise TypeError(f"to_onnx: probabilities must be a bool, got {probabilities!r}")
    head = "probabilities" if probabilities else "outputs"
    save(build(model, head=head, opset=opset), path, "to_onnx")


def export_classifier(
    model: ExportModel, path: str | os.PathLike[str], *, opset: int = OPSET
) -> None:
    """An MLPClassifier's network: output "probabilities" (batch, n_classes)."""
    proto = build(model, head="class_probabilities", output=PROBABILITIES, opset=opset)
    save(proto, path, "to_onnx")


def export_regressor(
    model: ExportModel, path: str | os.PathLike[str], *, opset: int = OPSET
) -> None:
    """An MLPRegressor's network: output "Y", (batch,) for one target, else (batch, n); for
    the Poisson loss the means exp(outputs), as its predict."""
    head = "column" if model.n_outputs == 1 else "outputs"
    exp = model.loss is not None and model.loss.name == "poisson"
    save(build(model, head=head, opset=opset, exp=exp), path, "to_onnx")


def save(proto: onnx.ModelProto, path: str | os.PathLike[str], where: str) -> None:
    """Write a checked ModelProto to `path` atomically."""
    write_bytes(path, proto.SerializeToString(), where)


def build(
    model: ExportModel,
    *,
    head: str = "outputs",
    output: str = OUTPUT,
    opset: int = OPSET,
    where: str = "to_onnx",
    exp: bool = False,
) -> onnx.ModelProto:
    """The checked ONNX model of `model` (onnx.checker, full check).

    head: "outputs" (the network's outputs, as predict), "probabilities" (the loss's fused
    activation appended, as predict_proba), "class_probabilities" (as "probabilities", and a
    single sigmoid output p becomes the two columns [1 - p, p]), "column" (one output as a
    (batch,) vector). exp: the outputs go through Exp first (a log-link model's means).
    """
    if head not in _HEADS:
        raise ValueError(f"{where}: head must be one of {_HEADS}, got {head!r}")
    onnx = _import_onnx(where)
    from onnx import helper, numpy_helper

    opset = _check_opset(opset, onnx, where)
    dtype = np.dtype(model.dtype)
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    weights = model.get_weights()
    graph = _Graph(dtype, helper, numpy_helper)
    h = INPUT
    pairs = iter(range(0, len(weights), 2))
    for i, layer in enumerate(model.layers):
        h = graph.layer(i, layer, h, weights, pairs)
    width = model.n_outputs
    fused = _link(model, where) if head in ("probabilities", "class_probabilities") else ""
    if fused:
        h = graph.activation(fused, "head", h)
    if exp:
        h = graph.node("Exp", [h], "head.Exp")
    if head == "class_probabilities" and width == 1 and fused == "sigmoid":
        one = graph.const("head.one", np.ones((1, 1), dtype))
        negative = graph.node("Sub", [one, h], "head.1-p")
        h = graph.node("Concat", [negative, h], "head.concat", axis=1)
        width = 2
    out_shape: list[str | int] = ["batch", width]
    if head == "column":
        if width != 1:
            raise ValueError(f"{where}: a (batch,) output needs one output, the model has {width}")
        shape = graph.const("head.shape", np.array([-1], dtype=np.int64))
        h = graph.node("Reshape", [h, shape], "head.reshape")
        out_shape = ["batch"]
    graph.nodes[-1].output[0] = output  # the last node's output is the graph's
    proto = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "backprop",
            [helper.make_tensor_value_info(INPUT, elem, ["batch", model.n_features_in])],
            [helper.make_tensor_value_info(output, elem, out_shape)],
            initializer=graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="backprop-core",
        producer_version=_version(),
        doc_string=_describe(model, head, output) + (" after Exp" if exp else ""),
    )
    proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import))
    helper.set_model_props(proto, {"backprop.dtype": dtype.name, "backprop.head": head})
    size = proto.ByteSize()
    if size > MAX_BYTES:
        raise ValueError(
            f"{where}: the model takes {size} bytes as ONNX, over protobuf's 2 GiB limit for "
            "one file"
        )
    onnx.checker.check_model(proto, full_check=True)
    return proto


class _Graph:
    """The nodes and initializers of the graph being built."""

    def __init__(self, dtype: np.dtype[Any], helper: Any, numpy_helper: Any) -> None:
        self.dtype = dtype
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, name: str, value: Array) -> str:
        self.initializers.append(self.numpy_helper.from_array(value, name=name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        """Append one node named `name`; its one output is the tensor `name`."""
        self.nodes.append(self.helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def layer(self, i: int, layer: Layer, h: str, weights: list[Array], pairs: Any) -> str:
        prefix = f"layers.{i}"
        if isinstance(layer, Dense):
            k = next(pairs)
            W = self.const(f"{prefix}.W", np.ascontiguousarray(weights[k], dtype=self.dtype))
            b = self.const(f"{prefix}.b", np.ascontiguousarray(weights[k + 1], dtype=self.dtype))
            return self.node("Gemm", [h, W, b], f"{prefix}.Dense")
        if isinstance(layer, Dropout):
            return self.node("Identity", [h], f"{prefix}.Dropout")
        if isinstance(layer, LeakyReLU):
            return self.leaky_relu(prefix, h, layer.alpha)
        if isinstance(layer, Activation) and (layer.name in _UNARY or layer.name == "softmax"):
            return self.activation(layer.name, prefix, h)
        raise TypeError(
            f"to_onnx: layers[{i}] {layer!r} has no ONNX export (Dense, Dropout and the "
            "activations ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, Identity have)"
        )

    def activation(self, name: str, prefix: str, h: str) -> str:
        if name == "softmax":
            return self.node("Softmax", [h], f"{prefix}.Softmax", axis=-1)
        op = _UNARY[name]
        return self.node(op, [h], f"{prefix}.{op}")

    def leaky_relu(self, prefix: str, h: str, alpha: float) -> str:
        if self.dtype == np.float32:
            return self.node("LeakyRelu", [h], f"{prefix}.LeakyRelu", alpha=float(alpha))
        # z if z > 0 else alpha * z, as the core computes it, with alpha in float64
        zero = self.const(f"{prefix}.zero", np.zeros((), self.dtype))
        slope = self.const(f"{prefix}.alpha", np.array(alpha, self.dtype))
        positive = self.node("Greater", [h, zero], f"{prefix}.LeakyRelu.positive")
        scaled = self.node("Mul", [h, slope], f"{prefix}.LeakyRelu.scaled")
        return self.node("Where", [positive, h, scaled], f"{prefix}.LeakyRelu")


def _link(model: ExportModel, where: str) -> str:
    """The activation predict_proba applies: the loss's fused activation."""
    if model.loss is None:
        raise RuntimeError(f"{where}: probabilities=True needs a model compiled with a loss")
    if not model.loss.fused_activation:
        raise TypeError(
            f"{where}: {model.loss!r} has no probability link (predict_proba needs "
            "SoftmaxCrossEntropy or BinaryCrossEntropy); export with probabilities=False"
        )
    return model.loss.fused_activation


def _check_opset(opset: Any, onnx: Any, where: str) -> int:
    newest = int(onnx.defs.onnx_opset_version())
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"{where}: opset must be an int, got {opset!r}")
    if not MIN_OPSET <= int(opset) <= newest:
        raise ValueError(
            f"{where}: opset must be in [{MIN_OPSET}, {newest}] (the installed onnx "
            f"{onnx.__version__} knows up to {newest}), got {opset}"
        )
    return int(opset)


def _describe(model: ExportModel, head: str, output: str) -> str:
    what = {
        "outputs": "the network's outputs (model.predict)",
        "probabilities": "class probabilities (model.predict_proba)",
        "class_probabilities": "class probabilities (predict_proba), columns as classes_",
        "column": "predictions (predict), one value per row",
    }.get(head, head)
    return (
        f"backprop Sequential ({len(model.layers)} layers, {np.dtype(model.dtype).name}): "
        f"input {INPUT!r} (batch, {model.n_features_in}); output {output!r}: {what}"
    )


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("backprop-core")
    except metadata.PackageNotFoundError:
        return "unknown"


def _import_onnx(where: str) -> Any:
    try:
        import onnx
    except ImportError as e:
        raise ImportError(
            f"{where} needs the onnx package: pip install onnx (or backprop-core[onnx], "
            "which brings onnxruntime too)"
        ) from e
    return onnx
