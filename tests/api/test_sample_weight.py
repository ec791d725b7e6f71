"""sample_weight: a batch's loss is sum_i w_i L_i / sum_i w_i (scikit-learn's convention).

References: integer weights equal repeated rows (the kernels' weighting is checked against
the NumPy spec in core/test_kernels.py); float64 models, tolerance 1e-12.
"""

import numpy as np
import pytest

import backprop as bp

LOSSES = {
    "mse": (bp.MSE, 2),
    "mae": (bp.MAE, 2),
    "huber": (lambda: bp.Huber(0.5), 2),
    "softmax_ce": (bp.SoftmaxCrossEntropy, 3),
    "bce": (bp.BinaryCrossEntropy, 2),
}


def model_for(loss, seed=0):
    make, n_out = LOSSES[loss]
    return bp.Sequential(
        [bp.Dense(3, 5), bp.Tanh(), bp.Dense(5, n_out)], dtype="float64", seed=seed
    ).compile(make(), bp.SGD(lr=0.1, momentum=0.5))


def weights(model):
    """All of the model's parameters, flat (a copy)."""
    return model.get_state()["weights"]


def data(loss, n, rng):
    X = rng.standard_normal((n, 3))
    if loss == "softmax_ce":
        return X, rng.integers(0, 3, n)
    if loss == "bce":
        return X, rng.uniform(0, 1, (n, 2))
    return X, rng.standard_normal((n, 2))


@pytest.mark.parametrize("loss", list(LOSSES))
def test_integer_weights_equal_repeated_rows(loss):
    rng = np.random.default_rng(0)
    X, y = data(loss, 9, rng)
    w = np.array([1, 0, 2, 3, 1, 0, 1, 4, 2])
    rep = np.repeat(np.arange(9), w)
    a, b = model_for(loss), model_for(loss)
    np.testing.assert_allclose(a.evaluate(X, y, sample_weight=w), b.evaluate(X[rep], y[rep]))
    for (dWa, dba), (dWb, dbb) in zip(
        a.gradients(X, y, sample_weight=w), b.gradients(X[rep], y[rep]), strict=True
    ):
        np.testing.assert_allclose(dWa, dWb, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dba, dbb, rtol=1e-12, atol=1e-14)
    for _ in range(3):
        la = a.train_step(X, y, sample_weight=w)
        lb = b.train_step(X[rep], y[rep])
        np.testing.assert_allclose(la, lb, rtol=1e-12)
    np.testing.assert_allclose(weights(a), weights(b), rtol=1e-12, atol=1e-14)
    # one full batch per epoch, in order: fit weighs rows the same way
    a.fit(X, y, epochs=2, batch_size=9, shuffle=False, sample_weight=w)
    b.fit(X[rep], y[rep], epochs=2, batch_size=len(rep), shuffle=False)
    np.testing.assert_allclose(weights(a), weights(b), rtol=1e-11, atol=1e-13)


def test_fit_epoch_loss_is_weighted_over_batches():
    """History.loss = sum over batches of (batch loss * batch weight) / total weight, with
    the batch losses replayed by train_step on a clone."""
    rng = np.random.default_rng(1)
    X, y = data("mse", 10, rng)
    w = rng.uniform(0.1, 3.0, 10)
    a = model_for("mse")
    b = model_for("mse")
    h = a.fit(X, y, epochs=1, batch_size=4, shuffle=False, sample_weight=w)
    total = 0.0
    for s in range(0, 10, 4):
        total += (
            b.train_step(X[s : s + 4], y[s : s + 4], sample_weight=w[s : s + 4])
            * w[s : s + 4].sum()
        )
    np.testing.assert_allclose(h.loss[0], total / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(weights(a), weights(b), rtol=1e-12)


def test_shuffled_fit_gathers_weights_with_their_rows():
    """With shuffling, each row keeps its weight: same result as the repeated-rows data
    given the same row order (full batch, so the order only changes summation)."""
    rng = np.random.default_rng(2)
    X, y = data("softmax_ce", 12, rng)
    w = rng.integers(0, 4, 12)
    w[0] = 1
    rep = np.repeat(np.arange(12), w)
    a, b = model_for("softmax_ce"), model_for("softmax_ce")
    a.fit(X, y, epochs=3, batch_size=12, sample_weight=w, seed=3)
    b.fit(X[rep], y[rep], epochs=3, batch_size=len(rep), shuffle=False)
    np.testing.assert_allclose(weights(a), weights(b), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("w", "message"),
    [
        (np.ones(4), r"X has 5 samples but sample_weight has 4"),
        (np.ones((5, 1)), r"sample_weight must be 1-D"),
        (np.array([1, 1, -1, 1, 1.0]), r"sample_weight must be >= 0; sample_weight\[2\]"),
        (np.array([1, 1, np.nan, 1, 1.0]), r"sample_weight holds NaN or infinity in row 2"),
        (np.zeros(5), r"sample_weight must have a positive sum"),
        (np.array(["a"] * 5), r"sample_weight must hold numbers"),
    ],
)
def test_bad_sample_weight_is_refused(w, message):
    rng = np.random.default_rng(3)
    X, y = data("mse", 5, rng)
    model = model_for("mse")
    before = weights(model)
    for call in (model.train_step, model.evaluate, model.gradients):
        with pytest.raises((ValueError, TypeError), match=message):
            call(X, y, sample_weight=w)
    with pytest.raises((ValueError, TypeError), match=message):
        model.fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(weights(model), before)
