"""Central finite differences against the model's backprop gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import Sequential


def gradcheck(
    model: Sequential, X: Any, y: Any, *, eps: float = 1e-5, floor: float = 1e-6
) -> float:
    """Largest relative error between backprop and central-difference gradients.

    Works on a float64 copy of the model (same weights), so a float32 model is checked in
    float64. For every parameter p: fd = (L(p + eps) - L(p - eps)) / (2 eps) and
    err = |g - fd| / max(|g|, |fd|, floor); gradients below `floor` are thus compared
    absolutely, where finite differences carry round-off of about 1e-16 * L / eps
    (eps = 1e-5 balances that round-off against the O(eps**2) truncation error).
    Dropout is off in the copy (eval mode). The model itself is not changed.
    """
    if model.loss is None:
        raise RuntimeError("gradcheck: compile the model with a loss first")
    m64 = model.clone("float64").eval()
    X, y = m64.validate(X, y, "gradcheck")
    _, grad = m64.loss_and_gradient(X, y)
    fd = np.empty_like(grad)
    weights = m64.get_weights()  # in the gradient's order
    i = 0
    for p in weights:
        flat = p.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            m64.set_weights(weights)
            up = m64.evaluate(X, y)
            flat[j] = old - eps
            m64.set_weights(weights)
            down = m64.evaluate(X, y)
            flat[j] = old
            fd[i] = (up - down) / (2 * eps)
            i += 1
    err = np.abs(grad - fd) / np.maximum(np.maximum(np.abs(grad), np.abs(fd)), floor)
    return float(err.max()) if err.size else 0.0
