"""backprop against PyTorch: autograd for gradients, torch.optim for updates, torch losses.

Every comparison uses the *scaled error* max|actual - ref| / max|ref| over one array (a
weight gradient, a bias gradient, the outputs, a parameter, an optimizer buffer; for a
scalar loss, |actual - ref| / |ref|), so the bound is relative to that array's scale, and
two arrays that are both exactly zero agree. (Loss gradients alone floor the scale at
1/(n m), the largest a cross-entropy gradient element can be.) Bounds:

- gradients, outputs, loss values of whole networks: float64 1e-10, float32 1e-5
- optimizer steps (model.train_step over several steps, and the core kernels):
  float64 1e-12, float32 1e-5
- losses alone (value_and_grad against torch.nn.functional): float64 1e-12, float32 1e-5

Torch always works in the model's dtype, on weights copied from the model
(nn.Linear.weight = W.T), on one thread. Fixtures rng and dtype come from tests/conftest.py.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any

import numpy as np
import pytest

import backprop as bp
import backprop_core as core

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

torch.set_num_threads(1)

GRAD_TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
OPT_TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
LOSS_TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}

LEAKY_ALPHA = 0.2  # not the default 0.01, so a dropped alpha shows
ACTIVATIONS = ("sigmoid", "relu", "tanh", "identity", "leaky_relu", "softmax")
LOSSES = ("mse", "softmax_ce", "bce", "mae", "huber")
REGRESSION = ("mse", "mae", "huber")  # real-valued targets
HUBER_DELTA = 0.5  # not the default 1.0, so a dropped delta shows


# -- helpers -------------------------------------------------------------------------------


def scaled_error(actual: Any, ref: Any, floor: float = 0.0) -> float:
    """max|actual - ref| / max(max|ref|, floor) in float64; 0 when both are exactly equal."""
    actual = np.asarray(actual, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert actual.shape == ref.shape, f"shape {actual.shape} != reference shape {ref.shape}"
    assert np.isfinite(actual).all(), "non-finite values"
    diff = float(np.max(np.abs(actual - ref), initial=0.0))
    if diff == 0.0:
        return 0.0
    scale = float(np.max(np.abs(ref), initial=0.0))
    return diff / max(scale, floor, np.finfo(np.float64).tiny)


def assert_close(actual: Any, ref: Any, tol: float, what: str, floor: float = 0.0) -> None:
    err = scaled_error(actual, ref, floor)
    assert err <= tol, f"{what}: scaled error {err:.3e} exceeds {tol:.0e}"


def bp_activation(name: str) -> bp.Layer:
    if name == "leaky_relu":
        return bp.LeakyReLU(alpha=LEAKY_ALPHA)
    cls = {
        "sigmoid": bp.Sigmoid,
        "relu": bp.ReLU,
        "tanh": bp.Tanh,
        "identity": bp.Identity,
        "softmax": bp.Softmax,
    }[name]
    return cls()


def torch_layer(layer: bp.Layer, tdtype: Any) -> Any:
    """The torch module equivalent to one backprop layer (Dense weights copied)."""
    if isinstance(layer, bp.Dense):
        lin = nn.Linear(layer.in_features, layer.out_features, dtype=tdtype)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(np.array(layer.W.T)))
            lin.bias.copy_(torch.tensor(np.array(layer.b)))
        return lin
    if isinstance(layer, bp.LeakyReLU):
        return nn.LeakyReLU(negative_slope=layer.alpha)
    if isinstance(layer, bp.Softmax):
        return nn.Softmax(dim=1)
    for bp_cls, torch_cls in (
        (bp.Sigmoid, nn.Sigmoid),
        (bp.ReLU, nn.ReLU),
        (bp.Tanh, nn.Tanh),
        (bp.Identity, nn.Identity),
    ):
        if isinstance(layer, bp_cls):
            return torch_cls()
    raise AssertionError(f"no torch equivalent for {layer!r}")


def torch_mirror(model: bp.Sequential) -> Any:
    """nn.Sequential with the model's layers and current weights, in the model's dtype."""
    tdtype = TORCH_DTYPE[model.dtype]
    return nn.Sequential(*[torch_layer(layer, tdtype) for layer in model.layers])


def torch_linears(net: Any) -> list[Any]:
    return [m for m in net if isinstance(m, nn.Linear)]


def dense_layers(model: bp.Sequential) -> list[bp.Dense]:
    return [layer for layer in model.layers if isinstance(layer, bp.Dense)]


def bp_loss(name: str) -> bp.Loss:
    if name == "huber":
        return bp.Huber(HUBER_DELTA)
    return {
        "mse": bp.MSE,
        "softmax_ce": bp.SoftmaxCrossEntropy,
        "bce": bp.BinaryCrossEntropy,
        "mae": bp.MAE,
    }[name]()


def torch_loss(name: str) -> Any:
    if name == "huber":
        return nn.HuberLoss(delta=HUBER_DELTA)
    return {
        "mse": nn.MSELoss,
        "softmax_ce": nn.CrossEntropyLoss,
        "bce": nn.BCEWithLogitsLoss,
        "mae": nn.L1Loss,
    }[name]()


def make_targets(
    loss: str, rng: np.random.Generator, n: int, n_out: int, dtype: Any
) -> tuple[np.ndarray, Any]:
    """(y for backprop, y for torch). A single-output MSE/BCE target goes to backprop as
    (n,), the shape the API also accepts, and to torch as (n, 1) (torch would broadcast
    (n,) against (n, 1))."""
    if loss == "softmax_ce":
        y = rng.integers(0, n_out, size=n).astype(np.int64)
        return y, torch.tensor(y)
    if loss in REGRESSION:
        y = rng.normal(size=(n, n_out)).astype(dtype)
    else:
        y = rng.uniform(size=(n, n_out)).astype(dtype)
        y.flat[::3] = np.round(y.flat[::3])  # some hard 0/1 targets among the soft ones
    y_t = torch.tensor(y)
    return (y.reshape(n) if n_out == 1 else y), y_t


def randomize(model: bp.Sequential, rng: np.random.Generator) -> None:
    """Nonzero biases (the default init is zeros) and weights of unit-ish gain."""
    weights = []
    for layer in dense_layers(model):
        weights.append(rng.normal(0.0, 1.2 / np.sqrt(layer.in_features), layer.W.shape))
        weights.append(rng.normal(0.0, 0.5, layer.b.shape))
    model.set_weights(weights)


# -- 1. whole-network gradients, outputs and loss values vs autograd ------------------------


def chain(widths: list[int], act: str | None, final_act: bool) -> list[bp.Layer]:
    """Dense layers of the given widths with `act` between them (and after the last)."""
    layers: list[bp.Layer] = []
    for k, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        if k > 0 and act is not None:
            layers.append(bp_activation(act))
        layers.append(bp.Dense(n_in, n_out))
    if final_act and act is not None:
        layers.append(bp_activation(act))
    return layers


def random_case(loss: str, act: str | None, depth: int) -> tuple[str, list[bp.Layer], int]:
    """A network of `depth` Dense layers, widths 1..20, and a batch size 1..17, drawn from a
    generator seeded by the case's name (deterministic, different per case)."""
    name = f"{loss}-{act or 'linear'}-depth{depth}"
    g = np.random.default_rng(zlib.crc32(name.encode()))
    widths = [int(w) for w in g.integers(1, 21, size=depth + 1)]
    if loss == "softmax_ce":
        widths[-1] = max(widths[-1], 2)
    batch = int(g.integers(1, 18))
    # MSE takes any output: end the depth-3 MSE networks with the activation too
    final_act = loss in REGRESSION and depth == 3
    return name, chain(widths, act, final_act), batch


