"""Numbers too large for the core are a ValueError or TypeError naming the argument, never an
OverflowError from deep inside."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def _model() -> bp.Sequential:
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float64", seed=0)
    return model.compile(bp.MSE(), bp.SGD(lr=0.1))


X, Y = np.ones((4, 3)), np.zeros((4, 2))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda m: m.fit(X, Y, batch_size=2**63), "batch_size"),
        (lambda m: m.fit(X, Y, batch_size=10**400), "batch_size"),
        (lambda m: m.fit(X, Y, epochs=2**63), "epochs"),
        (lambda m: m.fit(X, Y, verbose=2**64), "verbose"),
        (lambda m: bp.SGD(lr=10**400), "lr"),
        (lambda m: bp.Adam(lr=0.1, eps=-(10**400)), "eps"),
        (lambda m: bp.SGD(lr=0.1, momentum=10**309), "momentum"),
        (lambda m: bp.Huber(delta=10**400), "delta"),
        (lambda m: bp.Dense(2**63, 2), "in_features"),
        (lambda m: bp.Dropout(p=10**400), "p"),
        (lambda m: bp.EarlyStopping(patience=2**64), "patience"),
        (lambda m: bp.StepDecay(step_size=2**64), "step_size"),
        (lambda m: setattr(m.optimizer, "lr", 10**400), "lr"),
    ],
)
def test_huge_numbers_are_refused_naming_the_argument(call, name) -> None:
    model = _model()
    with pytest.raises((ValueError, TypeError), match=name) as info:
        call(model)
    assert not isinstance(info.value, OverflowError)


def test_a_huge_seed_is_an_entropy_value_as_numpy_takes_it() -> None:
    a = bp.Sequential([bp.Dense(3, 2)], seed=2**100)
    b = bp.Sequential([bp.Dense(3, 2)], seed=2**100)
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
