"""model.save / backprop.load: exact round trips (predictions and continued training), atomic
writes, and a ModelFileError for every file that is not a sound model file -- never pickle."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backprop as bp
from backprop.serialization import FORMAT_VERSION

OPTIMIZERS = {
    "sgd": lambda: bp.SGD(lr=0.05),
    "momentum": lambda: bp.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3),
    "nesterov": lambda: bp.SGD(lr=0.05, momentum=0.8, nesterov=True),
    "adam": lambda: bp.Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-4),
}


def _classifier(dtype: str, optimizer: str) -> tuple[bp.Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    model = bp.Sequential(
        [
            bp.Dense(5, 8, weight_init="he"),
            bp.LeakyReLU(0.1),
            bp.Dense(8, 6),
            bp.Tanh(),
            bp.Dense(6, 3, bias_init="uniform"),
        ],
        dtype=dtype,
        seed=3,
    )
    model.compile(bp.SoftmaxCrossEntropy(), OPTIMIZERS[optimizer](), metrics=["accuracy"])
    return model, X, y


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_predicts_and_keeps_training_identically(
    tmp_path: Path, dtype: str, optimizer: str
) -> None:
    model, X, y = _classifier(dtype, optimizer)
    model.fit(X, y, epochs=3, batch_size=10)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = bp.load(path)

    assert loaded.dtype == model.dtype and repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.predict(X).dtype == np.dtype(dtype)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer is not None and model.optimizer is not None
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.steps == model.optimizer.steps == 3 * 7
    assert loaded.metrics == ("accuracy",)
    state, loaded_state = model.optimizer.state, loaded.optimizer.state
    assert sorted(state) == sorted(loaded_state)
    for key in state:
        np.testing.assert_array_equal(loaded_state[key], state[key])

    # Continued training: same shuffling stream, optimizer state and step count, so the
    # same weights bit for bit (Adam's bias correction depends on the step count).
    h_model = model.fit(X, y, epochs=2, batch_size=10)
    h_loaded = loaded.fit(X, y, epochs=2, batch_size=10)
    assert h_loaded.loss == h_model.loss
    for a, b in zip(loaded.parameters(), model.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_round_trip_of_regression_model_without_optimizer_and_without_loss(tmp_path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(7, 2))
    model = bp.Sequential([bp.Dense(2, 3), bp.Sigmoid(), bp.Dense(3, 2), bp.Identity()], seed=0)
    model.save(tmp_path / "bare.npz")
    bare = bp.load(tmp_path / "bare.npz")
    assert bare.loss is None and bare.optimizer is None
    np.testing.assert_array_equal(bare.predict(X), model.predict(X))

    model.compile(bp.BinaryCrossEntropy(), metrics=None)
    model.save(tmp_path / "loss.npz")
    with_loss = bp.load(tmp_path / "loss.npz")
    assert isinstance(with_loss.loss, bp.BinaryCrossEntropy) and with_loss.optimizer is None
    np.testing.assert_array_equal(with_loss.predict_proba(X), model.predict_proba(X))


def test_save_overwrites_atomically_and_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    model, X, _ = _classifier("float32", "adam")
    path = tmp_path / "m.npz"
    model.save(path)
    before = path.read_bytes()

    def broken_savez(file, **arrays):  # a crash in the middle of writing
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old file is untouched
    assert os.listdir(tmp_path) == ["m.npz"]  # and the temporary file is gone

    weights = model.get_weights()
    weights[0][...] = 0  # a changed model replaces the file
    model.set_weights(weights)
    model.save(path)
    np.testing.assert_array_equal(bp.load(path).predict(X), model.predict(X))
    assert os.listdir(tmp_path) == ["m.npz"]


def test_saved_file_is_a_plain_npz_without_object_arrays(tmp_path) -> None:
    model, _, _ = _classifier("float64", "momentum")
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        assert set(npz.files) == {"__backprop__", "format_version", "config", "theta"} | {
            "opt_velocity"
        }
        assert int(npz["format_version"]) == FORMAT_VERSION
        config = json.loads(npz["config"].tobytes())
        np.testing.assert_array_equal(npz["theta"], model.get_state()["weights"])
    assert [layer["class"] for layer in config["layers"]] == [
        "Dense",
        "LeakyReLU",
        "Dense",
        "Tanh",
        "Dense",
    ]
    assert config["optimizer"]["class"] == "SGD" and config["optimizer"]["steps"] == 0


def test_custom_classes_are_not_saved(tmp_path) -> None:
    class MyReLU(bp.ReLU):
        pass

    model = bp.Sequential([bp.Dense(2, 2), MyReLU(), bp.Dense(2, 1)])
    with pytest.raises(TypeError, match=r"cannot describe layers\[1\] of type MyReLU"):
        model.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


# -- files that are not sound model files -------------------------------------------------------


def _saved(tmp_path: Path) -> Path:
    model, _, _ = _classifier("float32", "adam")
    path = tmp_path / "good.npz"
    model.save(path)
    return path


def _rewrite(src: Path, dst: Path, **changes: np.ndarray) -> Path:
    """A copy of the archive src with some arrays replaced or added."""
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    np.savez(dst, **arrays)
    return dst


def _config_bytes(config: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)


def test_unknown_format_version(tmp_path) -> None:
    path = _rewrite(_saved(tmp_path), tmp_path / "v99.npz", format_version=np.array(99))
    with pytest.raises(bp.ModelFileError, match=r"format version 99 is not supported.*version 1"):
        bp.load(path)


def test_truncated_file(tmp_path) -> None:
    data = _saved(tmp_path).read_bytes()
    for cut in (10, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(bp.ModelFileError, match="truncated or corrupted"):
            bp.load(tmp_path / "cut.npz")


def test_corrupted_weights_fail_the_checksum(tmp_path) -> None:
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("theta.npy")
    # the last byte of the stored theta data: header, name, .npy header, then the floats
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(bp.ModelFileError, match="CRC"):
        bp.load(path)


def test_random_bytes_empty_text_and_npy_files(tmp_path) -> None:
    rng = np.random.default_rng(0)
    cases = {
        "random.npz": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty.npz": b"",
        "text.npz": b"hello, I am not a model\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(bp.ModelFileError, match=r"not an \.npz archive"):
        bp.load(tmp_path / "random.npz")
    with pytest.raises(bp.ModelFileError, match="the file is empty"):
        bp.load(tmp_path / "empty.npz")
    with pytest.raises(bp.ModelFileError, match="not a backprop model file"):
        bp.load(tmp_path / "text.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(bp.ModelFileError, match=r"not an \.npz archive"):
        bp.load(tmp_path / "array.npy")
    with pytest.raises(FileNotFoundError):
        bp.load(tmp_path / "missing.npz")


def test_a_foreign_npz(tmp_path) -> None:
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3), bias=np.ones(2))
    with pytest.raises(bp.ModelFileError, match=r"without the '__backprop__' marker.*weights"):
        bp.load(tmp_path / "foreign.npz")
    path = _rewrite(_saved(tmp_path), tmp_path / "m.npz", __backprop__=np.frombuffer(b"x", "u1"))
    with pytest.raises(bp.ModelFileError, match="wrong '__backprop__' marker"):
        bp.load(path)


_PICKLE_RAN: list[str] = []


def _pickle_payload() -> str:
    _PICKLE_RAN.append("ran")
    return "payload"


class _Evil:
    def __reduce__(self):
        return (_pickle_payload, ())


def test_a_crafted_object_array_is_refused_without_running_pickle(tmp_path) -> None:
    evil = np.empty(1, dtype=object)
    evil[0] = _Evil()
    path = _rewrite(_saved(tmp_path), tmp_path / "evil.npz", theta=evil)
    _PICKLE_RAN.clear()
    with pytest.raises(bp.ModelFileError, match=r"array .theta. holds Python objects"):
        bp.load(path)
    assert _PICKLE_RAN == []
    # sanity check of the test itself: numpy with pickle allowed would run the payload
    with np.load(path, allow_pickle=True) as npz:
        npz["theta"]
    assert _PICKLE_RAN == ["ran"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["layers"][0].update({"class": "os.system"}), "unknown class 'os.system'"),
        (lambda c: c["layers"][0]["config"].update({"evil": 1}), "unexpected keyword"),
        (lambda c: c["layers"][0]["config"].update({"in_features": -1}), "in_features"),
        (lambda c: c.update({"dtype": "int8"}), "dtype must be"),
        (lambda c: c.pop("layers"), "missing entry 'layers'"),
        (lambda c: c["optimizer"].update({"steps": -3}), r"'steps' must be in \[0, 2\*\*62\)"),
        (lambda c: c.update({"loss": {"class": "eval", "config": {}}}), "unknown class 'eval'"),
        (
            lambda c: c["layers"].pop(),
            r"array 'theta': expected float32 of shape \(102,\), found float32 \(123,\)",
        ),
        (lambda c: c.update({"dropout_rng": -1}), "dropout_rng"),
        (lambda c: c.update({"dropout_rng": 2**64}), "dropout_rng"),
        (lambda c: c.update({"dropout_rng": "x"}), "dropout_rng"),
    ],
)
def test_invalid_model_descriptions(tmp_path, edit, message) -> None:
    path = _saved(tmp_path)
    with np.load(path) as npz:
        config = json.loads(npz["config"].tobytes())
    edit(config)
    bad = _rewrite(path, tmp_path / "bad.npz", config=_config_bytes(config))
    with pytest.raises(bp.ModelFileError, match=message):
        bp.load(bad)


def test_config_that_is_not_json(tmp_path) -> None:
    bad = _rewrite(_saved(tmp_path), tmp_path / "bad.npz", config=np.frombuffer(b"{x", "u1"))
    with pytest.raises(bp.ModelFileError, match="invalid model description"):
        bp.load(bad)


# -- fuzz ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory) -> bytes:
    return _saved(tmp_path_factory.mktemp("fuzz")).read_bytes()


def _load_bytes(tmp_path: Path, data: bytes) -> bp.Sequential:
    path = tmp_path / "fuzz.npz"
    path.write_bytes(data)
    return bp.load(path)


_FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_random_bytes_raise_only_model_file_error(tmp_path, data) -> None:
    with pytest.raises(bp.ModelFileError):
        _load_bytes(tmp_path, data)


@_FUZZ
@given(data=st.data())
def test_fuzz_truncations_raise_only_model_file_error(tmp_path, saved_bytes, data) -> None:
    cut = data.draw(st.integers(0, len(saved_bytes) - 1))
    with pytest.raises(bp.ModelFileError):
        _load_bytes(tmp_path, saved_bytes[:cut])


@_FUZZ
@given(data=st.data())
def test_fuzz_overwritten_bytes_load_or_raise_model_file_error(tmp_path, saved_bytes, data):
    # Some bytes (a zip timestamp, say) do not matter; any other change must be reported
    # as a ModelFileError, never as another exception.
    blob = bytearray(saved_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    try:
        model = _load_bytes(tmp_path, bytes(blob))
    except bp.ModelFileError:
        return
    assert model.predict(np.zeros((1, 5))).shape == (1, 3)


def test_load_from_an_in_memory_copy_matches(tmp_path) -> None:
    # the archive is an ordinary zip: its member list is what the format docstring says
    data = _saved(tmp_path).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = sorted(zf.namelist())
    expected = ["__backprop__", "format_version", "config", "theta", "opt_m", "opt_v"]
    assert names == sorted(f"{name}.npy" for name in expected)


@pytest.mark.parametrize("loss", [bp.MAE(), bp.Huber(delta=0.7), bp.MSE()], ids=repr)
def test_round_trip_with_dropout_regression_losses_and_eval_mode(tmp_path, loss) -> None:
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))
    model = bp.Sequential(
        [bp.Dense(4, 16), bp.ReLU(), bp.Dropout(0.25), bp.Dense(16, 2)], dtype="float64", seed=2
    )
    model.compile(loss, bp.Adam(lr=1e-2), metrics=["r2", "mae"])
    model.fit(X, y, epochs=2, batch_size=8)
    model.eval()  # saved in eval mode: training goes on without dropout masks
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert not loaded.training and repr(loaded.layers[2]) == "Dropout(p=0.25)"
    assert repr(loaded.loss) == repr(loss) and loaded.metrics == ("r2", "mae")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.evaluate(X, y, return_dict=True) == model.evaluate(X, y, return_dict=True)
    h1 = model.fit(X, y, epochs=2, batch_size=8)
    h2 = loaded.fit(X, y, epochs=2, batch_size=8)
    assert h1.loss == h2.loss
    np.testing.assert_array_equal(loaded.get_state()["weights"], model.get_state()["weights"])
    model.train()
    model.save(tmp_path / "train.npz")
    assert bp.load(tmp_path / "train.npz").training


def test_continued_training_with_active_dropout_is_identical(tmp_path) -> None:
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 1))
    model = bp.Sequential([bp.Dense(4, 16), bp.ReLU(), bp.Dropout(0.5), bp.Dense(16, 1)], seed=2)
    model.compile(bp.MSE(), bp.SGD(lr=1e-2, momentum=0.9))
    model.fit(X, y, epochs=2, batch_size=8)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    h_model = model.fit(X, y, epochs=2, batch_size=8)
    h_loaded = loaded.fit(X, y, epochs=2, batch_size=8)
    assert h_loaded.loss == h_model.loss
    np.testing.assert_array_equal(loaded.get_state()["weights"], model.get_state()["weights"])


def test_a_huge_layer_in_the_description_is_refused_before_allocating(tmp_path) -> None:
    path = _saved(tmp_path)
    with np.load(path) as npz:
        config = json.loads(npz["config"].tobytes())
    config["layers"][0]["config"].update({"in_features": 100_000, "out_features": 1_000_000})
    config["layers"][2]["config"]["in_features"] = 1_000_000
    bad = _rewrite(path, tmp_path / "huge.npz", config=_config_bytes(config))
    # 10^11 float32 weights would need 400 GB: the size check comes first
    with pytest.raises(
        bp.ModelFileError, match=r"array 'theta': expected float32 of shape \(100007000027,\)"
    ):
        bp.load(bad)


def test_import_backprop_leaves_zipfile_until_a_model_file_is_read(tmp_path: Path) -> None:
    """zipfile (with pathlib, shutil, urllib: ~9 ms) is imported when a file is read, not by
    `import backprop`; the round trip works from a fresh interpreter."""
    code = (
        "import sys, numpy as np, backprop as bp\n"
        "before = 'zipfile' in sys.modules\n"
        "m = bp.Sequential([bp.Dense(2, 1)], seed=0).compile(bp.MSE(), bp.SGD(lr=0.1))\n"
        f"m.save({str(tmp_path / 'm.npz')!r})\n"
        f"back = bp.load({str(tmp_path / 'm.npz')!r})\n"
        "X = np.ones((3, 2))\n"
        "print(before, np.array_equal(back.predict(X), m.predict(X)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    assert done.stdout.split() == ["False", "True"]