def _random_cases() -> list[Any]:
    cases = []
    for loss in LOSSES:
        specs = [(loss, None, 1)] + [
            (loss, act, depth) for act in ACTIVATIONS for depth in (2, 3, 4)
        ]
        for spec in specs:
            name = random_case(*spec)[0]
            cases.append(pytest.param(*spec, id=name))
    return cases


def _special_layers(name: str) -> tuple[list[bp.Layer], int]:
    if name == "act_before_first_dense":
        return [bp.Tanh(), bp.Dense(4, 6), bp.ReLU(), bp.Dense(6, 3)], 5
    if name == "dense_dense":
        return [bp.Dense(3, 8), bp.Dense(8, 5), bp.Sigmoid(), bp.Dense(5, 2)], 7
    if name == "stacked_activations":
        return [
            bp.Dense(5, 7),
            bp.Identity(),
            bp.LeakyReLU(alpha=0.3),
            bp.Tanh(),
            bp.Softmax(),
            bp.Dense(7, 4),
            bp.Sigmoid(),
            bp.Sigmoid(),
            bp.LeakyReLU(alpha=0.0),
            bp.Dense(4, 3),
            bp.LeakyReLU(alpha=1.0),
            bp.Identity(),
            bp.Dense(3, 2),
        ], 6
    if name == "width1_batch1":
        return [bp.Dense(1, 1), bp.Tanh(), bp.Dense(1, 1)], 1
    if name == "wide_blas":
        # 17 x 20 x 20 products are above the core's small-GEMM threshold: the BLAS path
        return [
            bp.Dense(20, 20),
            bp.Tanh(),
            bp.Dense(20, 20),
            bp.LeakyReLU(alpha=0.05),
            bp.Dense(20, 20),
            bp.Softmax(),
            bp.Dense(20, 20),
        ], 17
    raise AssertionError(name)


