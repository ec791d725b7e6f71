"""Bad input at the package boundary: a clear exception naming the argument, never a crash,
never a silent NaN, and the model unchanged afterwards."""

import numpy as np
import pytest

import backprop as bp
import backprop_core as core


@pytest.fixture
def model():
    m = bp.Sequential([bp.Dense(3, 4), bp.ReLU(), bp.Dense(4, 2)], dtype="float64", seed=0)
    return m.compile(bp.MSE(), bp.SGD(lr=0.1))


@pytest.fixture
def clf():
    m = bp.Sequential([bp.Dense(3, 4), bp.ReLU(), bp.Dense(4, 3)], seed=0)
    return m.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.1))


def unchanged(model, before):
    return all(np.array_equal(a, b) for a, b in zip(model.parameters(), before, strict=True))


def snapshot(model):
    return [p.copy() for p in model.parameters()]


@pytest.mark.parametrize(
    "X,match",
    [
        (np.zeros(3), r"X must be 2-D .*ndim=1.*X.reshape\(1, -1\)"),
        (np.zeros((2, 3, 1)), "X must be 2-D"),
        (np.zeros((2, 5)), r"X has 5 features, but the first layer .*Dense\(3, 4\) expects 3"),
        (np.zeros((0, 3)), r"X is empty \(0 samples\)"),
    ],
    ids=["1-D", "3-D", "wrong-features", "empty"],
)
def test_bad_X_shapes(model, X, match):
    before = snapshot(model)
    with pytest.raises(ValueError, match=match):
        model.train_step(X, np.zeros((len(X), 2)))
    assert unchanged(model, before)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_X_and_y_refused_with_row(model, bad):
    X, y = np.zeros((4, 3)), np.zeros((4, 2))
    X[2, 1] = bad
    before = snapshot(model)
    with pytest.raises(ValueError, match="X holds NaN or infinity in row 2"):
        model.train_step(X, y)
    with pytest.raises(ValueError, match="X holds NaN or infinity in row 2"):
        model.fit(X, y, epochs=1)
    X[2, 1] = 0
    y[3, 0] = bad
    with pytest.raises(ValueError, match="y holds NaN or infinity in row 3"):
        model.train_step(X, y)
    assert unchanged(model, before)


def test_float64_overflowing_float32_is_refused():
    m = bp.Sequential([bp.Dense(1, 1)]).compile(bp.MSE(), bp.SGD(lr=0.1))
    with pytest.raises(ValueError, match=r"X row 1 holds a value beyond the range of float32"):
        m.predict(np.array([[1.0], [1e300]]))


@pytest.mark.parametrize(
    "X,exc,match",
    [
        (np.zeros((2, 3), dtype=complex), TypeError, "X must be real, got complex"),
        (np.array([["a", "b", "c"]]), TypeError, "X must hold numbers"),
        (np.array([[object()] * 3]), TypeError, "X must hold numbers"),
    ],
    ids=["complex", "strings", "object"],
)
def test_bad_X_dtypes(model, X, exc, match):
    with pytest.raises(exc, match=match):
        model.predict(X)


@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.astype(np.float32),
        lambda X: X.astype(np.float16),
        lambda X: np.asfortranarray(X),
        lambda X: X[::-1][::-1].copy()[:, ::1],
        lambda X: np.ascontiguousarray(X[::-1])[::-1],
        lambda X: X.tolist(),
    ],
    ids=["float32", "float16", "fortran", "copy", "negative-stride", "list"],
)
def test_convertible_inputs_give_the_contiguous_result(model, convert):
    X = np.round(np.random.default_rng(0).standard_normal((5, 3)) * 4) / 4  # exact in float16
    expected = model.predict(X)
    np.testing.assert_allclose(model.predict(convert(X)), expected, rtol=1e-3)


def test_integer_and_bool_X_are_converted(model):
    X = np.array([[1, 2, 3], [0, -1, 2]])
    np.testing.assert_array_equal(model.predict(X), model.predict(X.astype(float)))
    np.testing.assert_array_equal(model.predict(X > 0), model.predict((X > 0).astype(float)))


