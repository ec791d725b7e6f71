"""Plain SGD (no momentum, no weight decay) on a Dense of >= 16,384 weights folds the layer's
update into its weight-gradient product, W := W - lr X.T @ dY in one BLAS call, and does not
write that dW (backprop_core/_executor.pyx, _update_folded). None of this is visible through
the model: train_step and fit keep no gradients, and "the gradient of a step" is
model.loss_and_gradient (or model.gradients) at the weights and batch of that step.

The folded update rounds differently from W - lr * dW, so every comparison has a tolerance:

- one step against loss_and_gradient on an identical model: elementwise
  |W' - (W - lr g)| <= 2 eps (|W| + |lr g|), eps of the model's dtype. The product's sum is
  the gradient's; the model then rounds lr * sum and W - lr * sum once or twice (once when
  BLAS fuses the multiply-add), each rounding <= eps/2 of those magnitudes, and a float64
  reference rounds as often again.
- several steps (train_step, and fit with shuffle=False over batches of 64, 64, 64 and 8)
  against torch.optim.SGD on an identical torch.nn.Sequential, float64: scaled error
  max|ours - torch| / max|torch| <= 1e-10 per array (the two differ by summation order only:
  ~1e-15 per step, measured <= 1e-14 after 11 steps).
- the step's implied gradient (W - W') / lr against central differences of model.evaluate
  (see that test for its tolerance).
"""

import numpy as np
import pytest

import backprop as bp

FOLD = 1 << 14  # weights from which a Dense's plain-SGD update is folded (AXPY_PARAMS)
LR = 0.1
BATCH = 64
TORCH_TOL = 1e-10


def case_m(dtype=np.float64, optimizer=None, hidden=128):
    """Case M: 784-128-10, ReLU, SoftmaxCrossEntropy (784 x 128 = 100,352 weights fold; the
    128 x 10 layer does not), and 200 rows (batches of 64: three, and a last one of 8)."""
    model = bp.Sequential(
        [bp.Dense(784, hidden), bp.ReLU(), bp.Dense(hidden, 10)], dtype=dtype, seed=0
    ).compile(bp.SoftmaxCrossEntropy(), optimizer or bp.SGD(lr=LR))
    rng = np.random.default_rng(3)
    return model, rng.standard_normal((200, 784)).astype(dtype), rng.integers(0, 10, 200)


def regression(dtype=np.float64, optimizer=None):
    """256-128-128-4, tanh, MSE: two folding layers (32,768 weights, and exactly 16,384)
    and a small one; 200 rows."""
    model = bp.Sequential(
        [bp.Dense(256, 128), bp.Tanh(), bp.Dense(128, 128), bp.Tanh(), bp.Dense(128, 4)],
        dtype=dtype,
        seed=1,
    ).compile(bp.MSE(), optimizer or bp.SGD(lr=LR))
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 256)).astype(dtype)
    return model, X, rng.standard_normal((200, 4)).astype(dtype)


CASES = {"M": case_m, "regression": regression}


def dense(model):
    return [layer for layer in model.layers if isinstance(layer, bp.Dense)]


def weights(model):
    return model.get_state()["weights"]


# -- one folded step against loss_and_gradient ---------------------------------------------------


