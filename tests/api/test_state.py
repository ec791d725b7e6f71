"""The model's public state: config, weights and state snapshots, their checks, the files and
pickles written by release 0.1.0, and the package's import graph."""

from __future__ import annotations

import ast
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

import backprop as bp

FIXTURES = Path(__file__).parents[1] / "fixtures"
PACKAGE = Path(bp.__file__).parent


def _trained(dtype: str = "float64", optimizer: bp.Optimizer | None = None) -> bp.Sequential:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    model = bp.Sequential(
        [bp.Dense(4, 6), bp.ReLU(), bp.Dropout(0.2), bp.Dense(6, 3)], dtype=dtype, seed=1
    )
    model.compile(bp.SoftmaxCrossEntropy(), optimizer or bp.Adam(lr=0.01), metrics=["accuracy"])
    model.fit(X, y, epochs=2, batch_size=8)
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    return rng.normal(size=(30, 4)), rng.integers(0, 3, 30)


# -- config -------------------------------------------------------------------------------------


def test_config_is_json_and_rebuilds_the_same_architecture() -> None:
    model = _trained()
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config
    rebuilt = bp.Sequential.from_config(config)
    assert repr(rebuilt) == repr(model)
    assert rebuilt.get_config() == config
    assert rebuilt.optimizer is not model.optimizer and rebuilt.optimizer.steps == 0
    # same seed: the same initial weights as a fresh model of that config
    fresh = bp.Sequential.from_config(config)
    for a, b in zip(rebuilt.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda c: c.pop("layers"), ValueError, "config lacks"),
        (lambda c: c.update(layers=[{"class": "Evil", "config": {}}]), ValueError, "unknown"),
        (lambda c: c["layers"][0]["config"].update(bad=1), ValueError, "unexpected keyword"),
        (lambda c: c.update(loss=None), ValueError, "an optimizer needs a loss"),
        (lambda c: c.update(dtype="int8"), TypeError, "dtype must be"),
    ],
)
def test_from_config_names_what_is_wrong(edit, error, message) -> None:
    config = _trained().get_config()
    edit(config)
    with pytest.raises(error, match=message):
        bp.Sequential.from_config(config)


# -- weights ------------------------------------------------------------------------------------


def test_get_weights_are_copies_and_set_weights_round_trips() -> None:
    model = _trained()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(4, 6), (6,), (6, 3), (3,)]
    weights[0][...] = 7.0
    assert not np.any(model.layers[0].W == 7.0)  # a copy, not a view
    model.set_weights(weights)
    np.testing.assert_array_equal(model.layers[0].W, 7.0)


def test_set_weights_converts_dtype_and_refuses_bad_input_without_changing_anything() -> None:
    model = _trained("float32")
    before = model.get_weights()
    good = [w.astype(np.float64) for w in before]
    with pytest.raises(ValueError, match=r"expected 4 arrays"):
        model.set_weights(good[:3])
    with pytest.raises(ValueError, match=r"weights\[2\] must have shape \(6, 3\)"):
        model.set_weights([good[0], good[1], good[2].T, good[3]])
    bad = [w.copy() for w in good]
    bad[3][1] = np.nan
    with pytest.raises(ValueError, match=r"weights\[3\] holds NaN"):
        model.set_weights(bad)
    bad[3][1] = 1e300  # finite in float64, infinite in the model's float32
    with pytest.raises(ValueError, match=r"weights\[3\] holds NaN or infinity"):
        model.set_weights(bad)
    with pytest.raises(TypeError, match="list of arrays"):
        model.set_weights(np.zeros(3))
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    model.set_weights(good)
    assert all(w.dtype == np.float32 for w in model.get_weights())


