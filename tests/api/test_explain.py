"""bp.explain: the shown numbers are the hand-worked ones, and every shown product of
chain-rule factors equals the library's kernel gradient.

References: the seed articles' hand formulas (../shared/seeds, as in reference/test_seeds.py),
recomputed here in plain Python; for random networks, the float64 kernels' own gradients
(model.gradients), against which the explanation's independently computed factors must
multiply out exactly (to rounding).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

import backprop as bp
from backprop.explain import MAX_PARAMETERS, MAX_PATHS, MAX_ROWS

RTOL, ATOL = 1e-11, 1e-14  # float64 products of at most ~10 factors vs the BLAS/kernel path


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# -- the sigmoid neuron (seed 003) -----------------------------------------------------------


def _neuron() -> bp.Sequential:
    model = bp.Sequential([bp.Dense(3, 1), bp.Sigmoid()], dtype="float64", seed=0)
    model.set_weights([[[0.1], [0.5], [0.9]], [-2.0]])
    return model.compile(bp.MSE(), bp.SGD(lr=0.5))


def test_neuron_explanation_is_the_hand_worked_example() -> None:
    x, w, b, target, lr = (2.0, 3.0, 4.0), (0.1, 0.5, 0.9), -2.0, 1.0, 0.5
    z = 2.0 * 0.1 + 3.0 * 0.5 + 4.0 * 0.9 + b  # 0.2 + 1.5 + 3.6 - 2 = 3.3
    a = _sigmoid(z)  # 0.964429
    dL_da = 2.0 * (a - target)  # C = (a - 1)²
    da_dz = a * (1.0 - a)
    e = bp.explain(_neuron(), list(x), target, lr=lr)

    [fwd] = e.forward
    assert (fwd.layer, fwd.node, fwd.row) == (1, 1, 0)
    assert fwd.z == pytest.approx(3.3, rel=1e-14) and fwd.a == pytest.approx(a, rel=1e-14)
    assert fwd.z_text == "z^1_1 = (2.0)(0.1) + (3.0)(0.5) + (4.0)(0.9) + (-2.0) = 3.3"
    assert fwd.a_text.endswith("= 0.964429")
    assert e.loss == pytest.approx((a - target) ** 2, rel=1e-13)
    [g] = e.output_grads
    assert g.value == pytest.approx(dL_da, rel=1e-14)

    for i, name in enumerate(["w^1_11", "w^1_12", "w^1_13"]):
        p = e.param(name)
        assert (p.layer, p.j, p.k, p.value) == (1, 1, i + 1, w[i])
        [factors] = p.local
        assert [f.text() for f in factors] == [
            "∂L/∂a^1_1",
            "∂a^1_1/∂z^1_1",
            f"∂z^1_1/∂{name}",
        ]
        np.testing.assert_allclose([f.value for f in factors], [dL_da, da_dz, x[i]], rtol=1e-14)
        assert p.gradient == pytest.approx(dL_da * da_dz * x[i], rel=1e-13)
        assert p.updated == pytest.approx(w[i] - lr * dL_da * da_dz * x[i], rel=1e-14)
    bias = e.param("b^1_1")
    assert bias.gradient == pytest.approx(dL_da * da_dz, rel=1e-13)
    assert bias.updated == pytest.approx(b - lr * dL_da * da_dz, rel=1e-14)

    text = str(e)
    assert "(2.0)(0.1) + (3.0)(0.5) + (4.0)(0.9) + (-2.0) = 3.3" in text
    assert f"{a:.6g}" in text and f"{dL_da * da_dz * 2.0:.6g}" in text
    assert (
        f"w^1_11 ← 0.1 - 0.5·({dL_da * da_dz * 2.0:.6g}) = {0.1 - lr * dL_da * da_dz * 2:.6g}"
        in (text)
    )


# -- IQ, CGPA -> package (seed 002) ------------------------------------------------------------


def _package() -> bp.Sequential:
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
    return model.compile(bp.MSE(), bp.SGD(lr=1e-5))


def test_package_explanation_is_the_hand_worked_example() -> None:
    eta = 1e-5
    (iq, cgpa), y = (80.0, 8.0), 5.0
    o11 = o12 = iq + cgpa  # 88
    y_hat = o11 + o12  # 176
    dL_dyhat = -2.0 * (y - y_hat)  # 342
    # output layer: dL/dw^2_1j = dL/dŷ · O_1j;  hidden: dL/dw^1_jk = dL/dŷ · w^2_1j · x_k
    want = {
        "w^2_11": dL_dyhat * o11,  # 30096
        "w^2_12": dL_dyhat * o12,
        "b^2_1": dL_dyhat,
        "w^1_11": dL_dyhat * 1.0 * iq,  # 27360
        "w^1_12": dL_dyhat * 1.0 * cgpa,  # 2736
        "w^1_21": dL_dyhat * 1.0 * iq,
        "w^1_22": dL_dyhat * 1.0 * cgpa,
        "b^1_1": dL_dyhat,
        "b^1_2": dL_dyhat,
    }
    e = bp.explain(_package(), [iq, cgpa], y, lr=eta)
    assert [f.z for f in e.forward] == [88.0, 88.0, 176.0]
    assert e.loss == (y - y_hat) ** 2 == 29241.0
    assert e.output_grads[0].value == 342.0
    assert sorted(p.sym.text() for p in e.params) == sorted(want)
    for name, g in want.items():
        p = e.param(name)
        assert p.gradient == g, name  # small integers: exact in float64
        assert p.product == g, name
        assert p.updated == pytest.approx(p.value - eta * g, rel=1e-15), name
    assert e.param("w^2_11").updated == pytest.approx(0.69904, rel=1e-14)
    # the hidden weights' full path: dL/da^2_1 · da^2_1/dz^2_1 · dz^2_1/da^1_1 · da^1_1/dz^1_1
    # · dz^1_1/dw^1_11 = 342 · 1 · 1 · 1 · 80
    p = e.param("w^1_11")
    assert p.paths is not None
    [[path]] = p.paths
    assert [f.text() for f in path] == [
        "∂L/∂a^2_1",
        "∂a^2_1/∂z^2_1",
        "∂z^2_1/∂a^1_1",
        "∂a^1_1/∂z^1_1",
        "∂z^1_1/∂w^1_11",
    ]
    assert [f.value for f in path] == [342.0, 1.0, 1.0, 1.0, 80.0]
    text = str(e)
    for snippet in ["= 30096.0", "= 27360.0", "= 2736.0", "(176.0 - 5.0)² = 29241.0", "0.69904"]:
        assert snippet in text, snippet


# -- random networks: every shown product is the kernel's gradient ---------------------------

ARCHS = {
    "sigmoid-mse-1": ([3, 1], [bp.Sigmoid], "mse"),
    "relu-tanh-mse": ([3, 4, 2], [bp.ReLU, bp.Tanh], "mse"),
    "tanh-ce-deep": ([2, 3, 3, 3], [bp.Tanh, bp.Sigmoid, None], "ce"),
    "leaky-bce": ([4, 3, 2], [lambda: bp.LeakyReLU(0.1), None], "bce"),
    "softmax-hidden": ([3, 4, 2], [bp.Softmax, bp.Identity], "mse"),
    "softmax-out-mse": ([2, 3, 3], [bp.Sigmoid, bp.Softmax], "mse"),
    "identity-none-ce": ([2, 2, 3], [bp.Identity, None], "ce"),
    "four-layers": ([2, 2, 2, 2, 1], [bp.Tanh, bp.ReLU, bp.Sigmoid, None], "mse"),
    "mae": ([3, 3, 2], [bp.Tanh, None], "mae"),
    "huber-dropout": ([3, 4, 2], [(bp.ReLU, lambda: bp.Dropout(0.5)), None], "huber"),
}


def _random_model(arch: str, rng: np.random.Generator) -> tuple[bp.Sequential, str]:
    widths, acts, loss = ARCHS[arch]
    layers: list[bp.Layer] = []
    for n_in, n_out, act in zip(widths[:-1], widths[1:], acts, strict=True):
        layers.append(bp.Dense(n_in, n_out, weight_init="normal"))
        layers += [make() for make in (act if isinstance(act, tuple) else (act,)) if make]
    model = bp.Sequential(layers, dtype="float64", seed=0)
    weights = []
    for layer in model.layers:
        if isinstance(layer, bp.Dense):
            # O(1) weights and biases, so that every factor matters; no exact zeros for ReLU
            weights.append(rng.normal(0.0, 1.0, layer.W.shape))
            weights.append(rng.normal(0.0, 0.5, layer.b.shape))
    model.set_weights(weights)
    losses = {
        "mse": bp.MSE(),
        "mae": bp.MAE(),
        "huber": bp.Huber(delta=0.5),
        "ce": bp.SoftmaxCrossEntropy(),
        "bce": bp.BinaryCrossEntropy(),
    }
    return model.compile(losses[loss], bp.SGD(lr=0.1)), loss


def _targets(loss: str, n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    if loss == "ce":
        return rng.integers(0, m, n)
    if loss == "bce":
        return rng.uniform(0.0, 1.0, (n, m))
    return rng.normal(0.0, 1.0, (n, m))


@pytest.mark.parametrize("n_rows", [1, 3])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_shown_product_equals_the_kernel_gradient(arch: str, n_rows: int) -> None:
    rng = np.random.default_rng([sorted(ARCHS).index(arch), n_rows])  # stable per case
    model, loss = _random_model(arch, rng)
    X = rng.normal(0.0, 1.0, (n_rows, model.n_features_in))
    y = _targets(loss, n_rows, model.n_outputs, rng)
    e = bp.explain(model, X, y, lr=0.1)
    assert model.training  # explain shows the eval-mode network on a copy
    # the model's own float64 kernels, computed separately (no dropout: eval mode)
    kernel = model.eval().gradients(X, y)

    assert len(e.params) == model.n_params
    for p in e.params:
        dW, db = kernel[p.layer - 1]
        want = dW[p.k - 1, p.j - 1] if p.k is not None else db[p.j - 1]
        assert p.gradient == want, p.sym.text()
        assert len(p.local) == n_rows
        assert p.product == pytest.approx(want, rel=RTOL, abs=ATOL), p.sym.text()
        if p.paths is not None:
            assert p.path_sum == pytest.approx(want, rel=RTOL, abs=ATOL), p.sym.text()
        assert p.updated == pytest.approx(p.value - 0.1 * want, rel=1e-15, abs=1e-16)
        # the last factor is dz/dparam: the input a^(l-1)_k, or 1 for a bias
        for r, factors in enumerate(p.local):
            if p.k is None:
                assert factors[-1].value == 1.0
            elif p.layer == 1:
                assert factors[-1].value == X[r, p.k - 1]

    # the nodes: a hidden node's dL/da is the sum over the paths through the nodes it feeds
    for b in e.backward:
        if b.dL_da_terms:
            assert math.fsum(p.value * q.value for p, q in b.dL_da_terms) == pytest.approx(
                b.dL_da, rel=RTOL, abs=ATOL
            )
        if b.da_dz is None:
            assert math.fsum(p.value * q.value for p, q in b.dL_dz_terms) == pytest.approx(
                b.dL_dz, rel=RTOL, abs=ATOL
            )
        else:
            assert b.dL_dz == pytest.approx(b.dL_da * b.da_dz, rel=RTOL, abs=ATOL)

    # the forward values end in the model's prediction; dL/dŷ is the loss kernel's gradient
    y_hat = model.predict(X)
    last = max(f.layer for f in e.forward)
    got = np.array(
        [[f.a for f in e.forward if f.row == r and f.layer == last] for r in range(n_rows)]
    )
    np.testing.assert_allclose(got, y_hat, rtol=1e-13, atol=1e-15)
    assert model.loss is not None
    value, G = model.loss.value_and_grad(y_hat, y)
    assert e.loss == pytest.approx(value, rel=1e-14)
    np.testing.assert_allclose([g.value for g in e.output_grads], G.ravel(), rtol=1e-12, atol=1e-16)


def test_paths_are_enumerated_when_few_and_summed_over_outputs() -> None:
    # 2-3-2 (two outputs): every hidden weight has two paths, one through each output node
    rng = np.random.default_rng(0)
    model = bp.Sequential([bp.Dense(2, 3), bp.Sigmoid(), bp.Dense(3, 2)], dtype="float64")
    model.compile(bp.MSE())
    X, y = rng.normal(size=(1, 2)), rng.normal(size=(1, 2))
    e = bp.explain(model, X, y)
    p = e.param("w^1_21")
    assert p.paths is not None and len(p.paths[0]) == 2
    assert [path[0].text() for path in p.paths[0]] == ["∂L/∂a^2_1", "∂L/∂a^2_2"]
    assert [path[2].text() for path in p.paths[0]] == ["∂z^2_1/∂a^1_2", "∂z^2_2/∂a^1_2"]
    # ∂z^2_m/∂a^1_2 is the weight w^2_m2 = W2[1, m - 1]
    W2 = model.layers[2].W  # type: ignore[attr-defined]
    assert [path[2].value for path in p.paths[0]] == [W2[1, 0], W2[1, 1]]
    assert e.param("w^2_11").paths is not None and len(e.param("w^2_11").paths[0]) == 1  # type: ignore[index]
    # too many paths to list: the local form only (still exact)
    wide = bp.Sequential(
        [bp.Dense(2, 3), bp.Tanh(), bp.Dense(3, 3), bp.Tanh(), bp.Dense(3, 3)], dtype="float64"
    )
    wide.compile(bp.MSE())
    e = bp.explain(wide, rng.normal(size=2), rng.normal(size=3))
    assert 9 > MAX_PATHS and e.param("w^1_11").paths is None
    assert e.param("w^3_11").paths is not None


def test_a_batch_is_the_mean_loss_and_its_gradient_sums_the_rows() -> None:
    rng = np.random.default_rng(1)
    model = bp.Sequential([bp.Dense(2, 3), bp.Tanh(), bp.Dense(3, 1)], dtype="float64", seed=1)
    model.compile(bp.MSE())
    X, y = rng.normal(size=(4, 2)), rng.normal(size=4)
    batch = bp.explain(model, X, y)
    rows = [bp.explain(model, X[i], y[i]) for i in range(4)]
    assert batch.loss == pytest.approx(np.mean([r.loss for r in rows]), rel=1e-13)
    for p in batch.params:
        name = p.sym.text()
        # the mean loss: the batch gradient is the mean of the one-row gradients ...
        assert p.gradient == pytest.approx(
            np.mean([r.param(name).gradient for r in rows]), rel=1e-12, abs=1e-15
        )
        # ... shown as the sum of each row's product, with dL/dŷ carrying the 1/4
        products = [math.prod(f.value for f in factors) for factors in p.local]
        for i, r in enumerate(rows):
            assert products[i] == pytest.approx(r.param(name).product / 4, rel=1e-12, abs=1e-16)
    assert "row 3:" in str(batch)


# -- the model stays untouched ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_explain_changes_nothing_in_the_model(dtype: str) -> None:
    rng = np.random.default_rng(2)
    model = bp.Sequential(
        [bp.Dense(3, 4), bp.ReLU(), bp.Dropout(0.3), bp.Dense(4, 2)], dtype=dtype, seed=2
    )
    model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.1, momentum=0.9))
    X, y = rng.normal(size=(3, 3)), np.array([0, 1, 1])
    model.train_step(X, y)  # some optimizer state
    model.gradients(X, y)  # and last gradients (each Dense's dW, db)
    dense = [layer for layer in model.layers if isinstance(layer, bp.Dense)]
    grads = [(layer.dW.copy(), layer.db.copy()) for layer in dense]
    before = model.get_state()
    e = bp.explain(model, X, y, lr=0.1)
    after = model.get_state()
    # weights, optimizer buffers and step count, both generators, training mode: all unchanged
    np.testing.assert_array_equal(after["weights"], before["weights"])
    assert after["optimizer"]["steps"] == before["optimizer"]["steps"] == 1
    assert after["optimizer"]["buffers"].keys() == before["optimizer"]["buffers"].keys()
    for key, buf in before["optimizer"]["buffers"].items():
        np.testing.assert_array_equal(after["optimizer"]["buffers"][key], buf)
    assert after["rng"] == before["rng"] and after["dropout_rng"] == before["dropout_rng"]
    for layer, (dW, db) in zip(dense, grads, strict=True):  # the last gradients too
        np.testing.assert_array_equal(layer.dW, dW)
        np.testing.assert_array_equal(layer.db, db)
    assert model.training  # still in training mode (explain shows the eval-mode network)
    # the update is shown, not applied
    p = e.param("w^2_11")
    assert p.updated != p.value and model.layers[3].W[0, 0] == np.asarray(p.value, dtype)  # type: ignore[attr-defined]
    if dtype == "float32":  # the shown float64 gradients agree with the float32 kernels
        g32 = model.eval().gradients(X, y)
        e = bp.explain(model, X, y)
        for p in e.params:
            dW, db = g32[p.layer - 1]
            want = dW[p.k - 1, p.j - 1] if p.k is not None else db[p.j - 1]
            assert p.gradient == pytest.approx(float(want), rel=1e-4, abs=1e-6)


# -- renderings -------------------------------------------------------------------------------


def test_to_dict_markdown_and_latex_hold_every_entry() -> None:
    e = bp.explain(_package(), [80.0, 8.0], 5.0, lr=1e-5)
    d = e.to_dict()
    json.dumps(d)  # plain data
    assert d["loss"] == 29241.0 and d["lr"] == 1e-5 and d["x"] == [[80.0, 8.0]]
    assert [layer["activation"] for layer in d["layers"]] == ["identity", "identity"]
    names = [p["name"] for p in d["params"]]
    assert names == [
        "w^1_11", "w^1_12", "w^1_21", "w^1_22", "b^1_1", "b^1_2", "w^2_11", "w^2_12", "b^2_1",
    ]  # fmt: skip
    w = d["params"][names.index("w^2_11")]
    assert w["gradient"] == 30096.0 and w["product"] == 30096.0
    assert [f["value"] for f in w["factors"][0]] == [342.0, 1.0, 88.0]
    assert w["factors"][0][2]["symbol"] == "∂z^2_1/∂w^2_11"
    assert w["updated"] == pytest.approx(1.0 - 1e-5 * 30096.0)
    assert d["dL_dy_hat"][0]["value"] == 342.0
    assert d["forward"][2]["z_text"] == "z^2_1 = (88.0)(1.0) + (88.0)(1.0) + (0.0) = 176.0"
    assert d["backward"][0]["dL_da_terms"][0][1]["symbol"] == "∂z^2_1/∂a^1_1"

    md = e.to_markdown()
    assert "| $w^{2}_{11}$ | 1.0 | 30096.0 | 30096.0 | 0.69904 |" in md
    assert "$$" in md and r"\frac{\partial L}{\partial w^{1}_{12}}" in md
    tex = e.to_latex()
    assert tex.count(r"\begin{align*}") == tex.count(r"\end{align*}") == 4
    assert r"z^{2}_{1} &= (88.0)(1.0) + (88.0)(1.0) + (0.0) = 176.0" in tex
    assert r"L &= (176.0 - 5.0)^2 = 29241.0" in tex
    assert r"\frac{\partial L}{\partial a^{1}_{1}} &= \frac{\partial L}{\partial z^{2}_{1}}" in tex
    assert r"\frac{\partial L}{\partial w^{2}_{11}} &= \frac{\partial L}{\partial a^{2}_{1}}" in tex
    assert r"(342.0)(1.0)(88.0) = 30096.0" in tex
    assert r"w^{2}_{11} &\leftarrow 1.0 - 1 \times 10^{-5}\cdot(30096.0) = 0.69904" in tex
    assert "29241.0" in repr(e)


# -- refusals ---------------------------------------------------------------------------------


def test_too_large_networks_and_batches_are_refused_with_the_limit() -> None:
    big = bp.Sequential([bp.Dense(64, 128), bp.ReLU(), bp.Dense(128, 10)])
    big.compile(bp.SoftmaxCrossEntropy())
    with pytest.raises(
        ValueError, match=f"has 9610 parameters; explain shows at most {MAX_PARAMETERS}"
    ):
        bp.explain(big, np.zeros(64), 3)
    small = _neuron()
    with pytest.raises(ValueError, match=f"x has 9 rows; explain shows at most {MAX_ROWS}"):
        bp.explain(small, np.ones((9, 3)), np.ones(9))


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        ([bp.Sigmoid(), bp.Dense(2, 1)], "comes before the first Dense"),
        ([bp.Dense(2, 2), bp.Tanh(), bp.Sigmoid(), bp.Dense(2, 1)], "follows another activation"),
    ],
)
def test_layer_stacks_it_cannot_write_out_are_refused(layers: list[bp.Layer], match: str) -> None:
    model = bp.Sequential(layers, dtype="float64")
    model.compile(bp.MSE())
    with pytest.raises(ValueError, match=match):
        bp.explain(model, [0.5, 0.5], 1.0)


def test_bad_arguments() -> None:
    model = bp.Sequential([bp.Dense(3, 1)])
    with pytest.raises(RuntimeError, match="compile the model with a loss"):
        bp.explain(model, [1.0, 2.0, 3.0], 1.0)
    with pytest.raises(TypeError, match="model must be a Sequential"):
        bp.explain("model", [1.0], 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="explain: lr must be > 0"):
        bp.explain(_neuron(), [1.0, 2.0, 3.0], 1.0, lr=-0.1)
    with pytest.raises(ValueError, match="explain: X has 2 features"):
        bp.explain(_neuron(), [1.0, 2.0], 1.0)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_latex_is_plain_latex_for_every_activation_and_loss(arch: str) -> None:
    rng = np.random.default_rng(sorted(ARCHS).index(arch))
    model, loss = _random_model(arch, rng)
    X = rng.normal(0.0, 1.0, (2, model.n_features_in))
    y = _targets(loss, 2, model.n_outputs, rng)
    y = y * 1e-6 if loss == "mse" else y  # tiny numbers print as 1.2e-06
    tex = bp.explain(model, X, y, lr=1e-7).to_latex()
    for plain in ["²", "·", "ŷ", "<=", "∂", "sigmoid(", "e-0"]:
        assert plain not in tex, plain
    assert re.search(r"(?<![\\a-z])(sum|exp|tanh|max)\b", tex) is None  # \sum, \exp, ... only
    assert tex.count("{") == tex.count("}") and tex.count("(") == tex.count(")")


@pytest.mark.parametrize("arch", ["relu-tanh-mse", "tanh-ce-deep", "huber-dropout"])
def test_the_shown_update_is_one_plain_sgd_step(arch: str) -> None:
    rng = np.random.default_rng(7)
    model, loss = _random_model(arch, rng)  # compiled with SGD(lr=0.1), no momentum
    model.eval()  # no dropout in the step either
    X = rng.normal(0.0, 1.0, (3, model.n_features_in))
    y = _targets(loss, 3, model.n_outputs, rng)
    e = bp.explain(model, X, y, lr=0.1)
    model.train_step(X, y)
    dense = [layer for layer in model.layers if isinstance(layer, bp.Dense)]
    for p in e.params:
        layer = dense[p.layer - 1]
        got = layer.W[p.k - 1, p.j - 1] if p.k is not None else layer.b[p.j - 1]
        assert got == pytest.approx(p.updated, rel=1e-15, abs=1e-16), p.sym.text()


def test_one_example_may_be_given_as_1d_x_and_a_scalar_target() -> None:
    rng = np.random.default_rng(3)
    for loss, target, as_batch in [
        (bp.SoftmaxCrossEntropy(), 2, [2]),
        (bp.BinaryCrossEntropy(), 0.25, [[0.25]]),
        (bp.MSE(), 0.5, [[0.5]]),
    ]:
        n_out = 3 if isinstance(loss, bp.SoftmaxCrossEntropy) else 1
        model = bp.Sequential([bp.Dense(2, 3), bp.Tanh(), bp.Dense(3, n_out)], dtype="float64")
        model.compile(loss)
        x = rng.normal(size=2)
        one, batch = bp.explain(model, x, target), bp.explain(model, x[None, :], as_batch)
        assert one.to_dict() == batch.to_dict()


def test_explain_takes_torch_tensors_with_requires_grad() -> None:
    torch = pytest.importorskip("torch")
    model = bp.Sequential([bp.Dense(2, 1), bp.Sigmoid()], dtype="float64", seed=0)
    model.compile(bp.MSE())
    x = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    e = bp.explain(model, x, torch.tensor(1.0))
    assert str(e) == str(bp.explain(model, [0.5, -1.0], 1.0))
