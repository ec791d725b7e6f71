"""Weights in safetensors files with PyTorch's names and layout: model.save_weights and
model.load_weights, exchanged with torch through safetensors.torch.

Forward comparisons (torch's against model.predict): float64 rtol=1e-12, atol=1e-12, float32
rtol=1e-6, atol=1e-6, the atol scaled by the output's magnitude (max |expected|, at least
1), as in test_torch_interop.py; the weights themselves travel bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

safetensors = pytest.importorskip("safetensors")
torch = pytest.importorskip("torch")
from safetensors.numpy import load_file as np_load_file  # noqa: E402
from safetensors.numpy import save_file as np_save_file  # noqa: E402
from safetensors.torch import load_file as torch_load_file  # noqa: E402
from safetensors.torch import save_file as torch_save_file  # noqa: E402

nn = torch.nn

TOL = {
    np.dtype(np.float32): {"rtol": 1e-6, "atol": 1e-6},
    np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-12},
}
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def network(dtype, seed: int) -> bp.Sequential:
    return bp.Sequential(
        [
            bp.Dropout(0.1),  # so the Dense indices are not 0, 2, ...
            bp.Dense(5, 8, bias_init="normal"),
            bp.LeakyReLU(0.2),
            bp.Dense(8, 6, bias_init="normal"),
            bp.Tanh(),
            bp.Dense(6, 3, bias_init="normal"),
        ],
        dtype=dtype,
        seed=seed,
    )


def torch_network(dtype) -> nn.Sequential:
    """The torch twin of network(): the same structure, so the same state_dict names."""
    return nn.Sequential(
        nn.Dropout(0.1), nn.Linear(5, 8), nn.LeakyReLU(0.2), nn.Linear(8, 6), nn.Tanh(),
        nn.Linear(6, 3),
    ).to(TORCH_DTYPE[np.dtype(dtype)])  # fmt: skip


def forward(module, X):
    with torch.no_grad():
        return module.eval()(torch.from_numpy(X)).numpy()


def inputs(dtype, n: int = 37) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 2, (n, 5)).astype(dtype)


def check(actual, expected, dtype) -> None:
    tol = TOL[np.dtype(dtype)]
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


def assert_weights_equal(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


# -- to and from torch ---------------------------------------------------------------------------


def test_saved_weights_load_into_to_torch_strictly(tmp_path, dtype) -> None:
    model = network(dtype, seed=0)
    path = tmp_path / "w.safetensors"
    model.save_weights(path)
    state = torch_load_file(str(path))
    # (safetensors stores the tensors sorted by name)
    assert set(state) == {"1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"}
    assert (
        state["1.weight"].shape == (8, 5)
        and state["1.weight"].dtype == TORCH_DTYPE[np.dtype(dtype)]
    )
    # into the module of another model of the same architecture (other weights) ...
    module = network(dtype, seed=1).to_torch()
    module.load_state_dict(state, strict=True)
    X = inputs(dtype)
    check(forward(module, X), model.predict(X), dtype)
    # ... and into torch's own twin module
    twin = torch_network(dtype)
    twin.load_state_dict(state, strict=True)
    check(forward(twin, X), model.predict(X), dtype)
    # the header marks the PyTorch layout, as Hugging Face's loaders expect
    with safetensors.safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}


def test_a_torch_state_dict_loads_via_load_weights(tmp_path, dtype) -> None:
    torch.manual_seed(0)
    module = torch_network(dtype)
    path = tmp_path / "torch.safetensors"
    torch_save_file(module.state_dict(), str(path))
    model = network(dtype, seed=2)
    model.load_weights(path)
    X = inputs(dtype)
    check(model.predict(X), forward(module, X), dtype)
    np.testing.assert_array_equal(model.get_weights()[0], module[1].weight.detach().numpy().T)


def test_save_load_round_trip_is_exact(tmp_path, dtype) -> None:
    model, other = network(dtype, seed=0), network(dtype, seed=3)
    model.save_weights(tmp_path / "w.safetensors")
    other.load_weights(tmp_path / "w.safetensors")
    assert_weights_equal(other.get_weights(), model.get_weights())
    # the same file as to_torch()'s state_dict, tensor for tensor
    saved = np_load_file(str(tmp_path / "w.safetensors"))
    for key, value in model.to_torch().state_dict().items():
        np.testing.assert_array_equal(saved[key], value.numpy())


def test_float16_and_the_other_float_dtype_are_converted(tmp_path) -> None:
    model = network("float64", seed=0)
    state = {k: v.astype(np.float16) for k, v in _state(model).items()}
    np_save_file(state, str(tmp_path / "half.safetensors"))
    other = network("float32", seed=1)
    other.load_weights(tmp_path / "half.safetensors")
    np.testing.assert_array_equal(other.get_weights()[0], state["1.weight"].T.astype(np.float32))
    model.save_weights(tmp_path / "f64.safetensors")
    other.load_weights(tmp_path / "f64.safetensors")  # float64 file, float32 model
    np.testing.assert_array_equal(other.get_weights()[2], model.get_weights()[2].astype(np.float32))


def test_the_file_is_replaced_atomically(tmp_path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"old contents")
    network("float32", 0).save_weights(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
    network("float32", 1).load_weights(path)
    with pytest.raises(IsADirectoryError):
        network("float32", 0).save_weights(tmp_path)


# -- bad files: refused, the model unchanged -----------------------------------------------------


def _state(model: bp.Sequential) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.to_torch().state_dict().items()}


def _edited(model, edit):
    state = _state(model)
    edit(state)
    return state


def _set(state, key, index, value):
    state[key][index] = value


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda s: s.pop("3.bias"), ValueError, r"missing \['3.bias'\], unexpected \[\]"),
        (lambda s: s.update(extra=np.zeros(2, np.float32)), ValueError, r"unexpected \['extra'\]"),
        (lambda s: s.update({"0.weight": s.pop("1.weight")}), ValueError,
         r"missing \['1.weight'\], unexpected \['0.weight'\]"),
        (lambda s: s.update({"1.weight": s["1.weight"].T.copy()}), ValueError,
         r"'1.weight' has shape \(5, 8\); the model needs \(out_features, in_features\) = "
         r"\(8, 5\)"),
        (lambda s: s.update({"5.bias": np.zeros(4, np.float32)}), ValueError,
         r"'5.bias' has shape \(4,\)"),
        (lambda s: _set(s, "3.weight", (1, 2), np.nan), ValueError, r"'3.weight' holds NaN"),
        (lambda s: _set(s, "5.bias", 0, np.inf), ValueError, r"'5.bias' holds NaN or infinity"),
        (lambda s: s.update({"1.bias": np.zeros(8, np.int32)}), TypeError, r"'1.bias' is I32"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_and_change_nothing(tmp_path, dtype, edit, error, message) -> None:
    model = network(dtype, seed=0)
    state = _edited(network(dtype, seed=1), edit)
    path = tmp_path / "bad.safetensors"
    np_save_file(state, str(path))
    before = model.get_weights()
    with pytest.raises(error, match=message):
        model.load_weights(path)
    assert_weights_equal(model.get_weights(), before)


def test_overflow_into_float32_is_refused(tmp_path) -> None:
    model = network("float32", seed=0)
    state = {k: v.astype(np.float64) for k, v in _state(model).items()}
    state["5.weight"][0, 0] = 1e300  # finite in the file, infinite in the model's float32
    np_save_file(state, str(tmp_path / "big.safetensors"))
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"'5.weight' holds NaN or infinity .*float32"):
        model.load_weights(tmp_path / "big.safetensors")
    assert_weights_equal(model.get_weights(), before)


def test_bfloat16_is_refused_with_a_hint(tmp_path) -> None:
    module = torch_network("float32").to(torch.bfloat16)
    torch_save_file(module.state_dict(), str(tmp_path / "bf16.safetensors"))
    model = network("float32", seed=0)
    with pytest.raises(TypeError, match=r"is BF16.*convert bfloat16 to float32"):
        model.load_weights(tmp_path / "bf16.safetensors")


def test_not_a_safetensors_file(tmp_path) -> None:
    model = network("float64", seed=0)
    before = model.get_weights()
    (tmp_path / "junk").write_bytes(b"\x00" * 3)
    model.save(tmp_path / "model.npz")
    for name in ("junk", "model.npz"):
        with pytest.raises(ValueError, match="not a safetensors file"):
            model.load_weights(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        model.load_weights(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="not a regular file"):
        model.load_weights(tmp_path)
    assert_weights_equal(model.get_weights(), before)
