"""The objective scikit-learn's MLP descends, computed by the core: its per-batch L2 term on
the weights only (compile(l2=alpha)) and its Poisson loss, loss and gradients against
scikit-learn's own _backprop on the same weights and data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import backprop as bp

sk_mlp = pytest.importorskip("sklearn.neural_network")


def _sklearn_objective(loss: str, alpha: float, weights, X, y, sample_weight=None):
    """(loss, [dW0, db0, dW1, db1]) from scikit-learn's MLPRegressor._backprop."""
    reg = sk_mlp.MLPRegressor(
        hidden_layer_sizes=(weights[0].shape[1],), activation="tanh", alpha=alpha, loss=loss,
        max_iter=1, random_state=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, y)
    reg.coefs_ = [weights[0].copy(), weights[2].copy()]
    reg.intercepts_ = [weights[1].copy(), weights[3].copy()]
    n_layers = reg.n_layers_
    activations = [X] + [None] * (n_layers - 1)
    deltas = [None] * (n_layers - 1)
    coef_grads = [np.empty_like(c) for c in reg.coefs_]
    intercept_grads = [np.empty_like(b) for b in reg.intercepts_]
    Y = y.reshape(len(y), -1)
    loss_value, cg, ig = reg._backprop(
        X, Y, sample_weight, activations, deltas, coef_grads, intercept_grads
    )
    return loss_value, [cg[0], ig[0], cg[1], ig[1]]


def _ours(loss: bp.Loss, alpha: float, n_out: int, seed: int = 0) -> bp.Sequential:
    model = bp.Sequential([bp.Dense(4, 6), bp.Tanh(), bp.Dense(6, n_out)], dtype="float64",
                          seed=seed)  # fmt: skip
    return model.compile(loss, bp.SGD(lr=0.1), l2=alpha)


def _flat_to_list(model: bp.Sequential, flat: np.ndarray) -> list[np.ndarray]:
    out, at = [], 0
    for w in model.get_weights():
        out.append(flat[at : at + w.size].reshape(w.shape))
        at += w.size
    return out


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize(
    ("sk_loss", "ours", "positive"),
    [
        ("squared_error", bp.MSE(half=True), False),
        ("poisson", bp.Poisson("sum_outputs"), True),
    ],
)
def test_loss_and_gradient_equal_scikit_learns_backprop(sk_loss, ours, positive, alpha, weighted):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 4))
    y = rng.poisson(2.0, size=20).astype(float) if positive else rng.normal(size=20)
    sw = rng.uniform(0.5, 2.0, size=20) if weighted else None
    model = _ours(ours, alpha, 1)
    value, flat = model.loss_and_gradient(X, y, sample_weight=sw)
    sk_value, sk_grads = _sklearn_objective(sk_loss, alpha, model.get_weights(), X, y, sw)
    assert value == pytest.approx(sk_value, rel=1e-12)
    for a, b in zip(_flat_to_list(model, flat), sk_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_the_penalty_spares_the_biases_and_scales_with_the_batch_weight() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(10, 4)), rng.normal(size=(10, 2))
    plain, penalised = _ours(bp.MSE(), 0.0, 2), _ours(bp.MSE(), 0.5, 2)
    _, g0 = plain.loss_and_gradient(X, y)
    loss, g1 = penalised.loss_and_gradient(X, y)
    W0, b0, W1, b1 = plain.get_weights()
    expected = [0.5 * W0 / 10, 0 * b0, 0.5 * W1 / 10, 0 * b1]
    for d, e in zip(_flat_to_list(plain, g1 - g0), expected, strict=True):
        np.testing.assert_allclose(d, e, rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(
        plain.evaluate(X, y) + 0.25 * ((W0**2).sum() + (W1**2).sum()) / 10, rel=1e-12
    )
    assert penalised.evaluate(X, y) == plain.evaluate(X, y)  # evaluate: the data loss only


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_folded_update_applies_the_penalty(dtype) -> None:
    """128 x 128 weights: plain SGD folds the update into the product, now with beta
    1 - lr alpha / n; it must equal W - lr (g + alpha W / n)."""
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(16, 128)).astype(dtype), rng.normal(size=(16, 1)).astype(dtype)
    model = bp.Sequential([bp.Dense(128, 128), bp.Tanh(), bp.Dense(128, 1)], dtype=dtype, seed=0)
    model.compile(bp.MSE(), bp.SGD(lr=0.05), l2=0.7)
    theta = model.get_state()["weights"].astype(np.float64)
    _, g = model.loss_and_gradient(X, y)
    model.train_step(X, y)
    expected = theta - np.float64(np.dtype(dtype).type(0.05)) * g.astype(np.float64)
    eps = np.finfo(dtype).eps
    step = np.abs(theta) + 0.05 * np.abs(g)
    assert np.all(np.abs(model.get_state()["weights"] - expected) <= 4 * eps * step)


def test_fit_with_the_penalty_records_scikit_learns_epoch_objective() -> None:
    """One full-batch epoch's loss is the data loss plus alpha/2 ||W||^2 / n at the start
    weights, as scikit-learn's loss_curve_ entry for that epoch."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(12, 4)), rng.normal(size=12)
    model = _ours(bp.MSE(half=True), 0.2, 1)
    sk_value, _ = _sklearn_objective("squared_error", 0.2, model.get_weights(), X, y)
    history = model.fit(X, y, epochs=1, batch_size=12, shuffle=False)
    assert history.loss[0] == pytest.approx(sk_value, rel=1e-12)


def test_the_penalty_and_poisson_are_saved_and_checked(tmp_path) -> None:
    model = _ours(bp.Poisson(), 0.25, 2)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert loaded.l2 == 0.25 and repr(loaded.loss) == "Poisson()"
    with pytest.raises(ValueError, match="compile: l2"):
        _ours(bp.MSE(), -1.0, 1)
    with pytest.raises(ValueError, match="Poisson targets must be >= 0"):
        model.fit(np.ones((3, 4)), -np.ones((3, 2)))
    means = model.predict_proba(np.ones((2, 4)))
    np.testing.assert_allclose(means, np.exp(model.predict(np.ones((2, 4)))), rtol=1e-15)
