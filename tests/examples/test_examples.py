"""python -m backprop.examples: each example runs and prints the numbers of its worked example.

The expected numbers are recomputed here by hand arithmetic (seed articles 001-003), then
looked for in the printed output, formatted to the 6 significant digits explain prints.
"""

from __future__ import annotations

import math
import pathlib
import re
import subprocess
import sys

import pytest

from backprop import examples


def _run(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert examples.main([name] if name else []) == 0
    return capsys.readouterr().out


def _g(v: float) -> str:
    """explain's number format: 6 significant digits, whole numbers with '.0'."""
    s = f"{v:.6g}"
    return s + ".0" if s.lstrip("-").isdigit() else s


def _epoch_losses(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"epoch +\d+: L = (\S+)", text)]


def test_neuron(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("neuron", capsys)
    a = 1.0 / (1.0 + math.exp(-3.3))  # z = 0.2 + 1.5 + 3.6 - 2.0 = 3.3
    dw1 = 2.0 * (a - 1.0) * a * (1.0 - a) * 2.0
    assert "z^1_1 = (2.0)(0.1) + (3.0)(0.5) + (4.0)(0.9) + (-2.0) = 3.3" in out
    assert f"= {_g(a)}" in out and f"= {_g(dw1)}" in out
    assert f"(0.964429 - 1.0)² = {_g((a - 1.0) ** 2)}" in out
    steps = [float(v) for v in re.findall(r"step +\d+: L = (\S+)", out)]
    assert steps[0] == pytest.approx((a - 1.0) ** 2, rel=1e-5)
    assert steps == sorted(steps, reverse=True) and steps[-1] < steps[0]  # training lowers L


def test_package(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("package", capsys)
    # first row (80, 8 -> 5), all weights 1: O11 = O12 = 88, ŷ = 176, L = 171² = 29241,
    # dL/dŷ = -2(5 - 176) = 342, dL/dw^2_11 = 342·88, dL/dw^1_11 = 342·80, dL/dw^1_12 = 342·8
    for snippet in [
        "= 88.0",
        "= 176.0",
        "= 29241.0",
        "= 342.0",
        "= 30096.0",
        "= 27360.0",
        "= 2736.0",
        f"= {_g(1.0 - 1e-5 * 30096.0)}",  # the update w - lr·dL/dw = 0.69904
    ]:
        assert snippet in out, snippet
    # the stable rate for the row (110, 7): 1 / (2·117² + 1 + 2·(110² + 7²) + 2)
    assert f"{1.0 / (2 * 117**2 + 1 + 2 * (110**2 + 7**2) + 2):.3g}" in out
    assert "lr = 0.0001: mean L per epoch" in out and "FloatingPointError" in out  # too large
    raw, standardised = _epoch_losses(out)[:6], _epoch_losses(out)[6:]
    initial = (171.0**2 + 127.0**2 + 226.0**2) / 3
    assert len(raw) == len(standardised) == 6
    assert raw == sorted(raw, reverse=True) and raw[-1] < 1e-3 * initial
    assert standardised == sorted(standardised, reverse=True) and standardised[-1] < 1e-8


def test_two_three_one(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("two-three-one", capsys)
    x1, x2 = 0.7, -1.3
    a = [
        1.0 / (1.0 + math.exp(-(0.4 * x1 - 0.6 * x2 + 0.1))),
        1.0 / (1.0 + math.exp(-(-0.3 * x1 + 0.8 * x2 - 0.2))),
        1.0 / (1.0 + math.exp(-(0.9 * x1 + 0.2 * x2 + 0.05))),
    ]
    y_hat = 0.5 * a[0] - 1.1 * a[1] + 0.7 * a[2] - 0.15
    dC = -2.0 * (0.25 - y_hat)
    # dC/dw^1_11 = dC/da^3_1 · 1 · w^2_11 · a^2_1(1 - a^2_1) · x_1 (the article's chain)
    dw1_11 = dC * 1.0 * 0.5 * a[0] * (1.0 - a[0]) * x1
    for v in [*a, y_hat, dC * a[1], dw1_11]:
        assert _g(v) in out, v
    assert (
        "∂L/∂w^1_11 = ∂L/∂a^2_1 · ∂a^2_1/∂z^2_1 · ∂z^2_1/∂a^1_1 · ∂a^1_1/∂z^1_1 · ∂z^1_1/∂w^1_11"
        in out
    )
    assert "after 50 steps: y_hat = 0.25," in out


def test_xor(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("xor", capsys)
    assert "probabilities [0.5, 0.5, 0.5, 0.5]" in out  # one layer: stuck at chance
    assert f"(log 2 = {math.log(2):.4f})" in out
    assert "row 3:" in out  # the explanation of the four-row batch
    last = re.findall(r"probabilities \[([^\]]+)\] for targets", out)[-1]
    proba = [float(v) for v in last.split(",")]
    assert [round(p) for p in proba] == [0, 1, 1, 0]
    losses = _epoch_losses(out)
    assert losses[-1] < 0.05 < losses[0]


def test_listing_and_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["--list"]):
        assert examples.main(argv) == 0
        out = capsys.readouterr().out
        for name in ("neuron", "package", "two-three-one", "xor"):
            assert f"  {name} " in out
    assert examples.main(["nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown example 'nope'" in err and "two-three-one" in err


def test_module_entry_point_exit_status() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "backprop.examples", "perceptron"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown example 'perceptron'" in done.stderr


TUTORIAL = pathlib.Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"


NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?")
#: below this, a printed value is round-off (a loss of 1e-26 is a squared residual of 1e-13)
ROUND_OFF = 1e-20


def _printed_tolerance(token: str) -> float:
    """One unit in the last printed place of a number token (mantissa digits and exponent)."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - decimals)


def _same_at_printed_precision(doc: str, run: str) -> list[str]:
    """The lines where doc and run differ beyond the printed precision: text equal, and each
    number within one unit in its last printed place (or both below ROUND_OFF)."""
    problems = []
    doc_lines, run_lines = doc.splitlines(), run.splitlines()
    if len(doc_lines) != len(run_lines):
        return [f"{len(doc_lines)} lines in the tutorial, {len(run_lines)} printed"]
    for i, (a, b) in enumerate(zip(doc_lines, run_lines, strict=True)):
        if NUMBER.sub("#", a) != NUMBER.sub("#", b):
            problems.append(f"line {i + 1}: {a!r} != {b!r}")
            continue
        for x, y in zip(NUMBER.findall(a), NUMBER.findall(b), strict=True):
            vx, vy = float(x.replace(",", "")), float(y.replace(",", ""))
            tol = max(_printed_tolerance(x), _printed_tolerance(y)) * 1.000001
            if abs(vx - vy) > tol and not (abs(vx) < ROUND_OFF and abs(vy) < ROUND_OFF):
                problems.append(f"line {i + 1}: {x} != {y} (printed precision {tol:g})")
    return problems


def test_the_printed_precision_comparison_can_fail() -> None:
    assert _same_at_printed_precision("L = 0.25 at 10,000", "L = 0.25 at 10,000") == []
    assert _same_at_printed_precision("L = 0.25", "L = 0.27") != []
    assert _same_at_printed_precision("L = 1.5e-05", "L = 1.7e-05") != []
    assert _same_at_printed_precision("w = 0.3", "b = 0.3") != []
    assert _same_at_printed_precision("L = 2.49851e-21", "L = 2.49852e-21") == []


@pytest.mark.parametrize("name", ["", "neuron", "package", "two-three-one", "two-two-two", "xor"])
def test_the_tutorial_shows_the_current_output(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every pasted output is what the example prints today, at the printed precision (the
    last digit may differ by one with another BLAS or SIMD path). scripts/update_tutorial.py
    rewrites them."""
    if not TUTORIAL.is_file():
        pytest.skip("docs/tutorial.md is not part of this installation")
    command = "$ python -m backprop.examples" + (f" {name}" if name else "")
    block = re.search(
        rf"```text\n{re.escape(command)}\n(.*?)\n```",
        TUTORIAL.read_text(encoding="utf-8"),
        re.DOTALL,
    )
    assert block is not None, f"no output block for {command!r} in docs/tutorial.md"
    assert _same_at_printed_precision(block.group(1), _run(name, capsys)) == []
