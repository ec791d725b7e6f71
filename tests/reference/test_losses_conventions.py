"""The squared-error conventions users bring, each against its hand formula: the mean over
elements (torch, Keras), scikit-learn's half of it, the seed articles' sum over outputs
averaged over examples, and the classic step-by-step example's half sum (whose published
numbers the 2-2-2 network reproduces at the article's own learning rate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import backprop as bp
import backprop_core as core

CONVENTIONS = {
    # (reduction, half): hand formula of the batch loss for Y, T: (n, m)
    ("mean", False): lambda D: (D**2).mean(),
    ("mean", True): lambda D: (D**2).mean() / 2,
    ("sum_outputs", False): lambda D: (D**2).sum(axis=1).mean(),
    ("sum_outputs", True): lambda D: (D**2).sum(axis=1).mean() / 2,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("reduction", "half"), sorted(CONVENTIONS))
def test_value_and_gradient_equal_the_hand_formula(reduction, half, dtype) -> None:
    rng = np.random.default_rng(0)
    Y, T = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    loss = bp.MSE(reduction, half)
    value, G = loss.value_and_grad(Y.astype(dtype), T.astype(dtype))
    D = Y.astype(dtype).astype(np.float64) - T.astype(dtype)
    expected = CONVENTIONS[(reduction, half)](D)
    # the gradient by central differences of the hand formula, per element
    h, fd = 1e-6, np.empty_like(D)
    for idx in np.ndindex(D.shape):
        up, down = D.copy(), D.copy()
        up[idx] += h
        down[idx] -= h
        fd[idx] = (CONVENTIONS[(reduction, half)](up) - CONVENTIONS[(reduction, half)](down)) / (
            2 * h
        )
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(expected, rel=rtol)
    np.testing.assert_allclose(G, fd, rtol=1e-6 if dtype == np.float32 else 1e-8, atol=1e-9)


def test_half_is_scikit_learns_squared_error() -> None:
    base = pytest.importorskip("sklearn.neural_network._base")
    rng = np.random.default_rng(1)
    Y, T = rng.normal(size=(9, 2)), rng.normal(size=(9, 2))
    assert bp.MSE(half=True)(Y, T) == pytest.approx(base.squared_loss(T, Y), rel=1e-14)


def test_a_model_trains_with_each_convention_as_the_kernel_and_a_float64_reference() -> None:
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    for (reduction, half), formula in CONVENTIONS.items():
        model = bp.Sequential([bp.Dense(3, 2)], dtype="float64", seed=0)
        model.compile(bp.MSE(reduction, half), bp.SGD(lr=0.1))
        W, b = model.get_weights()
        D = X @ W + b - y
        assert model.evaluate(X, y) == pytest.approx(formula(D), rel=1e-12)
        _, flat = model.loss_and_gradient(X, y)
        scale = (2 if reduction == "sum_outputs" else 1) * (0.5 if half else 1)
        dD = 2 * scale * D / D.size  # d formula / dD
        np.testing.assert_allclose(flat[:6].reshape(3, 2), X.T @ dD, rtol=1e-12)
        np.testing.assert_allclose(flat[6:], dD.sum(axis=0), rtol=1e-12)


def _mazur() -> bp.Sequential:
    """The 2-2-2 network of the classic step-by-step example (w1..w8, b1, b2)."""
    model = bp.Sequential([bp.Dense(2, 2), bp.Sigmoid(), bp.Dense(2, 2), bp.Sigmoid()],
                          dtype="float64")  # fmt: skip
    model.set_weights([
        [[0.15, 0.25], [0.20, 0.30]], [0.35, 0.35],  # W[k-1, j-1] = w from input k to hidden j
        [[0.40, 0.50], [0.45, 0.55]], [0.60, 0.60],
    ])  # fmt: skip
    return model.compile(bp.MSE("sum_outputs", half=True), bp.SGD(lr=0.5))


def test_the_classic_example_reproduces_its_published_numbers_at_its_learning_rate() -> None:
    model = _mazur()
    x, t = np.array([[0.05, 0.10]]), np.array([[0.01, 0.99]])
    assert model.evaluate(x, t) == pytest.approx(0.298371109, abs=5e-10)  # E_total
    model.train_step(x, t)
    W1, _, W2, _ = model.get_weights()
    published = {  # the article's weights after one update at learning rate 0.5
        "w1": (W1[0, 0], 0.149780716), "w2": (W1[1, 0], 0.19956143),
        "w3": (W1[0, 1], 0.24975114), "w4": (W1[1, 1], 0.29950229),
        "w5": (W2[0, 0], 0.35891648), "w6": (W2[1, 0], 0.408666186),
        "w7": (W2[0, 1], 0.511301270), "w8": (W2[1, 1], 0.561370121),
    }  # fmt: skip
    for name, (ours, theirs) in published.items():
        assert ours == pytest.approx(theirs, abs=5e-9), name


def test_explain_writes_the_half_sum_and_its_derivative() -> None:
    e = bp.explain(_mazur(), [0.05, 0.10], [0.01, 0.99], lr=0.5)
    text = str(e)
    assert "squared error summed over outputs, halved, L = (1/2) sum (ŷ - y)²" in text
    assert "∂L/∂ŷ_1 = (ŷ_1 - y_1)" in text
    g = [r.value for r in e.output_grads]
    np.testing.assert_allclose(g, [0.741365069, -0.217071535], atol=1e-9)  # the article's


@pytest.mark.parametrize(("reduction", "half"), sorted(CONVENTIONS))
def test_the_convention_is_saved_and_loaded(reduction, half, tmp_path: Path) -> None:
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float64", seed=0)
    model.compile(bp.MSE(reduction, half), bp.SGD(lr=0.1))
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert loaded.loss.get_config() == {"reduction": reduction, "half": half}
    X, y = np.ones((2, 3)), np.zeros((2, 2))
    assert loaded.evaluate(X, y) == model.evaluate(X, y)


def test_bad_conventions_are_refused() -> None:
    with pytest.raises(ValueError, match="reduction must be one of"):
        bp.MSE("sum")
    with pytest.raises(TypeError, match="half must be a bool"):
        bp.MSE(half=1)
    with pytest.raises(ValueError, match="scale"):
        core.mse_loss(np.ones((1, 1)), np.ones((1, 1)), scale=0.0)
