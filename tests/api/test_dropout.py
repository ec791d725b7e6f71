"""Dropout: inverted-dropout masks, their backward pass, modes and seeding.

The masks are not exposed, so the tests read them back through the gradients: with batch 1,
a Dense after the dropout has dW = h' g (h' the dropped input, g = dL/dy), which reveals h'.
References are NumPy float64; tolerance 1e-12 (float64 models).
"""

import numpy as np
import pytest

import backprop as bp


def revealing_model(p, n_in=3, n_hidden=200, seed=0):
    """x -> Dense -> Dropout(p) -> Dense(., 1), float64, MSE."""
    model = bp.Sequential(
        [bp.Dense(n_in, n_hidden), bp.Dropout(p), bp.Dense(n_hidden, 1)], dtype="float64", seed=seed
    )
    return model.compile(bp.MSE(), bp.SGD(lr=0.1))


def dropped_hidden(model, x, t):
    """(h, h', dW1, g): hidden values before and after dropout, the first layer's
    gradient, and dL/dy, from one gradients() call on one sample."""
    d1 = model.layers[0]
    h = x @ d1.W + d1.b
    (dW1, _), (dW2, db2) = model.gradients(x, t)
    g = db2[0]  # dL/dy for one sample and one output
    return h[0], dW2[:, 0] / g, dW1, g


@pytest.mark.parametrize("p", [0.0, 0.25, 0.6])
def test_masks_and_backward_match_numpy(p):
    model = revealing_model(p)
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((1, 3)), np.array([[0.3]])
    h, h_dropped, dW1, g = dropped_hidden(model, x, t)
    kept = h_dropped != 0
    # each value is either dropped or scaled by 1 / (1 - p)
    np.testing.assert_allclose(h_dropped[kept], h[kept] / (1 - p), rtol=1e-12)
    if p == 0:
        assert kept.all()
    # the output used the dropped values, and the backward pass applied the same mask:
    # dW1 = x^T (g W2^T * mask), with mask = kept / (1 - p)
    d2 = model.layers[2]
    y = h_dropped @ d2.W[:, 0] + d2.b[0]
    np.testing.assert_allclose(g, 2 * (y - t[0, 0]), rtol=1e-12)
    mask = kept / (1 - p)
    np.testing.assert_allclose(dW1, x.T @ (g * d2.W[:, 0] * mask)[None, :], rtol=1e-12)


def test_drop_rate_is_p():
    """Over 20 draws of 200 units the share of zeros is p within 4.5 binomial sigmas."""
    p, model = 0.3, revealing_model(0.3)
    x, t = np.ones((1, 3)), np.zeros((1, 1))
    drops = [np.mean(dropped_hidden(model, x, t)[1] == 0) for _ in range(20)]
    sigma = np.sqrt(p * (1 - p) / (20 * 200))
    assert abs(np.mean(drops) - p) < 4.5 * sigma
    assert len({round(d, 6) for d in drops}) > 1  # a fresh mask per step


def test_eval_mode_predict_and_evaluate_do_not_drop():
    rng = np.random.default_rng(2)
    model = revealing_model(0.5)
    ref = bp.Sequential([bp.Dense(3, 200), bp.Dense(200, 1)], dtype="float64", seed=0).compile(
        bp.MSE()
    )
    ref.set_weights(model.get_weights())  # Dropout has no parameters: the same list
    X, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    np.testing.assert_array_equal(model.predict(X), ref.predict(X))
    assert model.evaluate(X, y) == ref.evaluate(X, y)
    assert model.training
    assert model.eval() is model and not model.training
    for got, want in zip(model.gradients(X, y), ref.gradients(X, y), strict=True):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-15)
    assert model.train() is model and model.training


def test_gradcheck_with_dropout_runs_in_eval_mode():
    rng = np.random.default_rng(3)
    model = bp.Sequential(
        [bp.Dense(4, 6), bp.Tanh(), bp.Dropout(0.5), bp.Dense(6, 2)], dtype="float64", seed=0
    ).compile(bp.MSE())
    assert bp.gradcheck(model, rng.standard_normal((5, 4)), rng.standard_normal((5, 2))) < 1e-6
    assert model.training  # gradcheck works on a copy


def test_seeded_models_draw_the_same_masks():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((64, 3)), rng.standard_normal((64, 1))
    runs = []
    for _ in range(2):
        model = revealing_model(0.4, seed=11)
        model.fit(X, y, epochs=2, batch_size=8)
        runs.append(model.get_state()["weights"])
    np.testing.assert_array_equal(runs[0], runs[1])
    other = revealing_model(0.4, seed=11)
    other.fit(X, y, epochs=2, batch_size=8, seed=5)  # fit's seed also reseeds the masks
    assert not np.array_equal(other.get_state()["weights"], runs[0])


@pytest.mark.parametrize(
    "layers",
    [
        [bp.Dropout(0.2), bp.Dense(4, 3)],  # on the input: nothing to backpropagate into
        [bp.Dense(4, 5), bp.ReLU(), bp.Dropout(0.3), bp.Sigmoid(), bp.Dense(5, 3)],
        [bp.Dense(4, 5), bp.Dropout(0.3), bp.Dropout(0.1), bp.Dense(5, 3)],
    ],
    ids=["input", "between-activations", "twice"],
)
def test_dropout_stacks_train_and_stay_finite(layers):
    rng = np.random.default_rng(5)
    model = bp.Sequential(layers, seed=0).compile(bp.MSE(), bp.SGD(lr=0.05))
    X, y = rng.standard_normal((40, 4)), rng.standard_normal((40, 3))
    before = model.evaluate(X, y)
    model.fit(X, y, epochs=30, batch_size=8)
    assert np.isfinite(model.get_state()["weights"]).all()
    assert model.evaluate(X, y) < before
    assert bp.gradcheck(model, X[:6], y[:6]) < 1e-6


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_probability_is_checked(p):
    with pytest.raises(ValueError, match=r"Dropout: p must"):
        bp.Dropout(p)
