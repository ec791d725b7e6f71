"""Bad input at the package boundary: a clear exception naming the argument, never a crash,
never a silent NaN, and the model unchanged afterwards (issue 5, "Bad input").

The parametrized tests run each case through every entry point and assert the exception type
and that the message names the argument (prefixed by the entry point, e.g. "fit
(validation_data): X ...") and what was expected. Accepted conversions are checked against the
result of the same call on a clean C-contiguous copy (bit for bit: the conversion happens
before the compiled call), and refused calls leave the model's parameters untouched. The tests
on the `model` and `clf` fixtures check one entry point's message or conversion; construction
and compile errors are checked where the model is built.
"""

import re

import numpy as np
import pytest

import backprop as bp

ENTRIES = ["train_step", "gradients", "fit", "evaluate", "predict", "predict_proba", "val"]
Y_ENTRIES = ["train_step", "gradients", "fit", "evaluate", "val"]  # the ones that take y
WHERE = {"val": "fit (validation_data)", "predict_proba": "predict"}


def where(entry):
    return re.escape(WHERE.get(entry, entry))


def make(kind="clf", dtype="float64"):
    """clf: 3 -> 4 -> 3 classes; reg: 3 -> 4 -> 2 outputs, MSE; bin: 3 -> 2 BCE."""
    out = {"clf": 3, "reg": 2, "bin": 2}[kind]
    loss = {"clf": bp.SoftmaxCrossEntropy, "reg": bp.MSE, "bin": bp.BinaryCrossEntropy}[kind]
    model = bp.Sequential([bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, out)], dtype=dtype, seed=0)
    return model.compile(loss(), bp.SGD(lr=0.1, momentum=0.5))


def data(kind="clf", n=6):
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (n, 3))
    if kind == "clf":
        y = np.arange(n) % 3
    elif kind == "bin":
        y = rng.uniform(0, 1, (n, 2))
    else:
        y = rng.standard_normal((n, 2))
    return X, y


def call(model, entry, X, y=None):
    """Run one entry point; returns what it returns (for fit: the parameters after it)."""
    if entry == "train_step":
        return model.train_step(X, y)
    if entry == "gradients":
        return model.gradients(X, y)
    if entry == "fit":
        model.fit(X, y, epochs=2, batch_size=4, seed=0)
        return [p.copy() for p in model.parameters()]
    if entry == "evaluate":
        return model.evaluate(X, y)
    if entry == "predict":
        return model.predict(X)
    if entry == "predict_proba":
        return model.predict_proba(X)
    X_ok, y_ok = data(type_of(model))
    return model.fit(X_ok, y_ok, epochs=1, validation_data=(X, y), seed=0).val_loss


def type_of(model):
    return {"softmax_cross_entropy": "clf", "mse": "reg", "binary_cross_entropy": "bin"}[
        model.loss.name
    ]


def snapshot(model):
    return [p.copy() for p in model.parameters()]


def assert_unchanged(model, before):
    for p, q in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p, q)


def assert_same(a, b):
    """Bit-for-bit equality of two results (floats, arrays, lists of arrays or pairs)."""
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            assert_same(u, v)
    else:
        np.testing.assert_array_equal(a, b)


def refused(entry, exc, match, X, y=None, kind="clf", dtype="float64"):
    model = make(kind, dtype)
    before = snapshot(model)
    with pytest.raises(exc, match=match):
        call(model, entry, X, y)
    assert_unchanged(model, before)


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


