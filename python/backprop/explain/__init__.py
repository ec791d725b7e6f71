"""Explain mode: one backpropagation step written out as the tutorials write it.

    e = bp.explain(model, x, y, lr=0.1)
    print(e)                    # forward pass, loss, chain-rule products, the update
    e.to_dict(); e.to_markdown(); e.to_latex()

Every gradient shown is the library's own: model.gradients on a float64 copy of the model.
The chain-rule factors are computed independently from the forward values, so each shown
product (summed over paths and rows) can be checked against it (tests/api/test_explain.py does).

This module reads the model and checks what it is given; chain_rule computes the factors;
notation writes them (the symbols, the number format, the Explanation and its renderings).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._sparse import is_sparse
from .._validation import as_features, as_numpy, as_targets, check_positive
from ..layers import Activation, Dense, Dropout
from ..model import Sequential
from .chain_rule import ACTIVATIONS, LOSSES, MAX_PATHS, Network, output_gradient
from .notation import (
    LOSS_SYM,
    MAX_ARITHMETIC_TERMS,
    BackwardNode,
    Explanation,
    ForwardNode,
    OutputGrad,
    ParamGrad,
    Partial,
    Sym,
    loss_formula,
    loss_text,
)

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "LOSS_SYM",
    "MAX_ARITHMETIC_TERMS",
    "MAX_PARAMETERS",
    "MAX_PATHS",
    "MAX_ROWS",
    "BackwardNode",
    "Explanation",
    "ForwardNode",
    "OutputGrad",
    "ParamGrad",
    "Partial",
    "Sym",
    "explain",
]

Array = NDArray[Any]

#: largest network explain shows (one equation per parameter and row)
MAX_PARAMETERS = 128
#: largest batch explain shows (every factor is shown for every row)
MAX_ROWS = 8


def explain(model: Sequential, x: Any, y: Any, lr: float | None = None) -> Explanation:
    """Backpropagation for one example (or a small batch) written out step by step.

    x: (n_features,) one example, or (n, n_features) a batch of n <= MAX_ROWS rows (a
    scipy.sparse batch is shown as its dense rows).
    y: its target(s), as model.gradients takes them (a scalar for one example and one
    output; a class label for SoftmaxCrossEntropy).
    lr: when given, each parameter's plain gradient-descent update w - lr·dL/dw is shown.
    It is shown, never applied: explain changes nothing in the model (weights, gradient
    buffers, optimizer state), because it works on a float64 copy, as gradcheck does.

    For a batch, L is the mean loss of the rows, as in training: dL/dy_hat carries the 1/n,
    and each gradient is the sum over the rows of that row's chain-rule product.
    Raises ValueError for networks of more than MAX_PARAMETERS parameters, batches of more
    than MAX_ROWS rows, and layer stacks it cannot write out (an activation before the first
    Dense or two in a row, layers other than Dense and the activations).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"explain: model must be a Sequential, got {type(model).__name__}")
    if model.loss is None:
        raise RuntimeError("explain: compile the model with a loss first")
    loss = model.loss.name
    if loss not in LOSSES:
        raise ValueError(
            f"explain: the loss {model.loss!r} is not supported; explain shows {', '.join(LOSSES)}"
        )
    if lr is not None:
        lr = check_positive(lr, "explain: lr")
    units = _structure(model)
    if model.n_params > MAX_PARAMETERS:
        raise ValueError(
            f"explain: the model has {model.n_params} parameters; explain shows at most "
            f"{MAX_PARAMETERS} (one equation each). Explain a smaller network, or read the "
            "numbers from model.gradients(X, y)"
        )
    if is_sparse(x):  # a few rows of a small model (MAX_PARAMETERS): shown as dense rows
        _check_rows(x.shape[0])
        x = x.toarray()
    X_in = np.asarray(as_numpy(x, "explain: x"))
    if X_in.ndim == 1:  # one example: y is its target(s)
        X_in = X_in.reshape(1, -1)
        y_in = np.asarray(as_numpy(y, "explain: y"))
        y = y_in.reshape(1) if loss == "softmax_cross_entropy" else y_in.reshape(1, -1)
    if X_in.ndim == 2:
        _check_rows(X_in.shape[0])
    # the user's model stays untouched; eval mode: dropout would make the step random
    m64 = model.clone("float64").eval()
    X, T = _batch(m64, loss, X_in, y)
    kernel_grads = m64.gradients(X, T)
    loss_value = m64.evaluate(X, T)

    net = Network(
        [np.array(d.W, dtype=np.float64) for d, _, _ in units],
        [np.array(d.b, dtype=np.float64) for d, _, _ in units],
        [act for _, act, _ in units],
        [alpha for _, _, alpha in units],
    )
    A, Z, forward = net.forward(X)
    # the squared error's convention (MSE's reduction and half), read from its config
    mse = model.loss.get_config() if loss == "mse" else {}
    per_row, half = mse.get("reduction") == "sum_outputs", bool(mse.get("half", False))
    G, output_grads = output_gradient(loss, A[-1], T, model.loss.param, per_row, half)
    backward = net.backward(A, Z, G)
    explanation = Explanation(
        model=" -> ".join(repr(layer) for layer in model.layers),
        loss_name=repr(model.loss),
        loss_formula=loss_formula(loss, G.shape[0], G.shape[1], model.loss.param, per_row, half),
        X=X.copy(),  # X may be the caller's own array, which the Explanation must not alias
        y=T.copy(),
        lr=lr,
        layers=[(d.in_features, d.out_features, act) for d, act, _ in units],
        forward=forward,
        loss=loss_value,
        loss_text=loss_text(loss, loss_value, A[-1], T, per_row, half),
        output_grads=output_grads,
        backward=backward,
    )
    explanation.params = net.params(A, backward, kernel_grads, lr)
    return explanation


