"""The chain rule of one backpropagation step, factor by factor, in float64.

The numbers explain shows next to the library's gradients: the forward values z and a, the
loss gradient dL/dy_hat, each node's dL/da, da/dz and dL/dz, and per parameter its chain-rule
factors and every path from the loss to it. They are computed here from the forward values,
independently of the compiled kernels, so that each shown product can be checked against the
kernel's gradient. The activations, their derivatives and the loss gradients are those of the
kernels' readable NumPy spec (backprop._reference); the products along the paths are formed
here, one factor at a time, so that what is shown is exactly what is multiplied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .. import _reference as spec
from .notation import (
    LOSS_SYM,
    SOFTMAX_DA_DZ_TEXT,
    BackwardNode,
    ForwardNode,
    OutputGrad,
    ParamGrad,
    Partial,
    Sym,
    activation_text,
    derivative_text,
    output_grad_text,
    weighted_sum_text,
)

Array = NDArray[Any]

#: the activation layers explain can write out ("none" below: a Dense without one)
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")
LOSSES = ("mse", "mae", "huber", "softmax_cross_entropy", "binary_cross_entropy")
#: the full paths from the loss to a parameter are written out when there are at most this many
MAX_PATHS = 8


def _spec_name(act: str) -> str:
    return "identity" if act == "none" else act


def output_gradient(
    loss: str, Y: Array, T: Array, delta: float, per_row: bool = False, half: bool = False
) -> tuple[Array, list[OutputGrad]]:
    """dL/dy_hat of the mean loss, G: (n, m), and one record per element.

    Y: (n, m) the network's output (logits for the cross-entropies); T: (n, m) targets, or
    (n,) int64 class labels for softmax cross-entropy; delta: Huber's delta; per_row, half:
    the squared error's convention (see MSE).
    """
    n, m = Y.shape
    G = np.empty((n, m))
    shown, target, count = Y, T, n * m  # what each element's arithmetic shows
    if loss == "softmax_cross_entropy":
        spec.softmax_cross_entropy_loss(Y, T, G)
        shown = np.empty((n, m))
        spec.activation_forward("softmax", Y, shown)
        target = np.zeros((n, m))
        target[np.arange(n), T] = 1.0
        count = n  # the mean is over rows, not elements
    elif loss == "binary_cross_entropy":
        spec.binary_cross_entropy_loss(Y, T, G)
        shown = np.empty((n, m))
        spec.activation_forward("sigmoid", Y, shown)
    elif loss == "huber":
        spec.huber_loss(Y, T, G, delta=delta)
    elif loss == "mae":
        spec.mae_loss(Y, T, G)
    else:
        spec.mse_loss(Y, T, G, scale=(m if per_row else 1) * (0.5 if half else 1))
        count = n if per_row else n * m
    records = []
    for r in range(n):
        for j in range(m):
            g = float(G[r, j])
            shown_rj, target_rj = float(shown[r, j]), float(target[r, j])
            text = output_grad_text(loss, j + 1, shown_rj, target_rj, g, count, delta, half)
            records.append(OutputGrad(r, j + 1, g, text))
    return G, records


def _softmax_jacobian(a: Array) -> Array:
    """J[i, j] = da_i/dz_j = a_i (δ_ij - a_j) of a softmax with outputs a: (width,).

    The spec's backward pass of dL/da = e_i is row i of J (J is symmetric)."""
    width = a.size
    J = np.empty((width, width))
    spec.activation_backward("softmax", np.tile(a, (width, 1)), np.eye(width), J)
    return J