# -- shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("shape", [(6,), (6, 3, 1), ()], ids=["1-D", "3-D", "0-D"])
def test_X_wrong_ndim(entry, shape):
    _, y = data()
    ndim = len(shape)
    refused(
        entry,
        ValueError,
        rf"{where(entry)}: X must be 2-D \(n_samples, n_features\), got ndim={ndim}",
        np.zeros(shape),
        y,
    )


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_y_wrong_ndim(entry):
    X, y = data("reg")
    expect = rf"{where(entry)}: y must have shape \(n_samples, 2\) .*2 outputs, got \(6, 2, 1\)"
    refused(entry, ValueError, expect, X, y[:, :, None], kind="reg")
    expect = rf"{where(entry)}: y must have shape \(n_samples, 2\) .*got \(6,\)"
    refused(entry, ValueError, expect, X, y[:, 0], kind="reg")
    X, y = data("clf")
    expect = rf"{where(entry)}: softmax cross-entropy takes y as integer class labels of shape"
    refused(entry, ValueError, expect + r" \(n_samples,\), got shape \(6, 3\)", X, np.eye(3)[y])


@pytest.mark.parametrize("entry", ENTRIES)
def test_wrong_feature_count(entry):
    _, y = data()
    refused(
        entry,
        ValueError,
        rf"{where(entry)}: X has 5 features, but the first layer layers\[0\] Dense\(3, 4\) "
        r"expects 3",
        np.zeros((6, 5)),
        y,
    )


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_batch_size_mismatch_between_X_and_y(entry):
    X, y = data()
    refused(entry, ValueError, rf"{where(entry)}: X has 6 samples but y has 5", X, y[:5])
    X, y = data("reg")
    refused(entry, ValueError, rf"{where(entry)}: X has 5 samples but y has 6", X[:5], y, "reg")


@pytest.mark.parametrize("entry", ENTRIES)
def test_empty_X(entry):
    refused(
        entry,
        ValueError,
        rf"{where(entry)}: X is empty \(0 samples\); expected at least one row, got shape "
        r"\(0, 3\)",
        np.zeros((0, 3)),
        np.zeros(0, np.int64),
    )


@pytest.mark.parametrize("gap", [[], [bp.ReLU()], [bp.Sigmoid(), bp.Identity()]])
def test_layer_chain_mismatch_is_caught_at_construction_naming_both_layers(gap):
    j = 1 + len(gap)
    with pytest.raises(
        ValueError,
        match=rf"Sequential: layers\[{j}\] Dense\(5, 1\) expects 5 inputs, but layers\[0\] "
        r"Dense\(2, 4\) gives 4",
    ):
        bp.Sequential([bp.Dense(2, 4), *gap, bp.Dense(5, 1)])


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


# -- dtypes --------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(
    "convert",
    [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64, bool, np.float16, np.float32],
    ids=lambda t: np.dtype(t).name,
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lossless_X_dtypes_are_converted(entry, convert, dtype):
    """Small integers, bools and narrower floats are exact in the model's dtype: the result
    is the one for the same values given as floats."""
    X, y = data()
    X = np.round(X * 8)  # whole numbers in [-8, 8]: exact in every dtype above (unsigned: abs)
    X = np.abs(X) if np.dtype(convert).kind in "ub" else X
    X = X > 0 if convert is bool else X
    assert_same(
        call(make("clf", dtype), entry, X.astype(convert), y),
        call(make("clf", dtype), entry, X.astype(dtype), y),
    )


