"""The command lines: --help of python -m backprop.demo and python -m backprop.examples, and the
two-two-two example's numbers against Matt Mazur's "A Step by Step Backpropagation Example"
and against an independent hand implementation of its procedure."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from backprop import examples


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, check=False
    )


# -- --help -------------------------------------------------------------------------------------


def _option_help(text: str) -> dict[str, str]:
    """{option: its help text} from argparse's --help output."""
    options, current = {}, None
    for line in text.splitlines():
        m = re.match(r"  (-\w, )?(--[\w-]+)( [A-Z_{}\w,]+)?(\s{2,}(.*))?$", line)
        if m:
            current = m[2]
            options[current] = m[5] or ""
        elif current and line.startswith(" " * 10) and line.strip():
            options[current] += " " + line.strip()
        else:
            current = None
    return options


def test_demo_help_describes_every_option() -> None:
    done = _run("backprop.demo", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m backprop.demo")
    options = _option_help(done.stdout)
    assert set(options) == {"--help", "--epochs", "--batch-size", "--dtype", "--seed"}
    assert all(len(text) > 10 for text in options.values()), options
    assert "default 30" in options["--epochs"] and "default 32" in options["--batch-size"]
    assert "float32" in options["--dtype"] and "default 0" in options["--seed"]


def test_demo_rejects_a_bad_option_value() -> None:
    done = _run("backprop.demo", "--dtype", "float16")
    assert done.returncode == 2 and "invalid choice: 'float16'" in done.stderr


def test_examples_help_lists_every_example_and_option() -> None:
    done = _run("backprop.examples", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m backprop.examples")
    options = _option_help(done.stdout)
    assert set(options) == {"--help", "--list"}
    assert all(len(text) > 10 for text in options.values()), options
    for name, run in examples.EXAMPLES.items():
        first_line = (run.__doc__ or "").strip().splitlines()[0]
        assert f"  {name:<14} {first_line}" in done.stdout
    assert "two-two-two" in examples.EXAMPLES


def test_examples_main_returns_the_exit_status(capsys) -> None:
    assert examples.main(["--help"]) == 0
    assert "usage: python -m backprop.examples" in capsys.readouterr().out
    assert examples.main(["--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert examples.main(["neuron", "xor"]) == 2


# -- two-two-two: Matt Mazur's numbers -------------------------------------------------------------

#: the article's numbers (https://mattmazur.com/2015/03/17/a-step-by-step-backpropagation-example/)
ARTICLE_FORWARD = {"out_h1": 0.593269992, "out_h2": 0.596884378, "out_o1": 0.75136507,
                   "out_o2": 0.772928465}  # fmt: skip
ARTICLE_ERROR = 0.298371109
ARTICLE_UPDATED = {
    "w1": 0.149780716, "w2": 0.19956143, "w3": 0.24975114, "w4": 0.29950229,
    "w5": 0.35891648, "w6": 0.408666186, "w7": 0.511301270, "w8": 0.561370121,
}  # fmt: skip
ARTICLE_ERROR_AFTER_ONE = 0.291027924
ARTICLE_ERROR_AFTER_10000 = 0.0000351085
ARTICLE_OUTPUTS_AFTER_10000 = (0.015912196, 0.984065734)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _mazur(w: list[float], b1: float = 0.35, b2: float = 0.60):
    """The article's forward pass and error, E = sum 1/2 (target - out)^2, by hand."""
    w1, w2, w3, w4, w5, w6, w7, w8 = w
    h1 = _sigmoid(w1 * 0.05 + w2 * 0.10 + b1)
    h2 = _sigmoid(w3 * 0.05 + w4 * 0.10 + b1)
    o1 = _sigmoid(w5 * h1 + w6 * h2 + b2)
    o2 = _sigmoid(w7 * h1 + w8 * h2 + b2)
    error = 0.5 * (0.01 - o1) ** 2 + 0.5 * (0.99 - o2) ** 2
    return (h1, h2, o1, o2), error


def _mazur_step(w: list[float], lr: float = 0.5) -> list[float]:
    """One update as the article derives it: dE/dw from the original weights (biases kept)."""
    w5, w6, w7, w8 = w[4:]
    (h1, h2, o1, o2), _ = _mazur(w)
    d1 = (o1 - 0.01) * o1 * (1 - o1)  # dE/dnet_o1
    d2 = (o2 - 0.99) * o2 * (1 - o2)
    e1 = (d1 * w5 + d2 * w7) * h1 * (1 - h1)  # dE/dnet_h1
    e2 = (d1 * w6 + d2 * w8) * h2 * (1 - h2)
    grads = [e1 * 0.05, e1 * 0.10, e2 * 0.05, e2 * 0.10, d1 * h1, d1 * h2, d2 * h1, d2 * h2]
    return [v - lr * g for v, g in zip(w, grads, strict=True)]


@pytest.fixture(scope="module")
def two_two_two_output() -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert examples.main(["two-two-two"]) == 0
    return out.getvalue()


def _number(text: str, label: str) -> float:
    m = re.search(rf"(?:^|\s){re.escape(label)} = (-?[\d.]+(?:e-?\d+)?)", text, re.M)
    assert m, f"no {label} in the output"
    return float(m[1])


def test_two_two_two_forward_pass_and_error_are_the_articles(two_two_two_output: str) -> None:
    out = two_two_two_output
    assert "total error E = 0.298371109" in out  # the article's number, digit for digit
    for name, value in ARTICLE_FORWARD.items():
        assert _number(out, name) == pytest.approx(value, abs=5e-10), name
    hand, error = _mazur([0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55])
    assert error == pytest.approx(ARTICLE_ERROR, abs=5e-10)
    for name, value in zip(ARTICLE_FORWARD, hand, strict=True):
        assert _number(out, name) == pytest.approx(value, abs=5e-10), name


def test_two_two_two_first_update_gives_the_articles_weights(two_two_two_output: str) -> None:
    """w1..w8 after the first update: the article's numbers to the digits it prints (8 or 9
    decimals: within half a unit of its last digit), and the hand step's to 9 decimals."""
    out = two_two_two_output
    hand = _mazur_step([0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55])
    for (name, article), expected in zip(ARTICLE_UPDATED.items(), hand, strict=True):
        printed = _number(out, name)
        decimals = len(repr(article).split(".")[1])
        assert printed == pytest.approx(article, abs=0.5 * 10.0**-decimals + 5e-10), name
        assert printed == pytest.approx(expected, abs=5e-10), name
    assert "w5 = 0.358916480" in out


def test_two_two_two_uses_the_articles_error_and_learning_rate(two_two_two_output: str) -> None:
    """E = 1/2 sum (t - o)^2 is MSE('sum_outputs', half=True), trained at the article's own
    lr 0.5; the text says how MSE()'s mean relates (E = (n/2) * MSE). Checked by hand."""
    out = two_two_two_output
    assert "MSE(reduction='sum_outputs', half=True)" in out
    assert "half the SUM of squared errors" in out and "MEAN over the n outputs" in out
    assert "SGD lr = 0.5" in out
    (_, _, o1, o2), error = _mazur([0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55])
    mse = ((0.01 - o1) ** 2 + (0.99 - o2) ** 2) / 2
    assert error == pytest.approx(mse * 2 / 2, rel=1e-15)


def test_two_two_two_training_follows_the_article(two_two_two_output: str) -> None:
    """After the first round (biases kept, as in the article) and after 10,000 rounds: the
    hand procedure's numbers to the printed digits; the article's to the precision its own
    program reached (its first-round error 0.291027924 is 1.5e-7 above what its own rounded
    weights give, 0.291027774)."""
    out = two_two_two_output
    w = _mazur_step([0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55])
    _, after_one = _mazur(w)
    printed = _number(out, "total error after the first round: E")
    assert printed == pytest.approx(after_one, abs=5e-10)
    assert printed == pytest.approx(ARTICLE_ERROR_AFTER_ONE, abs=2e-7)
    _, from_article_weights = _mazur(list(ARTICLE_UPDATED.values()))
    assert from_article_weights == pytest.approx(after_one, abs=1e-9)
    for _ in range(9_999):
        w = _mazur_step(w)
    (_, _, o1, o2), error = _mazur(w)
    m = re.search(r"After 10,000 rounds: E = ([\d.]+), outputs ([\d.]+) and ([\d.]+)", out)
    assert m, "no 10,000-round line"
    assert float(m[1]) == pytest.approx(error, abs=5e-11)
    assert float(m[2]) == pytest.approx(o1, abs=5e-10)
    assert float(m[3]) == pytest.approx(o2, abs=5e-10)
    assert float(m[1]) == pytest.approx(ARTICLE_ERROR_AFTER_10000, rel=1e-3)
    assert (float(m[2]), float(m[3])) == pytest.approx(ARTICLE_OUTPUTS_AFTER_10000, abs=2e-6)


def test_two_two_two_runs_from_the_command_line() -> None:
    done = _run("backprop.examples", "two-two-two")
    assert done.returncode == 0, done.stderr
    assert "total error E = 0.298371109" in done.stdout


def test_the_scaled_rate_on_the_mean_is_the_articles_step_on_half_the_sum() -> None:
    """The derivation the example prints, checked on a 2-2-3 variant (n = 3, where the
    scaling matters): MSE() with lr 0.5 * n / 2 takes the same step as
    MSE('sum_outputs', half=True), the article's E, with lr 0.5."""
    import numpy as np

    import backprop as bp

    rng = np.random.default_rng(0)
    x, y = rng.random((1, 2)), rng.random((1, 3))
    steps = []
    for loss, lr in ((bp.MSE(), 0.5 * 3 / 2), (bp.MSE("sum_outputs", half=True), 0.5)):
        model = bp.Sequential([bp.Dense(2, 2), bp.Sigmoid(), bp.Dense(2, 3), bp.Sigmoid()],
                              dtype="float64", seed=4)  # fmt: skip
        model.compile(loss, bp.SGD(lr=lr))
        model.train_step(x, y)
        steps.append(model.get_weights())
    for a, b in zip(*steps, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)
