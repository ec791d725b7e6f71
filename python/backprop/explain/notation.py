"""How explain writes things: numbers, symbols, formula text, and the Explanation's renderings.

Notation (the tutorials'): layer l is the l-th Dense layer (l = 1..L), node j of a layer is its
j-th output. w^l_jk is the weight of layer l from node k of layer l-1 to node j, that is the
library's W[k-1, j-1]; b^l_j is node j's bias. z^l_j = sum_k w^l_jk a^(l-1)_k + b^l_j and
a^l_j = f(z^l_j), f the activation layer after the Dense (the identity when there is none);
a^0 = x, and y_hat = a^L is what the loss takes (logits for the cross-entropy losses).

Everything here formats numbers it is given; nothing computes a value of the network.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]

#: a weighted sum's arithmetic is written out when the node has at most this many inputs
MAX_ARITHMETIC_TERMS = 8


# -- numbers ----------------------------------------------------------------------------------


def num(v: float) -> str:
    """6 significant digits; whole numbers keep a '.0' so that 2.0 reads as a value."""
    s = f"{v:.6g}"
    return s + ".0" if s.lstrip("-").isdigit() else s


def tex_num(v: float) -> str:
    """num(v) with an exponent written as LaTeX: 1e-05 -> 1 \\times 10^{-5}."""
    s = num(v)
    if "e" in s:
        mantissa, exponent = s.split("e")
        return f"{mantissa} \\times 10^{{{int(exponent)}}}"
    return s


def paren(v: float, tex: bool = False) -> str:
    """(v): a factor of a written-out product."""
    return f"({tex_num(v) if tex else num(v)})"


def vec(v: Array) -> str:
    """A row of x or y as [v1, v2, ...]; integer class labels stay integers."""
    flat = np.ravel(v)
    if flat.dtype.kind in "iu":
        return "[" + ", ".join(str(int(t)) for t in flat) + "]"
    return "[" + ", ".join(num(float(t)) for t in flat) + "]"


# -- symbols ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sym:
    """A quantity of the network: x_k, z^l_j, a^l_j, w^l_jk, b^l_j, y_hat_j or L."""

    name: str
    layer: int | None = None
    j: int | None = None
    k: int | None = None

    def _index(self) -> str:
        # "11" for j=1, k=1; "1,12" once an index has two digits
        idx = [str(i) for i in (self.j, self.k) if i is not None]
        return ("" if all(len(i) == 1 for i in idx) else ",").join(idx)

    def text(self) -> str:
        if self.name == "L":
            return "L"
        if self.name == "a" and self.layer == 0:
            return f"x_{self.j}"
        sup = "" if self.layer is None else f"^{self.layer}"
        return f"{self.name}{sup}_{self._index()}"

    def latex(self) -> str:
        if self.name == "L":
            return "L"
        if self.name == "a" and self.layer == 0:
            return f"x_{{{self.j}}}"
        base = r"\hat{y}" if self.name == "ŷ" else self.name
        sup = "" if self.layer is None else f"^{{{self.layer}}}"
        return f"{base}{sup}_{{{self._index()}}}"


LOSS_SYM = Sym("L")


@dataclass(frozen=True)
class Partial:
    """One chain-rule factor: the partial derivative d(of)/d(wrt) at the explained point."""

    of: Sym
    wrt: Sym
    value: float

    def text(self) -> str:
        return f"∂{self.of.text()}/∂{self.wrt.text()}"

    def latex(self) -> str:
        return rf"\frac{{\partial {self.of.latex()}}}{{\partial {self.wrt.latex()}}}"

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.text(), "latex": self.latex(), "value": self.value}


def product_of(factors: list[Partial]) -> float:
    """The product of the factors' values."""
    return math.prod(f.value for f in factors)


# -- formula text of one node or output -------------------------------------------------------


