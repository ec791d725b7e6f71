"""The classic worked examples of backpropagation, explained step by step and then trained.

    python -m backprop.examples            # list the examples
    python -m backprop.examples NAME       # run one: neuron, package, two-three-one,
                                           # two-two-two, xor
    python -m backprop.examples --help     # the options

Each prints bp.explain(...) for its network (the forward pass, the loss, every gradient as a
product of chain-rule factors, the update) and then the training progress. docs/tutorial.md
walks through their output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np

import backprop as bp

from .explain import explain

# -- neuron: one sigmoid neuron ---------------------------------------------------------------


def neuron() -> None:
    """One sigmoid neuron: inputs (2, 3, 4), weights (0.1, 0.5, 0.9), bias -2, target 1."""
    dense = bp.Dense(3, 1)
    model = bp.Sequential([dense, bp.Sigmoid()], dtype="float64", seed=0)
    model.set_weights([[[0.1], [0.5], [0.9]], [-2.0]])
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=1.0))
    x, y = np.array([[2.0, 3.0, 4.0]]), np.array([1.0])
    print(explain(model, x[0], y[0], lr=1.0))
    print()
    print("Training on this one example, SGD lr = 1.0 (L before each step):")
    _train_steps(model, x, y, steps=200, every=40)
    print(
        "The neuron is saturated (a = 0.96, so da/dz = a(1 - a) = 0.034): every gradient is\n"
        "scaled down by that factor, which is why a sigmoid output learns slowly near 0 or 1."
    )


# -- package: IQ, CGPA -> package (LPA) --------------------------------------------------------

IQ_CGPA = np.array([[80.0, 8.0], [60.0, 5.0], [110.0, 7.0]])
PACKAGE = np.array([5.0, 3.0, 8.0])


def _package_model(lr: float) -> bp.Sequential:
    # linear activations, "all the weights 1 and biases 0"
    model = bp.Sequential(
        [
            bp.Dense(2, 2, weight_init="ones", bias_init="zeros"),
            bp.Identity(),
            bp.Dense(2, 1, weight_init="ones", bias_init="zeros"),
            bp.Identity(),
        ],
        dtype="float64",
        seed=0,
    )
    return model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=lr))


def _stable_lr_bound(X: np.ndarray) -> float:
    """Largest stable SGD step for one row at the start, 1 / max_row |dy_hat/dtheta|².

    For L = (y - y_hat)² the curvature along the gradient is 2|dy_hat/dtheta|², and a step
    overshoots the minimum of that parabola when lr > 2 / (2|dy_hat/dtheta|²). With all
    weights 1 and biases 0: dy_hat/dw^2_1j = O_1j = x1 + x2 (two of them), dy_hat/db^2 = 1,
    dy_hat/dw^1_jk = w^2 x_k = x_k (four), dy_hat/db^1_j = 1 (two).
    """
    o = X.sum(axis=1)
    grad_sq = 2 * o**2 + 1 + 2 * (X**2).sum(axis=1) + 2
    return float(1.0 / grad_sq.max())


def package() -> None:
    """The IQ / CGPA -> package table: a 2-2-1 linear network, one random row per step."""
    print("IQ   CGPA  package (LPA)")
    for (iq, cgpa), lpa in zip(IQ_CGPA, PACKAGE, strict=True):
        print(f"{iq:<4.0f} {cgpa:<5.0f} {lpa:.0f}")
    print()
    lr = 1e-5
    model = _package_model(lr)
    print(explain(model, IQ_CGPA[0], PACKAGE[0], lr=lr))
    print()
    bound = _stable_lr_bound(IQ_CGPA)
    print(
        f"Why lr = {lr:g}: IQ is ~100 while CGPA is ~7, so the gradients of the weights fed by\n"
        "IQ (and of the output weights, fed by hidden values of ~100 too) are 10 to 100 times\n"
        "those of the CGPA weights and of the biases, as above. One row's loss (y - y_hat)²\n"
        "curves by 2|dy_hat/dtheta|² along its gradient, so a step on it overshoots the minimum\n"
        f"once lr > 1/|dy_hat/dtheta|², here {bound:.3g} (the row IQ 110, CGPA 7, at the start).\n"
        "Well above that, every step overshoots further:"
    )
    fast, losses = _package_model(1e-4), []
    try:
        for _ in range(20):  # one epoch per call, to show the losses before the failure
            losses += fast.fit(IQ_CGPA, PACKAGE, batch_size=1).loss
    except FloatingPointError:
        shown = ", ".join(f"{v:.3g}" for v in losses)
        print(
            f"  lr = 0.0001: mean L per epoch {shown}, then not finite: fit raises\n"
            "  FloatingPointError before making that update"
        )
    else:
        print(f"  lr = 0.0001: mean L per epoch {', '.join(f'{v:.3g}' for v in losses)}")
    print()
    print(f"Training, lr = {lr:g}: one row per step, rows in a new random order each epoch;")
    print("the mean L of each epoch:")
    history = model.fit(IQ_CGPA, PACKAGE, epochs=50, batch_size=1, shuffle=True, seed=0)
    _print_epochs(history.loss, (1, 2, 5, 10, 20, 50))
    print(f"  predictions {_fmt(model.predict(IQ_CGPA).ravel())} for targets {_fmt(PACKAGE)}")
    print(
        "The loss falls fast, then crawls: the small rate that IQ's scale forces on every\n"
        "weight is far too small for the CGPA weights and the biases.\n"
    )
    mean, std = IQ_CGPA.mean(axis=0), IQ_CGPA.std(axis=0)
    X_std = (IQ_CGPA - mean) / std
    lr_std = 0.02
    print(
        f"Standardised inputs, (x - mean) / std with mean {_fmt(mean)}, std {_fmt(std)}:\n"
        f"both features now vary by ~1, the stable bound becomes {_stable_lr_bound(X_std):.3g},\n"
        f"and lr = {lr_std:g} ({lr_std / lr:,.0f} times larger) trains every weight at a similar "
        "pace:"
    )
    model = _package_model(lr_std)
    history = model.fit(X_std, PACKAGE, epochs=50, batch_size=1, shuffle=True, seed=0)
    _print_epochs(history.loss, (1, 2, 5, 10, 20, 50))
    print(f"  predictions {_fmt(model.predict(X_std).ravel())} for targets {_fmt(PACKAGE)}")


# -- two-three-one: the 2-3-1 network with chain-rule gradients ------------------------------


def two_three_one() -> None:
    """The 2-3-1 network: sigmoid hidden layer, linear output, every gradient a product."""
    hidden, output = bp.Dense(2, 3), bp.Dense(3, 1)
    model = bp.Sequential([hidden, bp.Sigmoid(), output, bp.Identity()], dtype="float64", seed=0)
    # the library's W is (in, out): W[k - 1, j - 1] = w^l_jk
    model.set_weights(
        [[[0.4, -0.3, 0.9], [-0.6, 0.8, 0.2]], [0.1, -0.2, 0.05], [[0.5], [-1.1], [0.7]], [-0.15]]
    )
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=0.1))
    x, y = np.array([[0.7, -1.3]]), np.array([0.25])
    print(explain(model, x[0], y[0], lr=0.1))
    print()
    print("Training on this one example, SGD lr = 0.1 (L before each step):")
    _train_steps(model, x, y, steps=50, every=10)


# -- two-two-two: Matt Mazur's step-by-step example ------------------------------------------

MAZUR_X = np.array([[0.05, 0.10]])
MAZUR_Y = np.array([[0.01, 0.99]])
#: w1..w4 (inputs -> hidden), w5..w8 (hidden -> outputs), b1 (hidden), b2 (outputs); w1 links
#: i1 -> h1, w2 i2 -> h1, w3 i1 -> h2, w4 i2 -> h2, w5 h1 -> o1, w6 h2 -> o1, w7 h1 -> o2,
#: w8 h2 -> o2
MAZUR_W = (0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55)
MAZUR_B = (0.35, 0.60)
MAZUR_LR = 0.5


def _mazur_weights(w: tuple[float, ...] | list[float], b: tuple[float, ...]) -> list[np.ndarray]:
    """w1..w8, b1, b2 as get_weights() lists them: W[k, j] links input k to unit j."""
    w1, w2, w3, w4, w5, w6, w7, w8 = w
    return [
        np.array([[w1, w3], [w2, w4]]),
        np.array([b[0], b[0]]),
        np.array([[w5, w7], [w6, w8]]),
        np.array([b[1], b[1]]),
    ]


def _w1_to_w8(model: bp.Sequential) -> list[float]:
    W1, _, W2, _ = model.get_weights()
    return [float(W[k, j]) for W in (W1, W2) for j in (0, 1) for k in (0, 1)]


def two_two_two() -> None:
    """Matt Mazur's step-by-step 2-2-2 sigmoid network, E = half the sum of squared errors."""
    # the article's error, E = 1/2 sum_k (target_k - out_k)^2, is this convention of MSE, so
    # its learning rate is used as it is
    lr = MAZUR_LR
    model = bp.Sequential(
        [bp.Dense(2, 2), bp.Sigmoid(), bp.Dense(2, 2), bp.Sigmoid()], dtype="float64", seed=0
    )
    model.set_weights(_mazur_weights(MAZUR_W, MAZUR_B))
    model.compile(loss=bp.MSE("sum_outputs", half=True), optimizer=bp.SGD(lr=lr))
    x, y = MAZUR_X, MAZUR_Y
    print(
        'Matt Mazur, "A Step by Step Backpropagation Example" (2015): inputs 0.05, 0.10,\n'
        "targets 0.01, 0.99, weights w1..w8 = " + ", ".join(f"{w:.2f}" for w in MAZUR_W) + ",\n"
        f"biases b1 = {MAZUR_B[0]:.2f} (hidden), b2 = {MAZUR_B[1]:.2f} (outputs), sigmoid on "
        f"both layers, learning rate {MAZUR_LR}.\n"
        "The article's error is half the SUM of squared errors, E = 1/2 sum_k (t_k - o_k)^2:\n"
        "MSE(reduction='sum_outputs', half=True), so its learning rate is taken as it is\n"
        "(MSE() is the MEAN over the n outputs, L = 1/n sum_k (t_k - o_k)^2 = (2/n) E, and would\n"
        "take lr = 0.5 * n / 2 for the same step).\n"
        "In the notation below, w^1_11 = w1, w^1_12 = w2, w^1_21 = w3, w^1_22 = w4,\n"
        "w^2_11 = w5, w^2_12 = w6, w^2_21 = w7, w^2_22 = w8.\n"
    )
    print(explain(model, x[0], y[0], lr=lr))
    print()
    h = bp.Sequential([bp.Dense(2, 2), bp.Sigmoid()], dtype="float64", seed=0)
    h.set_weights(model.get_weights()[:2])  # the hidden layer on its own
    out_h, out_o = h.predict(x)[0], model.predict(x)[0]
    error = model.evaluate(x, y)
    print("Forward pass (the article's nine digits):")
    print(f"  out_h1 = {out_h[0]:.9f}   out_h2 = {out_h[1]:.9f}")
    print(f"  out_o1 = {out_o[0]:.9f}   out_o2 = {out_o[1]:.9f}")
    print(f"  total error E = {error:.9f}")
    print()
    model.train_step(x, y)
    print(f"After the first update (SGD lr = {lr:g}, every weight from the gradients at the")
    print("original weights, as the article does):")
    for i, w in enumerate(_w1_to_w8(model), start=1):
        print(f"  w{i} = {w:.9f}")
    _, b1, _, b2 = model.get_weights()
    print(
        f"SGD updated the biases too (b1 -> {_fmt(b1)}, b2 -> {_fmt(b2)}); the article keeps\n"
        "them at 0.35 and 0.60, so from here on they are put back after every step\n"
        "(model.set_weights) to follow it."
    )
    model.set_weights(_mazur_weights(_w1_to_w8(model), MAZUR_B))
    error = model.evaluate(x, y)
    print(
        f"  total error after the first round: E = {error:.9f} (the article prints 0.291027924;\n"
        "  its own w1..w8, as it prints them, give 0.291027774 too)"
    )
    for _ in range(9_999):
        model.train_step(x, y)
        model.set_weights(_mazur_weights(_w1_to_w8(model), MAZUR_B))
    error = model.evaluate(x, y)
    out_o = model.predict(x)[0]
    print(
        f"After 10,000 rounds: E = {error:.10f}, outputs {out_o[0]:.9f} and {out_o[1]:.9f}\n"
        "for targets 0.01 and 0.99 (the article reports 0.0000351085, 0.015912196 and\n"
        "0.984065734 from its own program)."
    )