SPECIAL = (
    "act_before_first_dense",
    "dense_dense",
    "stacked_activations",
    "width1_batch1",
    "wide_blas",
)


def check_network_against_torch(
    layers: list[bp.Layer], loss: str, batch: int, dtype: Any, rng: np.random.Generator
) -> None:
    tol = GRAD_TOL[np.dtype(dtype)]
    model = bp.Sequential(layers, dtype=dtype, seed=0)
    randomize(model, rng)
    model.compile(loss=bp_loss(loss))
    net = torch_mirror(model)
    X = rng.normal(size=(batch, model.n_features_in)).astype(dtype)
    y, y_t = make_targets(loss, rng, batch, model.n_outputs, dtype)

    theta_before = [p.copy() for p in model.parameters()]
    grads = model.gradients(X, y)
    for p, p0 in zip(model.parameters(), theta_before, strict=True):
        np.testing.assert_array_equal(p, p0, err_msg="gradients() changed the parameters")

    out_t = net(torch.tensor(X))
    loss_t = torch_loss(loss)(out_t, y_t)
    loss_t.backward()

    assert len(grads) == len(torch_linears(net))
    for k, ((dW, db), lin, layer) in enumerate(
        zip(grads, torch_linears(net), dense_layers(model), strict=True)
    ):
        assert dW.dtype == dtype and db.dtype == dtype
        assert_close(dW, lin.weight.grad.numpy().T, tol, f"dW of Dense #{k}")
        assert_close(db, lin.bias.grad.numpy(), tol, f"db of Dense #{k}")
        np.testing.assert_array_equal(layer.dW, dW, err_msg="layer.dW != returned dW")
        np.testing.assert_array_equal(layer.db, db, err_msg="layer.db != returned db")

    pred = model.predict(X)
    assert pred.dtype == dtype
    assert_close(pred, out_t.detach().numpy(), tol, "predict")
    assert_close(model.evaluate(X, y), loss_t.item(), tol, "evaluate (loss value)")


@pytest.mark.parametrize(("loss", "act", "depth"), _random_cases())
def test_random_network_gradients_match_autograd(
    loss: str, act: str | None, depth: int, dtype: Any, rng: np.random.Generator
) -> None:
    _, layers, batch = random_case(loss, act, depth)
    check_network_against_torch(layers, loss, batch, dtype, rng)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("arch", SPECIAL)
def test_special_network_gradients_match_autograd(
    arch: str, loss: str, dtype: Any, rng: np.random.Generator
) -> None:
    layers, batch = _special_layers(arch)
    check_network_against_torch(layers, loss, batch, dtype, rng)


def test_cases_span_the_required_ranges() -> None:
    """The drawn shapes really cover depth 1..4, widths 1..20 and batch sizes 1..17, and
    wide_blas really reaches BLAS (the smaller cases take the core's direct loop)."""
    widths, batches, depths = set(), set(), set()
    for case in _random_cases():
        _, layers, batch = random_case(*case.values)
        dense = [layer for layer in layers if isinstance(layer, bp.Dense)]
        depths.add(len(dense))
        widths.update(w for layer in dense for w in (layer.in_features, layer.out_features))
        batches.add(batch)
    assert depths == {1, 2, 3, 4}
    assert min(widths) == 1 and max(widths) == 20
    assert min(batches) == 1 and max(batches) == 17
    assert 17 * 20 * 20 > core.small_gemm_threshold()


# -- 2. optimizer steps vs torch.optim --------------------------------------------------------

OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"kind": "sgd", "lr": 0.1},
    "sgd_momentum": {"kind": "sgd", "lr": 0.1, "momentum": 0.9},
    "sgd_nesterov": {"kind": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
    "sgd_weight_decay": {"kind": "sgd", "lr": 0.1, "weight_decay": 0.05},
    "sgd_nesterov_weight_decay": {
        "kind": "sgd",
        "lr": 0.05,
        "momentum": 0.7,
        "nesterov": True,
        "weight_decay": 0.1,
    },
    "adam": {"kind": "adam", "lr": 0.01},
    "adam_weight_decay": {
        "kind": "adam",
        "lr": 0.02,
        "betas": (0.8, 0.99),
        "eps": 1e-7,
        "weight_decay": 0.1,
    },
}