@pytest.mark.parametrize("entry", ENTRIES)
def test_integers_the_model_dtype_cannot_hold_exactly_are_refused(entry):
    _, y = data()
    X = np.zeros((6, 3), np.int64)
    X[4, 2] = 2**24 + 1  # the first integer float32 rounds
    refused(
        entry,
        ValueError,
        rf"{where(entry)}: X holds the integer 16777217 \(row 4\), which float32 cannot "
        r"represent exactly; integers are converted only when \|value\| <= 2\*\*24",
        X,
        y,
        dtype="float32",
    )
    X[4, 2] = -(2**53) - 1
    refused(entry, ValueError, r"integer -9007199254740993 \(row 4\), which float64", X, y)
    X[4, 2] = 2**24 + 1  # fine in float64
    model = make("clf", "float64")
    assert_same(call(model, entry, X, y), call(make(), entry, X.astype(float), y))


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(
    "X,exc,match",
    [
        (np.zeros((6, 3), complex), TypeError, r"X must be real, got complex dtype complex128"),
        (np.ones((6, 3), object), TypeError, r"X must hold numbers .*got dtype object"),
        (np.full((6, 3), "1"), TypeError, r"X must hold numbers .*got dtype <U1"),
        (np.zeros((6, 3), "datetime64[s]"), TypeError, r"X must hold numbers .*datetime64"),
        ([[1.0, 2.0, 3.0], [1.0, 2.0]], ValueError, r"X must be a rectangular array of numbers"),
    ],
    ids=["complex", "object", "str", "datetime", "ragged"],
)
def test_unconvertible_X_is_refused(entry, X, exc, match):
    _, y = data()
    refused(entry, exc, rf"{where(entry)}: {match}", X, y)


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_y_dtypes_for_mse(entry):
    X, y = data("reg")
    y = np.round(y * 4)
    assert_same(
        call(make("reg"), entry, X, y.astype(np.int16)),
        call(make("reg"), entry, X, y),
    )
    refused(entry, TypeError, "y must be real, got complex", X, y.astype(complex), "reg")
    refused(entry, TypeError, "y must hold numbers .*got dtype object", X, y.astype(object), "reg")
    big = y.astype(np.int64)
    big[3, 1] = 2**60
    refused(entry, ValueError, r"y holds the integer 1152921504606846976 \(row 3\)", X, big, "reg")


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize(
    "labels",
    [np.uint8, np.int16, np.int32, np.uint64, np.float32, np.float64],
    ids=lambda t: np.dtype(t).name,
)
def test_class_labels_of_any_integer_dtype_or_whole_floats(entry, labels):
    X, y = data()
    assert_same(call(make(), entry, X, y.astype(labels)), call(make(), entry, X, y))


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


def test_integer_and_bool_X_are_converted(model):
    X = np.array([[1, 2, 3], [0, -1, 2]])
    np.testing.assert_array_equal(model.predict(X), model.predict(X.astype(float)))
    np.testing.assert_array_equal(model.predict(X > 0), model.predict((X > 0).astype(float)))


# -- layouts -------------------------------------------------------------------------------


LAYOUTS = {
    "fortran": np.asfortranarray,
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "row-strided": lambda a: np.repeat(a, 3, axis=0)[::3],
    "negative-stride": lambda a: np.ascontiguousarray(a[::-1])[::-1],
    "transposed-view": lambda a: np.ascontiguousarray(a.T).T if a.ndim == 2 else a,
    "list": lambda a: a.tolist(),
}


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_any_layout_gives_the_contiguous_result(entry, layout, kind):
    if kind == "reg" and entry == "predict_proba":
        pytest.skip("MSE has no probabilities")
    X, y = data(kind)
    view = LAYOUTS[layout]
    if layout != "list":
        assert not view(X).flags.c_contiguous
    expected = call(make(kind), entry, X, y)
    assert_same(call(make(kind), entry, view(X), view(y)), expected)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("layout", ["c", "fortran", "negative-stride"])
@pytest.mark.parametrize("kind", ["clf", "bin"])
def test_read_only_arrays_are_accepted_and_never_written(entry, layout, kind):
    X, y = data(kind)
    view = {"c": lambda a: a, **LAYOUTS}[layout]
    X_ro, y_ro = view(X.copy()), view(y.copy())
    for a in (X_ro, y_ro):
        a.flags.writeable = False
    got = call(make(kind), entry, X_ro, y_ro)
    assert_same(got, call(make(kind), entry, X, y))
    np.testing.assert_array_equal(X_ro, X)
    np.testing.assert_array_equal(y_ro, y)


def test_inputs_in_the_model_dtype_are_never_written():
    """The fast path (no copy) hands the caller's own arrays to the core: they stay intact,
    through shuffling fit too."""
    X, y = data("reg", n=40)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    X0, y0 = X32.copy(), y32.copy()
    model = make("reg", "float32")
    model.fit(X32, y32, epochs=3, batch_size=7, shuffle=True, validation_data=(X32, y32))
    model.train_step(X32, y32)
    model.gradients(X32, y32)
    model.evaluate(X32, y32)
    model.predict(X32)
    np.testing.assert_array_equal(X32, X0)
    np.testing.assert_array_equal(y32, y0)


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


