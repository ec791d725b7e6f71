"""Explain mode: one backpropagation step written out as the tutorials write it.

    e = bp.explain(model, x, y, lr=0.1)
    print(e)                    # forward pass, loss, chain-rule products, the update
    e.to_dict(); e.to_markdown(); e.to_latex()

Notation (the tutorials'): layer l is the l-th Dense layer (l = 1..L), node j of a layer is its
j-th output. w^l_jk is the weight of layer l from node k of layer l-1 to node j, that is the
library's W[k-1, j-1]; b^l_j is node j's bias. z^l_j = sum_k w^l_jk a^(l-1)_k + b^l_j and
a^l_j = f(z^l_j), f the activation layer after the Dense (the identity when there is none);
a^0 = x, and y_hat = a^L is what the loss takes (logits for the cross-entropy losses).

Every gradient shown is the library's own: model.gradients on a float64 copy of the model.
The chain-rule factors are computed independently from the forward values, so each shown
product (summed over paths and rows) can be checked against it (tests/test_explain.py does).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import check_positive
from .layers import Activation, Dense, Dropout
from .model import Sequential

Array = NDArray[Any]

#: largest network explain shows (one equation per parameter and row)
MAX_PARAMETERS = 128
#: largest batch explain shows (every factor is shown for every row)
MAX_ROWS = 8
#: a weighted sum's arithmetic is written out when the node has at most this many inputs
MAX_ARITHMETIC_TERMS = 8
#: the full paths from the loss to a parameter are written out when there are at most this many
MAX_PATHS = 8

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")
LOSSES = ("mse", "mae", "huber", "softmax_cross_entropy", "binary_cross_entropy")


# -- symbols and numbers --------------------------------------------------------------------


def _num(v: float) -> str:
    """6 significant digits; whole numbers keep a '.0' so that 2.0 reads as a value."""
    s = f"{v:.6g}"
    return s + ".0" if s.lstrip("-").isdigit() else s


def _tex_num(v: float) -> str:
    s = _num(v)
    if "e" in s:
        mantissa, exponent = s.split("e")
        return f"{mantissa} \\times 10^{{{int(exponent)}}}"
    return s


def _paren(v: float, tex: bool = False) -> str:
    return f"({_tex_num(v) if tex else _num(v)})"


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


def _product(factors: list[Partial]) -> float:
    return math.prod(f.value for f in factors)


# -- the explanation's records --------------------------------------------------------------


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
    of factors (None when there are more than MAX_PATHS). gradient: the library's kernel
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
        return math.fsum(_product(f) for f in self.local)

    @property
    def path_sum(self) -> float | None:
        """sum over rows and paths of each path's product (equals the gradient)."""
        if self.paths is None:
            return None
        return math.fsum(_product(p) for row in self.paths for p in row)


