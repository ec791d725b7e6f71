"""ONNX export (model.to_onnx, the estimators' to_onnx): onnxruntime's outputs against
model.predict / predict_proba and the estimators' predict / predict_proba.

Tolerances: float32 rtol=1e-5, atol=1e-6, float64 rtol=1e-12, atol=1e-12, the atol scaled by
the output's magnitude (max |expected|, at least 1): onnxruntime sums the Gemm products in
another order than the core's BLAS and has its own exp / tanh, so the two agree to a few
ulps of the values summed, not bit for bit, and an output near zero that results from
values of ~10 carries their absolute rounding error. Every model is exported once and run
at batch sizes 1 and 37 through the same session (the batch axis is dynamic).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop import onnx_export

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = {
    np.dtype(np.float32): {"rtol": 1e-5, "atol": 1e-6},
    np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-12},
}
BATCHES = (1, 37)
LEAKY_ALPHA = 0.3  # not the default 0.01, so a dropped alpha shows
ACTIVATIONS = ("relu", "sigmoid", "tanh", "identity", "leaky_relu", "softmax", "dropout")
WIDTHS = (5, 8, 7, 6, 4)  # input width, then the Dense widths


def activation(name: str) -> bp.Layer:
    return {
        "relu": bp.ReLU,
        "sigmoid": bp.Sigmoid,
        "tanh": bp.Tanh,
        "identity": bp.Identity,
        "leaky_relu": lambda: bp.LeakyReLU(LEAKY_ALPHA),
        "softmax": bp.Softmax,
        "dropout": lambda: bp.Dropout(0.4),
    }[name]()


def network(name: str, depth: int, dtype, seed: int = 0) -> bp.Sequential:
    """`depth` Dense layers, each followed by the activation (the last one too)."""
    layers: list[bp.Layer] = []
    for k in range(depth):
        layers += [bp.Dense(WIDTHS[k], WIDTHS[k + 1], bias_init="normal"), activation(name)]
    return bp.Sequential(layers, dtype=dtype, seed=seed)


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(sess, X):
    (out,) = sess.run(None, {"X": X})
    return out


def inputs(dtype, n_features, batch, seed=1):
    # scale 3: sigmoid / tanh leave their linear range, ReLU and LeakyReLU see both signs
    return np.random.default_rng(seed + batch).normal(0, 3, (batch, n_features)).astype(dtype)


def check(actual, expected, dtype):
    assert actual.dtype == np.dtype(dtype)
    assert actual.shape == expected.shape
    tol = TOL[np.dtype(dtype)]
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


# -- model.to_onnx -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_onnxruntime_equals_predict(tmp_path, dtype, name, depth) -> None:
    model = network(name, depth, dtype)
    path = tmp_path / "model.onnx"
    model.to_onnx(path)
    sess = session(path)
    for batch in BATCHES:
        X = inputs(dtype, model.n_features_in, batch)
        check(run(sess, X), model.predict(X), dtype)


def test_every_layer_in_one_network(tmp_path, dtype) -> None:
    model = bp.Sequential(
        [
            bp.Dense(6, 9, bias_init="normal"),
            bp.LeakyReLU(LEAKY_ALPHA),
            bp.Dropout(0.3),
            bp.Dense(9, 8, bias_init="uniform"),
            bp.Tanh(),
            bp.Dense(8, 7),
            bp.Softmax(),
            bp.Dense(7, 6),
            bp.Sigmoid(),
            bp.Identity(),
            bp.Dense(6, 5),
            bp.ReLU(),
            bp.Dense(5, 3),
        ],
        dtype=dtype,
        seed=3,
    )
    path = tmp_path / "all.onnx"
    model.to_onnx(path)
    sess = session(path)
    for batch in BATCHES:
        X = inputs(dtype, 6, batch)
        check(run(sess, X), model.predict(X), dtype)


def test_trained_weights_are_exported(tmp_path, dtype) -> None:
    """The file holds the weights at export time, not the initial ones."""
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(64, 4)).astype(dtype), rng.integers(0, 3, 64)
    model = bp.Sequential([bp.Dense(4, 8), bp.ReLU(), bp.Dense(8, 3)], dtype=dtype, seed=0)
    model.compile(bp.SoftmaxCrossEntropy(), bp.Adam(lr=0.05))
    model.fit(X, y, epochs=5, batch_size=16)
    model.to_onnx(tmp_path / "m.onnx")
    check(run(session(tmp_path / "m.onnx"), X), model.predict(X), dtype)


@pytest.mark.parametrize(
    ("loss", "n_out"),
    [(bp.SoftmaxCrossEntropy(), 4), (bp.BinaryCrossEntropy(), 1), (bp.BinaryCrossEntropy(), 3)],
    ids=["softmax_ce", "bce_1", "bce_3"],
)
def test_probabilities_head_equals_predict_proba(tmp_path, dtype, loss, n_out) -> None:
    model = bp.Sequential(
        [bp.Dense(5, 8, bias_init="normal"), bp.Tanh(), bp.Dense(8, n_out, bias_init="normal")],
        dtype=dtype,
        seed=4,
    )
    model.compile(loss)
    model.to_onnx(tmp_path / "p.onnx", probabilities=True)
    model.to_onnx(tmp_path / "y.onnx")
    probs, logits = session(tmp_path / "p.onnx"), session(tmp_path / "y.onnx")
    for batch in BATCHES:
        X = inputs(dtype, 5, batch)
        check(run(probs, X), model.predict_proba(X), dtype)
        check(run(logits, X), model.predict(X), dtype)


def test_probabilities_need_a_loss_with_a_link(tmp_path) -> None:
    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    with pytest.raises(RuntimeError, match="compiled with a loss"):
        model.to_onnx(tmp_path / "m.onnx", probabilities=True)
    model.compile(bp.MSE())
    with pytest.raises(TypeError, match="MSE\\(\\) has no probability link"):
        model.to_onnx(tmp_path / "m.onnx", probabilities=True)
    with pytest.raises(TypeError, match="probabilities must be a bool"):
        model.to_onnx(tmp_path / "m.onnx", probabilities="yes")
    assert not (tmp_path / "m.onnx").exists()


# -- the graph itself ----------------------------------------------------------------------------


def test_graph_interface_opset_and_dynamic_batch(tmp_path, dtype) -> None:
    model = network("leaky_relu", 2, dtype)
    path = tmp_path / "m.onnx"
    model.to_onnx(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", onnx_export.OPSET)]
    assert onnx_export.OPSET == 17
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "X" and out.name == "Y"
    for value, width in ((inp, model.n_features_in), (out, model.n_outputs)):
        assert value.type.tensor_type.elem_type == elem
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", ""]
        assert dims[1].dim_value == width
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("Gemm") == 2
    # onnxruntime has no float64 LeakyRelu kernel, and the attribute alpha is float32
    if np.dtype(dtype) == np.float64:
        assert "LeakyRelu" not in ops and ops.count("Where") == 2
    else:
        assert ops.count("LeakyRelu") == 2
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    np.testing.assert_array_equal(weights["layers.0.W"], model.get_weights()[0])
    np.testing.assert_array_equal(weights["layers.2.b"], model.get_weights()[3])
    assert proto.producer_name == "backprop-core"


@pytest.mark.parametrize("opset", [13, 15, 17, 18])
def test_other_opsets(tmp_path, dtype, opset) -> None:
    model = bp.Sequential(
        [bp.Dense(4, 6), bp.LeakyReLU(LEAKY_ALPHA), bp.Dense(6, 5), bp.Softmax(), bp.Dense(5, 2)],
        dtype=dtype,
        seed=5,
    )
    model.to_onnx(tmp_path / "m.onnx", opset=opset)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.opset_import[0].version == opset
    X = inputs(dtype, 4, 37)
    check(run(session(tmp_path / "m.onnx"), X), model.predict(X), dtype)


@pytest.mark.parametrize(
    ("opset", "error"),
    [(12, ValueError), (10_000, ValueError), (17.0, TypeError), (True, TypeError)],
)
def test_bad_opset_is_refused(tmp_path, opset, error) -> None:
    with pytest.raises(error, match="opset"):
        network("relu", 1, "float32").to_onnx(tmp_path / "m.onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()


def test_the_file_is_replaced_atomically_and_a_directory_refused(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model = network("tanh", 2, "float64")
    model.to_onnx(path)
    onnx.checker.check_model(onnx.load(str(path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary left
    with pytest.raises(IsADirectoryError):
        model.to_onnx(tmp_path)


# -- the scikit-learn estimators ----------------------------------------------------------------


@pytest.fixture
def sk():
    return pytest.importorskip("backprop.sklearn")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_classifier_export_equals_predict_proba(tmp_path, sk, dtype, n_classes, activation):
    rng = np.random.default_rng(n_classes)
    X = rng.normal(size=(80, 6))
    y = np.array(["ant", "bee", "cat", "dog", "eel"])[rng.integers(0, n_classes, 80)]
    y[:n_classes] = ["ant", "bee", "cat", "dog", "eel"][:n_classes]  # every class present
    est = sk.MLPClassifier(
        (7, 5), activation=activation, max_iter=5, random_state=0, dtype=np.dtype(dtype).name
    ).fit(X, y)
    path = tmp_path / "clf.onnx"
    est.to_onnx(path)
    sess = session(path)
    assert [o.name for o in sess.get_outputs()] == ["probabilities"]
    for batch in BATCHES:
        Xb = inputs(dtype, 6, batch)
        proba = run(sess, Xb)
        assert proba.shape == (batch, n_classes)
        check(proba, est.predict_proba(Xb).astype(dtype), dtype)
        np.testing.assert_array_equal(est.classes_[proba.argmax(axis=1)], est.predict(Xb))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataConversionWarning")  # y (n, 1)
@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("n_targets", [None, 1, 3])
def test_regressor_export_equals_predict(tmp_path, sk, dtype, n_targets, loss) -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 5))
    y = rng.normal(size=60 if n_targets is None else (60, n_targets))
    if loss == "poisson":  # counts; predict is exp(network output)
        y = rng.poisson(np.exp(0.3 * X[:, :1] + 1.0), size=(60, n_targets or 1))
        y = y[:, 0] if n_targets is None else y
    est = sk.MLPRegressor((8,), loss=loss, max_iter=5, random_state=0, dtype=np.dtype(dtype).name)
    est.fit(X, y)
    path = tmp_path / "reg.onnx"
    est.to_onnx(path)
    sess = session(path)
    for batch in BATCHES:
        Xb = inputs(dtype, 5, batch)
        pred = run(sess, Xb)
        expected = est.predict(Xb)
        assert pred.shape == expected.shape  # (batch,) for one target
        check(pred, expected.astype(dtype), dtype)


def test_an_unfitted_estimator_is_refused(tmp_path, sk) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        sk.MLPClassifier().to_onnx(tmp_path / "m.onnx")


# -- optional dependency -------------------------------------------------------------------------


def test_import_backprop_imports_none_of_the_optional_packages() -> None:
    code = (
        "import sys, backprop; "
        "print([m for m in ('onnx', 'onnxruntime', 'torch', 'safetensors') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
