"""Run from outside the source tree with only the built wheel installed: the packages import
from site-packages, ship their type information, and train a network."""

import pathlib

import numpy as np

import backprop as bp
import backprop_core

for pkg, extra in ((bp, []), (backprop_core, ["_dense.pyi", "_executor.pyi", "_blas.pxd"])):
    where = pathlib.Path(pkg.__file__).parent
    assert "site-packages" in str(where), f"{pkg.__name__} imported from {where}"
    for name in ["py.typed", *extra]:
        assert (where / name).is_file(), f"{pkg.__name__} wheel lacks {name}"

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
y = np.array([0.0, 1.0, 1.0, 0.0])
model = bp.Sequential([bp.Dense(2, 8), bp.Tanh(), bp.Dense(8, 1)], seed=0)
model.compile(loss=bp.BinaryCrossEntropy(), optimizer=bp.Adam(lr=0.05))
history = model.fit(X, y, epochs=300, batch_size=4)
assert history.loss[-1] < 0.05, history.loss[-1]
print(f"wheel OK: {pathlib.Path(backprop_core.__file__).parent}; XOR loss {history.loss[-1]:.4f}")