def weighted_sum_text(layer: int, j: int, a_prev: Array, w: Array, b: float, z: float) -> str:
    """z^layer_j written out. a_prev: (fan_in,) the row's a^(layer-1); w: (fan_in,) W[:, j-1]."""
    z_sym = Sym("z", layer, j).text()
    if a_prev.size <= MAX_ARITHMETIC_TERMS:
        terms = " + ".join(f"{paren(a)}{paren(wk)}" for a, wk in zip(a_prev, w, strict=True))
        return f"{z_sym} = {terms} + {paren(b)} = {num(z)}"
    prev = "x" if layer == 1 else f"a^{layer - 1}"
    return f"{z_sym} = sum_k w^{layer}_{j}k {prev}_k + b^{layer}_{j} = {num(z)}"


def activation_text(
    name: str, layer: int, j: int, z: float, a: float, z_row: Array, alpha: float
) -> str:
    """a^layer_j = f(z^layer_j) written out; z_row: (width,) the layer's z (softmax's sum)."""
    a_sym, z_sym = Sym("a", layer, j).text(), Sym("z", layer, j).text()
    if name == "sigmoid":
        body = f"sigmoid({z_sym}) = 1/(1 + exp({num(-z)}))"
    elif name == "tanh":
        body = f"tanh({z_sym}) = tanh({num(z)})"
    elif name == "relu":
        body = f"max(0, {z_sym}) = max(0, {num(z)})"
    elif name == "leaky_relu":
        body = (
            f"{z_sym} (> 0)" if z > 0 else f"{num(alpha)}·{z_sym} (<= 0) = {num(alpha)}·{paren(z)}"
        )
    elif name == "softmax":
        body = f"softmax({z_sym}) = exp({num(z)}) / sum_i exp(z_i)"
        if z_row.size <= MAX_ARITHMETIC_TERMS:
            exps = " + ".join(f"exp({num(float(t))})" for t in z_row)
            body += f" = exp({num(z)}) / ({exps})"
    else:
        body = f"{z_sym} (no activation)" if name == "none" else f"identity({z_sym})"
    return f"{a_sym} = {body} = {num(a)}"


#: what stands for da/dz after a Softmax, which has no single da_j/dz_j factor per node
SOFTMAX_DA_DZ_TEXT = "softmax: every a_i depends on every z_j"


def derivative_text(name: str, z: float, a: float, da_dz: float, alpha: float) -> str:
    """How da/dz of an element-wise activation is computed, ending in its value da_dz."""
    if name == "sigmoid":
        return f"a(1 - a) = {num(a)}(1 - {num(a)}) = {num(da_dz)}"
    if name == "tanh":
        return f"1 - a² = 1 - {paren(a)}² = {num(da_dz)}"
    if name == "relu":
        return "1 (z > 0)" if z > 0 else "0 (z <= 0)"
    if name == "leaky_relu":
        return "1 (z > 0)" if z > 0 else f"alpha = {num(alpha)} (z <= 0)"
    return "1 (linear)"


def mse_divisor(n: int, m: int, per_row: bool, half: bool) -> int:
    """What the sum of squares over n rows of m outputs is divided by: n*m (the mean over
    elements) or n (summed over outputs, mean over rows), doubled when halved."""
    return (n if per_row else n * m) * (2 if half else 1)


def loss_formula(
    loss: str, n: int, m: int, delta: float, per_row: bool = False, half: bool = False
) -> str:
    """The mean loss of n rows of m outputs, as a formula (per_row, half: the squared error's
    convention, see MSE)."""
    N = n * m
    mean = "" if N == 1 else f"(1/{N}) sum "
    if loss == "mse" and (per_row or half):
        den = mse_divisor(n, m, per_row, half)
        name = (
            "squared error"
            + (" summed over outputs" if per_row else "")
            + (", halved" if half else "")
        )
        over = "" if den == 1 else f"(1/{den}) "
        return f"{name}, L = {over}sum (ŷ - y)²"
    if loss == "mse":
        return "MSE, L = (ŷ - y)²" if N == 1 else f"MSE, L = (1/{N}) sum (ŷ - y)²"
    if loss == "mae":
        return f"MAE, L = {mean}|ŷ - y|"
    if loss == "huber":
        return (
            f"Huber (delta = {num(delta)}), L = {mean}h(ŷ - y), h(d) = d²/2 if |d| <= delta "
            "else delta(|d| - delta/2)"
        )
    if loss == "binary_cross_entropy":
        return (
            f"binary cross-entropy from logits ŷ, L = {mean}-[y log p + (1-y) log(1-p)], "
            "p = sigmoid(ŷ)"
        )
    mean = "" if n == 1 else f"(1/{n}) sum_rows "
    return (
        f"softmax cross-entropy from logits ŷ, L = {mean}-log p[y], p = softmax(ŷ) "
        "(class y is output node y + 1)"
    )