# -- state --------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", [bp.Adam(lr=0.01), bp.SGD(lr=0.05, momentum=0.9), None])
def test_a_state_snapshot_continues_training_bit_for_bit(optimizer) -> None:
    opt = None if optimizer is None else type(optimizer)(**optimizer.get_config())
    model = _trained(optimizer=opt)
    state = model.get_state()
    twin = bp.Sequential.from_config(model.get_config())
    twin.set_state(state)
    X, y = _data()
    h1 = model.fit(X, y, epochs=2, batch_size=7)
    h2 = twin.fit(X, y, epochs=2, batch_size=7)
    assert h1.loss == h2.loss
    np.testing.assert_array_equal(model.get_state()["weights"], twin.get_state()["weights"])
    assert model.optimizer.steps == twin.optimizer.steps


def test_get_state_is_a_snapshot_not_a_view() -> None:
    model = _trained()
    state = model.get_state()
    saved = {k: v.copy() for k, v in state["optimizer"]["buffers"].items()}
    weights = state["weights"].copy()
    model.fit(*_data(), epochs=1)
    np.testing.assert_array_equal(state["weights"], weights)
    for k, v in saved.items():
        np.testing.assert_array_equal(state["optimizer"]["buffers"][k], v)
    # and set_state copies: changing the state afterwards does not reach the model
    model.set_state(state)
    state["weights"][...] = 0
    assert np.any(model.get_state()["weights"] != 0)


def _edit(state: dict, path: tuple, value: object) -> dict:
    target = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return state


@pytest.mark.parametrize(
    ("path", "value", "error", "message"),
    [
        (("weights",), np.zeros(5), ValueError, r"'weights' must be float64 of shape \(51,\)"),
        (("weights",), np.zeros(51, np.float32), ValueError, "must be float64"),
        (("weights",), [0.0] * 51, TypeError, "must be a numpy array"),
        (("weights",), np.full(51, np.nan), ValueError, "'weights' holds NaN"),
        (("optimizer", "steps"), -1, ValueError, "'steps' must be in"),
        (("optimizer", "steps"), 2**63, ValueError, "'steps' must be in"),
        (("optimizer", "steps"), 1.5, TypeError, "'steps' must be an integer"),
        (("optimizer", "buffers", "v"), np.full(51, -1.0), ValueError, "second moment"),
        (("optimizer", "buffers", "m"), np.full(51, np.inf), ValueError, "buffer m' holds NaN"),
        (("optimizer", "buffers"), {"m": np.zeros(51)}, ValueError, "keeps the buffers"),
        (("optimizer",), None, ValueError, "'optimizer' must be"),
        (("rng",), {"bit_generator": "PCG64", "state": 5}, ValueError, "'rng' is not a valid"),
        (("dropout_rng",), 2**64, ValueError, "dropout_rng"),
        (("dropout_rng",), -1, ValueError, "dropout_rng"),
        (("training",), "yes", TypeError, "'training' must be a bool"),
    ],
)
def test_set_state_checks_everything_and_changes_nothing_on_error(
    path, value, error, message
) -> None:
    model = _trained()
    before = model.get_state()
    bad = _edit(model.get_state(), path, value)
    with pytest.raises(error, match=message):
        model.set_state(bad)
    after = model.get_state()
    np.testing.assert_array_equal(after["weights"], before["weights"])
    for k, v in before["optimizer"]["buffers"].items():
        np.testing.assert_array_equal(after["optimizer"]["buffers"][k], v)
    assert after["rng"] == before["rng"] and after["dropout_rng"] == before["dropout_rng"]


def test_set_state_refuses_missing_keys_and_optimizer_mismatch() -> None:
    model = _trained()
    state = model.get_state()
    with pytest.raises(ValueError, match="must have the keys"):
        model.set_state({k: v for k, v in state.items() if k != "rng"})
    bare = bp.Sequential.from_config({**model.get_config(), "optimizer": None})
    with pytest.raises(ValueError, match="has no optimizer"):
        bare.set_state(state)


# -- gradients ----------------------------------------------------------------------------------


def test_loss_and_gradient_matches_gradients_and_evaluate() -> None:
    model = _trained().eval()
    X, y = _data()
    loss, flat = model.loss_and_gradient(X, y)
    assert loss == pytest.approx(model.evaluate(X, y), rel=1e-12)
    grads = model.gradients(X, y)
    np.testing.assert_array_equal(flat, np.concatenate([g.ravel() for pair in grads for g in pair]))


