"""Faults inside the compiled step: non-finite losses and gradients are refused before the
update, and Ctrl-C ends an epoch at a batch boundary. The reference for "the weights of the
last finite step" is a replay of the same batches by train_step on a copy."""

import threading

import numpy as np
import pytest

import backprop as bp


def test_nonfinite_loss_changes_nothing():
    """A learning rate that blows up: the step that meets the overflow raises, and the
    parameters and momentum are those left by the last finite step."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    model = bp.Sequential([bp.Dense(3, 4), bp.Dense(4, 2)], seed=0).compile(
        bp.MSE(), bp.SGD(lr=1e6, momentum=0.9)
    )
    step = 0
    while True:
        theta = model._theta.copy()
        velocity = model.optimizer.state["velocity"].copy()
        try:
            model.train_step(X, y)
        except FloatingPointError as e:
            assert "not finite" in str(e) and "no update" in str(e)
            break
        step += 1
        assert step < 100, "the learning rate never blew up"
    assert step > 0 and np.isfinite(theta).all()
    np.testing.assert_array_equal(model._theta, theta)
    np.testing.assert_array_equal(model.optimizer.state["velocity"], velocity)
    assert model.optimizer.steps == step


def test_nonfinite_gradient_with_finite_loss_is_refused():
    """float32 outputs near the float32 limit: the loss (summed in double) is finite but
    2 (y - t) overflows float32, so the gradient is inf."""
    model = bp.Sequential([bp.Dense(1, 1, weight_init="ones")], seed=0).compile(
        bp.MSE(), bp.SGD(lr=1e-3)
    )
    X = np.array([[3e38]], np.float32)
    theta = model._theta.copy()
    with pytest.raises(FloatingPointError, match="not finite"):
        model.train_step(X, np.zeros((1, 1)))
    np.testing.assert_array_equal(model._theta, theta)


def test_fit_divergence_keeps_the_last_finite_step():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((64, 3)), rng.standard_normal((64, 2))
    model = bp.Sequential([bp.Dense(3, 8), bp.Dense(8, 2)], seed=0).compile(
        bp.MSE(), bp.SGD(lr=3e3)
    )
    replay = model.clone()
    replay.compile(bp.MSE(), bp.SGD(lr=3e3))
    with pytest.raises(FloatingPointError, match=r"fit: training diverged in epoch 1"):
        model.fit(X, y, epochs=1, batch_size=4, shuffle=False)
    steps = model.optimizer.steps
    for s in range(steps):
        replay.train_step(X[4 * s : 4 * s + 4], y[4 * s : 4 * s + 4])
    assert 0 < steps < 16 and np.isfinite(model._theta).all()
    np.testing.assert_array_equal(model._theta, replay._theta)


def test_ctrl_c_ends_an_epoch_at_a_batch_boundary():
    """_thread.interrupt_main during a long epoch: KeyboardInterrupt at a batch boundary,
    the weights equal a replay of the completed steps, and the model keeps working."""
    import _thread

    rng = np.random.default_rng(2)
    X = rng.standard_normal((200_000, 64)).astype(np.float32)
    y = rng.integers(0, 10, 200_000)
    model = bp.Sequential([bp.Dense(64, 128), bp.ReLU(), bp.Dense(128, 10)], seed=0)
    model.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=1e-3))
    replay = model.clone()
    replay.compile(bp.SoftmaxCrossEntropy(), bp.SGD(lr=1e-3))
    model.fit(X[:64], y[:64], epochs=1, batch_size=64, shuffle=False)  # warm up
    replay.train_step(X[:64], y[:64])
    timer = threading.Timer(0.05, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=1, batch_size=16, shuffle=False)
    timer.join()
    steps = model.optimizer.steps - 1
    assert 0 < steps < 200_000 // 16  # stopped inside the epoch
    for s in range(steps):
        replay.train_step(X[16 * s : 16 * s + 16], y[16 * s : 16 * s + 16])
    np.testing.assert_array_equal(model._theta, replay._theta)
    assert np.isfinite(model.train_step(X[:16], y[:16]))  # not left busy or broken


def test_restored_adam_state_continues_exactly():
    """Copying weights, m, v and the step count into a fresh model continues Adam exactly
    as the original (what save/load and pickling rely on)."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))

    def make():
        return bp.Sequential([bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2)], seed=0).compile(
            bp.MSE(), bp.Adam(lr=0.01)
        )

    a, b = make(), make()
    for _ in range(5):
        a.train_step(X, y)
    b._theta[...] = a._theta
    for key, buf in a.optimizer.state.items():
        b.optimizer.state[key][...] = buf
    b._executor.step_count = a._executor.step_count
    with pytest.raises(ValueError, match="step_count must be >= 0"):
        b._executor.step_count = -1
    for _ in range(3):
        assert a.train_step(X, y) == b.train_step(X, y)
    np.testing.assert_array_equal(a._theta, b._theta)
