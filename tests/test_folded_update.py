"""Plain SGD folds a large layer's update into its weight-gradient product (W := W - lr X.T dY,
backprop_core/_executor.pyx, _update_folded) and leaves that dW out of dtheta; reading
layer.dW computes it then from the step's saved buffers. The reference for every gradient is
model.gradients() on an identical model (no folding: the same products, so the same bits),
and float64 NumPy for the update."""

import numpy as np
import pytest

import backprop as bp

N = 16


def pair(dtype=np.float32, optimizer=None, hidden=32):
    """Two identical 784-hidden-10 models (784 x 32 = 25,088 weights: above the folding
    threshold of 16,384; the 32 x 10 layer is below it) and a batch."""

    def make():
        opt = optimizer() if optimizer else bp.SGD(lr=0.05)
        return bp.Sequential(
            [bp.Dense(784, hidden), bp.ReLU(), bp.Dense(hidden, 10)], dtype=dtype, seed=0
        ).compile(bp.SoftmaxCrossEntropy(), opt)

    rng = np.random.default_rng(3)
    X = rng.standard_normal((N, 784)).astype(dtype)
    y = rng.integers(0, 10, N)
    return make(), make(), X, y


def dense(model):
    return [layer for layer in model.layers if isinstance(layer, bp.Dense)]


def assert_last_gradients(model, expected):
    for layer, (dW, db) in zip(dense(model), expected, strict=True):
        np.testing.assert_array_equal(layer.dW, dW)
        np.testing.assert_array_equal(layer.db, db)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_folded_step_updates_as_sgd_and_dW_reads_the_steps_gradient(dtype):
    model, ref, X, y = pair(dtype)
    W0 = model.layers[0].W.astype(np.float64)
    grads = ref.gradients(X, y)
    model.train_step(X, y)
    assert model._executor.gradients_pending  # dW1 was not written by the step
    assert_last_gradients(model, grads)
    assert not model._executor.gradients_pending
    # W := W - lr dW within one rounding of the float64 value (the product may fuse the
    # multiply and the add) -- the folding changes only where the subtraction rounds
    step = np.float64(dtype(0.05)) * grads[0][0].astype(np.float64)
    eps = np.finfo(dtype).eps
    err = np.abs(model.layers[0].W - (W0 - step))
    assert np.all(err <= 2 * eps * (np.abs(W0) + np.abs(step)))
    assert np.any(model.layers[0].W != W0)


def test_folded_training_matches_unfolded_training_closely():
    """Ten steps with folding against the same steps by gradients() and the sgd_update rule
    in float64 NumPy: the paths differ only in rounding."""
    model, ref, X, y = pair(np.float64)
    rng = np.random.default_rng(0)
    for _ in range(10):
        Xb = X + rng.standard_normal(X.shape) * 0.1
        grads = ref.gradients(Xb, y)
        for layer, (dW, db) in zip(dense(ref), grads, strict=True):
            layer.W[...] -= 0.05 * dW
            layer.b[...] -= 0.05 * db
        model.train_step(Xb, y)
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_a_pending_gradient_survives_predict_evaluate_and_buffer_growth():
    model, ref, X, y = pair()
    grads = ref.gradients(X, y)
    model.train_step(X, y)
    big = np.random.default_rng(1).standard_normal((3000, 784)).astype(np.float32)
    model.predict(big)  # overwrites the activation buffers, and grows them
    model.evaluate(big[:100], np.zeros(100, np.int64))
    assert_last_gradients(model, grads)


def test_a_view_taken_before_the_step_shows_the_gradient_once_dW_is_read():
    model, ref, X, y = pair()
    held = model.layers[0].dW
    grads = ref.gradients(X, y)
    model.train_step(X, y)
    assert not np.array_equal(held, grads[0][0])  # documented: not refreshed by the step
    model.layers[0].dW  # noqa: B018 -- reading dW computes it into the same memory
    np.testing.assert_array_equal(held, grads[0][0])


def test_changing_X_in_place_after_the_step_makes_the_first_dW_raise():
    model, ref, X, y = pair()
    grads = ref.gradients(X, y)
    model.train_step(X, y)
    X[3, 5] += 1.0  # one element: the fingerprint must see it
    with pytest.raises(RuntimeError, match="changed in place"):
        model.layers[0].dW  # noqa: B018
    # the other layers' gradients do not depend on X
    np.testing.assert_array_equal(model.layers[2].dW, grads[1][0])
    np.testing.assert_array_equal(model.layers[2].db, grads[1][1])
    # the next step gives a readable gradient again
    for a, b in zip(ref.parameters(), model.parameters(), strict=True):
        a[...] = b
    grads = ref.gradients(X, y)
    model.train_step(X, y)
    np.testing.assert_array_equal(model.layers[0].dW, grads[0][0])


def test_changing_X_in_place_is_seen_when_a_later_call_settles_the_gradient():
    """predict settles the pending gradient first; the X it is computed from has changed, so
    the first dW becomes NaN, and reading it raises rather than returning the NaNs."""
    model, _, X, y = pair()
    model.train_step(X, y)
    X[::-1] = X.copy()  # same values, rows reordered
    model.predict(X[:2])
    with pytest.raises(RuntimeError, match="changed in place"):
        model.layers[0].dW  # noqa: B018
    assert np.isnan(model._dtheta[: 784 * 32]).all()