def test_dense_gradients_are_the_last_gradients_result_read_only() -> None:
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float64", seed=0)
    model.compile(bp.MSE(), bp.SGD(lr=0.1))
    X, y = np.ones((2, 3)), np.zeros((2, 2))
    with pytest.raises(RuntimeError, match=r"call it first"):
        model.layers[0].dW  # noqa: B018
    ((dW, db),) = model.gradients(X, y)
    np.testing.assert_array_equal(model.layers[0].dW, dW)
    with pytest.raises(ValueError, match="read-only"):
        model.layers[0].dW[0, 0] = 1.0
    model.train_step(X, y)  # does not touch them
    np.testing.assert_array_equal(model.layers[0].db, db)


# -- files and pickles of release 0.1.0 -----------------------------------------------------------


def _expected() -> dict:
    return json.loads((FIXTURES / "v1_expected.json").read_text())


@pytest.mark.parametrize("name", ["model_v1_adam", "model_v1_sgd"])
def test_format_1_files_still_load_and_predict_the_same(name) -> None:
    expected = _expected()
    model = bp.load(FIXTURES / f"{name}.npz")
    Xq = np.asarray(expected["X_query"], dtype=model.dtype)
    rtol = 1e-12 if model.dtype == np.float64 else 1e-6
    np.testing.assert_allclose(model.predict(Xq), expected[name]["predict"], rtol=rtol)
    assert model.optimizer.steps == expected[name]["steps"]


def test_a_format_1_file_continues_training_as_the_release_that_wrote_it() -> None:
    expected = _expected()
    model = bp.load(FIXTURES / "model_v1_adam.npz")
    X, y = np.asarray(expected["X_train"]), np.asarray(expected["y_train"])
    model.fit(X, y, epochs=1, batch_size=8)
    np.testing.assert_allclose(
        model.predict(np.asarray(expected["X_query"])),
        expected["model_v1_adam"]["after_one_epoch"],
        rtol=1e-12,
    )


def test_estimators_pickled_by_release_0_1_0_still_load() -> None:
    pytest.importorskip("sklearn")
    expected = _expected()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's version-mismatch warning, if any
        with open(FIXTURES / "estimators_v1.pkl", "rb") as f:
            estimators = pickle.load(f)  # our own fixture
    Xq = np.asarray(expected["X_query"])
    clf, reg = estimators["classifier"], estimators["regressor"]
    np.testing.assert_allclose(clf.predict_proba(Xq), expected["classifier_proba"], rtol=1e-5)
    np.testing.assert_allclose(reg.predict(Xq), expected["regressor_predict"], rtol=1e-12)


# -- the import graph -----------------------------------------------------------------------------

#: each module of the package and the level it sits at: a module imports only modules of a
#: lower level (the package's __init__ and the optional integrations sit on top)
LEVELS = {
    "_sparse": -1,
    "_validation": 0,
    "_reference": 0,
    "optimizers": 1,
    "layers": 1,
    "losses": 1,
    "serialization": 1,
    "threads": 1,
    "training": 2,
    "summary": 2,
    "_atomic": 0,
    "reduction": 0,
    "onnx_export": 2,
    "torch_interop": 2,
    "weights_file": 2,
    "dask": 2,
    "interop": 4,
    "callbacks": 3,
    "model": 3,
    "gradcheck": 4,
    "explain": 4,
    "distributed": 4,
    "examples": 5,
    "demo": 6,
    "sklearn": 5,
    "bench": 5,
    "__main__": 7,
    "__init__": 6,
}


