"""AdamW, RMSprop and gradient clipping in the compiled update, step for step against
torch.optim and torch.nn.utils.clip_grad_*_ on an identical network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")

WIDTHS = (5, 7, 3)


def _pair(dtype: str, seed: int = 0):
    """Our model and torch's nn.Sequential with the same weights."""
    model = bp.Sequential([bp.Dense(5, 7), bp.Tanh(), bp.Dense(7, 3)], dtype=dtype, seed=seed)
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    net = net.to(tdtype)
    W0, b0, W1, b1 = model.get_weights()
    with torch.no_grad():
        for lin, W, b in ((net[0], W0, b0), (net[2], W1, b1)):
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b.copy()))
    return model, net


def _torch_weights(net) -> list[np.ndarray]:
    return [
        p.detach().numpy().T if p.ndim == 2 else p.detach().numpy()
        for lin in (net[0], net[2])
        for p in (lin.weight, lin.bias)
    ]


CASES = {
    "adamw": (lambda: bp.AdamW(lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01)),
    "adamw-wd": (
        lambda: bp.AdamW(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.3),
        lambda p: torch.optim.AdamW(p, lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.3),
    ),
    "rmsprop": (lambda: bp.RMSprop(lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    "rmsprop-all": (
        lambda: bp.RMSprop(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.8,
                           centered=True),
        lambda p: torch.optim.RMSprop(p, lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.1,
                                      momentum=0.8, centered=True),
    ),
    "rmsprop-momentum": (
        lambda: bp.RMSprop(lr=0.01, momentum=0.5),
        lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5),
    ),
    "rmsprop-centered": (
        lambda: bp.RMSprop(lr=0.01, centered=True),
        lambda p: torch.optim.RMSprop(p, lr=0.01, centered=True),
    ),
}  # fmt: skip

CLIPS = {
    "none": {},
    "norm": {"clipnorm": 0.05},
    "value": {"clipvalue": 0.01},
    "both": {"clipnorm": 0.05, "clipvalue": 0.004},
}


def _data(dtype):
    rng = np.random.default_rng(1)
    return rng.normal(size=(16, 5)).astype(dtype), rng.normal(size=(16, 3)).astype(dtype)


def _run(name: str, clip: dict, dtype: str, steps: int = 12):
    ours_opt, torch_opt = CASES[name]
    model, net = _pair(dtype)
    config = {**ours_opt().get_config(), **clip}
    model.compile(bp.MSE(), type(ours_opt())(**config))
    opt = torch_opt(net.parameters())
    X, y = _data(dtype)
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(steps):
        loss = model.train_step(X, y)
        opt.zero_grad()
        tloss = torch.nn.functional.mse_loss(net(tX), ty)
        tloss.backward()
        if "clipnorm" in clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip["clipnorm"])
        if "clipvalue" in clip:
            torch.nn.utils.clip_grad_value_(net.parameters(), clip["clipvalue"])
        opt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-5 if dtype == "float32" else 1e-12)
    return model, net


@pytest.mark.parametrize("clip", sorted(CLIPS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_steps_equal_torch_optim(name, clip) -> None:
    model, net = _run(name, CLIPS[clip], "float64")
    for ours, theirs in zip(model.get_weights(), _torch_weights(net), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_steps_equal_torch_optim_to_rounding(name) -> None:
    model, net = _run(name, {"clipnorm": 0.05}, "float32")
    for ours, theirs in zip(model.get_weights(), _torch_weights(net), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("clip", ["norm", "value"])
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_clipping_with_sgd_and_adam_equals_torch(opt, clip) -> None:
    make = {
        "sgd": (lambda **c: bp.SGD(lr=0.1, **c), lambda p: torch.optim.SGD(p, lr=0.1)),
        "momentum": (
            lambda **c: bp.SGD(lr=0.1, momentum=0.9, nesterov=True, **c),
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        ),
        "adam": (lambda **c: bp.Adam(lr=0.01, **c), lambda p: torch.optim.Adam(p, lr=0.01)),
    }[opt]
    CASES["_tmp"] = (lambda: make[0](), make[1])
    try:
        model, net = _run("_tmp", CLIPS[clip], "float64")
    finally:
        del CASES["_tmp"]
    for ours, theirs in zip(model.get_weights(), _torch_weights(net), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_clipping_disables_the_folded_update_and_still_matches_torch() -> None:
    """A 128x128 layer takes the folded plain-SGD path unless clipping needs the gradient."""
    rng = np.random.default_rng(0)
    model = bp.Sequential([bp.Dense(128, 128), bp.Tanh(), bp.Dense(128, 2)], dtype="float64")
    net = torch.nn.Sequential(
        torch.nn.Linear(128, 128), torch.nn.Tanh(), torch.nn.Linear(128, 2)
    ).double()
    W0, b0, W1, b1 = model.get_weights()
    with torch.no_grad():
        for lin, W, b in ((net[0], W0, b0), (net[2], W1, b1)):
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b.copy()))
    model.compile(bp.MSE(), bp.SGD(lr=0.5, clipnorm=0.1))
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    X, y = rng.normal(size=(32, 128)), rng.normal(size=(32, 2))
    for _ in range(5):
        model.train_step(X, y)
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
        opt.step()
    for ours, theirs in zip(model.get_weights(), _torch_weights(net), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["adamw-wd", "rmsprop-all"])
def test_new_optimizers_save_load_and_continue_bit_for_bit(name, tmp_path: Path) -> None:
    model, _ = _run(name, CLIPS["both"], "float64", steps=3)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert sorted(loaded.optimizer.state) == sorted(model.optimizer.buffer_names)
    X, y = _data("float64")
    for _ in range(3):
        assert model.train_step(X, y) == loaded.train_step(X, y)
    np.testing.assert_array_equal(model.get_state()["weights"], loaded.get_state()["weights"])


@pytest.mark.parametrize(
    "make",
    [
        lambda: bp.AdamW(lr=1e37),
        lambda: bp.RMSprop(lr=1e38, eps=1e-8),
        lambda: bp.RMSprop(lr=1e38, momentum=0.9, centered=True),
    ],
)
def test_the_overflow_guard_covers_the_new_optimizers(make) -> None:
    model = bp.Sequential([bp.Dense(5, 3)], dtype="float32", seed=0).compile(bp.MSE(), make())
    X, y = _data("float32")
    before = model.get_state()
    with pytest.raises(FloatingPointError, match="overflow"):
        model.train_step(X, y * 1e3)
    np.testing.assert_array_equal(model.get_state()["weights"], before["weights"])


def test_bad_clip_values_are_refused() -> None:
    with pytest.raises(ValueError, match="clipnorm"):
        bp.SGD(lr=0.1, clipnorm=0.0)
    with pytest.raises(ValueError, match="clipvalue"):
        bp.Adam(clipvalue=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        bp.RMSprop(alpha=1.0)