def test_read_only_inputs_are_accepted(model):
    X, y = np.ones((4, 3)), np.zeros((4, 2))
    X.flags.writeable = False
    y.flags.writeable = False
    assert np.isfinite(model.train_step(X, y))


# -- values --------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nonfinite_X_is_refused_before_training_with_the_row(entry, bad, dtype):
    X, y = data()
    X[3, 1] = bad
    refused(
        entry, ValueError, rf"{where(entry)}: X holds NaN or infinity in row 3", X, y, "clf", dtype
    )


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("kind", ["reg", "bin"])
def test_nonfinite_y_is_refused_before_training_with_the_row(entry, bad, kind):
    X, y = data(kind)
    y[4, 0] = bad
    refused(entry, ValueError, rf"{where(entry)}: y holds NaN or infinity in row 4", X, y, kind)


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_float32_overflow_in_the_conversion_names_the_row(entry):
    X, y = data()
    X[2, 0] = 1e39
    refused(
        entry,
        ValueError,
        rf"{where(entry)}: X row 2 holds a value beyond the range of float32",
        X,
        y,
        dtype="float32",
    )


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize("label", [3, -1, 7])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float64])
def test_class_label_out_of_range(entry, label, dtype):
    X, y = data()
    y[2] = label
    expect = rf"y\[2\] = {label}(\.0)? is not a class index in \[0, 3\)"
    refused(entry, ValueError, expect, X, y.astype(dtype))


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_huge_unsigned_label_is_reported_unwrapped(entry):
    X, y = data()
    y = y.astype(np.uint64)
    y[5] = 2**64 - 1  # would wrap to -1 as int64
    refused(entry, ValueError, rf"y\[5\] = {2**64 - 1} is not a class index", X, y)


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize(
    "labels,exc,match",
    [
        ([0, 1, 2.5, 0, 1, 2], TypeError, r"integer class labels; y\[2\] is 2.5"),
        ([0, 1, np.nan, 0, 1, 2], TypeError, r"integer class labels; y\[2\] is nan"),
        (list("abcabc"), TypeError, r"integer class labels in \[0, 3\), got dtype <U1"),
        ([0, 1, 2, 0, 1, 1j], TypeError, r"integer class labels in \[0, 3\), got dtype complex"),
        ([0, 1, 2, 0, 1, None], TypeError, r"integer class labels in \[0, 3\), got dtype object"),
    ],
    ids=["fraction", "nan", "str", "complex", "object"],
)
def test_class_labels_of_the_wrong_type(entry, labels, exc, match):
    X, _ = data()
    refused(entry, exc, match, X, np.array(labels))


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize("value", [1.5, -0.25])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_targets_outside_unit_interval(entry, value, dtype):
    X, y = data("bin")
    y[1, 1] = value
    # the checked paths say "must lie in [0, 1]; y row 1"; train_step/gradients leave the
    # range to the kernel ("y row 1 holds a target outside [0, 1]")
    refused(entry, ValueError, r"y row 1 .*\[0, 1\]|\[0, 1\]; y row 1", X, y.astype(dtype), "bin")


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