def make_optimizers(config: dict[str, Any], params: list[Any]) -> tuple[bp.Optimizer, Any]:
    """(backprop optimizer, torch.optim optimizer over `params`) with one configuration."""
    kw = {k: v for k, v in config.items() if k != "kind"}
    if config["kind"] == "sgd":
        return bp.SGD(**kw), torch.optim.SGD(params, **kw)
    return bp.Adam(**kw), torch.optim.Adam(params, **kw)


def torch_flat(net: Any, state: Any, key: str) -> np.ndarray:
    """torch.optim per-parameter buffers state[p][key] -> the model's flat layout
    (per Dense: W as (in, out) row-major, then b)."""
    parts = []
    for lin in torch_linears(net):
        parts += [state[lin.weight][key].numpy().T.ravel(), state[lin.bias][key].numpy()]
    return np.concatenate(parts)


def opt_model(loss: str, dtype: Any, rng: np.random.Generator) -> bp.Sequential:
    n_out = 1 if loss == "bce" else 3
    model = bp.Sequential(
        [
            bp.Dense(5, 8),
            bp.Tanh(),
            bp.Dense(8, 6),
            bp.LeakyReLU(alpha=LEAKY_ALPHA),
            bp.Dense(6, n_out),
        ],
        dtype=dtype,
        seed=0,
    )
    randomize(model, rng)
    return model


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_train_steps_match_torch_optim(
    opt: str, loss: str, dtype: Any, rng: np.random.Generator
) -> None:
    """Four model.train_step calls on fresh batches vs torch forward/backward/step: the
    returned losses, every parameter and the optimizer buffers after every step."""
    tol = OPT_TOL[np.dtype(dtype)]
    model = opt_model(loss, dtype, rng)
    net = torch_mirror(model)
    optimizer, torch_opt = make_optimizers(OPTIMIZERS[opt], list(net.parameters()))
    model.compile(loss=bp_loss(loss), optimizer=optimizer)
    loss_fn = torch_loss(loss)
    moved = False
    for step in range(1, 5):
        X = rng.normal(size=(9, model.n_features_in)).astype(dtype)
        y, y_t = make_targets(loss, rng, 9, model.n_outputs, dtype)
        before = [p.copy() for p in model.parameters()]
        value = model.train_step(X, y)

        torch_opt.zero_grad()
        loss_t = loss_fn(net(torch.tensor(X)), y_t)
        loss_t.backward()
        torch_opt.step()

        assert_close(value, loss_t.item(), GRAD_TOL[np.dtype(dtype)], f"step {step}: loss")
        assert optimizer.steps == step
        for k, (layer, lin) in enumerate(zip(dense_layers(model), torch_linears(net), strict=True)):
            assert_close(layer.W, lin.weight.detach().numpy().T, tol, f"step {step}: W{k}")
            assert_close(layer.b, lin.bias.detach().numpy(), tol, f"step {step}: b{k}")
        moved |= any(
            not np.array_equal(p, p0) for p, p0 in zip(model.parameters(), before, strict=True)
        )
        state = optimizer.state
        torch_state = torch_opt.state
        if OPTIMIZERS[opt]["kind"] == "adam":
            assert set(state) == {"m", "v"}
            m_ref = torch_flat(net, torch_state, "exp_avg")
            v_ref = torch_flat(net, torch_state, "exp_avg_sq")
            assert_close(state["m"], m_ref, tol, f"step {step}: Adam m")
            assert_close(state["v"], v_ref, tol, f"step {step}: Adam v")
        elif OPTIMIZERS[opt].get("momentum", 0.0):
            assert set(state) == {"velocity"}
            v_ref = torch_flat(net, torch_state, "momentum_buffer")
            assert_close(state["velocity"], v_ref, tol, f"step {step}: velocity")
        else:
            assert state == {}
    assert moved, "train_step never changed the parameters"