def loss_text(
    loss: str, value: float, Y: Array, T: Array, per_row: bool = False, half: bool = False
) -> str:
    """L = ..., its arithmetic written out for a few MSE or MAE terms. Y, T: (n, m)."""
    if loss not in ("mse", "mae") or T.size > MAX_ARITHMETIC_TERMS:
        return f"L = {num(value)}"
    pattern = "({} - {})²" if loss == "mse" else "|{} - {}|"
    terms = " + ".join(
        pattern.format(num(a), num(t)) for a, t in zip(Y.ravel(), T.ravel(), strict=True)
    )
    den = T.size
    if loss == "mse":
        den = mse_divisor(Y.shape[0], Y.shape[1], per_row, half)
    mean = terms if den == 1 and T.size == 1 else f"({terms})" if den == 1 else f"({terms})/{den}"
    return f"L = {mean} = {num(value)}"


def output_grad_text(
    loss: str,
    node: int,
    shown: float,
    target: float,
    g: float,
    count: int,
    delta: float,
    half: bool = False,
) -> str:
    """dL/dy_hat_node written out for the mean over `count` terms.

    shown: y_hat (mse, mae, huber), sigmoid(y_hat) (binary cross-entropy) or p = softmax(y_hat)
    (softmax cross-entropy) of the node; target: y, or [y = node - 1] for softmax cross-entropy.
    """

    def rule(a: str, t: str) -> str:
        if loss == "mse":
            return f"({a} - {t})" if half else f"2({a} - {t})"
        if loss == "mae":
            return f"sign({a} - {t})"
        if loss == "huber":
            return f"clip({a} - {t}, {num(-delta)}, {num(delta)})"
        return f"({a} - {t})"

    a_sym, t_sym = {
        "binary_cross_entropy": (f"sigmoid(ŷ_{node})", f"y_{node}"),
        "softmax_cross_entropy": (f"p_{node}", f"[y = {node - 1}]"),
    }.get(loss, (f"ŷ_{node}", f"y_{node}"))
    over = "" if count == 1 else f"/{count}"
    return (
        f"∂L/∂ŷ_{node} = {rule(a_sym, t_sym)}{over} = {rule(num(shown), num(target))}{over} = "
        f"{num(g)}"
    )


# -- the explanation's records ----------------------------------------------------------------


@dataclass(frozen=True)
class ForwardNode:
    """z^l_j and a^l_j for one row; *_text write out the arithmetic."""

    row: int
    layer: int
    node: int
    z: float
    a: float
    z_text: str
    a_text: str


@dataclass(frozen=True)
class OutputGrad:
    """dL/dy_hat_j for one row (it carries the 1/n of the mean loss)."""

    row: int
    node: int
    value: float
    text: str


@dataclass(frozen=True)
class BackwardNode:
    """dL/da^l_j, da^l_j/dz^l_j and dL/dz^l_j for one row.

    dL_da_terms: the paths out of a hidden node, pairs (dL/dz^(l+1)_m, dz^(l+1)_m/da^l_j) summed
    over the m it feeds (empty for an output node, where dL/da^L_j = dL/dy_hat_j).
    da_dz is None after a Softmax, whose every output depends on every z: then dL/dz^l_j is the
    sum of dL_dz_terms, pairs (dL/da^l_i, da^l_i/dz^l_j).
    """

    row: int
    layer: int
    node: int
    dL_da: float
    dL_da_terms: list[tuple[Partial, Partial]]
    da_dz: float | None
    da_dz_text: str
    dL_dz: float
    dL_dz_terms: list[tuple[Partial, Partial]]