def test_binary_targets_outside_unit_interval_named_by_row():
    m = bp.Sequential([bp.Dense(2, 1)], seed=0).compile(bp.BinaryCrossEntropy(), bp.SGD(0.1))
    X = np.zeros((3, 2))
    before = snapshot(m)
    with pytest.raises(ValueError, match="y row 1 holds a target outside"):
        m.train_step(X, np.array([0.0, 1.5, 1.0]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]; y row 2"):
        m.fit(X, np.array([0.0, 1.0, -0.1]))
    assert unchanged(m, before)


# -- hyper-parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "build,exc,match",
    [
        (lambda: bp.SGD(lr=0), ValueError, r"SGD: lr must be > 0, got 0"),
        (lambda: bp.SGD(lr=-0.1), ValueError, r"SGD: lr must be > 0, got -0.1"),
        (lambda: bp.SGD(lr=float("inf")), ValueError, r"SGD: lr must be finite, got inf"),
        (lambda: bp.SGD(lr="0.1"), TypeError, r"SGD: lr must be a number, got str"),
        (lambda: bp.SGD(lr=True), TypeError, r"SGD: lr must be a number, got bool"),
        (lambda: bp.SGD(momentum=1.0), ValueError, r"SGD: momentum must be in \[0.0, 1.0\)"),
        (lambda: bp.SGD(momentum=-0.1), ValueError, r"SGD: momentum must be in \[0.0, 1.0\)"),
        (lambda: bp.SGD(weight_decay=-1e-4), ValueError, r"SGD: weight_decay must be in \[0"),
        (lambda: bp.Adam(lr=0), ValueError, r"Adam: lr must be > 0"),
        (lambda: bp.Adam(betas=(1.0, 0.999)), ValueError, r"Adam: betas\[0\] must be in \[0"),
        (lambda: bp.Adam(betas=(0.9, -0.1)), ValueError, r"Adam: betas\[1\] must be in \[0"),
        (lambda: bp.Adam(betas=0.9), TypeError, r"Adam: betas must be a pair"),
        (lambda: bp.Adam(eps=0), ValueError, r"Adam: eps must be > 0, got 0"),
        (lambda: bp.Adam(eps=-1e-8), ValueError, r"Adam: eps must be > 0"),
        (lambda: bp.Adam(weight_decay=-1), ValueError, r"Adam: weight_decay must be in \[0"),
        (lambda: bp.LeakyReLU(-0.5), ValueError, r"LeakyReLU: alpha must be in \[0.0, 1.0\]"),
        (lambda: bp.Dense(0, 2), ValueError, r"Dense: in_features must be >= 1, got 0"),
        (lambda: bp.Dense(2, -1), ValueError, r"Dense: out_features must be >= 1, got -1"),
        (lambda: bp.Sequential([bp.Dense(1, 1)], seed=-1), ValueError, r"seed must be >= 0"),
        (lambda: bp.Sequential([bp.Dense(1, 1)], seed="a"), TypeError, r"seed must be an int"),
    ],
)
def test_hyper_parameters_out_of_range(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_learning_rate_set_later_is_checked_too():
    opt = bp.SGD(lr=0.1)
    make().compile(bp.SoftmaxCrossEntropy(), opt)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"SGD: lr must be (> 0|finite)"):
            opt.lr = bad
    assert opt.lr == 0.1


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"batch_size": 0}, ValueError, r"fit: batch_size must be >= 1, got 0"),
        ({"batch_size": -4}, ValueError, r"fit: batch_size must be >= 1, got -4"),
        ({"batch_size": 2.0}, TypeError, r"fit: batch_size must be an integer, got float"),
        ({"epochs": -1}, ValueError, r"fit: epochs must be >= 0, got -1"),
        ({"epochs": None}, TypeError, r"fit: epochs must be an integer, got NoneType"),
        ({"verbose": -1}, ValueError, r"fit: verbose must be >= 0"),
        ({"seed": 1.5}, TypeError, r"fit: seed must be an integer, got float"),
        ({"seed": -3}, ValueError, r"fit: seed must be >= 0, got -3"),
        ({"validation_data": (np.zeros((2, 3)),)}, TypeError, r"validation_data must be a pair"),
        ({"validation_split": 1.0}, ValueError, r"fit: validation_split must be in \[0.0, 1.0\)"),
        ({"validation_split": -0.1}, ValueError, r"fit: validation_split must be in \[0.0"),
        ({"on_nonfinite": "ignore"}, ValueError, r"fit: on_nonfinite must be 'raise' or 'stop'"),
        ({"callbacks": [1]}, TypeError, r"fit: callbacks\[0\] must be a Callback"),
    ],
)
def test_fit_arguments_out_of_range(kwargs, exc, match):
    model = make()
    before = snapshot(model)
    with pytest.raises(exc, match=match):
        model.fit(*data(), **kwargs)
    assert_unchanged(model, before)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_p_outside_unit_interval(p):
    with pytest.raises(ValueError, match=r"Dropout: p must be (in \[0.0, 1.0\)|finite)"):
        bp.Dropout(p)


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
        (lambda: bp.SGD(lr=float("nan")), ValueError, "lr must be finite"),
        (lambda: bp.SGD(lr=0.1, momentum=1.0), ValueError, r"momentum must be in \[0.0, 1.0\)"),
        (lambda: bp.SGD(lr=0.1, nesterov=True), ValueError, "nesterov=True needs momentum"),
        (lambda: bp.SGD(lr=0.1, weight_decay=-1), ValueError, "weight_decay must be in"),
        (lambda: bp.Adam(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in"),
        (lambda: bp.Adam(lr="0.1"), TypeError, "lr must be a number"),
    ],
)
def test_construction_errors(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


# -- models, layers, optimizers and compile ----------------------------------------------


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


# -- sample_weight -------------------------------------------------------------------------


SW_ENTRIES = ["train_step", "gradients", "fit", "evaluate"]


@pytest.mark.parametrize("entry", SW_ENTRIES)
@pytest.mark.parametrize(
    "w,exc,match",
    [
        (np.ones((6, 1)), ValueError, r"sample_weight must be 1-D \(n_samples,\), got shape"),
        (np.ones(5), ValueError, r"X has 6 samples but sample_weight has 5"),
        ([1, 1, np.nan, 1, 1, 1], ValueError, r"sample_weight holds NaN or infinity in row 2"),
        ([1, 1, 1, -0.5, 1, 1], ValueError, r"sample_weight must be >= 0; sample_weight\[3\]"),
        (np.zeros(6), ValueError, r"sample_weight must have a positive sum"),
        (np.ones(6, complex), TypeError, r"sample_weight must be real"),
        (np.full(6, "1"), TypeError, r"sample_weight must hold numbers"),
        (np.full(6, 2**53 + 1), ValueError, r"sample_weight holds the integer 9007199254740993"),
    ],
    ids=["2-D", "length", "nan", "negative", "zero-sum", "complex", "str", "inexact-int"],
)
def test_bad_sample_weight(entry, w, exc, match):
    X, y = data()
    model = make()
    before = snapshot(model)
    with pytest.raises(exc, match=rf"{where(entry)}: {match}"):
        call_weighted(model, entry, X, y, w)
    assert_unchanged(model, before)


@pytest.mark.parametrize("entry", SW_ENTRIES)
@pytest.mark.parametrize("layout", ["fortran-ish", "negative-stride", "int", "read-only"])
def test_sample_weight_layouts_and_integer_weights(entry, layout):
    X, y = data()
    w = np.array([1.0, 2.0, 0.0, 3.0, 1.0, 1.0])
    given = {
        "fortran-ish": np.repeat(w, 2)[::2],
        "negative-stride": w[::-1].copy()[::-1],
        "int": w.astype(np.int32),
        "read-only": w.copy(),
    }[layout]
    given.flags.writeable = layout != "read-only"
    assert_same(call_weighted(make(), entry, X, y, given), call_weighted(make(), entry, X, y, w))


def call_weighted(model, entry, X, y, w):
    if entry == "fit":
        model.fit(X, y, epochs=2, batch_size=4, seed=0, sample_weight=w)
        return [p.copy() for p in model.parameters()]
    return getattr(model, entry)(X, y, sample_weight=w)


# -- results that overflow -----------------------------------------------------------------


def overflowing():
    """A model whose forward pass overflows float32 on a finite input: 3e38 * 10."""
    model = bp.Sequential([bp.Dense(3, 4), bp.ReLU(), bp.Dense(4, 3)], seed=0)
    model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.1))
    weights = model.get_weights()
    weights[0][...] = weights[2][...] = 10.0  # both Dense layers' W
    model.set_weights(weights)
    X, y = data()
    X[1, 2] = 3e38  # finite in float32
    return model, X, y


