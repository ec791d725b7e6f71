"""Training end to end: convergence (XOR, digits), reproducibility, fit() semantics, verbose
output, dtypes, in-place parameter views and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

# -- helpers ---------------------------------------------------------------------------------


def _regression_data(n: int = 37, n_in: int = 5, n_out: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y = np.tanh(X @ rng.normal(size=(n_in, n_out))) + 0.1 * rng.normal(size=(n, n_out))
    return X, y


def _regression_model(
    dtype: str = "float64", seed: int | None = 0, lr: float = 0.05, momentum: float = 0.0
) -> bp.Sequential:
    model = bp.Sequential([bp.Dense(5, 8), bp.Tanh(), bp.Dense(8, 2)], dtype=dtype, seed=seed)
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=lr, momentum=momentum))
    return model


def _snapshot(model: bp.Sequential) -> list[np.ndarray]:
    return [p.copy() for p in model.parameters()]


def _gradient_snapshot(model: bp.Sequential) -> list[np.ndarray]:
    dense = [layer for layer in model.layers if isinstance(layer, bp.Dense)]
    return [g.copy() for layer in dense for g in (layer.dW, layer.db)]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# -- convergence -----------------------------------------------------------------------------

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0.0, 1.0, 1.0, 0.0])


def test_xor_2_4_1_reaches_loss_below_0_01() -> None:
    model = bp.Sequential(
        [bp.Dense(2, 4), bp.Tanh(), bp.Dense(4, 1), bp.Sigmoid()], dtype="float64", seed=0
    )
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=0.5, momentum=0.9))
    assert model.evaluate(XOR_X, XOR_Y) > 0.1  # it does not start solved
    history = model.fit(XOR_X, XOR_Y, epochs=1000, batch_size=4, shuffle=False)
    assert history.loss[-1] < 0.01
    assert model.evaluate(XOR_X, XOR_Y) < 0.01
    np.testing.assert_array_equal(model.predict(XOR_X)[:, 0] > 0.5, XOR_Y > 0.5)


def test_xor_with_binary_cross_entropy_and_adam() -> None:
    model = bp.Sequential([bp.Dense(2, 4), bp.Tanh(), bp.Dense(4, 1)], dtype="float64", seed=0)
    model.compile(loss=bp.BinaryCrossEntropy(), optimizer=bp.Adam(lr=0.05))
    model.fit(XOR_X, XOR_Y, epochs=1000, batch_size=4, shuffle=False)
    assert model.evaluate(XOR_X, XOR_Y) < 0.01
    proba = model.predict_proba(XOR_X)[:, 0]
    assert ((proba > 0.5) == (XOR_Y > 0.5)).all()
    # predict_proba is the sigmoid of the logits
    np.testing.assert_allclose(proba, 1 / (1 + np.exp(-model.predict(XOR_X)[:, 0])), rtol=1e-12)


def test_digits_reaches_95_percent_test_accuracy() -> None:
    sklearn = pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    assert sklearn.__version__
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = bp.Sequential(
        [bp.Dense(64, 128, weight_init="he"), bp.ReLU(), bp.Dense(128, 10)],
        dtype="float32",
        seed=0,
    )
    model.compile(loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(lr=0.1, momentum=0.9))
    history = model.fit(
        X_train, y_train, epochs=30, batch_size=32, validation_data=(X_test, y_test), seed=0
    )
    accuracy = float((model.predict(X_test).argmax(axis=1) == y_test).mean())
    assert accuracy >= 0.95, accuracy
    assert history.loss[-1] < history.loss[0]
    proba = model.predict_proba(X_test)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(axis=1), model.predict(X_test).argmax(axis=1))


# -- reproducibility -------------------------------------------------------------------------


def test_same_seed_same_initial_weights_different_seed_different() -> None:
    a, b, c = (_regression_model(seed=s) for s in (3, 3, 4))
    assert _same(_snapshot(a), _snapshot(b))
    assert not np.array_equal(a.layers[0].W, c.layers[0].W)
    assert not np.array_equal(a.layers[2].W, c.layers[2].W)


def test_same_seed_same_weights_after_shuffled_fit_bit_for_bit() -> None:
    X, y = _regression_data()
    a, b, c = (_regression_model(seed=s) for s in (3, 3, 4))
    ha = a.fit(X, y, epochs=5, batch_size=8, shuffle=True)
    hb = b.fit(X, y, epochs=5, batch_size=8, shuffle=True)
    c.fit(X, y, epochs=5, batch_size=8, shuffle=True)
    assert _same(_snapshot(a), _snapshot(b))
    assert ha.loss == hb.loss
    assert not np.array_equal(a.layers[0].W, c.layers[0].W)


def test_fit_seed_controls_the_shuffling() -> None:
    X, y = _regression_data()
    # two models with different seeds made equal by hand: the shuffling then depends only on
    # fit(seed=...)
    a, b, c = (_regression_model(seed=s) for s in (1, 2, 1))
    b.set_weights(a.get_weights())
    a.fit(X, y, epochs=3, batch_size=8, seed=42)
    b.fit(X, y, epochs=3, batch_size=8, seed=42)
    assert _same(_snapshot(a), _snapshot(b))
    c.fit(X, y, epochs=3, batch_size=8, seed=43)  # same start as a, other order
    assert not _same(_snapshot(a), _snapshot(c))


def test_fit_seed_draws_one_permutation_per_epoch() -> None:
    # fit(seed=s, shuffle=True): epoch e visits the rows in the e-th permutation drawn from
    # np.random.default_rng(s); the same steps by hand give the same weights bit for bit,
    # including the last, smaller batch (37 = 4·8 + 5)
    X, y = _regression_data()
    a, b = _regression_model(seed=0), _regression_model(seed=0)
    history = a.fit(X, y, epochs=3, batch_size=8, shuffle=True, seed=7)
    rng = np.random.default_rng(7)
    for epoch in range(3):
        perm = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), 8):
            idx = perm[start : start + 8]
            total += b.train_step(X[idx], y[idx]) * len(idx)
        assert history.loss[epoch] == pytest.approx(total / len(X), rel=1e-12)
    assert _same(_snapshot(a), _snapshot(b))


def test_float32_and_float64_models_start_from_the_same_rounded_weights() -> None:
    m32, m64 = _regression_model("float32", seed=5), _regression_model("float64", seed=5)
    for p32, p64 in zip(m32.parameters(), m64.parameters(), strict=True):
        assert p32.dtype == np.float32 and p64.dtype == np.float64
        np.testing.assert_array_equal(p32, p64.astype(np.float32))


# -- fit() -----------------------------------------------------------------------------------


def test_history_lengths_and_validation_loss() -> None:
    X, y = _regression_data()
    Xv, yv = _regression_data(n=11, seed=1)
    model = _regression_model()
    history = model.fit(X, y, epochs=4, batch_size=8, validation_data=(Xv, yv), seed=0)
    assert history.epochs == 4
    assert len(history.loss) == len(history.val_loss) == len(history.epoch_time) == 4
    assert all(t >= 0 for t in history.epoch_time)
    assert all(np.isfinite(history.loss)) and all(np.isfinite(history.val_loss))
    # val_loss is measured after each epoch: the last one is the trained model's loss
    assert history.val_loss[-1] == pytest.approx(model.evaluate(Xv, yv), rel=1e-12)
    assert history.val_loss[-1] != history.val_loss[0]
    assert set(history.as_dict()) == {"loss", "val_loss", "lr", "epoch_time"}

    plain = _regression_model().fit(X, y, epochs=4, batch_size=8, seed=0)
    assert plain.val_loss == []
    assert len(plain.loss) == 4
    # validation does not change training
    assert plain.loss == history.loss


def test_val_loss_after_each_epoch_equals_evaluate() -> None:
    # Without fit(seed=...), the shuffling draws from the model's own seed stream, which
    # carries over between fit() calls: three fit(epochs=1) calls train exactly like one
    # fit(epochs=3), and give evaluate() after each epoch.
    X, y = _regression_data()
    Xv, yv = _regression_data(n=11, seed=1)
    model, twin = _regression_model(seed=6), _regression_model(seed=6)
    history = model.fit(X, y, epochs=3, batch_size=8, validation_data=(Xv, yv))
    for epoch in range(3):
        h = twin.fit(X, y, epochs=1, batch_size=8)
        assert h.loss[0] == history.loss[epoch]
        assert history.val_loss[epoch] == pytest.approx(twin.evaluate(Xv, yv), rel=1e-12)
    assert _same(_snapshot(model), _snapshot(twin))


def test_zero_epochs_leaves_the_weights_untouched() -> None:
    X, y = _regression_data()
    model = _regression_model()
    before = _snapshot(model)
    history = model.fit(X, y, epochs=0, batch_size=8, validation_data=(X, y))
    assert history.loss == [] and history.val_loss == [] and history.epoch_time == []
    assert _same(before, _snapshot(model))
    assert model.optimizer is not None and model.optimizer.steps == 0


@pytest.mark.parametrize("batch_size", [37, 100], ids=["n", "more-than-n"])
def test_full_batch_fit_equals_manual_train_steps(batch_size: int) -> None:
    X, y = _regression_data()
    a, b = _regression_model(), _regression_model()
    history = a.fit(X, y, epochs=5, batch_size=batch_size, shuffle=False)
    manual = [b.train_step(X, y) for _ in range(5)]
    assert _same(_snapshot(a), _snapshot(b))
    assert history.loss == pytest.approx(manual, rel=1e-12)
    assert a.optimizer is not None and a.optimizer.steps == 5


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_last_partial_batch_and_batch_size_weighted_epoch_loss(dtype: str) -> None:
    # n = 37, batch_size = 8: batches of 8, 8, 8, 8 and a last one of 5 rows
    X, y = _regression_data()
    a, b = _regression_model(dtype), _regression_model(dtype)
    history = a.fit(X, y, epochs=2, batch_size=8, shuffle=False)
    for epoch in range(2):
        losses, sizes = [], []
        for start in range(0, 37, 8):
            losses.append(b.train_step(X[start : start + 8], y[start : start + 8]))
            sizes.append(len(X[start : start + 8]))
        assert sizes == [8, 8, 8, 8, 5]
        weighted = sum(loss * n for loss, n in zip(losses, sizes, strict=True)) / 37
        assert history.loss[epoch] == pytest.approx(weighted, rel=1e-12)
        # the plain mean of the batch losses is a different number
        assert weighted != pytest.approx(float(np.mean(losses)), rel=1e-9)
    assert _same(_snapshot(a), _snapshot(b))


def test_batch_loss_is_a_mean_not_a_sum() -> None:
    # with a tiny learning rate nothing moves, so the epoch loss is the loss over the data
    X, y = _regression_data()
    model = _regression_model(lr=1e-12)
    before = model.evaluate(X, y)
    # evaluate() itself: mean over all n·m elements of (ŷ - y)²
    assert before == pytest.approx(float(np.mean((model.predict(X) - y) ** 2)), rel=1e-12)
    history = model.fit(X, y, epochs=1, batch_size=8, shuffle=True, seed=0)
    assert history.loss[0] == pytest.approx(before, rel=1e-9)


# -- verbose ---------------------------------------------------------------------------------


def test_verbose_1_prints_one_line_per_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    X, y = _regression_data()
    model = _regression_model()
    history = model.fit(X, y, epochs=3, batch_size=8, verbose=1, validation_data=(X, y))
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 3, out
    for epoch, line in enumerate(lines, start=1):
        assert f"epoch {epoch}/3" in line
        assert f"loss {history.loss[epoch - 1]:.6g}" in line
        assert f"val_loss {history.val_loss[epoch - 1]:.6g}" in line


def test_verbose_0_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    X, y = _regression_data()
    _regression_model().fit(X, y, epochs=3, batch_size=8, verbose=0, validation_data=(X, y))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# -- dtypes ----------------------------------------------------------------------------------


def test_float32_model_stays_float32_with_float64_inputs() -> None:
    X, y = _regression_data()
    assert X.dtype == np.float64
    X_copy = X.copy()
    model = _regression_model("float32")
    assert model.dtype == np.float32
    model.fit(X, y, epochs=2, batch_size=8)
    model.train_step(X, y)
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert model.predict(X).dtype == np.float32
    for dW, db in model.gradients(X, y):
        assert dW.dtype == np.float32 and db.dtype == np.float32
    assert model.layers[0].dW.dtype == np.float32
    assert isinstance(model.evaluate(X, y), float)
    np.testing.assert_array_equal(X, X_copy)  # the caller's array is not touched


def test_float32_and_float64_train_to_close_weights() -> None:
    X, y = _regression_data()
    m32, m64 = _regression_model("float32", seed=2), _regression_model("float64", seed=2)
    h32 = m32.fit(X, y, epochs=5, batch_size=8, seed=0)
    h64 = m64.fit(X, y, epochs=5, batch_size=8, seed=0)
    start = _regression_model("float64", seed=2)
    moved = max(
        float(np.abs(p - q).max())
        for p, q in zip(m64.parameters(), start.parameters(), strict=True)
    )
    assert moved > 1e-2  # the training did change the weights
    for p32, p64 in zip(m32.parameters(), m64.parameters(), strict=True):
        np.testing.assert_allclose(p32, p64, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(m32.predict(X), m64.predict(X), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(h32.loss, h64.loss, rtol=1e-4)


def test_clone_to_another_dtype_copies_the_weights() -> None:
    X, y = _regression_data()
    model = _regression_model("float32")
    model.fit(X, y, epochs=2, batch_size=8)
    c64 = model.clone("float64")
    assert c64.dtype == np.float64
    for p, q in zip(model.parameters(), c64.parameters(), strict=True):
        np.testing.assert_array_equal(q, p.astype(np.float64))
    # a copy, not a view
    weights = c64.get_weights()
    weights[0][...] = 0.0
    c64.set_weights(weights)
    assert np.abs(c64.layers[0].W).max() == 0
    assert np.abs(model.layers[0].W).max() > 0


# -- train_step and the in-place parameter views ---------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_train_step_returns_the_loss_before_the_update(dtype: str) -> None:
    X, y = _regression_data()
    model = _regression_model(dtype, lr=0.01)
    before = model.evaluate(X[:8], y[:8])
    loss = model.train_step(X[:8], y[:8])
    assert isinstance(loss, float)
    assert loss == pytest.approx(before, rel=1e-12)
    after = model.evaluate(X[:8], y[:8])
    assert after < before  # a small step downhill


def test_train_step_is_one_sgd_step_on_the_gradients() -> None:
    X, y = _regression_data()
    lr = 0.05
    model = _regression_model(lr=lr)
    grads = model.gradients(X[:8], y[:8])
    before = _snapshot(model)
    model.train_step(X[:8], y[:8])
    flat = [g for pair in grads for g in pair]
    for p, p0, g in zip(model.parameters(), before, flat, strict=True):
        np.testing.assert_allclose(p, p0 - lr * g, rtol=1e-13, atol=1e-15)


def test_parameters_are_views_updated_in_place() -> None:
    X, y = _regression_data()
    model = _regression_model()
    W = model.layers[0].W
    b = model.layers[2].b
    W_initial = W.copy()
    params = model.parameters()
    assert params[0] is W and params[3] is b
    assert np.shares_memory(model.layers[0].W, params[0])
    # read-only: only the model writes them (training, set_weights, set_state)
    assert not W.flags.writeable and not b.flags.writeable
    assert W.shape == (5, 8) and b.shape == (2,)
    model.fit(X, y, epochs=2, batch_size=8)
    assert model.layers[0].W is W  # the same array object...
    assert model.parameters()[0] is W
    assert not np.array_equal(W, W_initial)  # ...whose contents the training changed
    # the gradients are distinct memory: read-only copies of the last gradients() result
    (dW, _), _ = model.gradients(X, y)
    assert not np.shares_memory(model.layers[0].dW, W)
    assert not np.shares_memory(dW, W) and not np.shares_memory(model.layers[0].dW, dW)
    assert not model.layers[0].dW.flags.writeable


def test_setting_weights_by_hand_changes_predictions() -> None:
    X, _ = _regression_data()
    model = _regression_model()
    first = model.predict(X)
    # set every parameter by hand and predict with NumPy
    rng = np.random.default_rng(9)
    W1, b1 = rng.normal(size=(5, 8)), rng.normal(size=8)
    W2, b2 = rng.normal(size=(8, 2)), rng.normal(size=2)
    model.set_weights([W1, b1, W2, b2])
    second = model.predict(X)
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, np.tanh(X @ W1 + b1) @ W2 + b2, rtol=1e-12, atol=1e-12)
    # zero output layer: predictions are the output bias
    model.set_weights([W1, b1, np.zeros((8, 2)), b2])
    np.testing.assert_array_equal(model.predict(X), np.broadcast_to(b2, (len(X), 2)))


# -- gradcheck -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layers, loss, y",
    [
        (
            lambda: [bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2), bp.Sigmoid()],
            bp.MSE,
            lambda rng: rng.uniform(size=(6, 2)),
        ),
        (
            lambda: [bp.Dense(3, 5), bp.Sigmoid(), bp.Dense(5, 3), bp.Tanh(), bp.Dense(3, 1)],
            bp.BinaryCrossEntropy,
            lambda rng: rng.integers(0, 2, size=6).astype(float),
        ),
        (
            lambda: [bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 3)],
            bp.SoftmaxCrossEntropy,
            lambda rng: rng.integers(0, 3, size=6),
        ),
    ],
    ids=["tanh-sigmoid-mse", "sigmoid-tanh-bce", "tanh-softmax-ce"],
)
def test_gradcheck_small_float64_networks(layers, loss, y) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 3))
    model = bp.Sequential(layers(), dtype="float64", seed=0)
    model.compile(loss=loss(), optimizer=bp.SGD(lr=0.1))
    assert bp.gradcheck(model, X, y(rng)) < 1e-6


def test_gradcheck_on_float32_model_checks_a_float64_copy_and_changes_nothing() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(6, 3)), rng.uniform(size=(6, 2))
    model = bp.Sequential(
        [bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2), bp.Sigmoid()], dtype="float32", seed=0
    )
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=0.1))
    model.train_step(X, y)
    model.gradients(X[:3], y[:3])  # leave some gradients in dW / db
    params, grads = _snapshot(model), _gradient_snapshot(model)
    state = model.get_state()
    predictions = model.predict(X)
    err = bp.gradcheck(model, X, y)
    # in float32 the central differences alone would be off by ~1e-7 / 1e-6 ≈ 1e-1
    assert err < 1e-6
    assert model.dtype == np.float32
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert _same(params, _snapshot(model))
    assert _same(grads, _gradient_snapshot(model))
    np.testing.assert_array_equal(model.predict(X), predictions)
    assert model.optimizer is not None and model.optimizer.steps == 1
    after = model.get_state()
    np.testing.assert_array_equal(after["weights"], state["weights"])
    assert after["rng"] == state["rng"] and after["dropout_rng"] == state["dropout_rng"]


def test_gradcheck_agrees_with_an_independent_central_difference() -> None:
    # our own finite differences through model.evaluate, against model.gradients
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(5, 3)), rng.uniform(size=(5, 2))
    model = bp.Sequential(
        [bp.Dense(3, 4), bp.Sigmoid(), bp.Dense(4, 2), bp.Tanh()], dtype="float64", seed=3
    )
    model.compile(loss=bp.MSE())
    grads = [g for pair in model.gradients(X, y) for g in pair]
    eps = 1e-6
    weights = model.get_weights()  # copies, perturbed one entry at a time and set back
    for p, g in zip(weights, grads, strict=True):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            model.set_weights(weights)
            up = model.evaluate(X, y)
            flat[i] = old - eps
            model.set_weights(weights)
            down = model.evaluate(X, y)
            flat[i] = old
            assert (up - down) / (2 * eps) == pytest.approx(gflat[i], rel=1e-6, abs=1e-9)


# -- metrics ---------------------------------------------------------------------------------


def test_evaluate_return_dict_accuracy_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(90, 4))
    y = rng.integers(0, 3, 90)
    w = rng.uniform(0.1, 2.0, 90)
    model = bp.Sequential([bp.Dense(4, 3)], dtype="float64", seed=1)
    model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.1), metrics=["accuracy"])
    scores = model.evaluate(X, y, return_dict=True)
    correct = np.argmax(X @ model.layers[0].W + model.layers[0].b, axis=1) == y
    assert scores == {"loss": model.evaluate(X, y), "accuracy": float(np.mean(correct))}
    weighted = model.evaluate(X, y, w, return_dict=True)
    assert weighted["accuracy"] == pytest.approx(np.sum(w * correct) / np.sum(w), rel=1e-12)
    assert weighted["loss"] == pytest.approx(model.evaluate(X, y, sample_weight=w), rel=1e-12)


def test_binary_accuracy_thresholds_the_logits_at_zero() -> None:
    X = np.array([[1.0], [-1.0], [2.0], [-3.0]])
    y = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    model = bp.Sequential([bp.Dense(1, 2)], dtype="float64", seed=0)
    _, b = model.get_weights()
    model.set_weights([[[1.0, -1.0]], b])  # logits (x, -x): predicted (x > 0, x < 0)
    model.compile(bp.BinaryCrossEntropy(), metrics=["accuracy"])
    # rows: (1,0)/(1,0) 2 right; (0,1)/(1,0) 0; (1,0)/(0,1) 0; (0,1)/(0,0) 1 -> 3 of 8
    assert model.evaluate(X, y, return_dict=True)["accuracy"] == 3 / 8


def test_r2_and_mae_match_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    y[:, 1] = 0.5  # a constant output: sklearn's convention (0.0 unless predicted exactly)
    w = rng.uniform(0.0, 1.0, 50)
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float64", seed=0)
    model.compile(bp.MSE(), bp.SGD(lr=0.1), metrics=["r2", "mae"])
    pred = model.predict(X)
    for weights in (None, w):
        scores = model.evaluate(X, y, weights, return_dict=True)
        r2 = metrics.r2_score(y, pred, sample_weight=weights)
        mae = metrics.mean_absolute_error(y, pred, sample_weight=weights)
        assert scores["r2"] == pytest.approx(r2, rel=1e-12)
        assert scores["mae"] == pytest.approx(mae, rel=1e-12)


def test_metrics_are_checked_against_the_loss() -> None:
    model = bp.Sequential([bp.Dense(2, 2)])
    with pytest.raises(ValueError, match="'accuracy' needs a classification loss"):
        model.compile(bp.MSE(), metrics=["accuracy"])
    with pytest.raises(ValueError, match="'r2' needs a regression loss"):
        model.compile(bp.SoftmaxCrossEntropy(), metrics=["r2"])
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        model.compile(bp.MSE(), metrics=["f1"])
    with pytest.raises(TypeError, match="metrics must be a list of names"):
        model.compile(bp.MSE(), metrics="mae")  # type: ignore[arg-type]


def test_validation_metrics_use_validation_sample_weights() -> None:
    rng = np.random.default_rng(9)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    wv = rng.uniform(0.5, 1.5, 12)
    model = bp.Sequential([bp.Dense(3, 1)], dtype="float64", seed=0)
    model.compile(bp.MAE(), bp.SGD(lr=0.01), metrics=["mae"])
    history = model.fit(X, y, epochs=2, validation_data=(X[:12], y[:12], wv))
    expected = model.evaluate(X[:12], y[:12], wv, return_dict=True)
    assert history["val_loss"][-1] == expected["loss"]
    assert history["val_mae"][-1] == pytest.approx(expected["mae"], rel=1e-12)
    # MAE loss is the mean absolute error itself
    assert history["val_mae"][-1] == pytest.approx(history["val_loss"][-1], rel=1e-9)