@pytest.mark.parametrize("opt", ["sgd_nesterov_weight_decay", "adam_weight_decay"])
def test_learning_rate_change_matches_torch(opt: str, dtype: Any, rng: np.random.Generator) -> None:
    """optimizer.lr changed between steps acts like torch's param_group['lr']."""
    tol = OPT_TOL[np.dtype(dtype)]
    model = opt_model("mse", dtype, rng)
    net = torch_mirror(model)
    optimizer, torch_opt = make_optimizers(OPTIMIZERS[opt], list(net.parameters()))
    model.compile(loss=bp.MSE(), optimizer=optimizer)
    X = rng.normal(size=(6, model.n_features_in)).astype(dtype)
    y, y_t = make_targets("mse", rng, 6, model.n_outputs, dtype)
    for step, lr in enumerate((0.05, 0.2, 0.01), start=1):
        optimizer.lr = lr
        for group in torch_opt.param_groups:
            group["lr"] = lr
        model.train_step(X, y)
        torch_opt.zero_grad()
        nn.MSELoss()(net(torch.tensor(X)), y_t).backward()
        torch_opt.step()
        for k, (layer, lin) in enumerate(zip(dense_layers(model), torch_linears(net), strict=True)):
            assert_close(layer.W, lin.weight.detach().numpy().T, tol, f"step {step}: W{k}")
            assert_close(layer.b, lin.bias.detach().numpy(), tol, f"step {step}: b{k}")


def torch_param_steps(
    config: dict[str, Any], param0: np.ndarray, grads: list[np.ndarray]
) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """torch.optim on one flat parameter fed the given gradients: (param, state) per step."""
    p = nn.Parameter(torch.tensor(param0))
    _, torch_opt = make_optimizers(config, [p])
    out = []
    for g in grads:
        p.grad = torch.tensor(g)
        torch_opt.step()
        state = {k: v.numpy().copy() for k, v in torch_opt.state[p].items() if k != "step"}
        out.append((p.detach().numpy().copy(), state))
    return out


@pytest.mark.parametrize("size", [1, 37])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_core_kernels_match_torch_optim(
    opt: str, size: int, dtype: Any, rng: np.random.Generator
) -> None:
    """core.sgd_update / core.adam_update over five given gradients vs torch.optim."""
    tol = OPT_TOL[np.dtype(dtype)]
    config = OPTIMIZERS[opt]
    param = rng.normal(size=size).astype(dtype)
    grads = [(rng.normal(size=size) * 10.0 ** rng.uniform(-3, 1)).astype(dtype) for _ in range(5)]
    expected = torch_param_steps(config, param.copy(), grads)

    momentum = config.get("momentum", 0.0)
    velocity = np.zeros_like(param) if momentum else None
    m, v = np.zeros_like(param), np.zeros_like(param)
    for t, (g, (p_ref, state_ref)) in enumerate(zip(grads, expected, strict=True), start=1):
        g_copy = g.copy()
        before = param.copy()
        if config["kind"] == "sgd":
            result = core.sgd_update(
                param,
                g,
                velocity,
                lr=config["lr"],
                momentum=momentum,
                nesterov=config.get("nesterov", False),
                weight_decay=config.get("weight_decay", 0.0),
            )
        else:
            beta1, beta2 = config.get("betas", (0.9, 0.999))
            result = core.adam_update(
                param,
                g,
                m,
                v,
                t=t,
                lr=config["lr"],
                beta1=beta1,
                beta2=beta2,
                eps=config.get("eps", 1e-8),
                weight_decay=config.get("weight_decay", 0.0),
            )
        assert result is None
        np.testing.assert_array_equal(g, g_copy, err_msg="the gradient was modified")
        assert not np.array_equal(param, before), "the parameter was not updated in place"
        assert_close(param, p_ref, tol, f"step {t}: param")
        if config["kind"] == "adam":
            assert_close(m, state_ref["exp_avg"], tol, f"step {t}: m")
            assert_close(v, state_ref["exp_avg_sq"], tol, f"step {t}: v")
        elif velocity is not None:
            assert_close(velocity, state_ref["momentum_buffer"], tol, f"step {t}: velocity")


@pytest.mark.parametrize("beta2", [0.999, 0.9999])
def test_adam_float32_one_step_matches_torch(beta2: float) -> None:
    """Regression: one float32 Adam step from 0 with gradient 1 gives torch's
    v = float32(1 - beta2), not 1 - float32(beta2) (off by a relative 1.3e-5 for 0.999 and
    1.7e-4 for 0.9999, which made that step 8e-5 too small), to float32 rounding."""
    config = {"kind": "adam", "lr": 1e-3, "betas": (0.9, beta2), "eps": 1e-8}
    g = np.ones(4, dtype=np.float32)
    [(p_ref, state_ref)] = torch_param_steps(config, np.zeros(4, dtype=np.float32), [g])
    param, m, v = (np.zeros(4, dtype=np.float32) for _ in range(3))
    core.adam_update(param, g, m, v, t=1, lr=1e-3, beta1=0.9, beta2=beta2, eps=1e-8)
    assert_close(m, state_ref["exp_avg"], 1e-6, "m")
    assert_close(v, state_ref["exp_avg_sq"], 1e-6, "v")
    assert_close(param, p_ref, 1e-6, "param")