# -- xor: what one layer cannot learn ---------------------------------------------------------

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0.0, 1.0, 1.0, 0.0])


def xor() -> None:
    """XOR: a single Dense layer cannot separate it; a hidden layer of two tanh units can."""
    lr, epochs = 2.0, 500
    single = bp.Sequential([bp.Dense(2, 1)], dtype="float64", seed=0)
    single.compile(loss=bp.BinaryCrossEntropy(), optimizer=bp.SGD(lr=lr))
    history = single.fit(XOR_X, XOR_Y, epochs=epochs, batch_size=4, shuffle=False)
    print(f"One Dense(2, 1) layer, binary cross-entropy, {epochs} epochs of SGD lr = {lr:g}:")
    print(
        f"  loss {history.loss[-1]:.4f} (log 2 = {np.log(2):.4f}), probabilities "
        f"{_fmt(single.predict_proba(XOR_X).ravel())}"
    )
    print(
        "  no line w1 x1 + w2 x2 + b puts (0,1) and (1,0) on one side and (0,0), (1,1) on the\n"
        "  other, so the best a single layer can do is to answer 0.5 everywhere.\n"
    )
    model = bp.Sequential([bp.Dense(2, 2), bp.Tanh(), bp.Dense(2, 1)], dtype="float64", seed=0)
    model.compile(loss=bp.BinaryCrossEntropy(), optimizer=bp.SGD(lr=lr))
    print("A 2-2-1 network with tanh hidden units; the first step on all four rows (the mean")
    print("loss, so each gradient sums the four rows' chain-rule products):\n")
    print(explain(model, XOR_X, XOR_Y, lr=lr))
    print()
    print(f"Training, full batch, SGD lr = {lr:g}:")
    history = model.fit(XOR_X, XOR_Y, epochs=epochs, batch_size=4, shuffle=False)
    _print_epochs(history.loss, (1, 10, 50, 100, 200, epochs))
    proba = model.predict_proba(XOR_X).ravel()
    print(f"  probabilities {_fmt(proba)} for targets {_fmt(XOR_Y)}")