@pytest.mark.parametrize("entry", ["predict", "predict_proba", "evaluate", "gradients"])
def test_an_overflowing_result_is_refused_not_returned(entry):
    """The call raises FloatingPointError instead of handing back inf or NaN."""
    model, X, y = overflowing()
    before = snapshot(model)
    with pytest.raises(FloatingPointError, match=rf"{where(entry)}: .* is not finite"):
        call(model, entry, X, y)
    assert_unchanged(model, before)
    X[1, 2] = 1.0
    assert np.isfinite(model.evaluate(X, y))  # still usable


def test_train_step_refuses_an_overflowing_step_and_changes_nothing():
    model, X, y = overflowing()
    before = snapshot(model)
    with pytest.raises(FloatingPointError):
        model.train_step(X, y)
    assert_unchanged(model, before)


def test_divergence_raises_instead_of_returning_nan():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 3)) * 100, rng.standard_normal((64, 1)) * 100
    m = bp.Sequential([bp.Dense(3, 8), bp.Dense(8, 1)], seed=0).compile(bp.MSE(), bp.SGD(lr=10.0))
    with pytest.raises(FloatingPointError, match="training diverged"):
        m.fit(X, y, epochs=50)


@pytest.mark.parametrize(
    "y_pred",
    [np.full((2, 2), 1 + 1j), np.full((2, 2), "1"), np.ones((2, 2), object)],
    ids=["complex", "str", "object"],
)
def test_loss_called_directly_refuses_non_numeric_predictions(y_pred):
    with pytest.raises(TypeError, match="y_pred must"):
        bp.MSE()(y_pred, np.zeros((2, 2)))


