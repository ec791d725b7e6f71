"""fit(class_weight=...) (Keras's): each training row weighted by its class's weight,
against torch's CrossEntropyLoss(weight=...) (the same weighted mean) and against the same
weights given as sample_weight."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")


def _model(loss: bp.Loss, n_out: int) -> bp.Sequential:
    model = bp.Sequential([bp.Dense(4, 6), bp.Tanh(), bp.Dense(6, n_out)], dtype="float64", seed=0)
    return model.compile(loss, bp.SGD(lr=0.1))


def _data(n_classes: int):
    rng = np.random.default_rng(0)
    return rng.normal(size=(30, 4)), rng.integers(0, n_classes, 30)


def test_a_full_batch_epoch_equals_torch_cross_entropy_with_class_weights() -> None:
    X, y = _data(3)
    weights = {0: 2.0, 2: 0.25}  # class 1 is not named: weight 1
    model = _model(bp.SoftmaxCrossEntropy(), 3)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)
    ).double()
    W0, b0, W1, b1 = model.get_weights()
    with torch.no_grad():
        for lin, W, b in ((net[0], W0, b0), (net[2], W1, b1)):
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
    history = model.fit(X, y, epochs=1, batch_size=len(X), shuffle=False, class_weight=weights)
    criterion = torch.nn.CrossEntropyLoss(
        weight=torch.tensor([2.0, 1.0, 0.25], dtype=torch.float64)
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = criterion(net(torch.from_numpy(X)), torch.from_numpy(y))
    loss.backward()
    opt.step()
    assert history.loss[0] == pytest.approx(loss.item(), rel=1e-12)
    theirs = [p.detach().numpy() for lin in (net[0], net[2]) for p in (lin.weight, lin.bias)]
    for ours, t in zip(
        model.get_weights(), [theirs[0].T, theirs[1], theirs[2].T, theirs[3]], strict=True
    ):
        np.testing.assert_allclose(ours, t, rtol=1e-12, atol=1e-14)


def test_class_weight_times_sample_weight_equals_the_product_as_sample_weight() -> None:
    X, y = _data(2)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    a = _model(bp.BinaryCrossEntropy(), 1)
    b = _model(bp.BinaryCrossEntropy(), 1)
    ha = a.fit(
        X, y.astype(float), epochs=3, batch_size=7, class_weight={1: 3.0}, sample_weight=sw, seed=0
    )
    hb = b.fit(
        X,
        y.astype(float),
        epochs=3,
        batch_size=7,
        sample_weight=sw * np.where(y == 1, 3.0, 1.0),
        seed=0,
    )
    assert ha.loss == hb.loss
    np.testing.assert_array_equal(a.get_state()["weights"], b.get_state()["weights"])


def test_validation_data_is_not_weighted() -> None:
    X, y = _data(3)
    a, b = _model(bp.SoftmaxCrossEntropy(), 3), _model(bp.SoftmaxCrossEntropy(), 3)
    ha = a.fit(X, y, epochs=1, validation_data=(X, y), class_weight={0: 5.0}, seed=0)
    b.fit(X, y, epochs=1, class_weight={0: 5.0}, seed=0)
    assert ha.val_loss[0] == pytest.approx(b.evaluate(X, y), rel=1e-12)


@pytest.mark.parametrize(
    ("loss", "n_out", "class_weight", "error", "message"),
    [
        (bp.MSE(), 3, {0: 1.0}, ValueError, "needs integer class labels"),
        (bp.BinaryCrossEntropy(), 3, {0: 1.0}, ValueError, "needs integer class labels"),
        (bp.SoftmaxCrossEntropy(), 3, {3: 1.0}, ValueError, "class_weight's class must be <= 2"),
        (bp.SoftmaxCrossEntropy(), 3, {0: -1.0}, ValueError, r"class_weight\[0\] must be in"),
        (bp.SoftmaxCrossEntropy(), 3, {"a": 1.0}, TypeError, "must be an integer"),
        (bp.SoftmaxCrossEntropy(), 3, [1.0, 2.0], TypeError, "must be a dict"),
        (bp.SoftmaxCrossEntropy(), 3, {0: 0.0, 1: 0.0, 2: 0.0}, ValueError, "weight 0"),
    ],
)
def test_bad_class_weights_are_refused(loss, n_out, class_weight, error, message) -> None:
    X, y = _data(3)
    targets = y if isinstance(loss, bp.SoftmaxCrossEntropy) else np.zeros((len(X), n_out))
    with pytest.raises(error, match=message):
        _model(loss, n_out).fit(X, targets, class_weight=class_weight)