@pytest.mark.parametrize("how", ["train_step", "fit"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_a_folded_step_is_w_minus_lr_times_the_gradient(case, dtype, how):
    model, X, y = CASES[case](dtype)
    ref, _, _ = CASES[case](dtype)  # identical: same seed
    X, y = X[:BATCH], y[:BATCH]
    assert any(layer.W.size >= FOLD for layer in dense(model))
    _, g = ref.loss_and_gradient(X, y)
    before = weights(model).astype(np.float64)
    if how == "train_step":
        model.train_step(X, y)
    else:  # one batch: fit's compiled epoch takes the same step
        model.fit(X, y, epochs=1, batch_size=BATCH, shuffle=False)
    assert model.optimizer.steps == 1
    after = weights(model)
    step = np.float64(dtype(LR)) * g.astype(np.float64)
    expected = before - step
    eps = np.finfo(dtype).eps
    err = np.abs(after - expected)
    bound = 2 * eps * (np.abs(before) + np.abs(step))
    assert np.all(err <= bound), f"worst {np.max(err / np.maximum(bound, 1e-300)):.2f} x bound"
    for ours, start in zip(model.get_weights(), ref.get_weights(), strict=True):
        assert np.any(ours != start)  # every W and b moved, the folded ones too


def test_ten_folded_steps_match_gradients_and_the_sgd_rule_in_numpy():
    """Ten train_steps (folding) against the same steps taken by hand on an identical model:
    W -= lr dW from its gradients(), in float64 NumPy. The paths differ only in rounding
    (rtol 1e-12, atol 1e-14), and the batches differ so that the steps do."""
    model, X, y = case_m()
    ref, _, _ = case_m()
    rng = np.random.default_rng(0)
    for _ in range(10):
        Xb = X[:BATCH] + rng.standard_normal((BATCH, 784)) * 0.1
        grads = ref.gradients(Xb, y[:BATCH])
        weights = ref.get_weights()  # [W0, b0, W1, b1]: copies
        for k, (dW, db) in enumerate(grads):
            weights[2 * k] -= LR * dW
            weights[2 * k + 1] -= LR * db
        ref.set_weights(weights)
        model.train_step(Xb, y[:BATCH])
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# -- several folded steps against torch.optim.SGD -------------------------------------------------


def torch_mirror(torch, model):
    """torch.nn.Sequential with the model's layers and current weights, float64 (torch's
    Linear.weight is (out, in): our W transposed)."""
    acts = {bp.ReLU: torch.nn.ReLU, bp.Tanh: torch.nn.Tanh}
    modules, params = [], iter(model.get_weights())
    for layer in model.layers:
        if isinstance(layer, bp.Dense):
            lin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(next(params).T))
                lin.bias.copy_(torch.tensor(next(params)))
            modules.append(lin)
        else:
            modules.append(acts[type(layer)]())
    return torch.nn.Sequential(*modules)


def torch_weights(net):
    """The torch net's parameters as get_weights() lays them out: [W0, b0, W1, b1, ...]."""
    out = []
    for m in net:
        if hasattr(m, "weight"):
            out += [m.weight.detach().numpy().T, m.bias.detach().numpy()]
    return out


def scaled_error(ours, theirs):
    theirs = np.asarray(theirs, np.float64)
    return float(np.max(np.abs(np.asarray(ours) - theirs)) / np.max(np.abs(theirs)))


def assert_weights_match(model, net, what):
    for k, (ours, theirs) in enumerate(zip(model.get_weights(), torch_weights(net), strict=True)):
        err = scaled_error(ours, theirs)
        assert err <= TORCH_TOL, f"{what}: parameter {k} off by {err:.1e} (scaled)"


def train_both(torch, model, make_torch_optimizer, X, y):
    """Three train_steps on the first batches, then two fit epochs (shuffle=False, batch
    64 over 200 rows: the last batch has 8), on the model and by hand on a torch mirror,
    comparing losses and every parameter as they go."""
    torch.set_num_threads(1)  # as test_torch_reference does: deterministic, no oversubscription
    net = torch_mirror(torch, model)
    opt = make_torch_optimizer(net.parameters())
    loss_fn = (
        torch.nn.CrossEntropyLoss()
        if isinstance(model.loss, bp.SoftmaxCrossEntropy)
        else torch.nn.MSELoss()
    )

    def torch_step(Xb, yb):
        opt.zero_grad()
        loss = loss_fn(net(torch.tensor(Xb)), torch.tensor(yb))
        loss.backward()
        opt.step()
        return loss.item()

    start = model.get_weights()
    for s in range(3):
        batch = slice(BATCH * s, BATCH * (s + 1))
        value = model.train_step(X[batch], y[batch])
        expected = torch_step(X[batch], y[batch])
        assert abs(value - expected) <= TORCH_TOL * abs(expected), f"train_step {s}: loss"
        assert_weights_match(model, net, f"train_step {s}")
    history = model.fit(X, y, epochs=2, batch_size=BATCH, shuffle=False)
    for epoch in range(2):
        total = sum(
            torch_step(X[s : s + BATCH], y[s : s + BATCH]) * len(X[s : s + BATCH])
            for s in range(0, len(X), BATCH)
        )
        expected = total / len(X)  # fit's epoch loss: batch losses weighted by batch size
        assert abs(history.loss[epoch] - expected) <= TORCH_TOL * expected, f"epoch {epoch}"
    assert_weights_match(model, net, "after fit")
    assert model.optimizer.steps == 3 + 2 * 4
    # the comparison is not vacuous: the weights moved far more than the tolerance
    for now, then in zip(model.get_weights(), start, strict=True):
        assert np.max(np.abs(now - then)) > 1e3 * TORCH_TOL * np.max(np.abs(now))


@pytest.mark.parametrize("case", list(CASES))
def test_folded_sgd_matches_torch_sgd(case):
    torch = pytest.importorskip("torch")
    model, X, y = CASES[case]()
    assert any(layer.W.size >= FOLD for layer in dense(model))
    train_both(torch, model, lambda p: torch.optim.SGD(p, lr=LR), X, y)


NOT_FOLDING = {
    # name: (model factory, backprop optimizer, torch optimizer keyword arguments)
    "momentum": (case_m, lambda: bp.SGD(lr=LR, momentum=0.9), {"lr": LR, "momentum": 0.9}),
    "nesterov": (
        regression,
        lambda: bp.SGD(lr=LR, momentum=0.9, nesterov=True),
        {"lr": LR, "momentum": 0.9, "nesterov": True},
    ),
    "weight_decay": (
        case_m,
        lambda: bp.SGD(lr=LR, weight_decay=1e-2),
        {"lr": LR, "weight_decay": 1e-2},
    ),
    "adam": (case_m, lambda: bp.Adam(lr=1e-3), {"lr": 1e-3, "adam": True}),
    "small-layers": (
        lambda optimizer: case_m(optimizer=optimizer, hidden=16),  # 784 x 16 = 12,544
        lambda: bp.SGD(lr=LR),
        {"lr": LR},
    ),
}


@pytest.mark.parametrize("name", list(NOT_FOLDING))
def test_optimizers_and_layers_that_do_not_fold_match_torch(name):
    torch = pytest.importorskip("torch")
    make, optimizer, kw = NOT_FOLDING[name]
    model, X, y = make(optimizer=optimizer())
    if name == "small-layers":
        assert all(layer.W.size < FOLD for layer in dense(model))
    kw = dict(kw)
    cls = torch.optim.Adam if kw.pop("adam", False) else torch.optim.SGD
    train_both(torch, model, lambda p: cls(p, **kw), X, y)


# -- the folded step's implied gradient against finite differences ------------------------------


def test_the_folded_steps_implied_gradient_matches_central_differences():
    """(W - W') / lr of a folded step (case M, float64) at 20 random weights of each layer,
    against (L(w + h) - L(w - h)) / 2h of model.evaluate on the step's batch, h = 1e-5.

    Tolerance |implied - fd| <= 1e-6 |fd| + 1e-9:
    - the implied gradient carries the update's rounding, <= 2 eps |W| / lr ~ 1e-15 here;
    - the loss (~2.3) is computed to a few eps, so the difference quotient carries
      ~1e-15 / 2h = 5e-11 of round-off (atol 1e-9: 20 times that);
    - truncation is h^2 f''' / 6, ~1e-10 f''' relative (rtol 1e-6); measured <= 2e-7.
    Gradients here are up to ~1e-2 and most exceed 1e-5, so a gradient off by 0.1% would fail.
    A ReLU kink between w - h and w + h would break the central difference: first-layer
    weights are drawn only where no pre-activation can cross zero (|z| > 10 h |x|)."""
    model, X, y = case_m()
    ref, _, _ = case_m()
    X, y = X[:BATCH], y[:BATCH]
    before = model.get_weights()
    model.train_step(X, y)
    after = model.get_weights()
    rng = np.random.default_rng(0)
    h = 1e-5
    Z = X @ before[0] + before[1]
    checked = 0
    weights = ref.get_weights()  # the identical model's weights, set back with set_weights
    for k in (0, 2):  # W0 (folded) and W1 (not)
        implied = (before[k] - after[k]) / LR
        W = weights[k]
        picked = []
        while len(picked) < 20:
            i, j = (int(rng.integers(n)) for n in W.shape)
            if k == 0 and np.any(np.abs(Z[:, j]) <= 10 * h * np.abs(X[:, i])):
                continue
            picked.append((i, j))
        for i, j in picked:
            old = W[i, j]
            W[i, j] = old + h
            ref.set_weights(weights)
            up = ref.evaluate(X, y)
            W[i, j] = old - h
            ref.set_weights(weights)
            down = ref.evaluate(X, y)
            W[i, j] = old
            fd = (up - down) / (2 * h)
            assert abs(implied[i, j] - fd) <= 1e-6 * abs(fd) + 1e-9, (k, i, j, implied[i, j], fd)
            checked += abs(fd) > 1e-5
    assert checked >= 30, "too few of the weights had a gradient to compare"


# -- layer.dW / layer.db: the last gradients() result, nothing else -------------------------------


def test_layer_gradients_hold_the_last_gradients_call_only():
    model, X, y = case_m(np.float32)  # float32, plain SGD: the first layer folds
    layers = dense(model)
    X1, y1, X2, y2 = X[:BATCH], y[:BATCH], X[BATCH : 2 * BATCH], y[BATCH : 2 * BATCH]

    def assert_no_gradients():
        for layer in layers:
            for name in ("dW", "db"):
                with pytest.raises(RuntimeError, match=r"model\.gradients"):
                    getattr(layer, name)

    assert_no_gradients()
    model.train_step(X1, y1)
    model.fit(X, y, epochs=1, batch_size=BATCH, shuffle=False)
    model.loss_and_gradient(X1, y1)
    assert_no_gradients()  # train_step, fit and loss_and_gradient keep no gradients

    grads = model.gradients(X1, y1)
    held = []
    for layer, (dW, db) in zip(layers, grads, strict=True):
        np.testing.assert_array_equal(layer.dW, dW)
        np.testing.assert_array_equal(layer.db, db)
        for kept in (layer.dW, layer.db):
            assert not kept.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                kept[...] = 0
        assert not np.shares_memory(layer.dW, dW) and not np.shares_memory(layer.db, db)
        held.append((dW.copy(), db.copy()))
        dW[...] = 0  # the returned arrays are the caller's: this changes nothing kept
        db[...] = 0

    weights_then = weights(model)
    model.train_step(X2, y2)
    model.fit(X, y, epochs=2, batch_size=BATCH, shuffle=True, seed=1)
    model.loss_and_gradient(X2, y2)
    with pytest.raises(FloatingPointError):  # a refused step (its loss overflows)
        model.train_step(np.full_like(X1, 3e38), y1)
    with pytest.raises(ValueError):  # refused by validation
        model.train_step(X1, y1[:-1])
    assert not np.array_equal(weights(model), weights_then)
    for layer, (dW, db) in zip(layers, held, strict=True):
        np.testing.assert_array_equal(layer.dW, dW)
        np.testing.assert_array_equal(layer.db, db)

    # the next gradients() call replaces them
    for layer, (dW, db) in zip(layers, model.gradients(X2, y2), strict=True):
        np.testing.assert_array_equal(layer.dW, dW)
        np.testing.assert_array_equal(layer.db, db)
    assert not np.array_equal(layers[0].dW, held[0][0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_and_loss_and_gradient_agree_and_change_nothing(dtype):
    """On a model whose train_step folds: the flat gradient is gradients() concatenated in
    get_weights() order, bit for bit, and neither call changes the weights or the step
    count, nor is changed by a later step."""
    model, X, y = case_m(dtype)
    X, y = X[:BATCH], y[:BATCH]
    state = model.get_state()
    loss, flat = model.loss_and_gradient(X, y)
    grads = model.gradients(X, y)
    assert flat.shape == (model.n_params,) and flat.dtype == dtype
    np.testing.assert_array_equal(flat, np.concatenate([g.ravel() for pair in grads for g in pair]))
    assert loss == pytest.approx(model.evaluate(X, y), rel=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(weights(model), state["weights"])
    assert model.optimizer.steps == 0
    kept = flat.copy()
    model.train_step(X, y)
    np.testing.assert_array_equal(flat, kept)  # a copy, not a view of the model's buffers