def test_read_only_inputs_are_accepted(model):
    X, y = np.ones((4, 3)), np.zeros((4, 2))
    X.flags.writeable = False
    y.flags.writeable = False
    assert np.isfinite(model.train_step(X, y))


def test_y_shape_errors(model):
    X = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"y must have shape \(n_samples, 2\) .* got \(4,\)"):
        model.train_step(X, np.zeros(4))
    with pytest.raises(ValueError, match="X has 4 samples but y has 3"):
        model.train_step(X, np.zeros((3, 2)))


def test_single_output_accepts_1d_y():
    m = bp.Sequential([bp.Dense(2, 1)], dtype="float64", seed=0).compile(bp.MSE(), bp.SGD(0.1))
    X, y = np.ones((3, 2)), np.arange(3.0)
    assert m.evaluate(X, y) == m.evaluate(X, y.reshape(-1, 1))


def test_class_labels(clf):
    X = np.zeros((4, 3))
    before = snapshot(clf)
    with pytest.raises(ValueError, match=r"y\[2\] = 3 is not a class index in \[0, 3\)"):
        clf.train_step(X, np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match=r"y\[1\] = -1 is not a class index"):
        clf.fit(X, np.array([0, -1, 1, 2]))
    with pytest.raises(TypeError, match=r"integer class labels; y\[1\] is 0.5"):
        clf.train_step(X, np.array([0, 0.5, 1, 2]))
    with pytest.raises(ValueError, match=r"labels of shape \(n_samples,\)"):
        clf.train_step(X, np.zeros((4, 3)))
    assert unchanged(clf, before)
    # integral floats and other integer dtypes are converted losslessly
    a = clf.evaluate(X, np.array([0.0, 1.0, 2.0, 1.0]))
    assert a == clf.evaluate(X, np.array([0, 1, 2, 1], dtype=np.uint8))