@dataclass
class ParamGrad:
    """One weight w^l_jk (k set) or bias b^l_j (k None) and its gradient.

    local[r]: the factors for row r, [dL/da^l_j, da^l_j/dz^l_j, dz^l_j/dw] (after a Softmax:
    [dL/dz^l_j, dz^l_j/dw]). paths[r]: every path from the loss to the parameter, each a list
    of factors (None beyond chain_rule.MAX_PATHS paths). gradient: the library's kernel
    gradient of the mean loss; updated: value - lr * gradient when lr was given.
    """

    sym: Sym
    layer: int
    j: int
    k: int | None
    value: float
    local: list[list[Partial]]
    paths: list[list[list[Partial]]] | None
    gradient: float
    updated: float | None = None

    @property
    def product(self) -> float:
        """sum over rows of the product of the local factors (equals the gradient)."""
        return math.fsum(product_of(f) for f in self.local)

    @property
    def path_sum(self) -> float | None:
        """sum over rows and paths of each path's product (equals the gradient)."""
        if self.paths is None:
            return None
        return math.fsum(product_of(p) for row in self.paths for p in row)


@dataclass
class Explanation:
    """What explain() returns: the forward pass, the loss, every gradient as a chain-rule
    product, and (with lr) every updated value. str() renders readable tables.

    X: (n, n_features) float64; y: (n, n_outputs) float64, or (n,) int64 class labels.
    """

    model: str
    loss_name: str
    loss_formula: str
    X: Array
    y: Array
    lr: float | None
    layers: list[tuple[int, int, str]]  # per Dense layer: (in, out, activation name)
    forward: list[ForwardNode]
    loss: float
    loss_text: str
    output_grads: list[OutputGrad]
    backward: list[BackwardNode]
    params: list[ParamGrad] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    def param(self, name: str) -> ParamGrad:
        """The entry for a parameter by its name, e.g. "w^1_11" or "b^2_1"."""
        for p in self.params:
            if p.sym.text() == name:
                return p
        raise KeyError(f"no parameter {name!r}; have {[p.sym.text() for p in self.params]}")

    # -- renderings -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, float, int, lists, dicts), e.g. for json.dumps."""
        return {
            "model": self.model,
            "loss_name": self.loss_name,
            "loss_formula": self.loss_formula,
            "x": self.X.tolist(),
            "y": self.y.tolist(),
            "lr": self.lr,
            "layers": [
                {"layer": i + 1, "in": n_in, "out": n_out, "activation": act}
                for i, (n_in, n_out, act) in enumerate(self.layers)
            ],
            "forward": [
                {
                    "row": f.row,
                    "layer": f.layer,
                    "node": f.node,
                    "z": f.z,
                    "a": f.a,
                    "z_text": f.z_text,
                    "a_text": f.a_text,
                }
                for f in self.forward
            ],
            "loss": self.loss,
            "loss_text": self.loss_text,
            "dL_dy_hat": [
                {"row": g.row, "node": g.node, "value": g.value, "text": g.text}
                for g in self.output_grads
            ],
            "backward": [
                {
                    "row": b.row,
                    "layer": b.layer,
                    "node": b.node,
                    "dL_da": b.dL_da,
                    "dL_da_terms": [[p.to_dict(), q.to_dict()] for p, q in b.dL_da_terms],
                    "da_dz": b.da_dz,
                    "da_dz_text": b.da_dz_text,
                    "dL_dz": b.dL_dz,
                    "dL_dz_terms": [[p.to_dict(), q.to_dict()] for p, q in b.dL_dz_terms],
                }
                for b in self.backward
            ],
            "params": [
                {
                    "name": p.sym.text(),
                    "latex": p.sym.latex(),
                    "layer": p.layer,
                    "j": p.j,
                    "k": p.k,
                    "value": p.value,
                    "factors": [[f.to_dict() for f in row] for row in p.local],
                    "paths": None
                    if p.paths is None
                    else [[[f.to_dict() for f in path] for path in row] for row in p.paths],
                    "product": p.product,
                    "gradient": p.gradient,
                    "updated": p.updated,
                }
                for p in self.params
            ],
        }

    def __str__(self) -> str:
        return "\n".join(self._text_lines())

    def _row_label(self, r: int) -> str:
        return f"row {r}: " if self.n_rows > 1 else ""

    def _text_lines(self) -> list[str]:
        n = self.n_rows
        out = [
            f"explain: {self.model}",
            f"loss {self.loss_name}, {n} row{'s' if n > 1 else ''}"
            + ("" if self.lr is None else f", lr = {num(self.lr)}"),
            "notation: w^l_jk = weight of Dense layer l from node k of layer l-1 to node j",
            "  (the library's W[k-1, j-1]), b^l_j = bias of node j; z^l_j = sum_k w^l_jk "
            "a^(l-1)_k + b^l_j,",
            "  a^l_j = f(z^l_j), a^0 = x, ŷ = a^L",
            "",
            "Forward pass",
        ]
        for r in range(n):
            out.append(f"  row {r}: x = {vec(self.X[r])}, y = {vec(self.y[r])}")
            for f in self.forward:
                if f.row == r:
                    out.append(f"    {f.z_text}")
                    out.append(f"    {f.a_text}")
        out += ["", f"Loss: {self.loss_formula}", f"  {self.loss_text}"]
        for g in self.output_grads:
            out.append(f"  {self._row_label(g.row)}{g.text}")
        out += ["", "Backward pass: each node's dL/da and da/dz (a hidden node sums the paths"]
        out.append("through the nodes it feeds)")
        for b in sorted(self.backward, key=lambda b: (-b.layer, b.row, b.node)):
            label = self._row_label(b.row)
            lines = _backward_text(b)
            out.append("  " + label + lines[0])
            out += ["  " + " " * len(label) + line for line in lines[1:]]
        out += ["", "Gradients: dL/dparam = product of the chain-rule factors (summed over paths"]
        out.append("and rows); the value after = is the library's kernel gradient")
        for p in sorted(self.params, key=lambda p: -p.layer):  # backward: output layer first
            out += ["  " + line for line in self._param_text(p)]
        return out

    def _param_text(self, p: ParamGrad) -> list[str]:
        name = p.sym.text()
        factor_rows: list[list[list[Partial]]] = (
            p.paths if p.paths is not None else [[f] for f in p.local]
        )
        pad = " " * (len(name) + 5)
        symbolic = [" · ".join(f.text() for f in path) for path in factor_rows[0]]
        lines = [f"∂L/∂{name} = {symbolic[0]}"] + [f"{pad}+ {t}" for t in symbolic[1:]]
        numeric = []
        for r, paths in enumerate(factor_rows):
            terms = " + ".join("".join(paren(f.value) for f in path) for path in paths)
            numeric.append(f"{self._row_label(r)}{terms}")
        if len(numeric) == 1:
            lines.append(f"{pad}= {numeric[0]} = {num(p.gradient)}")
        else:
            lines += [f"{pad}= {numeric[0]}"] + [f"{pad}+ {t}" for t in numeric[1:]]
            lines.append(f"{pad}= {num(p.gradient)}")
        if p.updated is not None and self.lr is not None:
            lines.append(
                f"  {name} ← {num(p.value)} - {num(self.lr)}·{paren(p.gradient)} = {num(p.updated)}"
            )
        return lines

    def _equations(self) -> list[tuple[str, list[str]]]:
        """(section title, LaTeX equation lines with one '&' each)."""

        def row(r: int) -> str:
            return f" \\quad(\\text{{row {r}}})" if self.n_rows > 1 else ""

        fwd = []
        for f in self.forward:
            z_sym, a_sym = Sym("z", f.layer, f.node).latex(), Sym("a", f.layer, f.node).latex()
            fwd.append(f"{z_sym} &= {_tex_text(f.z_text.split(' = ', 1)[1])}{row(f.row)}")
            fwd.append(f"{a_sym} &= {_tex_text(f.a_text.split(' = ', 1)[1])}{row(f.row)}")
        loss = [f"L &= {_tex_text(self.loss_text.split(' = ', 1)[1])}"]
        for g in self.output_grads:
            lhs = f"\\frac{{\\partial L}}{{\\partial {Sym('ŷ', None, g.node).latex()}}}"
            loss.append(f"{lhs} &= {_tex_text(g.text.split(' = ', 1)[1])}{row(g.row)}")
        back = []
        for b in sorted(self.backward, key=lambda b: (-b.layer, b.row, b.node)):
            a, z = Sym("a", b.layer, b.node), Sym("z", b.layer, b.node)
            dL_da = Partial(LOSS_SYM, a, b.dL_da).latex()
            if b.dL_da_terms:
                terms = " + ".join(f"{p.latex()} {q.latex()}" for p, q in b.dL_da_terms)
                nums = "".join(
                    f"{' + ' if i else ''}{paren(p.value, True)}{paren(q.value, True)}"
                    for i, (p, q) in enumerate(b.dL_da_terms)
                )
                back.append(f"{dL_da} &= {terms} = {nums} = {tex_num(b.dL_da)}{row(b.row)}")
            else:
                y_hat = Sym("ŷ", None, b.node).latex()
                back.append(
                    f"{dL_da} &= \\frac{{\\partial L}}{{\\partial {y_hat}}} = "
                    f"{tex_num(b.dL_da)}{row(b.row)}"
                )
            if b.da_dz is not None:
                back.append(
                    f"{Partial(a, z, b.da_dz).latex()} &= {_tex_text(b.da_dz_text)}{row(b.row)}"
                )
            else:
                dL_dz = Partial(LOSS_SYM, z, b.dL_dz).latex()
                terms = " + ".join(f"{p.latex()} {q.latex()}" for p, q in b.dL_dz_terms)
                back.append(f"{dL_dz} &= {terms} = {tex_num(b.dL_dz)}{row(b.row)}")
        grads = []
        for p in sorted(self.params, key=lambda p: -p.layer):
            rows = p.paths if p.paths is not None else [[f] for f in p.local]
            symbolic = " + ".join(" ".join(f.latex() for f in path) for path in rows[0])
            numeric = " + ".join(
                "".join(paren(f.value, tex=True) for f in path) for paths in rows for path in paths
            )
            lhs = f"\\frac{{\\partial L}}{{\\partial {p.sym.latex()}}}"
            grads.append(f"{lhs} &= {symbolic}")
            grads.append(f"&= {numeric} = {tex_num(p.gradient)}")
            if p.updated is not None and self.lr is not None:
                grads.append(
                    f"{p.sym.latex()} &\\leftarrow {tex_num(p.value)} - {tex_num(self.lr)}"
                    f"\\cdot{paren(p.gradient, tex=True)} = {tex_num(p.updated)}"
                )
        return [
            ("Forward pass", fwd),
            ("Loss", loss),
            ("Backward pass", back),
            ("Gradients", grads),
        ]

    def to_latex(self) -> str:
        """The equations as LaTeX align* environments (needs amsmath)."""
        parts = []
        for title, lines in self._equations():
            body = " \\\\\n".join(lines)
            parts.append(f"% {title}\n\\begin{{align*}}\n{body}\n\\end{{align*}}")
        return "\n".join(parts) + "\n"

    def to_markdown(self) -> str:
        """A Markdown page: tables of the forward and backward values and the equations
        ($$ ... $$ blocks, rendered by GitHub, Jupyter and most Markdown viewers)."""
        md = [f"**Explain** `{self.model}`, loss {self.loss_name}", ""]
        md += ["| row | node | z | a | arithmetic |", "|---|---|---|---|---|"]
        for f in self.forward:
            md.append(
                f"| {f.row} | ${Sym('a', f.layer, f.node).latex()}$ | {num(f.z)} | "
                f"{num(f.a)} | `{f.z_text}` |"
            )
        md += ["", f"Loss: {self.loss_formula}: `{self.loss_text}`", ""]
        md += ["| parameter | value | ∂L/∂param | product of factors | updated |"]
        md += ["|---|---|---|---|---|"]
        for p in self.params:
            updated = "" if p.updated is None else num(p.updated)
            md.append(
                f"| ${p.sym.latex()}$ | {num(p.value)} | {num(p.gradient)} | "
                f"{num(p.product)} | {updated} |"
            )
        for title, lines in self._equations():
            md += ["", f"### {title}", "", "$$", "\\begin{aligned}"]
            md.append(" \\\\\n".join(lines))
            md += ["\\end{aligned}", "$$"]
        return "\n".join(md) + "\n"

    def __repr__(self) -> str:
        return (
            f"<Explanation of {self.model} on {self.n_rows} row(s): loss {num(self.loss)}, "
            f"{len(self.params)} parameters>"
        )