def _structure(model: Sequential) -> list[tuple[Dense, str, float]]:
    """[(dense, activation name or "none", alpha)] per Dense layer; refuses what it cannot show."""
    units: list[tuple[Dense, str, float]] = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            units.append((layer, "none", 0.0))
        elif isinstance(layer, Activation) and layer.name in ACTIVATIONS:
            if not units:
                raise ValueError(
                    f"explain: layers[{i}] {layer!r} comes before the first Dense layer; "
                    "explain shows networks that start with a Dense layer"
                )
            dense, act, _ = units[-1]
            if act != "none":
                raise ValueError(
                    f"explain: layers[{i}] {layer!r} follows another activation; explain "
                    "shows at most one activation after each Dense layer"
                )
            units[-1] = (dense, layer.name, float(getattr(layer, "alpha", 0.0)))
        elif not isinstance(layer, Dropout):  # dropout is left out: explain shows eval mode
            raise ValueError(
                f"explain: layers[{i}] {layer!r} is not supported; explain shows Dense layers, "
                f"Dropout and the activations {', '.join(ACTIVATIONS)}"
            )
    return units


def _check_rows(n: int) -> None:
    if n > MAX_ROWS:
        raise ValueError(
            f"explain: x has {n} rows; explain shows at most {MAX_ROWS} (every factor of "
            "every row). Explain a few rows, or use model.gradients(X, y)"
        )


def _batch(model: Sequential, loss: str, X: Any, y: Any) -> tuple[Array, Array]:
    """(X, T) as the model's kernels read them: X (n, n_features_in) of model.dtype, T
    (n, n_outputs) of model.dtype or (n,) int64 class labels for softmax cross-entropy;
    refused with an error naming explain otherwise."""
    i, first = next((i, layer) for i, layer in enumerate(model.layers) if isinstance(layer, Dense))
    X = as_features(
        X, model.dtype, model.n_features_in, "explain", f"the first layer layers[{i}] {first!r}"
    )
    T = as_targets(y, loss, X.shape[0], model.n_outputs, model.dtype, "explain")
    return X, T