# -- 3. losses alone vs torch.nn.functional ---------------------------------------------------


def extreme_logits(rng: np.random.Generator, shape: tuple[int, int], dtype: Any) -> np.ndarray:
    """Normal logits with a share of entries at ±50 and ±20 (overflow bait for exp)."""
    Z = rng.normal(0.0, 3.0, size=shape)
    mask = rng.uniform(size=shape)
    Z[mask < 0.15] = 50.0
    Z[(mask >= 0.15) & (mask < 0.3)] = -50.0
    Z[(mask >= 0.3) & (mask < 0.35)] = 20.0
    Z[(mask >= 0.35) & (mask < 0.4)] = -20.0
    return Z.astype(dtype)


def torch_value_and_grad(loss: str, Z: np.ndarray, y_t: Any) -> tuple[float, np.ndarray]:
    z = torch.tensor(Z, requires_grad=True)
    if loss == "mse":
        value = F.mse_loss(z, y_t)
    elif loss == "mae":
        value = F.l1_loss(z, y_t)
    elif loss == "huber":
        value = F.huber_loss(z, y_t, delta=HUBER_DELTA)
    elif loss == "softmax_ce":
        value = F.cross_entropy(z, y_t)
    else:
        value = F.binary_cross_entropy_with_logits(z, y_t)
    value.backward()
    return value.item(), z.grad.numpy()


@pytest.mark.parametrize(
    "shape", [(1, 1), (1, 5), (7, 1), (13, 4), (4, 20)], ids=lambda s: f"{s[0]}x{s[1]}"
)
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_value_and_grad_match_torch(
    loss: str, shape: tuple[int, int], dtype: Any, rng: np.random.Generator
) -> None:
    tol = LOSS_TOL[np.dtype(dtype)]
    n, m = shape
    Z = extreme_logits(rng, shape, dtype)
    y, y_t = make_targets(loss, rng, n, m, dtype)
    if loss in REGRESSION:
        y = y * 30  # large residuals as well
        y_t = y_t * 30
    loss_obj = bp_loss(loss)
    Z_arg = Z.reshape(n) if m == 1 else Z  # single-output predictions may be 1-D
    value, grad = loss_obj.value_and_grad(Z_arg, y)
    ref_value, ref_grad = torch_value_and_grad(loss, Z, y_t)

    assert isinstance(value, float) and np.isfinite(value)
    assert grad.dtype == dtype and grad.shape == (n, m)
    assert_close(value, ref_value, tol, "loss value")
    # floor: 1/(n m) bounds every element of a cross-entropy gradient (the MSE gradients here
    # are far larger). Without it a saturated 1x1 case (logit 20, target 1) would divide by
    # torch's float32 gradient, exactly 0, where backprop (computing in double) gives the
    # true -2e-9.
    assert_close(grad, ref_grad, tol, "loss gradient", floor=1.0 / (n * m))
    assert_close(loss_obj(Z_arg, y), ref_value, tol, "loss __call__")


@pytest.mark.parametrize("loss", ["softmax_ce", "bce"])
def test_loss_with_saturated_logits_matches_torch(loss: str, dtype: Any) -> None:
    """Every logit at ±50, hard and soft targets: finite, and as torch."""
    Z = np.array([[50.0, -50.0, 50.0], [-50.0, -50.0, 50.0], [50.0, 50.0, 50.0]], dtype=dtype)
    if loss == "softmax_ce":
        y = np.array([0, 1, 2], dtype=np.int64)
        y_t = torch.tensor(y)
    else:
        y = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.5, 1.0, 0.0]], dtype=dtype)
        y_t = torch.tensor(y)
    value, grad = bp_loss(loss).value_and_grad(Z, y)
    ref_value, ref_grad = torch_value_and_grad(loss, Z, y_t)
    assert_close(value, ref_value, LOSS_TOL[np.dtype(dtype)], "loss value")
    assert_close(grad, ref_grad, LOSS_TOL[np.dtype(dtype)], "loss gradient", floor=1.0 / Z.size)
