"""Backprop gradients against central finite differences, in float64.

bp.gradcheck returns max_i |g_i - fd_i| / max(|g_i|, |fd_i|, 1e-6); the acceptance bound is
1e-6. Networks cover every activation (also chained, and before the first Dense), every loss,
depths 1 to 4 and random shapes. Inputs are random, so ReLU kinks (where the derivative is
undefined) are hit with probability ~0.
"""

import numpy as np
import pytest

import backprop as bp

ACTIVATIONS = {
    "sigmoid": bp.Sigmoid,
    "relu": bp.ReLU,
    "tanh": bp.Tanh,
    "identity": bp.Identity,
    "leaky_relu": lambda: bp.LeakyReLU(0.1),
    "softmax": bp.Softmax,
}
LOSSES = {
    "mse": bp.MSE,
    "softmax_ce": bp.SoftmaxCrossEntropy,
    "bce": bp.BinaryCrossEntropy,
    "mae": bp.MAE,
    "huber": lambda: bp.Huber(0.3),
}


# MAE and Huber's linear part sum terms of ±c/size: gradients are often exactly 0 (dead ReLUs,
# cancelling signs), where central differences hold round-off of up to ~1e-10: compare those
# absolutely, to 1e-10 (1e-6 relative to a floor of 1e-4), far below these gradients' ~0.1
FLOOR = {"mae": 1e-4, "huber": 1e-4}


def targets(loss, rng, n, n_out):
    if loss == "softmax_ce":
        return rng.integers(0, n_out, n)
    if loss == "bce":
        return rng.uniform(0, 1, (n, n_out))
    return rng.standard_normal((n, n_out))


def build(widths, act, loss, seed, rng):
    layers = []
    for k in range(len(widths) - 1):
        layers.append(bp.Dense(widths[k], widths[k + 1], weight_init="normal"))
        if k < len(widths) - 2:
            layers.append(ACTIVATIONS[act]())
    model = bp.Sequential(layers, dtype="float64", seed=seed)
    weights = []
    for layer in model.layers:  # weights of order 1 so every path carries signal
        if isinstance(layer, bp.Dense):
            weights.append(rng.standard_normal(layer.W.shape) / np.sqrt(layer.in_features))
            weights.append(0.1 * rng.standard_normal(layer.b.shape))
    model.set_weights(weights)
    return model.compile(LOSSES[loss]())


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_every_activation_and_loss(act, loss):
    rng = np.random.default_rng(7)
    model = build([4, 5, 3], act, loss, 0, rng)
    X = rng.standard_normal((6, 4))
    assert bp.gradcheck(model, X, targets(loss, rng, 6, 3), floor=FLOOR.get(loss, 1e-6)) < 1e-6


@pytest.mark.parametrize("seed", range(6))
def test_random_shapes_and_depths(seed):
    rng = np.random.default_rng(100 + seed)
    depth = int(rng.integers(1, 5))
    widths = [int(w) for w in rng.integers(1, 7, depth + 1)]
    act = list(ACTIVATIONS)[seed % len(ACTIVATIONS)]
    loss = list(LOSSES)[seed % len(LOSSES)]
    if loss == "softmax_ce":
        widths[-1] = max(widths[-1], 2)
    n = int(rng.integers(1, 9))
    model = build(widths, act, loss, seed, rng)
    X = rng.standard_normal((n, widths[0]))
    y = targets(loss, rng, n, widths[-1])
    assert bp.gradcheck(model, X, y, floor=FLOOR.get(loss, 1e-6)) < 1e-6


@pytest.mark.parametrize(
    "layers",
    [
        [bp.Tanh(), bp.Dense(3, 4), bp.Sigmoid(), bp.Tanh(), bp.Dense(4, 2)],
        [bp.Dense(3, 4), bp.Sigmoid(), bp.Identity(), bp.Softmax(), bp.Dense(4, 2), bp.Tanh()],
        [bp.Dense(3, 3), bp.Dense(3, 2), bp.LeakyReLU(0.3), bp.Sigmoid()],
    ],
    ids=["activation-first-then-chain", "identity-inside-a-chain", "dense-dense"],
)
def test_unusual_stacks(rng, layers):
    """Chained activations must not overwrite an output a later backward step still needs."""
    model = bp.Sequential(layers, dtype="float64", seed=3).compile(bp.MSE())
    X = rng.standard_normal((5, 3))
    assert bp.gradcheck(model, X, rng.standard_normal((5, 2))) < 1e-6


def test_gradcheck_detects_a_wrong_gradient(rng, monkeypatch):
    """gradcheck must be able to fail: corrupt the backprop gradient and it reports it."""
    model = build([3, 4, 2], "tanh", "mse", 0, rng)
    X, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    assert bp.gradcheck(model, X, y) < 1e-6  # the control: the true gradient passes
    original = bp.Sequential.loss_and_gradient
    calls = []

    def bad_loss_and_gradient(self, X, y, sample_weight=None, **kw):
        loss, grad = original(self, X, y, sample_weight, **kw)
        calls.append(self.dtype)
        grad[0] *= 1.01  # a 1% error in one weight's gradient
        return loss, grad

    monkeypatch.setattr(bp.Sequential, "loss_and_gradient", bad_loss_and_gradient)
    assert bp.gradcheck(model, X, y) > 1e-3
    assert calls == [np.float64]  # gradcheck's float64 copy took the corrupted gradient