def test_binary_targets_outside_unit_interval():
    m = bp.Sequential([bp.Dense(2, 1)], seed=0).compile(bp.BinaryCrossEntropy(), bp.SGD(0.1))
    X = np.zeros((3, 2))
    before = snapshot(m)
    with pytest.raises(ValueError, match="y row 1 holds a target outside"):
        m.train_step(X, np.array([0.0, 1.5, 1.0]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]; y row 2"):
        m.fit(X, np.array([0.0, 1.0, -0.1]))
    assert unchanged(m, before)


def test_layer_chain_mismatch_names_both_layers():
    with pytest.raises(
        ValueError,
        match=r"layers\[2\] Dense\(5, 1\) expects 5 inputs, but "
        r"layers\[0\] Dense\(2, 4\) gives 4",
    ):
        bp.Sequential([bp.Dense(2, 4), bp.ReLU(), bp.Dense(5, 1)])


@pytest.mark.parametrize(
    "build,exc,match",
    [
        (lambda: bp.Sequential([]), ValueError, "must not be empty"),
        (lambda: bp.Sequential([bp.ReLU()]), ValueError, "at least one Dense"),
        (lambda: bp.Sequential(["dense"]), TypeError, r"layers\[0\] must be a Layer"),
        (lambda: bp.Sequential([bp.Dense(1, 1)], dtype="int32"), TypeError, "dtype must be"),
        (lambda: bp.Sequential([bp.Dense(1, 1)], dtype="float16"), TypeError, "dtype must be"),
        (lambda: bp.Dense(0, 1), ValueError, "in_features must be >= 1"),
        (lambda: bp.Dense(2.5, 1), TypeError, "in_features must be an integer"),
        (lambda: bp.Dense(1, 1, weight_init="xavier"), ValueError, "weight_init must be one"),
        (lambda: bp.LeakyReLU(-0.1), ValueError, "alpha must be in"),
        (lambda: bp.SGD(lr=0), ValueError, "lr must be > 0"),
        (lambda: bp.SGD(lr=float("nan")), ValueError, "lr must be finite"),
        (lambda: bp.SGD(lr=0.1, momentum=1.0), ValueError, r"momentum must be in \[0.0, 1.0\)"),
        (lambda: bp.SGD(lr=0.1, nesterov=True), ValueError, "nesterov=True needs momentum"),
        (lambda: bp.SGD(lr=0.1, weight_decay=-1), ValueError, "weight_decay must be in"),
        (lambda: bp.Adam(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in"),
        (lambda: bp.Adam(eps=0), ValueError, "eps must be > 0"),
        (lambda: bp.Adam(lr="0.1"), TypeError, "lr must be a number"),
    ],
)
def test_construction_errors(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_layers_cannot_be_shared_between_models():
    dense = bp.Dense(2, 2)
    bp.Sequential([dense])
    with pytest.raises(ValueError, match="already belongs to a model"):
        bp.Sequential([dense])
    with pytest.raises(RuntimeError, match="no parameters until it is part of a Sequential"):
        _ = bp.Dense(2, 2).W


def test_optimizer_serves_one_model():
    opt = bp.SGD(lr=0.1)
    bp.Sequential([bp.Dense(1, 1)]).compile(bp.MSE(), opt)
    with pytest.raises(ValueError, match="already attached to another model"):
        bp.Sequential([bp.Dense(1, 1)]).compile(bp.MSE(), opt)


def test_compile_and_fit_errors(model):
    fresh = bp.Sequential([bp.Dense(3, 2)])
    X, y = np.zeros((2, 3)), np.zeros((2, 2))
    with pytest.raises(RuntimeError, match=r"no loss; call model.compile"):
        fresh.train_step(X, y)
    fresh.compile(bp.MSE())
    with pytest.raises(RuntimeError, match="no optimizer set"):
        fresh.train_step(X, y)
    with pytest.raises(RuntimeError, match="fit: the model has no optimizer"):
        fresh.fit(X, y)
    with pytest.raises(TypeError, match="loss must be a Loss"):
        fresh.compile("mse")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.fit(X, y, batch_size=0)
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        model.fit(X, y, epochs=-1)
    with pytest.raises(TypeError, match="validation_data must be a pair"):
        model.fit(X, y, validation_data=X)
    with pytest.raises(ValueError, match=r"fit \(validation_data\): X has 2 features"):
        model.fit(X, y, validation_data=(np.zeros((2, 2)), y))


def test_final_activation_that_the_loss_applies_is_refused():
    m = bp.Sequential([bp.Dense(2, 3), bp.Softmax()])
    with pytest.raises(ValueError, match="takes logits and applies softmax itself"):
        m.compile(bp.SoftmaxCrossEntropy())
    m = bp.Sequential([bp.Dense(2, 1), bp.Sigmoid()])
    with pytest.raises(ValueError, match="applies sigmoid itself"):
        m.compile(bp.BinaryCrossEntropy())
    m.compile(bp.MSE())  # a sigmoid output with MSE is a legitimate model


def test_divergence_raises_instead_of_returning_nan():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 3)) * 100, rng.standard_normal((64, 1)) * 100
    m = bp.Sequential([bp.Dense(3, 8), bp.Dense(8, 1)], seed=0).compile(bp.MSE(), bp.SGD(lr=10.0))
    with pytest.raises(FloatingPointError, match="training diverged"):
        m.fit(X, y, epochs=50)


def test_core_executor_checks_buffers():
    """Second line of defence: the compiled executor refuses wrong buffers itself (here one
    built directly, as Sequential([Dense(3, 2)], dtype="float64") with MSE and SGD builds it)."""
    ex = core.Executor([("dense", 3, 2, 0, 6)], np.zeros(8), np.zeros(8))
    ex.set_loss("mse")
    ex.set_sgd(0.1)
    with pytest.raises(ValueError, match="X: expected 6 items"):
        ex.step(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="X: expected items of format 'd'"):
        ex.step(np.zeros((2, 3), np.float32), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="C-contiguous"):
        ex.step(np.zeros((3, 2)).T, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"perm must hold row indices in \[0, 2\)"):
        ex.run_epoch(np.zeros((2, 3)), np.zeros((2, 2)), np.array([0, 5]), 1)
    with pytest.raises(ValueError, match="out: expected a C-contiguous writable"):
        out = np.zeros((2, 2))
        out.flags.writeable = False
        ex.predict(np.zeros((2, 3)), out)
