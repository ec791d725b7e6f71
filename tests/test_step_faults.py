"""Faults inside the compiled step: non-finite losses and gradients are refused before the
update, and Ctrl-C ends an epoch at a batch boundary. The reference for "the weights of the
last finite step" is a replay of the same batches by train_step on a copy."""

import copy
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
        theta = model.get_state()["weights"]
        velocity = model.optimizer.state["velocity"].copy()
        try:
            model.train_step(X, y)
        except FloatingPointError as e:
            assert "not finite" in str(e) and "no update" in str(e)
            break
        step += 1
        assert step < 100, "the learning rate never blew up"
    assert step > 0 and np.isfinite(theta).all()
    np.testing.assert_array_equal(model.get_state()["weights"], theta)
    np.testing.assert_array_equal(model.optimizer.state["velocity"], velocity)
    assert model.optimizer.steps == step


def test_nonfinite_gradient_with_finite_loss_is_refused():
    """float32 outputs near the float32 limit: the loss (summed in double) is finite but
    2 (y - t) overflows float32, so the gradient is inf."""
    model = bp.Sequential([bp.Dense(1, 1, weight_init="ones")], seed=0).compile(
        bp.MSE(), bp.SGD(lr=1e-3)
    )
    X = np.array([[3e38]], np.float32)
    theta = model.get_state()["weights"]
    with pytest.raises(FloatingPointError, match="not finite"):
        model.train_step(X, np.zeros((1, 1)))
    np.testing.assert_array_equal(model.get_state()["weights"], theta)


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
    weights = model.get_state()["weights"]
    assert 0 < steps < 16 and np.isfinite(weights).all()
    np.testing.assert_array_equal(weights, replay.get_state()["weights"])


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
    np.testing.assert_array_equal(model.get_state()["weights"], replay.get_state()["weights"])
    assert np.isfinite(model.train_step(X[:16], y[:16]))  # not left busy or broken


def test_restored_adam_state_continues_exactly():
    """Copying weights, m, v and the step count into a fresh model (set_state: what save/load
    and pickling rely on) continues Adam exactly as the original. Without the step count,
    Adam's bias correction differs and so do the weights."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))

    def make():
        return bp.Sequential([bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2)], seed=0).compile(
            bp.MSE(), bp.Adam(lr=0.01)
        )

    a, b, c = make(), make(), make()
    for _ in range(5):
        a.train_step(X, y)
    saved = a.get_state()
    assert saved["optimizer"]["steps"] == 5 and set(saved["optimizer"]["buffers"]) == {"m", "v"}
    fresh = b.get_state()
    bad = copy.deepcopy(saved)
    bad["optimizer"]["steps"] = -1
    with pytest.raises(ValueError, match=r"optimizer 'steps' must be in \[0, 2\*\*62\)"):
        b.set_state(bad)
    np.testing.assert_array_equal(b.get_state()["weights"], fresh["weights"])  # unchanged
    assert b.optimizer.steps == 0
    b.set_state(saved)
    assert b.optimizer.steps == a.optimizer.steps == 5
    no_steps = copy.deepcopy(saved)
    no_steps["optimizer"]["steps"] = 0
    c.set_state(no_steps)
    for _ in range(3):
        loss = a.train_step(X, y)
        assert b.train_step(X, y) == loss
        c.train_step(X, y)
    np.testing.assert_array_equal(a.get_state()["weights"], b.get_state()["weights"])
    for key, buf in a.optimizer.state.items():
        np.testing.assert_array_equal(b.optimizer.state[key], buf)
    assert not np.array_equal(c.get_state()["weights"], a.get_state()["weights"])
