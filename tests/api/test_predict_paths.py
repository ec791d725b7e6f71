"""predict's two paths: an X the core reads as it is (checked in C) and any other X
(converted and checked in Python) give the same outputs, equal to a NumPy float64 forward
pass, and the same refusals."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

_ACTIVATIONS = {
    "relu": (bp.ReLU, lambda z: np.maximum(z, 0)),
    "sigmoid": (bp.Sigmoid, lambda z: 1 / (1 + np.exp(-z))),
}


def _model(dtype: str, width: int, activation: str = "relu") -> bp.Sequential:
    # width 300: the first product is above 100^3 multiply-adds at 64 rows, so it starts from
    # the bias (beta 1); width 4 stays on the small-product path
    act = _ACTIVATIONS[activation][0]()
    model = bp.Sequential([bp.Dense(20, width), act, bp.Dense(width, 3)], dtype=dtype, seed=1)
    model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=0.01))
    return model


def _reference(model: bp.Sequential, X: np.ndarray) -> np.ndarray:
    (W0, b0, W1, b1) = (np.asarray(a, dtype=np.float64) for a in model.get_weights())
    act = _ACTIVATIONS[type(model.layers[1]).__name__.lower()][1]
    return act(X @ W0 + b0) @ W1 + b1


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("width", [4, 300])
@pytest.mark.parametrize("rows", [1, 7, 64])
def test_exact_and_converted_inputs_give_the_numpy_outputs(dtype, rtol, width, rows):
    model = _model(dtype, width)
    X = np.random.default_rng(rows).normal(size=(rows, 20))
    want = _reference(model, X.astype(dtype).astype(np.float64))
    exact = np.ascontiguousarray(X, dtype=dtype)
    assert model._executor.predict_exact(exact) is not None  # the C-checked path is taken
    others = {
        "exact": exact,
        "other dtype": X.astype(np.float64 if dtype == "float32" else np.float32),
        "Fortran order": np.asfortranarray(exact),
        "strided": np.repeat(exact, 2, axis=0)[::2],
        "list": exact.tolist(),
    }
    for name, Xi in others.items():
        got = model.predict(Xi)
        assert got.dtype == np.dtype(dtype) and got.shape == (rows, 3), name
        if name == "other dtype" and dtype == "float64":  # X itself rounded to float32
            ref = _reference(model, np.asarray(Xi, dtype=np.float64))
        else:
            ref = want
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol, err_msg=name)


def test_a_misaligned_buffer_takes_the_converting_path():
    model = _model("float32", 4)
    raw = np.zeros(5 * 20 * 4 + 1, dtype=np.uint8)
    X = np.frombuffer(raw.data, dtype=np.float32, count=100, offset=1).reshape(5, 20)
    assert not X.flags.aligned
    assert model._executor.predict_exact(X) is None
    np.testing.assert_allclose(model.predict(X), _reference(model, X.astype(np.float64)),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [4, 300])
@pytest.mark.parametrize("rows, row", [(1, 0), (6, 4), (1500, 1300)])  # 1300: a second chunk
@pytest.mark.parametrize("dead", [False, True])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_non_finite_input_is_refused_with_the_row_named(
    bad, dtype, width, rows, row, dead, activation
):
    # the C path finds a bad X by its first product (all of that row non-finite), not by a
    # scan of X; dead: the feature's weights are all 0, so only inf * 0 = NaN reveals it.
    # A sigmoid maps an infinite product to 0 or 1: the output alone would look fine.
    model = _model(dtype, width, activation)
    if dead:
        W0, b0, W1, b1 = model.get_weights()
        W0[7] = 0
        model.set_weights([W0, b0, W1, b1])
    X = np.ones((rows, 20), dtype=dtype)
    X[row, 7] = bad
    assert model._executor.predict_exact(X) is None
    with pytest.raises(ValueError, match=f"row {row}"):
        model.predict(X)
    X[row, 7] = 1  # and the same model and X, made finite, predict as NumPy does
    np.testing.assert_allclose(model.predict(X), _reference(model, X.astype(np.float64)),
                               rtol=1e-5, atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_before_an_activation_is_refused(bad):
    # a first activation can map a non-finite value to a finite one, so X itself is scanned
    model = bp.Sequential([bp.ReLU(), bp.Dense(20, 3)], seed=1)
    X = np.ones((5, 20), dtype=np.float32)
    X[3, 2] = bad
    assert model._executor.predict_exact(X) is None
    with pytest.raises(ValueError, match="row 3"):
        model.predict(X)


@pytest.mark.parametrize(
    "X, message",
    [
        (np.ones((0, 20), np.float32), "empty"),
        (np.ones((3, 19), np.float32), "19 features"),
        (np.ones(20, np.float32), "2-D"),
    ],
)
def test_wrong_shapes_are_refused_with_the_python_messages(X, message):
    model = _model("float32", 4)
    assert model._executor.predict_exact(X) is None
    with pytest.raises(ValueError, match=message):
        model.predict(X)


def test_an_output_overflow_is_refused():
    model = _model("float32", 4)
    big = np.full((2, 20), 3e38, dtype=np.float32)  # finite input, products beyond float32
    model.set_weights([np.ones((20, 4)), np.zeros(4), np.ones((4, 3)), np.zeros(3)])
    assert model._executor.predict_exact(big) is None
    with pytest.raises(FloatingPointError, match="not finite"):
        model.predict(big)