def test_inexact_integer_sample_weight_names_its_index():
    X, y = data()
    w = np.ones(6, np.int64)
    w[4] = 2**24 + 1
    with pytest.raises(
        ValueError, match=r"sample_weight holds the integer 16777217 \(sample_weight\[4\]\)"
    ):
        make("clf", "float32").train_step(X, y, sample_weight=w)


def test_ragged_labels_are_refused_naming_y():
    X, _ = data()
    with pytest.raises(ValueError, match=r"train_step: y must be a rectangular array"):
        make().train_step(X, [[0], [1, 2], [0], [1], [2], [0]])


@pytest.mark.parametrize("what", ["X", "y_values", "y_labels", "sample_weight"])
def test_misaligned_arrays_are_copied_not_refused(what) -> None:
    """Buffers rebuilt by pickle or shared memory (dask.distributed does this) may start at
    an odd address: they are copied to aligned memory, giving the aligned array's result."""

    def odd(a: np.ndarray) -> np.ndarray:
        raw = np.zeros(a.nbytes + 1, np.uint8)[1:]
        out = raw.view(a.dtype).reshape(a.shape)
        out[...] = a
        assert not out.flags.aligned
        return out

    rng = np.random.default_rng(0)
    X, w = rng.normal(size=(12, 5)), rng.uniform(0.5, 2.0, 12)
    labels = what == "y_labels"
    y = rng.integers(0, 2, 12) if labels else rng.normal(size=(12, 2))
    args = {"X": X, "y": y, "w": w}
    key = {"X": "X", "y_values": "y", "y_labels": "y", "sample_weight": "w"}[what]
    odd_args = dict(args, **{key: odd(args[key])})
    results = []
    for a in (args, odd_args):
        model = bp.Sequential([bp.Dense(5, 2)], dtype="float64", seed=0)
        model.compile(bp.SoftmaxCrossEntropy() if labels else bp.MSE(), bp.SGD(lr=0.1))
        history = model.fit(a["X"], a["y"], epochs=2, sample_weight=a["w"], seed=0)
        results.append((history.loss, model.predict(a["X"]), model.evaluate(a["X"], a["y"])))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert results[0][2] == results[1][2]