def _module_imports(path: Path) -> set[str]:
    """Top-level modules of the package that `path` imports (type-only imports too)."""
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 at the package root
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                parts = module.split(".")
                if parts[0] == "backprop" and len(parts) > 1:
                    found.add(parts[1])
                continue
            if node.level <= depth:
                continue  # within its own subpackage
            if module:
                found.add(module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "backprop" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_every_import_points_down() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        name = rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem
        assert name in LEVELS, f"{rel}: a module the import graph test does not know"
        for target in _module_imports(path):
            if target == name:
                continue
            assert target in LEVELS, f"{rel} imports unknown module {target}"
            assert LEVELS[target] < LEVELS[name], f"{rel} imports {target}, which is not below it"


def test_only_model_py_touches_a_models_private_state() -> None:
    private = ("._theta", "._dtheta", "._executor", "._rng")
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "model.py":
            continue
        text = path.read_text()
        for name in private:
            assert name not in text, f"{path.relative_to(PACKAGE)} uses {name}"


# -- parameter and optimizer views: read-only, of the live memory -------------------------------


@pytest.mark.parametrize(
    "make_optimizer",
    [lambda: bp.Adam(lr=0.01), lambda: bp.SGD(lr=0.05, momentum=0.9)],
    ids=["adam", "momentum"],
)
def test_parameter_and_optimizer_views_are_read_only_and_show_every_change(make_optimizer) -> None:
    """layer.W, layer.b, model.parameters() and optimizer.state are read-only views of the
    memory the model writes: writing through them is refused and changes nothing, and views
    taken before set_weights, set_state or a train_step show the new values afterwards."""
    model = _trained(optimizer=make_optimizer())
    dense = [layer for layer in model.layers if isinstance(layer, bp.Dense)]
    layer_views = [p for layer in dense for p in (layer.W, layer.b)]
    params = model.parameters()
    buffers = model.optimizer.state
    assert set(buffers) == set(model.optimizer.buffer_names) and buffers
    assert len(params) == len(layer_views) == 4
    for p, q in zip(params, layer_views, strict=True):
        assert np.shares_memory(p, q)
    before = model.get_state()

    # -- read-only: every write is refused, and nothing changes
    for a in [*layer_views, *params, *buffers.values()]:
        assert not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0.0
        with pytest.raises(ValueError, match="read-only"):
            a.reshape(-1)[0] = 1.0  # a view of the view is read-only too
        with pytest.raises(ValueError, match="read-only"):
            np.add(a, 1.0, out=a)
    after = model.get_state()
    np.testing.assert_array_equal(after["weights"], before["weights"])
    for key, buf in before["optimizer"]["buffers"].items():
        np.testing.assert_array_equal(after["optimizer"]["buffers"][key], buf)

    # -- set_weights: the views taken before show the new values
    rng = np.random.default_rng(5)
    new = [rng.normal(size=w.shape) for w in model.get_weights()]
    model.set_weights(new)
    for views in (layer_views, params, [p for layer in dense for p in (layer.W, layer.b)]):
        for view, want in zip(views, new, strict=True):
            np.testing.assert_array_equal(view, want)

    # -- set_state: the same for the optimizer buffers (and the weights)
    state = model.get_state()
    state["optimizer"]["buffers"] = {
        key: rng.normal(size=buf.shape) ** 2 for key, buf in buffers.items()
    }  # squared: Adam's v must be >= 0
    state["weights"] = rng.normal(size=state["weights"].shape)
    model.set_state(state)
    for key, view in buffers.items():
        np.testing.assert_array_equal(view, state["optimizer"]["buffers"][key])
    np.testing.assert_array_equal(np.concatenate([p.reshape(-1) for p in params]), state["weights"])

    # -- a train_step: the same views show the step's new weights and buffers
    X, y = _data()
    model.train_step(X, y)
    stepped = model.get_state()
    assert not np.array_equal(stepped["weights"], state["weights"])  # the step moved them
    for view, want in zip(params, model.get_weights(), strict=True):
        np.testing.assert_array_equal(view, want)
    for view, want in zip(layer_views, model.get_weights(), strict=True):
        np.testing.assert_array_equal(view, want)
    for key, view in buffers.items():
        assert not np.array_equal(view, state["optimizer"]["buffers"][key])
        np.testing.assert_array_equal(view, stepped["optimizer"]["buffers"][key])
        assert not view.flags.writeable  # and still read-only
    assert all(not p.flags.writeable for p in [*params, *layer_views])
