"""The worked examples of the seed articles (../shared/seeds), checked against the library.

Every expected number is computed in this file by hand arithmetic (in the comments) and by plain
Python / NumPy float64 written out here; none is copied from the library's output.

* 003 ("Backpropagation algorithm - A fundamental building block"): one sigmoid neuron with
  inputs (2.0, 3.0, 4.0), weights (0.1, 0.5, 0.9) and bias -2.0.
* 002 ("What is back propagation?"): the IQ / CGPA -> package table, a 2-2-1 network with linear
  activations, weights initialised to 1 and biases to 0, loss L = (y - ŷ)², and its notation
  O11, O12 (hidden outputs), O21 = ŷ, w^k_ij (from node i of layer k-1 to node j of layer k).
* 001 ("Neural Network Back Propagation Python Examples"): the 2-3-1 network whose gradients
  are written out as chain-rule products, in its notation: w^1_jk (input k -> hidden j),
  Z^2_j, a^2_j (hidden), w^2_1j (hidden j -> output), Z^3_1, a^3_1 (output), cost C.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp

# -- 003: the sigmoid neuron -----------------------------------------------------------------

NEURON_X = (2.0, 3.0, 4.0)
NEURON_W = (0.1, 0.5, 0.9)
NEURON_B = -2.0


def _neuron_model(*tail: bp.Layer) -> bp.Sequential:
    model = bp.Sequential([bp.Dense(3, 1), *tail], dtype="float64", seed=0)
    model.set_weights([np.array(NEURON_W).reshape(3, 1), [NEURON_B]])
    return model


def _neuron_sum() -> float:
    # (2.0)(0.1) + (3.0)(0.5) + (4.0)(0.9) = 0.2 + 1.5 + 3.6 = 5.3;  5.3 + (-2.0) = 3.3
    return sum(x * w for x, w in zip(NEURON_X, NEURON_W, strict=True)) + NEURON_B


@pytest.mark.parametrize("tail", [(), (bp.Identity,)], ids=["dense-only", "identity"])
def test_neuron_weighted_sum_is_3_3(tail: tuple[type[bp.Layer], ...]) -> None:
    z = _neuron_sum()
    assert z == pytest.approx(3.3, abs=1e-12)
    model = _neuron_model(*(cls() for cls in tail))
    out = model.predict(np.array([NEURON_X]))
    assert out.shape == (1, 1)
    # the library may add the three products in another order: a few ulps apart at most
    assert out[0, 0] == pytest.approx(z, rel=1e-14)
    assert out[0, 0] == pytest.approx(3.3, rel=1e-14)


def test_neuron_sigmoid_activation_is_0_96() -> None:
    z = _neuron_sum()
    a = 1.0 / (1.0 + math.exp(-z))  # 1 / (1 + e^-3.3) = 1 / 1.036883... = 0.964429...
    assert round(a, 2) == 0.96  # the article's rounding
    assert round(a, 4) == 0.9644
    model = _neuron_model(bp.Sigmoid())
    out = model.predict(np.array([NEURON_X]))
    assert out[0, 0] == pytest.approx(a, rel=1e-14)


def test_neuron_cost_gradient_against_expected_output_1() -> None:
    # The article takes the expected output of this neuron (y0) to be 1 and the cost to be
    # the squared difference: C = (a - 1)², a = sigmoid(z), z = w·x + b.  Chain rule:
    #   dC/da = 2 (a - 1),  da/dz = a (1 - a),  dz/dw_i = x_i,  dz/db = 1.
    target = 1.0
    z = _neuron_sum()
    a = 1.0 / (1.0 + math.exp(-z))
    dC_da = 2.0 * (a - target)
    da_dz = a * (1.0 - a)
    expected_dw = [dC_da * da_dz * x for x in NEURON_X]
    expected_db = dC_da * da_dz * 1.0
    model = _neuron_model(bp.Sigmoid())
    model.compile(loss=bp.MSE())  # batch 1, one output: MSE is exactly (a - y)²
    assert model.evaluate(np.array([NEURON_X]), [target]) == pytest.approx(
        (a - target) ** 2, rel=1e-13
    )
    [(dW, db)] = model.gradients(np.array([NEURON_X]), [target])
    np.testing.assert_allclose(dW[:, 0], expected_dw, rtol=1e-13)
    np.testing.assert_allclose(db, [expected_db], rtol=1e-13)
    # the activation is below its target, so every weight (all inputs > 0) must be pushed up
    assert (dW < 0).all() and db[0] < 0


# -- 002: IQ, CGPA -> package, a 2-2-1 linear network --------------------------------------

IQ_CGPA = np.array([[80.0, 8.0], [60.0, 5.0], [110.0, 7.0]])
PACKAGE = np.array([5.0, 3.0, 8.0])


def _iq_model() -> bp.Sequential:
    # "Initialize all the weights to be 1 and biases to be 0 (we'll do this)"; the article
    # assumes every activation to be linear.  W[i - 1, j - 1] is the article's w^k_ij.
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
    return model


def test_iq_initial_weights_are_ones_and_zeros() -> None:
    model = _iq_model()
    assert np.array_equal(model.layers[0].W, np.ones((2, 2)))
    assert np.array_equal(model.layers[0].b, np.zeros(2))
    assert np.array_equal(model.layers[2].W, np.ones((2, 1)))
    assert np.array_equal(model.layers[2].b, np.zeros(1))


def test_iq_first_row_forward_and_loss() -> None:
    model = _iq_model()
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=1e-5))
    iq, cgpa = IQ_CGPA[0]
    y = PACKAGE[0]
    # O11 = w1_11·IQ + w1_21·CGPA + b11 = 80 + 8 + 0 = 88;  O12 likewise = 88
    o11 = 1.0 * iq + 1.0 * cgpa + 0.0
    o12 = 1.0 * iq + 1.0 * cgpa + 0.0
    assert o11 == o12 == 88.0
    # O21 = w2_11·O11 + w2_21·O12 + b21 = 88 + 88 + 0 = 176
    o21 = 1.0 * o11 + 1.0 * o12 + 0.0
    assert o21 == 176.0
    # L = (y - ŷ)² = (5 - 176)² = (-171)² = 29241
    loss = (y - o21) ** 2
    assert loss == 29241.0

    hidden = bp.Sequential([bp.Dense(2, 2, weight_init="ones")], dtype="float64", seed=0)
    assert np.array_equal(hidden.predict(IQ_CGPA[:1]), [[o11, o12]])
    # all of these are small integers, exact in float64 whatever the order of the sums
    assert np.array_equal(model.predict(IQ_CGPA[:1]), [[o21]])
    assert model.evaluate(IQ_CGPA[:1], PACKAGE[:1]) == loss
    assert model.train_step(IQ_CGPA[:1], PACKAGE[:1]) == loss  # the loss before the update


def test_iq_first_row_all_nine_gradients() -> None:
    model = _iq_model()
    model.compile(loss=bp.MSE())
    (iq, cgpa), y = IQ_CGPA[0], PACKAGE[0]
    w2_11 = w2_21 = 1.0
    o11 = o12 = iq + cgpa  # 88
    y_hat = w2_11 * o11 + w2_21 * o12  # 176
    # dL/dŷ = d(y - ŷ)²/dŷ = -2(y - ŷ) = -2(5 - 176) = 342
    dL_dyhat = -2.0 * (y - y_hat)
    assert dL_dyhat == 342.0
    # output layer: dŷ/dw2_11 = O11, dŷ/dw2_21 = O12, dŷ/db21 = 1
    dL_dw2_11 = dL_dyhat * o11  # 342 · 88 = 30096
    dL_dw2_21 = dL_dyhat * o12  # 30096
    dL_db21 = dL_dyhat * 1.0  # 342
    assert dL_dw2_11 == 30096.0
    # hidden layer: dŷ/dO11 = w2_11, dO11/dw1_11 = IQ, dO11/dw1_21 = CGPA, dO11/db11 = 1
    dL_dw1_11 = dL_dyhat * w2_11 * iq  # 342 · 1 · 80 = 27360
    dL_dw1_21 = dL_dyhat * w2_11 * cgpa  # 342 · 1 · 8 = 2736
    dL_db11 = dL_dyhat * w2_11 * 1.0  # 342
    # ... and through O12 (weights w1_12, w1_22 into hidden node 2)
    dL_dw1_12 = dL_dyhat * w2_21 * iq  # 27360
    dL_dw1_22 = dL_dyhat * w2_21 * cgpa  # 2736
    dL_db12 = dL_dyhat * w2_21 * 1.0  # 342

    (dW1, db1), (dW2, db2) = model.gradients(IQ_CGPA[:1], PACKAGE[:1])
    # the article's headline number: dL/dw2_11 = -2(y - ŷ)·O11 = 30096
    assert dW2[0, 0] == 30096.0
    # all 9 (6 weights, 3 biases), exact: integer arithmetic in float64
    assert np.array_equal(dW2, [[dL_dw2_11], [dL_dw2_21]])
    assert np.array_equal(db2, [dL_db21])
    assert np.array_equal(dW1, [[dL_dw1_11, dL_dw1_12], [dL_dw1_21, dL_dw1_22]])
    assert np.array_equal(db1, [dL_db11, dL_db12])
    # gradients() does not update anything
    assert np.array_equal(model.layers[0].W, np.ones((2, 2)))
    assert np.array_equal(model.layers[2].W, np.ones((2, 1)))


def test_iq_first_row_one_update_follows_w_new_formula() -> None:
    # w_new = w_old - η dL/dw_old, with η = 1e-5
    eta = 1e-5
    model = _iq_model()
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=eta))
    model.train_step(IQ_CGPA[:1], PACKAGE[:1])
    np.testing.assert_allclose(
        model.layers[2].W, [[1.0 - eta * 30096.0], [1.0 - eta * 30096.0]], rtol=1e-15
    )  # 0.69904
    np.testing.assert_allclose(model.layers[2].b, [0.0 - eta * 342.0], rtol=1e-15)
    np.testing.assert_allclose(
        model.layers[0].W,
        [[1.0 - eta * 27360.0, 1.0 - eta * 27360.0], [1.0 - eta * 2736.0, 1.0 - eta * 2736.0]],
        rtol=1e-15,
    )
    np.testing.assert_allclose(model.layers[0].b, [-eta * 342.0, -eta * 342.0], rtol=1e-15)


def _numpy_row_sgd(eta: float, epochs: int) -> tuple[list[float], list[np.ndarray]]:
    """The article's algorithm, independently: for each row in table order, forward, loss,
    the 9 gradients by the chain rule, and w -= η dL/dw.  Returns the per-epoch mean loss
    (each loss taken before its update) and the final [W1, b1, W2, b2]."""
    W1, b1 = np.ones((2, 2)), np.zeros(2)
    W2, b2 = np.ones((2, 1)), np.zeros(1)
    history = []
    for _ in range(epochs):
        losses = []
        for x, y in zip(IQ_CGPA, PACKAGE, strict=True):
            o1 = x @ W1 + b1  # (O11, O12)
            y_hat = o1 @ W2[:, 0] + b2[0]  # O21
            losses.append((y - y_hat) ** 2)
            dL_dyhat = -2.0 * (y - y_hat)
            dW2 = dL_dyhat * o1[:, None]
            db2 = np.array([dL_dyhat])
            dL_do1 = dL_dyhat * W2[:, 0]
            dW1 = np.outer(x, dL_do1)
            db1 = dL_do1
            W1, b1 = W1 - eta * dW1, b1 - eta * db1
            W2, b2 = W2 - eta * dW2, b2 - eta * db2
        history.append(float(np.mean(losses)))
    return history, [W1, b1, W2, b2]


def test_iq_row_by_row_sgd_lowers_the_loss_every_epoch() -> None:
    # Why such a small η: IQ is ~100 while CGPA is ~7, and with all weights 1 the hidden
    # outputs are ~100 too.  For one row, the curvature of L = (y - ŷ)² along the gradient is
    # about 2·|dŷ/dθ|², and |dŷ/dθ|² = O11² + O12² + 1 + 2·(IQ² + CGPA²) + 2 (output weights,
    # output bias, the 4 hidden weights through w2 = 1, the 2 hidden biases).  For the row
    # (110, 7) that is 2·117² + 1 + 2·(110² + 7²) + 2 = 51683, so a gradient step is stable
    # only for η < 2 / (2·51683) ≈ 1.9e-5 (η = 1e-4 diverges within 3 epochs).  η = 1e-5.
    eta, epochs = 1e-5, 20
    curvatures = []
    for iq, cgpa in IQ_CGPA:
        o = iq + cgpa
        curvatures.append(2.0 * (2 * o**2 + 1 + 2 * (iq**2 + cgpa**2) + 2))
    assert eta < 2.0 / max(curvatures)

    model = _iq_model()
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=eta))
    initial = model.evaluate(IQ_CGPA, PACKAGE)
    # (176² ... ): rows give ŷ = 176, 130, 234 -> ((5-176)² + (3-130)² + (8-234)²) / 3
    assert initial == pytest.approx((171.0**2 + 127.0**2 + 226.0**2) / 3, rel=1e-15)
    history = model.fit(IQ_CGPA, PACKAGE, epochs=epochs, batch_size=1, shuffle=False)

    # "With each epoch, the loss will be reduced": strictly, for all 20 epochs
    losses = np.array(history.loss)
    assert len(losses) == epochs
    assert (np.diff(losses) < 0).all(), losses
    assert losses[-1] < 1e-3 * initial
    assert model.evaluate(IQ_CGPA, PACKAGE) < 1e-3 * initial

    # and it is exactly the article's algorithm, run independently in NumPy
    ref_history, ref_params = _numpy_row_sgd(eta, epochs)
    np.testing.assert_allclose(losses, ref_history, rtol=1e-9)
    for got, want in zip(model.parameters(), ref_params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_iq_random_row_order_also_lowers_the_loss() -> None:
    # "Select a random student (row)": shuffled row-by-row SGD, seeded
    model = _iq_model()
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=1e-5))
    history = model.fit(IQ_CGPA, PACKAGE, epochs=20, batch_size=1, shuffle=True, seed=1)
    losses = np.array(history.loss)
    assert (np.diff(losses) < 0).all(), losses
    assert model.evaluate(IQ_CGPA, PACKAGE) < 1e-3 * losses[0]


# -- 001: the 2-3-1 network and its chain-rule gradients ---------------------------------------

# input x = (x_1, x_2); hidden weights w^1_jk (input k -> hidden node j), one bias per hidden
# node (the article writes a single b_1 for the layer); output weights w^2_1j, bias b_2.
X_1, X_2 = 0.7, -1.3
w1_11, w1_12 = 0.4, -0.6  # into hidden node 1
w1_21, w1_22 = -0.3, 0.8  # into hidden node 2
w1_31, w1_32 = 0.9, 0.2  # into hidden node 3
b1_1, b1_2, b1_3 = 0.1, -0.2, 0.05
w2_11, w2_12, w2_13 = 0.5, -1.1, 0.7
b2_1 = -0.15
Y = 0.25  # target


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _forward_231(
    output: str, p: dict[str, float] | None = None
) -> tuple[float, float, float, float, float]:
    """Plain-Python forward pass: (a^2_1, a^2_2, a^2_3, a^3_1, C)."""
    q = {
        "w1_11": w1_11, "w1_12": w1_12, "w1_21": w1_21, "w1_22": w1_22,
        "w1_31": w1_31, "w1_32": w1_32, "b1_1": b1_1, "b1_2": b1_2, "b1_3": b1_3,
        "w2_11": w2_11, "w2_12": w2_12, "w2_13": w2_13, "b2_1": b2_1,
    }  # fmt: skip
    q.update(p or {})
    Z2_1 = q["w1_11"] * X_1 + q["w1_12"] * X_2 + q["b1_1"]
    Z2_2 = q["w1_21"] * X_1 + q["w1_22"] * X_2 + q["b1_2"]
    Z2_3 = q["w1_31"] * X_1 + q["w1_32"] * X_2 + q["b1_3"]
    a2_1, a2_2, a2_3 = _sigmoid(Z2_1), _sigmoid(Z2_2), _sigmoid(Z2_3)
    Z3_1 = q["w2_11"] * a2_1 + q["w2_12"] * a2_2 + q["w2_13"] * a2_3 + q["b2_1"]
    a3_1 = Z3_1 if output == "identity" else _sigmoid(Z3_1)
    C = (Y - a3_1) ** 2  # "squared difference between observed value and network output"
    return a2_1, a2_2, a2_3, a3_1, C


def _chain_rule_231(output: str) -> dict[str, float]:
    """Every gradient as the article writes it: a product of named partial derivatives."""
    a2_1, a2_2, a2_3, a3_1, _ = _forward_231(output)
    dC_da3_1 = -2.0 * (Y - a3_1)
    # the article takes linear activations "for the sake of understanding" (da/dZ = 1); with
    # a sigmoid, da/dZ = a (1 - a)
    da3_1_dZ3_1 = 1.0 if output == "identity" else a3_1 * (1.0 - a3_1)
    # Z^3_1 = w^2_11 a^2_1 + w^2_12 a^2_2 + w^2_13 a^2_3 + b_2
    dZ3_1_dw2_11, dZ3_1_dw2_12, dZ3_1_dw2_13, dZ3_1_db2_1 = a2_1, a2_2, a2_3, 1.0
    dZ3_1_da2_1, dZ3_1_da2_2, dZ3_1_da2_3 = w2_11, w2_12, w2_13
    # a^2_j = sigmoid(Z^2_j)
    da2_1_dZ2_1 = a2_1 * (1.0 - a2_1)
    da2_2_dZ2_2 = a2_2 * (1.0 - a2_2)
    da2_3_dZ2_3 = a2_3 * (1.0 - a2_3)
    # Z^2_j = w^1_j1 x_1 + w^1_j2 x_2 + b^1_j
    dZ2_j_dw1_j1, dZ2_j_dw1_j2, dZ2_j_db1_j = X_1, X_2, 1.0

    # dC/dw^2_1j = dC/da^3_1 · da^3_1/dZ^3_1 · dZ^3_1/dw^2_1j
    g = {
        "w2_11": dC_da3_1 * da3_1_dZ3_1 * dZ3_1_dw2_11,
        "w2_12": dC_da3_1 * da3_1_dZ3_1 * dZ3_1_dw2_12,
        "w2_13": dC_da3_1 * da3_1_dZ3_1 * dZ3_1_dw2_13,
        "b2_1": dC_da3_1 * da3_1_dZ3_1 * dZ3_1_db2_1,
    }
    # dC/dw^1_jk = dC/da^3_1 · da^3_1/dZ^3_1 · dZ^3_1/da^2_j · da^2_j/dZ^2_j · dZ^2_j/dw^1_jk
    # (the article's lines for w^1_21, w^1_22 print Z^3_2 where Z^3_1 is meant: there is one
    # output node)
    g["w1_11"] = dC_da3_1 * da3_1_dZ3_1 * dZ3_1_da2_1 * da2_1_dZ2_1 * dZ2_j_dw1_j1
    g["w1_12"] = dC_da3_1 * da3_1_dZ3_1 * dZ3_1_da2_1 * da2_1_dZ2_1 * dZ2_j_dw1_j2
    g["w1_21"] = dC_da3_1 * da3_1_dZ3_1 * dZ3_1_da2_2 * da2_2_dZ2_2 * dZ2_j_dw1_j1
    g["w1_22"] = dC_da3_1 * da3_1_dZ3_1 * dZ3_1_da2_2 * da2_2_dZ2_2 * dZ2_j_dw1_j2
    g["w1_31"] = dC_da3_1 * da3_1_dZ3_1 * dZ3_1_da2_3 * da2_3_dZ2_3 * dZ2_j_dw1_j1
    g["w1_32"] = dC_da3_1 * da3_1_dZ3_1 * dZ3_1_da2_3 * da2_3_dZ2_3 * dZ2_j_dw1_j2
    g["b1_1"] = dC_da3_1 * da3_1_dZ3_1 * dZ3_1_da2_1 * da2_1_dZ2_1 * dZ2_j_db1_j
    g["b1_2"] = dC_da3_1 * da3_1_dZ3_1 * dZ3_1_da2_2 * da2_2_dZ2_2 * dZ2_j_db1_j
    g["b1_3"] = dC_da3_1 * da3_1_dZ3_1 * dZ3_1_da2_3 * da2_3_dZ2_3 * dZ2_j_db1_j
    return g


def _model_231(output: str) -> bp.Sequential:
    tail = [bp.Identity()] if output == "identity" else [bp.Sigmoid()]
    model = bp.Sequential(
        [bp.Dense(2, 3), bp.Sigmoid(), bp.Dense(3, 1), *tail], dtype="float64", seed=0
    )
    # the library's W is (in, out): W1[k - 1, j - 1] = w^1_jk, W2[j - 1, 0] = w^2_1j
    model.set_weights(
        [
            [[w1_11, w1_21, w1_31], [w1_12, w1_22, w1_32]],
            [b1_1, b1_2, b1_3],
            [[w2_11], [w2_12], [w2_13]],
            [b2_1],
        ]
    )
    return model


OUTPUTS = ["identity", "sigmoid"]


@pytest.mark.parametrize("output", OUTPUTS)
def test_231_hand_chain_rule_agrees_with_finite_differences(output: str) -> None:
    # guards the hand formulas above (independently of the library)
    g = _chain_rule_231(output)
    h = 1e-6
    for name, value in g.items():
        base = globals()[name]
        up = _forward_231(output, {name: base + h})[4]
        down = _forward_231(output, {name: base - h})[4]
        assert (up - down) / (2 * h) == pytest.approx(value, rel=1e-6, abs=1e-10), name


@pytest.mark.parametrize("output", OUTPUTS)
def test_231_forward_matches_hand_computation(output: str) -> None:
    *_, a3_1, C = _forward_231(output)
    model = _model_231(output)
    model.compile(loss=bp.MSE())
    x = np.array([[X_1, X_2]])
    assert model.predict(x)[0, 0] == pytest.approx(a3_1, rel=1e-14)
    assert model.evaluate(x, [Y]) == pytest.approx(C, rel=1e-13)


@pytest.mark.parametrize("output", OUTPUTS)
def test_231_every_gradient_is_its_chain_rule_product(output: str) -> None:
    g = _chain_rule_231(output)
    model = _model_231(output)
    model.compile(loss=bp.MSE())
    (dW1, db1), (dW2, db2) = model.gradients(np.array([[X_1, X_2]]), [Y])
    assert dW1.shape == (2, 3) and db1.shape == (3,) and dW2.shape == (3, 1) and db2.shape == (1,)
    for j in (1, 2, 3):
        for k in (1, 2):
            assert dW1[k - 1, j - 1] == pytest.approx(g[f"w1_{j}{k}"], rel=1e-12), (j, k)
        assert db1[j - 1] == pytest.approx(g[f"b1_{j}"], rel=1e-12), j
        assert dW2[j - 1, 0] == pytest.approx(g[f"w2_1{j}"], rel=1e-12), j
    assert db2[0] == pytest.approx(g["b2_1"], rel=1e-12)
    # layer.dW / layer.db hold the same last gradients
    np.testing.assert_array_equal(model.layers[0].dW, dW1)
    np.testing.assert_array_equal(model.layers[2].db, db2)


@pytest.mark.parametrize("output", OUTPUTS)
def test_231_sgd_step_is_w_minus_lr_times_gradient(output: str) -> None:
    # "w^l = w^l - learningRate · dC/dw^l", "b^l = b^l - learningRate · dC/db^l"
    lr = 0.1  # small enough for this step to lower the cost (0.5 overshoots, identity output)
    g = _chain_rule_231(output)
    model = _model_231(output)
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=lr))
    *_, C = _forward_231(output)
    assert model.train_step(np.array([[X_1, X_2]]), [Y]) == pytest.approx(C, rel=1e-13)
    want_W1 = [
        [w1_11 - lr * g["w1_11"], w1_21 - lr * g["w1_21"], w1_31 - lr * g["w1_31"]],
        [w1_12 - lr * g["w1_12"], w1_22 - lr * g["w1_22"], w1_32 - lr * g["w1_32"]],
    ]
    want_b1 = [b1_1 - lr * g["b1_1"], b1_2 - lr * g["b1_2"], b1_3 - lr * g["b1_3"]]
    want_W2 = [[w2_11 - lr * g["w2_11"]], [w2_12 - lr * g["w2_12"]], [w2_13 - lr * g["w2_13"]]]
    np.testing.assert_allclose(model.layers[0].W, want_W1, rtol=1e-13)
    np.testing.assert_allclose(model.layers[0].b, want_b1, rtol=1e-13)
    np.testing.assert_allclose(model.layers[2].W, want_W2, rtol=1e-13)
    np.testing.assert_allclose(model.layers[2].b, [b2_1 - lr * g["b2_1"]], rtol=1e-13)
    # and the cost went down
    x = np.array([[X_1, X_2]])
    assert model.evaluate(x, [Y]) < C