@dataclass
class Network:
    """The network as float64 arrays: Ws[l-1]: (in, out), bs[l-1]: (out,), one activation
    name (or "none") and alpha per Dense layer."""

    Ws: list[Array]
    bs: list[Array]
    acts: list[str]
    alphas: list[float]

    def forward(self, X: Array) -> tuple[list[Array], list[Array], list[ForwardNode]]:
        """A[l], Z[l]: (n, width_l) for l = 0..L (A[0] = X), and the forward records."""
        A, Z = [X], [X]  # Z[0] is never read
        for W, b, act, alpha in zip(self.Ws, self.bs, self.acts, self.alphas, strict=True):
            Z.append(A[-1] @ W + b)
            A.append(np.empty_like(Z[-1]))
            spec.activation_forward(_spec_name(act), Z[-1], A[-1], alpha)
        records = []
        for r in range(X.shape[0]):
            for li, (W, b) in enumerate(zip(self.Ws, self.bs, strict=True)):
                layer = li + 1
                for j in range(W.shape[1]):
                    z, a = float(Z[layer][r, j]), float(A[layer][r, j])
                    z_text = weighted_sum_text(layer, j + 1, A[li][r], W[:, j], float(b[j]), z)
                    a_text = activation_text(
                        self.acts[li], layer, j + 1, z, a, Z[layer][r], self.alphas[li]
                    )
                    records.append(ForwardNode(r, layer, j + 1, z, a, z_text, a_text))
        return A, Z, records

    def backward(self, A: list[Array], Z: list[Array], G: Array) -> list[BackwardNode]:
        """Node by node, from the output layer down: dL/da (from the nodes each feeds),
        da/dz and dL/dz. A, Z: as forward returns them; G: dL/dy_hat (n, m)."""
        L = len(self.Ws)
        n = G.shape[0]
        dA, dZ = G, G
        records: list[BackwardNode] = []
        for layer in range(L, 0, -1):
            li = layer - 1
            act, alpha = self.acts[li], self.alphas[li]
            W_up = self.Ws[layer] if layer < L else None  # the weights out of this layer
            if W_up is not None:
                dA = dZ @ W_up.T
            width = self.Ws[li].shape[1]
            # da/dz of an element-wise activation: its backward pass of dL/da = 1
            da_dz_all = np.empty((n, width))
            if act != "softmax":
                spec.activation_backward(
                    _spec_name(act), A[layer], np.ones((n, width)), da_dz_all, alpha
                )
            dZl = np.empty((n, width))
            for r in range(n):
                jac = _softmax_jacobian(A[layer][r]) if act == "softmax" else None
                for j in range(width):
                    a_sym, z_sym = Sym("a", layer, j + 1), Sym("z", layer, j + 1)
                    da_terms = []
                    if W_up is not None:  # the paths through the nodes z^(l+1)_m it feeds
                        for mm in range(W_up.shape[1]):
                            zn = Sym("z", layer + 1, mm + 1)
                            da_terms.append(
                                (
                                    Partial(LOSS_SYM, zn, float(dZ[r, mm])),
                                    Partial(zn, a_sym, float(W_up[j, mm])),
                                )
                            )
                    z, a = float(Z[layer][r, j]), float(A[layer][r, j])
                    dz_terms: list[tuple[Partial, Partial]] = []
                    da_dz: float | None
                    if jac is not None:  # every a_i depends on z_j
                        for i in range(width):
                            ai = Sym("a", layer, i + 1)
                            dz_terms.append(
                                (
                                    Partial(LOSS_SYM, ai, float(dA[r, i])),
                                    Partial(ai, z_sym, float(jac[i, j])),
                                )
                            )
                        dZl[r, j] = math.fsum(p.value * q.value for p, q in dz_terms)
                        da_dz, da_text = None, SOFTMAX_DA_DZ_TEXT
                    else:
                        da_dz = float(da_dz_all[r, j])
                        da_text = derivative_text(act, z, a, da_dz, alpha)
                        # the shown factor times the shown dL/da, not the spec's fused product
                        dZl[r, j] = dA[r, j] * da_dz
                    records.append(
                        BackwardNode(
                            r, layer, j + 1, float(dA[r, j]), da_terms, da_dz, da_text,
                            float(dZl[r, j]), dz_terms,
                        )
                    )  # fmt: skip
            dZ = dZl
        return sorted(records, key=lambda b: (b.layer, b.row, b.node))

    def params(
        self,
        A: list[Array],
        backward: list[BackwardNode],
        kernel_grads: list[tuple[Array, Array]],
        lr: float | None,
    ) -> list[ParamGrad]:
        """Every weight, then every bias, of each layer with its factors and kernel gradient.

        A: as forward returns it; backward: as backward returns it; kernel_grads: the
        library's [(dW (in, out), db (out,)), ...] per Dense layer."""
        nodes = {(b.layer, b.row, b.node): b for b in backward}
        L, n = len(self.Ws), A[0].shape[0]
        widths = [W.shape[1] for W in self.Ws]
        out = []
        for li, ((dW, db), W, b) in enumerate(zip(kernel_grads, self.Ws, self.bs, strict=True)):
            layer = li + 1
            n_in, width = W.shape
            show_paths = _count_paths(self.acts, widths, layer) <= MAX_PATHS
            keys: list[tuple[int, int | None]] = [(j, k) for j in range(width) for k in range(n_in)]
            keys += [(j, None) for j in range(width)]
            for j, k in keys:
                sym = Sym("w", layer, j + 1, k + 1) if k is not None else Sym("b", layer, j + 1)
                a_sym, z_sym = Sym("a", layer, j + 1), Sym("z", layer, j + 1)
                local, paths = [], []
                for r in range(n):
                    # dz^l_j/dw^l_jk = a^(l-1)_k, dz^l_j/db^l_j = 1
                    dz_dp = Partial(z_sym, sym, 1.0 if k is None else float(A[li][r, k]))
                    node = nodes[(layer, r, j + 1)]
                    if node.da_dz is None:
                        local.append([Partial(LOSS_SYM, z_sym, node.dL_dz), dz_dp])
                    else:
                        dL_da = Partial(LOSS_SYM, a_sym, node.dL_da)
                        local.append([dL_da, Partial(a_sym, z_sym, node.da_dz), dz_dp])
                    if show_paths:
                        paths.append([[*p, dz_dp] for p in _paths_to_z(nodes, r, layer, j + 1, L)])
                value = float(W[k, j] if k is not None else b[j])
                gradient = float(dW[k, j] if k is not None else db[j])
                updated = None if lr is None else value - lr * gradient
                out.append(
                    ParamGrad(
                        sym, layer, j + 1, None if k is None else k + 1, value, local,
                        paths if show_paths else None, gradient, updated,
                    )
                )  # fmt: skip
        return out