# -- helpers and the command line -------------------------------------------------------------


def _fmt(v: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(t):.4g}" for t in np.ravel(v)) + "]"


def _train_steps(
    model: bp.Sequential, x: np.ndarray, y: np.ndarray, steps: int, every: int
) -> None:
    for step in range(1, steps + 1):
        loss = model.train_step(x, y)
        if step == 1 or step % every == 0:
            print(f"  step {step:4d}: L = {loss:.6g}")
    print(f"  after {steps} steps: y_hat = {model.predict(x)[0, 0]:.6g}, target {y[0]:g}")


def _print_epochs(losses: list[float], epochs: tuple[int, ...]) -> None:
    for epoch in epochs:
        print(f"  epoch {epoch:4d}: L = {losses[epoch - 1]:.6g}")


EXAMPLES: dict[str, Callable[[], None]] = {
    "neuron": neuron,
    "package": package,
    "two-three-one": two_three_one,
    "two-two-two": two_two_two,
    "xor": xor,
}


def _listing() -> str:
    lines = ["usage: python -m backprop.examples NAME", "", "examples:"]
    for name, run in EXAMPLES.items():
        doc = (run.__doc__ or "").strip().splitlines()[0]
        lines.append(f"  {name:<14} {doc}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backprop.examples",
        description="The classic worked examples of backpropagation: each prints bp.explain "
        "for its network (forward pass, loss, every gradient as a product of chain-rule "
        "factors, the update), then trains it. docs/tutorial.md walks through the output.",
        epilog=_listing().partition("\n\n")[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help=f"the example to run, one of: {', '.join(EXAMPLES)} (none: list them)",
    )
    parser.add_argument(
        "-l", "--list", action="store_true", help="list the examples with a line on each"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the example named in argv (default sys.argv[1:]); returns the exit status."""
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else 2
    if args.list or args.name is None:
        print(_listing())
        return 0
    if args.name not in EXAMPLES:
        print(
            f"python -m backprop.examples: unknown example {args.name!r}; choose one of "
            f"{', '.join(EXAMPLES)} (or --list)",
            file=sys.stderr,
        )
        return 2
    EXAMPLES[args.name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