@dataclass
class Explanation:
    """What explain() returns: the forward pass, the loss, every gradient as a chain-rule
    product, and (with lr) every updated value. str() renders readable tables."""

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

    # -- renderings -----------------------------------------------------------------------

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
            + ("" if self.lr is None else f", lr = {_num(self.lr)}"),
            "notation: w^l_jk = weight of Dense layer l from node k of layer l-1 to node j",
            "  (the library's W[k-1, j-1]), b^l_j = bias of node j; z^l_j = sum_k w^l_jk "
            "a^(l-1)_k + b^l_j,",
            "  a^l_j = f(z^l_j), a^0 = x, ŷ = a^L",
            "",
            "Forward pass",
        ]
        for r in range(n):
            out.append(f"  row {r}: x = {_vec(self.X[r])}, y = {_vec(self.y[r])}")
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
            terms = " + ".join("".join(_paren(f.value) for f in path) for path in paths)
            numeric.append(f"{self._row_label(r)}{terms}")
        if len(numeric) == 1:
            lines.append(f"{pad}= {numeric[0]} = {_num(p.gradient)}")
        else:
            lines += [f"{pad}= {numeric[0]}"] + [f"{pad}+ {t}" for t in numeric[1:]]
            lines.append(f"{pad}= {_num(p.gradient)}")
        if p.updated is not None and self.lr is not None:
            lines.append(
                f"  {name} ← {_num(p.value)} - {_num(self.lr)}·{_paren(p.gradient)}"
                f" = {_num(p.updated)}"
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
                    f"{' + ' if i else ''}{_paren(p.value, True)}{_paren(q.value, True)}"
                    for i, (p, q) in enumerate(b.dL_da_terms)
                )
                back.append(f"{dL_da} &= {terms} = {nums} = {_tex_num(b.dL_da)}{row(b.row)}")
            else:
                y_hat = Sym("ŷ", None, b.node).latex()
                back.append(
                    f"{dL_da} &= \\frac{{\\partial L}}{{\\partial {y_hat}}} = "
                    f"{_tex_num(b.dL_da)}{row(b.row)}"
                )
            if b.da_dz is not None:
                back.append(
                    f"{Partial(a, z, b.da_dz).latex()} &= {_tex_text(b.da_dz_text)}{row(b.row)}"
                )
            else:
                dL_dz = Partial(LOSS_SYM, z, b.dL_dz).latex()
                terms = " + ".join(f"{p.latex()} {q.latex()}" for p, q in b.dL_dz_terms)
                back.append(f"{dL_dz} &= {terms} = {_tex_num(b.dL_dz)}{row(b.row)}")
        grads = []
        for p in sorted(self.params, key=lambda p: -p.layer):
            rows = p.paths if p.paths is not None else [[f] for f in p.local]
            symbolic = " + ".join(" ".join(f.latex() for f in path) for path in rows[0])
            numeric = " + ".join(
                "".join(_paren(f.value, tex=True) for f in path) for paths in rows for path in paths
            )
            lhs = f"\\frac{{\\partial L}}{{\\partial {p.sym.latex()}}}"
            grads.append(f"{lhs} &= {symbolic}")
            grads.append(f"&= {numeric} = {_tex_num(p.gradient)}")
            if p.updated is not None and self.lr is not None:
                grads.append(
                    f"{p.sym.latex()} &\\leftarrow {_tex_num(p.value)} - {_tex_num(self.lr)}"
                    f"\\cdot{_paren(p.gradient, tex=True)} = {_tex_num(p.updated)}"
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
                f"| {f.row} | ${Sym('a', f.layer, f.node).latex()}$ | {_num(f.z)} | "
                f"{_num(f.a)} | `{f.z_text}` |"
            )
        md += ["", f"Loss: {self.loss_formula}: `{self.loss_text}`", ""]
        md += ["| parameter | value | ∂L/∂param | product of factors | updated |"]
        md += ["|---|---|---|---|---|"]
        for p in self.params:
            updated = "" if p.updated is None else _num(p.updated)
            md.append(
                f"| ${p.sym.latex()}$ | {_num(p.value)} | {_num(p.gradient)} | "
                f"{_num(p.product)} | {updated} |"
            )
        for title, lines in self._equations():
            md += ["", f"### {title}", "", "$$", "\\begin{aligned}"]
            md.append(" \\\\\n".join(lines))
            md += ["\\end{aligned}", "$$"]
        return "\n".join(md) + "\n"

    def __repr__(self) -> str:
        return (
            f"<Explanation of {self.model} on {self.n_rows} row(s): loss {_num(self.loss)}, "
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
    out = text.replace("²", "^2").replace("·", r" \cdot ").replace("<=", r"\le").replace(" ", " ")
    for pattern, repl in _TEX_WORDS:
        out = re.sub(pattern, repl, out)
    return out


def _vec(v: Array) -> str:
    flat = np.ravel(v)
    if flat.dtype.kind in "iu":  # class labels
        return "[" + ", ".join(str(int(t)) for t in flat) + "]"
    return "[" + ", ".join(_num(float(t)) for t in flat) + "]"


def _backward_text(b: BackwardNode) -> list[str]:
    a = Sym("a", b.layer, b.node).text()
    z = Sym("z", b.layer, b.node).text()
    if b.dL_da_terms:
        paths = " + ".join(f"{p.text()} · {q.text()}" for p, q in b.dL_da_terms)
        nums = " + ".join(f"{_paren(p.value)}{_paren(q.value)}" for p, q in b.dL_da_terms)
        lines = [f"∂L/∂{a} = {paths}", f"{' ' * (len(a) + 5)}= {nums} = {_num(b.dL_da)}"]
    else:
        lines = [f"∂L/∂{a} = ∂L/∂ŷ_{b.node} = {_num(b.dL_da)}"]
    if b.da_dz is not None:
        lines.append(f"∂{a}/∂{z} = {b.da_dz_text}")
    else:
        terms = " + ".join(f"{_paren(p.value)}{_paren(q.value)}" for p, q in b.dL_dz_terms)
        lines.append(f"∂L/∂{z} = sum_i ∂L/∂a_i · ∂a_i/∂{z} (softmax) = {terms}")
        lines.append(f"{' ' * (len(z) + 5)}= {_num(b.dL_dz)}")
    return lines


# -- activations and losses, from the forward values ---------------------------------------


def _activate(name: str, z: Array, alpha: float) -> Array:
    """a = f(z) for one row z: (width,)."""
    a: Array
    if name == "sigmoid":
        a = 1.0 / (1.0 + np.exp(-z))
    elif name == "tanh":
        a = np.tanh(z)
    elif name == "relu":
        a = np.maximum(z, 0.0)
    elif name == "leaky_relu":
        a = np.where(z > 0, z, alpha * z)
    elif name == "softmax":
        e = np.exp(z - z.max())
        a = e / e.sum()
    else:
        a = z.copy()
    return a


def _activation_text(name: str, a_sym: str, z_sym: str, z: float, a: float, z_row: Array,
                     alpha: float) -> str:  # fmt: skip
    if name == "sigmoid":
        body = f"sigmoid({z_sym}) = 1/(1 + exp({_num(-z)}))"
    elif name == "tanh":
        body = f"tanh({z_sym}) = tanh({_num(z)})"
    elif name == "relu":
        body = f"max(0, {z_sym}) = max(0, {_num(z)})"
    elif name == "leaky_relu":
        body = (
            f"{z_sym} (> 0)"
            if z > 0
            else f"{_num(alpha)}·{z_sym} (<= 0) = {_num(alpha)}·{_paren(z)}"
        )
    elif name == "softmax":
        body = f"softmax({z_sym}) = exp({_num(z)}) / sum_i exp(z_i)"
        if z_row.size <= MAX_ARITHMETIC_TERMS:
            body += " = exp(" + _num(z) + ") / (" + " + ".join(
                f"exp({_num(float(t))})" for t in z_row
            ) + ")"  # fmt: skip
    else:
        body = f"{z_sym} (no activation)" if name == "none" else f"identity({z_sym})"
    return f"{a_sym} = {body} = {_num(a)}"


def _derivative(name: str, z: float, a: float, alpha: float) -> tuple[float, str]:
    """da/dz for an element-wise activation, and how it is computed."""
    if name == "sigmoid":
        return a * (1.0 - a), f"a(1 - a) = {_num(a)}(1 - {_num(a)}) = {_num(a * (1.0 - a))}"
    if name == "tanh":
        return 1.0 - a * a, f"1 - a² = 1 - {_paren(a)}² = {_num(1.0 - a * a)}"
    if name == "relu":
        return (1.0, "1 (z > 0)") if z > 0 else (0.0, "0 (z <= 0)")
    if name == "leaky_relu":
        return (1.0, "1 (z > 0)") if z > 0 else (alpha, f"alpha = {_num(alpha)} (z <= 0)")
    return 1.0, "1 (linear)"


def _loss_parts(loss: str, Y: Array, T: Array, delta: float) -> tuple[str, Array, list[list[str]]]:
    """(formula, dL/dy_hat (n, m), its arithmetic per element) for the mean loss."""
    n, m = Y.shape
    if loss in ("mae", "huber"):
        N = n * m
        over = "" if N == 1 else f"/{N}"
        mean = "" if N == 1 else f"(1/{N}) sum "
        D = Y - T
        if loss == "mae":
            G = np.sign(D) / N
            formula = f"MAE, L = {mean}|ŷ - y|"
        else:
            G = np.clip(D, -delta, delta) / N
            formula = (
                f"Huber (delta = {_num(delta)}), L = {mean}h(ŷ - y), h(d) = d²/2 if |d| <= delta "
                "else delta(|d| - delta/2)"
            )

        def rule(a: str, t: str) -> str:
            if loss == "mae":
                return f"sign({a} - {t})"
            return f"clip({a} - {t}, {_num(-delta)}, {_num(delta)})"

        texts = [
            [
                f"∂L/∂ŷ_{j + 1} = {rule(f'ŷ_{j + 1}', f'y_{j + 1}')}{over} = "
                f"{rule(_num(Y[i, j]), _num(T[i, j]))}{over} = {_num(G[i, j])}"
                for j in range(m)
            ]
            for i in range(n)
        ]
        return formula, G, texts
    if loss == "mse":
        N = n * m
        G = 2.0 * (Y - T) / N
        over = "" if N == 1 else f"/{N}"
        texts = [
            [
                f"∂L/∂ŷ_{j + 1} = 2(ŷ_{j + 1} - y_{j + 1}){over} = "
                f"2({_num(Y[i, j])} - {_num(T[i, j])}){over} = {_num(G[i, j])}"
                for j in range(m)
            ]
            for i in range(n)
        ]
        formula = "MSE, L = (ŷ - y)²" if N == 1 else f"MSE, L = (1/{N}) sum (ŷ - y)²"
        return formula, G, texts
    if loss == "binary_cross_entropy":
        N = n * m
        P = 1.0 / (1.0 + np.exp(-Y))
        G = (P - T) / N
        over = "" if N == 1 else f"/{N}"
        texts = [
            [
                f"∂L/∂ŷ_{j + 1} = (sigmoid(ŷ_{j + 1}) - y_{j + 1}){over} = "
                f"({_num(P[i, j])} - {_num(T[i, j])}){over} = {_num(G[i, j])}"
                for j in range(m)
            ]
            for i in range(n)
        ]
        mean = "" if N == 1 else f"(1/{N}) sum "
        formula = f"binary cross-entropy from logits ŷ, L = {mean}-[y log p + (1-y) log(1-p)], "
        return formula + "p = sigmoid(ŷ)", G, texts
    # softmax cross-entropy: T holds the class labels (n,)
    E = np.exp(Y - Y.max(axis=1, keepdims=True))
    P = E / E.sum(axis=1, keepdims=True)
    onehot = np.zeros_like(P)
    onehot[np.arange(n), T.astype(np.int64)] = 1.0
    G = (P - onehot) / n
    over = "" if n == 1 else f"/{n}"
    texts = [
        [
            f"∂L/∂ŷ_{j + 1} = (p_{j + 1} - [y = {j}]){over} = "
            f"({_num(P[i, j])} - {_num(onehot[i, j])}){over} = {_num(G[i, j])}"
            for j in range(m)
        ]
        for i in range(n)
    ]
    mean = "" if n == 1 else f"(1/{n}) sum_rows "
    formula = (
        f"softmax cross-entropy from logits ŷ, L = {mean}-log p[y], p = softmax(ŷ) "
        "(class y is output node y + 1)"
    )
    return formula, G, texts


# -- explain ---------------------------------------------------------------------------------


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


def explain(model: Sequential, x: Any, y: Any, lr: float | None = None) -> Explanation:
    """Backpropagation for one example (or a small batch) written out step by step.

    x: (n_features,) one example, or (n, n_features) a batch of n <= MAX_ROWS rows.
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
    if model.loss.name not in LOSSES:
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
    X_in = np.asarray(x)
    if X_in.ndim == 1:  # one example: y is its target(s)
        X_in = X_in.reshape(1, -1)
        y_in = np.asarray(y)
        y = y_in.reshape(1) if model.loss.name == "softmax_cross_entropy" else y_in.reshape(1, -1)
    if X_in.ndim == 2 and X_in.shape[0] > MAX_ROWS:
        raise ValueError(
            f"explain: x has {X_in.shape[0]} rows; explain shows at most {MAX_ROWS} "
            "(every factor of every row). Explain a few rows, or use model.gradients(X, y)"
        )
    # the user's model stays untouched; eval mode: dropout would make the step random
    m64 = model.clone("float64").eval()
    X, T = m64._batch(X_in, y, "explain")
    kernel_grads = m64.gradients(X, T)
    loss_value = m64.evaluate(X, T)

    net = _Net(
        [np.array(d.W, dtype=np.float64) for d, _, _ in units],
        [np.array(d.b, dtype=np.float64) for d, _, _ in units],
        [act for _, act, _ in units],
        [alpha for _, _, alpha in units],
    )
    A, Z, forward = net.forward(X)
    formula, G, g_texts = _loss_parts(model.loss.name, A[-1], T, model.loss.param)
    n, m = G.shape
    output_grads = [
        OutputGrad(r, j + 1, float(G[r, j]), g_texts[r][j]) for r in range(n) for j in range(m)
    ]
    loss_text = f"L = {_num(loss_value)}"
    if model.loss.name in ("mse", "mae") and T.size <= MAX_ARITHMETIC_TERMS:
        pattern = "({} - {})²" if model.loss.name == "mse" else "|{} - {}|"
        terms = " + ".join(
            pattern.format(_num(a), _num(t)) for a, t in zip(A[-1].ravel(), T.ravel(), strict=True)
        )
        mean = terms if T.size == 1 else f"({terms})/{T.size}"
        loss_text = f"L = {mean} = {_num(loss_value)}"
    backward = net.backward(A, Z, G)
    explanation = Explanation(
        model=" -> ".join(repr(layer) for layer in model.layers),
        loss_name=repr(model.loss),
        loss_formula=formula,
        X=X.astype(np.float64),
        y=T.copy(),
        lr=lr,
        layers=[(d.in_features, d.out_features, act) for d, act, _ in units],
        forward=forward,
        loss=loss_value,
        loss_text=loss_text,
        output_grads=output_grads,
        backward=backward,
    )
    explanation.params = net.params(A, backward, kernel_grads, lr)
    return explanation


@dataclass
class _Net:
    """The network as float64 arrays: Ws[l-1]: (in, out), bs[l-1]: (out,), one activation
    name (or "none") and alpha per Dense layer."""

    Ws: list[Array]
    bs: list[Array]
    acts: list[str]
    alphas: list[float]

    def forward(self, X: Array) -> tuple[list[Array], list[Array], list[ForwardNode]]:
        """A[l], Z[l]: (n, width_l) for l = 0..L (A[0] = X), and the forward records."""
        n = X.shape[0]
        A, Z = [X], [X]  # Z[0] is never read
        for W, b, act, alpha in zip(self.Ws, self.bs, self.acts, self.alphas, strict=True):
            Z.append(A[-1] @ W + b)
            A.append(np.stack([_activate(act, Z[-1][r], alpha) for r in range(n)]))
        records = []
        for r in range(n):
            for li, (W, b) in enumerate(zip(self.Ws, self.bs, strict=True)):
                layer = li + 1
                fan_in, width = W.shape
                for j in range(width):
                    z_sym, a_sym = Sym("z", layer, j + 1).text(), Sym("a", layer, j + 1).text()
                    z, a = float(Z[layer][r, j]), float(A[layer][r, j])
                    if fan_in <= MAX_ARITHMETIC_TERMS:
                        terms = " + ".join(
                            f"{_paren(A[li][r, k])}{_paren(W[k, j])}" for k in range(fan_in)
                        )
                        z_text = f"{z_sym} = {terms} + {_paren(b[j])} = {_num(z)}"
                    else:
                        prev = "x" if li == 0 else f"a^{li}"
                        z_text = (
                            f"{z_sym} = sum_k w^{layer}_{j + 1}k {prev}_k + b^{layer}_{j + 1} "
                            f"= {_num(z)}"
                        )
                    a_text = _activation_text(
                        self.acts[li], a_sym, z_sym, z, a, Z[layer][r], self.alphas[li]
                    )
                    records.append(ForwardNode(r, layer, j + 1, z, a, z_text, a_text))
        return A, Z, records

    def backward(self, A: list[Array], Z: list[Array], G: Array) -> list[BackwardNode]:
        """Node by node, from the output layer down: dL/da (from the nodes each feeds),
        da/dz and dL/dz. G: dL/dy_hat (n, m)."""
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
            dZl = np.empty((n, width))
            for r in range(n):
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
                    dz_terms: list[tuple[Partial, Partial]] = []
                    da_dz: float | None
                    if act == "softmax":  # a_i = softmax(z)_i: da_i/dz_j = a_i (δ_ij - a_j)
                        a_row = A[layer][r]
                        for i in range(width):
                            ai = Sym("a", layer, i + 1)
                            jac = float(a_row[i] * (float(i == j) - a_row[j]))
                            dz_terms.append(
                                (Partial(LOSS_SYM, ai, float(dA[r, i])), Partial(ai, z_sym, jac))
                            )
                        da_dz, da_text = None, "softmax: every a_i depends on every z_j"
                        dZl[r, j] = math.fsum(p.value * q.value for p, q in dz_terms)
                    else:
                        da_dz, da_text = _derivative(
                            act, float(Z[layer][r, j]), float(A[layer][r, j]), alpha
                        )
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
        """Every weight, then every bias, of each layer with its factors and kernel gradient."""
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
    """Number of paths from the loss down to one z^layer_j."""
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
    node = nodes[(layer, r, j)]
    if layer == L:
        return [[Partial(LOSS_SYM, Sym("a", layer, j), node.dL_da)]]
    out: list[list[Partial]] = []
    for p_z, p_za in node.dL_da_terms:
        out += [[*p, p_za] for p in _paths_to_z(nodes, r, layer + 1, p_z.wrt.j or 0, L)]
    return out