def _count_paths(acts: list[str], widths: list[int], layer: int) -> int:
    """Number of paths from the loss down to one z^layer_j. acts, widths: per Dense layer."""
    count = 1  # paths to one a^L_i: just dL/da^L_i
    for upper in range(len(widths), layer - 1, -1):
        if acts[upper - 1] == "softmax":
            count *= widths[upper - 1]  # z^upper_j reaches every a^upper_i
        if upper > layer:
            count *= widths[upper - 1]  # a^(upper-1)_j feeds every z^upper_m
    return count


def _paths_to_z(
    nodes: dict[tuple[int, int, int], BackwardNode], r: int, layer: int, j: int, L: int
) -> list[list[Partial]]:
    """Every path of factors from the loss down to z^layer_j, in the tutorials' order
    (dL/da^L, da^L/dz^L, dz^L/da^(L-1), ..., da^layer_j/dz^layer_j)."""
    node = nodes[(layer, r, j)]
    out: list[list[Partial]] = []
    if node.da_dz is None:  # softmax: z_j reaches every a_i
        for p_a, p_az in node.dL_dz_terms:
            out += [[*p, p_az] for p in _paths_to_a(nodes, r, layer, p_a.wrt.j or 0, L)]
        return out
    a_sym, z_sym = Sym("a", layer, j), Sym("z", layer, j)
    step = Partial(a_sym, z_sym, node.da_dz)
    return [[*p, step] for p in _paths_to_a(nodes, r, layer, j, L)]


def _paths_to_a(
    nodes: dict[tuple[int, int, int], BackwardNode], r: int, layer: int, j: int, L: int
) -> list[list[Partial]]:
    """Every path of factors from the loss down to a^layer_j."""
    node = nodes[(layer, r, j)]
    if layer == L:
        return [[Partial(LOSS_SYM, Sym("a", layer, j), node.dL_da)]]
    out: list[list[Partial]] = []
    for p_z, p_za in node.dL_da_terms:
        out += [[*p, p_za] for p in _paths_to_z(nodes, r, layer + 1, p_z.wrt.j or 0, L)]
    return out