_TEX_WORDS = [
    (r"\bsoftmax\b", r"\\mathrm{softmax}"),
    (r"\bsigmoid\b", r"\\sigma"),
    (r"\btanh\b", r"\\tanh"),
    (r"\bexp\b", r"\\exp"),
    (r"\bmax\b", r"\\max"),
    (r"\balpha\b", r"\\alpha"),
    (r"\bidentity\b", r"\\mathrm{id}"),
    (r"\bsum_i\b", r"\\sum_i"),
    (r"\bsign\b", r"\\operatorname{sign}"),
    (r"\bclip\b", r"\\operatorname{clip}"),
    (r"\bdelta\b", r"\\delta"),
    (r"ŷ_(\d+)", r"\\hat{y}_{\1}"),
    (r"\b([xyzap])\^(\d+)_(\d+)", r"\1^{\2}_{\3}"),
    (r"\b([xyp])_(\d+)", r"\1_{\2}"),
    (r"(\d)e([+-]\d+)", r"\1 \\times 10^{\2}"),
]


def _tex_text(text: str) -> str:
    """A plain-text formula of this module (numbers, parentheses, a few names) as LaTeX."""
    for note in ("(no activation)", "(linear)"):
        text = text.replace(note, rf"\quad\text{{{note}}}")
    out = text.replace("²", "^2").replace("·", r" \cdot ").replace("<=", r"\le")
    for pattern, repl in _TEX_WORDS:
        out = re.sub(pattern, repl, out)
    return out


def _backward_text(b: BackwardNode) -> list[str]:
    a = Sym("a", b.layer, b.node).text()
    z = Sym("z", b.layer, b.node).text()
    if b.dL_da_terms:
        paths = " + ".join(f"{p.text()} · {q.text()}" for p, q in b.dL_da_terms)
        nums = " + ".join(f"{paren(p.value)}{paren(q.value)}" for p, q in b.dL_da_terms)
        lines = [f"∂L/∂{a} = {paths}", f"{' ' * (len(a) + 5)}= {nums} = {num(b.dL_da)}"]
    else:
        lines = [f"∂L/∂{a} = ∂L/∂ŷ_{b.node} = {num(b.dL_da)}"]
    if b.da_dz is not None:
        lines.append(f"∂{a}/∂{z} = {b.da_dz_text}")
    else:
        terms = " + ".join(f"{paren(p.value)}{paren(q.value)}" for p, q in b.dL_dz_terms)
        lines.append(f"∂L/∂{z} = sum_i ∂L/∂a_i · ∂a_i/∂{z} (softmax) = {terms}")
        lines.append(f"{' ' * (len(z) + 5)}= {num(b.dL_dz)}")
    return lines
