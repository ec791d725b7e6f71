"""PyTorch interop: model.to_torch() and backprop.from_torch, against torch's own forward.

Tolerances: float64 rtol=1e-12, atol=1e-12, float32 rtol=1e-6, atol=1e-6, the atol scaled by
the output's magnitude (max |expected|, at least 1): torch's addmm and its vectorised tanh /
sigmoid / exp round differently from the core, and an output near zero that results from
values of ~10 carries their absolute rounding error. Conversions themselves are exact: the
weights are copied, never recomputed.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")
nn = torch.nn

TOL = {
    np.dtype(np.float32): {"rtol": 1e-6, "atol": 1e-6},
    np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-12},
}
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
LEAKY_ALPHA = 0.3
ACTIVATIONS = ("relu", "sigmoid", "tanh", "identity", "leaky_relu", "softmax", "dropout")


def bp_activation(name: str) -> bp.Layer:
    return {
        "relu": bp.ReLU,
        "sigmoid": bp.Sigmoid,
        "tanh": bp.Tanh,
        "identity": bp.Identity,
        "leaky_relu": lambda: bp.LeakyReLU(LEAKY_ALPHA),
        "softmax": bp.Softmax,
        "dropout": lambda: bp.Dropout(0.4),
    }[name]()


def torch_activation(name: str) -> nn.Module:
    return {
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "identity": nn.Identity,
        "leaky_relu": lambda: nn.LeakyReLU(negative_slope=LEAKY_ALPHA),
        "softmax": lambda: nn.Softmax(dim=-1),
        "dropout": lambda: nn.Dropout(0.4),
    }[name]()


def forward(module: nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


def inputs(dtype, n_features: int, n: int = 37, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, (n, n_features)).astype(dtype)


def check(actual, expected, dtype) -> None:
    assert actual.dtype == np.dtype(dtype) and actual.shape == expected.shape
    tol = TOL[np.dtype(dtype)]
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


def assert_same_module(a: nn.Sequential, b: nn.Sequential) -> None:
    """Same structure, same hyper-parameters, bit-identical parameters."""
    assert repr(a) == repr(b) and a.training == b.training
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype
        assert torch.equal(sa[key], sb[key]), key


# -- to_torch ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_to_torch_forward_equals_predict(dtype, name, depth) -> None:
    widths = (5, 8, 7, 6, 4)
    layers: list[bp.Layer] = []
    for k in range(depth):
        layers += [bp.Dense(widths[k], widths[k + 1], bias_init="normal"), bp_activation(name)]
    model = bp.Sequential(layers, dtype=dtype, seed=0)
    module = model.to_torch().eval()
    assert isinstance(module, nn.Sequential) and len(module) == len(model.layers)
    assert all(p.dtype == TORCH_DTYPE[np.dtype(dtype)] for p in module.parameters())
    for n in (1, 37):
        X = inputs(dtype, 5, n)
        check(forward(module, X), model.predict(X), dtype)


def test_to_torch_layout_names_and_hyper_parameters(dtype) -> None:
    model = bp.Sequential(
        [
            bp.Dropout(0.1),
            bp.Dense(4, 6),
            bp.LeakyReLU(LEAKY_ALPHA),
            bp.Dense(6, 3),
            bp.Softmax(),
        ],
        dtype=dtype,
        seed=2,
    )
    module = model.to_torch()
    assert [type(m).__name__ for m in module] == [
        "Dropout", "Linear", "LeakyReLU", "Linear", "Softmax",
    ]  # fmt: skip
    assert module[0].p == 0.1 and module[2].negative_slope == LEAKY_ALPHA and module[4].dim == -1
    W0, b0, W1, b1 = model.get_weights()
    state = module.state_dict()
    assert list(state) == ["1.weight", "1.bias", "3.weight", "3.bias"]
    np.testing.assert_array_equal(state["1.weight"].numpy(), W0.T)  # (out, in)
    np.testing.assert_array_equal(state["1.bias"].numpy(), b0)
    np.testing.assert_array_equal(state["3.weight"].numpy(), W1.T)
    np.testing.assert_array_equal(state["3.bias"].numpy(), b1)


def test_to_torch_copies_the_weights_and_keeps_the_training_mode() -> None:
    model = bp.Sequential([bp.Dense(3, 2), bp.Dropout(0.5)], dtype="float64", seed=0)
    module = model.to_torch()
    assert module.training  # as the model (and as torch's modules start)
    with torch.no_grad():
        module[0].weight.fill_(7.0)
    assert not np.any(model.get_weights()[0] == 7.0)
    assert not model.eval().to_torch().training


def test_to_torch_leaves_torchs_random_state_alone() -> None:
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    bp.Sequential([bp.Dense(30, 20), bp.ReLU(), bp.Dense(20, 2)], seed=0).to_torch()
    assert torch.equal(torch.random.get_rng_state(), before)


# -- from_torch ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_from_torch_predict_equals_torch_forward(dtype, name) -> None:
    torch.manual_seed(3)
    tdtype = TORCH_DTYPE[np.dtype(dtype)]
    module = nn.Sequential(
        nn.Linear(5, 8), torch_activation(name), nn.Linear(8, 6), torch_activation(name),
        nn.Linear(6, 3),
    ).to(tdtype).eval()  # fmt: skip
    model = bp.from_torch(module)
    assert model.dtype == np.dtype(dtype) and not model.training
    for n in (1, 37):
        X = inputs(dtype, 5, n)
        check(model.predict(X), forward(module, X), dtype)


def test_round_trips_are_exact(dtype) -> None:
    torch.manual_seed(4)
    module = nn.Sequential(
        nn.Linear(4, 7), nn.LeakyReLU(0.05), nn.Dropout(0.2), nn.Linear(7, 7), nn.Tanh(),
        nn.Linear(7, 5), nn.Softmax(dim=-1), nn.Linear(5, 5), nn.Sigmoid(), nn.Identity(),
        nn.Linear(5, 2), nn.ReLU(),
    ).to(TORCH_DTYPE[np.dtype(dtype)])  # fmt: skip
    assert_same_module(bp.from_torch(module).to_torch(), module)
    module.eval()
    assert_same_module(bp.from_torch(module).to_torch(), module)
    model = bp.from_torch(module)
    again = bp.from_torch(model.to_torch())
    assert repr(again) == repr(model)
    for a, b in zip(again.get_weights(), model.get_weights(), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_from_torch_takes_softmax_dim_1_and_linear_without_bias() -> None:
    torch.manual_seed(5)
    module = nn.Sequential(nn.Linear(4, 6, bias=False), nn.Softmax(dim=1), nn.Linear(6, 2))
    module = module.double().eval()
    model = bp.from_torch(module)
    np.testing.assert_array_equal(model.get_weights()[1], np.zeros(6))  # the missing bias
    X = inputs(np.float64, 4)
    check(model.predict(X), forward(module, X), np.float64)
    back = model.to_torch()
    assert back[0].bias is not None and back[1].dim == -1
    check(forward(back.eval(), X), forward(module, X), np.float64)


def test_from_torch_dtype_choice() -> None:
    torch.manual_seed(6)
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert bp.from_torch(module).dtype == np.float32
    model = bp.from_torch(module, dtype="float64", seed=1)
    assert model.dtype == np.float64 and model.seed == 1
    np.testing.assert_array_equal(
        model.get_weights()[0], module[0].weight.detach().double().numpy().T
    )
    assert bp.from_torch(module.double()).dtype == np.float64
    half = nn.Sequential(nn.Linear(3, 2)).half()
    with pytest.raises(TypeError, match=r"module\[0\] \(Linear\) has torch.float16 parameters"):
        bp.from_torch(half)
    assert bp.from_torch(half, dtype="float32").dtype == np.float32
    mixed = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2).double())
    with pytest.raises(ValueError, match="several dtypes"):
        bp.from_torch(mixed)
    assert bp.from_torch(mixed, dtype=np.float64).dtype == np.float64


def test_from_torch_model_trains() -> None:
    torch.manual_seed(7)
    model = bp.from_torch(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)), seed=0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = X.sum(axis=1, keepdims=True)
    model.compile(bp.MSE(), bp.Adam(lr=0.02))
    history = model.fit(X, y, epochs=30, batch_size=16)
    assert history.loss[-1] < history.loss[0] / 4


# -- what from_torch refuses ------------------------------------------------------------------


class MyLinear(nn.Linear):
    pass


@pytest.mark.parametrize(
    ("module", "error", "message"),
    [
        (nn.Sequential(nn.Linear(4, 3), nn.Conv1d(1, 1, 1)), TypeError,
         r"module\[1\] \(Conv1d\) has no backprop equivalent"),
        (nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)), TypeError,
         r"module\[1\] \(BatchNorm1d\).*fold the batch normalisation"),
        (nn.Sequential(nn.Sequential(nn.Linear(4, 3))), TypeError,
         r"module\[0\] \(Sequential\).*flatten nested"),
        (nn.Sequential(nn.Linear(4, 3), nn.GELU()), TypeError, r"module\[1\] \(GELU\)"),
        (nn.Sequential(MyLinear(4, 3)), TypeError, r"module\[0\] \(MyLinear\)"),
        (nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), TypeError, r"module\[0\] \(Flatten\)"),
        (nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=0)), ValueError,
         r"module\[1\] \(Softmax\): dim=0"),
        (nn.Sequential(nn.Linear(4, 3), nn.Softmax()), ValueError,
         r"module\[1\] \(Softmax\): dim=None"),
        (nn.Sequential(nn.Linear(4, 3), nn.LeakyReLU(2.0)), ValueError,
         r"module\[1\] \(LeakyReLU\): LeakyReLU: alpha"),
        (nn.Sequential(nn.Linear(4, 3), nn.Dropout(1.0)), ValueError,
         r"module\[1\] \(Dropout\): Dropout: p"),
        (nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(5, 2)), ValueError,
         r"from_torch: .*layers\[2\].*expects 5 inputs"),
        (nn.Sequential(nn.ReLU()), ValueError, "at least one Dense"),
        (nn.Sequential(), ValueError, "empty"),
        (nn.Linear(4, 3), TypeError, "must be a torch.nn.Sequential, got Linear"),
        (nn.ModuleList([nn.Linear(4, 3)]), TypeError, "got ModuleList"),
    ],
)  # fmt: skip
def test_unsupported_modules_are_refused_naming_index_and_type(module, error, message) -> None:
    with pytest.raises(error, match=message):
        bp.from_torch(module)


def test_non_finite_weights_are_refused() -> None:
    module = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        module[2].bias[0] = float("nan")
    with pytest.raises(ValueError, match=r"module\[2\] \(Linear\) bias holds NaN"):
        bp.from_torch(module)
    module = nn.Sequential(nn.Linear(3, 2)).double()
    with torch.no_grad():
        module[0].weight[0, 0] = 1e300  # finite in float64, infinite in float32
    with pytest.raises(ValueError, match=r"module\[0\] \(Linear\) weight holds NaN or inf"):
        bp.from_torch(module, dtype="float32")
    assert bp.from_torch(module).dtype == np.float64


def test_meta_tensors_are_refused() -> None:
    module = nn.Sequential(nn.Linear(3, 2, device="meta"))
    with pytest.raises(ValueError, match=r"module\[0\] \(Linear\) weight: its values cannot"):
        bp.from_torch(module)