def test_a_converted_X_is_never_seen_as_changed():
    """float64 input to a float32 model is converted: the step borrows the converted copy."""
    model, ref, X, y = pair()
    X64 = X.astype(np.float64)
    grads = ref.gradients(X, y)
    model.train_step(X64, y)
    X64[:] = 0
    np.testing.assert_array_equal(model.layers[0].dW, grads[0][0])


@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_leaves_the_last_batchs_gradient(shuffle):
    model, ref, X, y = pair(np.float64)
    grads = ref.gradients(X, y)
    model.fit(X, y, epochs=1, batch_size=N, shuffle=shuffle, verbose=0)
    X[:] = 0  # fit is done with X: its gradient was settled (shuffle=False) or gathered
    for layer, (dW, db) in zip(dense(model), grads, strict=True):
        # a shuffled batch sums its rows in another order
        np.testing.assert_allclose(layer.dW, dW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(layer.db, db, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: bp.SGD(lr=0.05, momentum=0.9),
        lambda: bp.SGD(lr=0.05, weight_decay=1e-3),
        lambda: bp.Adam(lr=1e-3),
    ],
    ids=["momentum", "weight_decay", "adam"],
)
def test_other_optimizers_do_not_fold(optimizer):
    model, ref, X, y = pair(optimizer=optimizer)
    grads = ref.gradients(X, y)
    model.train_step(X, y)
    assert not model._executor.gradients_pending
    np.testing.assert_array_equal(model._dtheta[: 784 * 32], grads[0][0].ravel())


def test_small_layers_do_not_fold():
    model, ref, X, y = pair(hidden=16)  # 784 x 16 = 12,544 weights: below the threshold
    ref.gradients(X, y)
    model.train_step(X, y)
    assert not model._executor.gradients_pending
    np.testing.assert_array_equal(model._dtheta, ref._dtheta)


def test_a_failed_step_after_a_folded_one_leaves_nan_not_an_older_gradient():
    """The failing step's forward pass overwrote the buffers the pending dW came from."""
    model, _, X, y = pair()
    model.train_step(X, y)
    theta = model._theta.copy()
    huge = np.full_like(X, 3e38)
    with pytest.raises(FloatingPointError):
        model.train_step(huge, y)
    np.testing.assert_array_equal(model._theta, theta)
    assert np.isnan(model.layers[0].dW).all()


def test_a_step_refused_before_any_work_keeps_the_pending_gradient():
    model, ref, X, y = pair()
    grads = ref.gradients(X, y)
    model.train_step(X, y)
    with pytest.raises(ValueError, match="y"):
        model.train_step(X, y[:-1])  # wrong length: refused by validation
    assert_last_gradients(model, grads)


def test_a_label_refused_by_the_kernel_after_a_folded_step_leaves_nan():
    """Label ranges are checked by the loss kernel, after the forward pass."""
    model, _, X, y = pair()
    model.train_step(X, y)
    with pytest.raises(ValueError, match="class index"):
        model.train_step(X, np.full(N, 10))
    assert np.isnan(model.layers[0].dW).all()


def test_a_pending_gradient_stays_pending_across_fit_calls_and_a_larger_gather_buffer():
    """A shuffled fit leaves the last batch's dW pending (computing it per epoch would cost a
    product per epoch); the next fit with larger batches replaces the gather buffer it comes
    from, so it is computed first -- and then superseded by the new last batch."""
    model, ref, X, y = pair(np.float64)
    model.fit(X, y, epochs=1, batch_size=N // 2, shuffle=True, verbose=0)
    assert model._executor.gradients_pending
    for a, b in zip(ref.parameters(), model.parameters(), strict=True):
        a[...] = b
    grads = ref.gradients(X, y)
    model.fit(X, y, epochs=1, batch_size=N, shuffle=True, verbose=0)
    for layer, (dW, db) in zip(dense(model), grads, strict=True):
        np.testing.assert_allclose(layer.dW, dW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(layer.db, db, rtol=1e-12, atol=1e-15)


def test_a_train_steps_pending_gradient_through_a_refused_and_a_successful_fit():
    """A fit refused by validation touches nothing: the step's dW stays pending on its X (so a
    change to X is still caught). A fit that runs computes it first (it does not keep that
    X), then leaves its own last batch's gradient, which X no longer affects."""
    model, ref, X, y = pair()
    model.train_step(X, y)
    with pytest.raises(ValueError):
        model.fit(X, y[:-1], epochs=1, verbose=0)
    X[0, 0] += 1
    with pytest.raises(RuntimeError, match="changed in place"):
        model.layers[0].dW  # noqa: B018
    model.train_step(X, y)
    for a, b in zip(ref.parameters(), model.parameters(), strict=True):
        a[...] = b
    grads = ref.gradients(X, y)
    model.fit(X, y, epochs=1, batch_size=N, shuffle=False, verbose=0)
    X[:] = 0
    for layer, (dW, db) in zip(dense(model), grads, strict=True):
        np.testing.assert_allclose(layer.dW, dW, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(layer.db, db, rtol=1e-5, atol=1e-7)
