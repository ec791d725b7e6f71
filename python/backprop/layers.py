"""Layers: descriptions that a Sequential compiles into the core's ops.

A Dense layer's parameters are created by the Sequential that holds it (which owns the dtype
and the seed); its W and b are then read-only views into the model's flat parameter array,
the very memory the compiled training step reads and updates (the model writes them:
set_weights, set_state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ._validation import check_int, check_range

if TYPE_CHECKING:  # numpy.random loads at the first model, not at `import backprop`
    from numpy.random import Generator

Array = NDArray[Any]

# Each initializer draws a float64 (fan_in, fan_out)-aware sample; the model casts it to its
# dtype, so float32 and float64 models with one seed start from the same (rounded) weights.
Initializer = Callable[["Generator", tuple[int, ...], int, int], NDArray[np.float64]]

INITIALIZERS: dict[str, Initializer] = {
    # He et al. 2015: N(0, 2 / fan_in), for ReLU-family layers
    "he": lambda rng, shape, fan_in, fan_out: rng.normal(0.0, np.sqrt(2.0 / fan_in), shape),
    # Glorot & Bengio 2010: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    "glorot": lambda rng, shape, fan_in, fan_out: rng.uniform(
        -np.sqrt(6.0 / (fan_in + fan_out)), np.sqrt(6.0 / (fan_in + fan_out)), shape
    ),
    "normal": lambda rng, shape, fan_in, fan_out: rng.normal(0.0, 0.01, shape),
    # PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    "uniform": lambda rng, shape, fan_in, fan_out: rng.uniform(
        -1.0 / np.sqrt(fan_in), 1.0 / np.sqrt(fan_in), shape
    ),
    "ones": lambda rng, shape, fan_in, fan_out: np.ones(shape),
    "zeros": lambda rng, shape, fan_in, fan_out: np.zeros(shape),
}


class Layer:
    """Base class. A layer describes one op of the compiled network."""

    def parameters(self) -> list[Array]:
        """The layer's parameter arrays (views into the model's memory)."""
        return []

    def clone(self) -> Layer:
        """A fresh, unattached layer with the same configuration."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON types): type(self)(**config) rebuilds
        the layer (model.save stores it)."""
        return {}

    def _op(self, width: int) -> tuple[Any, ...]:
        raise NotImplementedError


class Dense(Layer):
    """Fully connected layer: Y = X @ W + b.   X:(n, in) W:(in, out) b:(out,) Y:(n, out)

    weight_init, bias_init: one of "he", "glorot" (the default for weights), "normal"
    (std 0.01), "uniform" (PyTorch's Linear default), "ones", "zeros" (the default for b).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        weight_init: str = "glorot",
        bias_init: str = "zeros",
    ) -> None:
        self.in_features = check_int(in_features, "Dense: in_features", 1)
        self.out_features = check_int(out_features, "Dense: out_features", 1)
        for name, init in (("weight_init", weight_init), ("bias_init", bias_init)):
            if init not in INITIALIZERS:
                raise ValueError(
                    f"Dense: {name} must be one of {sorted(INITIALIZERS)}, got {init!r}"
                )
        self.weight_init = weight_init
        self.bias_init = bias_init
        self._views: tuple[Array, Array] | None = None
        self._grads: tuple[Array, Array] | None = None
        self._offsets = (0, 0)

    @property
    def n_params(self) -> int:
        return self.in_features * self.out_features + self.out_features

    def _view(self, i: int) -> Array:
        if self._views is None:
            raise RuntimeError(
                f"{self!r} has no parameters until it is part of a Sequential "
                "(the model owns the dtype and the seed)"
            )
        return self._views[i]

    @property
    def W(self) -> Array:
        """Weights (in_features, out_features): a read-only view of the memory the training
        step updates (model.set_weights writes it)."""
        return self._view(0)

    @property
    def b(self) -> Array:
        """Bias (out_features,): a read-only view of the memory the training step updates."""
        return self._view(1)

    @property
    def dW(self) -> Array:
        """Gradient of the loss for W from the model's last gradients() call: a read-only
        copy (train_step and fit do not expose gradients; call model.gradients(X, y))."""
        return self._gradient(0)

    @property
    def db(self) -> Array:
        """Gradient of the loss for b from the model's last gradients() call (read-only)."""
        return self._gradient(1)

    def _gradient(self, i: int) -> Array:
        if self._grads is None:
            raise RuntimeError(
                f"{self!r}.dW/.db hold the result of model.gradients(X, y); call it first "
                "(train_step and fit do not keep gradients)"
            )
        return self._grads[i]

    def _record_gradients(self, dW: Array, db: Array) -> None:
        """Keep read-only copies of a gradients() result (the model calls this)."""
        self._grads = (dW.copy(), db.copy())
        for g in self._grads:
            g.flags.writeable = False

    def parameters(self) -> list[Array]:
        return [self.W, self.b]

    def get_config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "weight_init": self.weight_init,
            "bias_init": self.bias_init,
        }

    def clone(self) -> Dense:
        return Dense(
            self.in_features,
            self.out_features,
            weight_init=self.weight_init,
            bias_init=self.bias_init,
        )

    def _attach(self, theta: Array, readonly: Array, offset: int, rng: np.random.Generator) -> int:
        """Take the parameter slice at `offset` of theta, initialise it, keep read-only views
        of it from `readonly` (theta's memory, through a read-only buffer), return the next
        offset."""
        if self._views is not None:
            raise ValueError(
                f"{self!r} already belongs to a model; build each model from new layers "
                "(layer.clone() copies the configuration)"
            )
        n_in, n_out = self.in_features, self.out_features
        w_end = offset + n_in * n_out
        b_end = w_end + n_out
        W, b = theta[offset:w_end].reshape(n_in, n_out), theta[w_end:b_end]
        W[...] = INITIALIZERS[self.weight_init](rng, (n_in, n_out), n_in, n_out)
        b[...] = INITIALIZERS[self.bias_init](rng, (n_out,), n_in, n_out)
        # read-only, for good (their base is a read-only buffer): the model writes them
        # (set_weights, set_state) and so knows of every change (its overflow guard carries
        # bounds of the weights from step to step)
        self._views = (readonly[offset:w_end].reshape(n_in, n_out), readonly[w_end:b_end])
        self._offsets = (offset, w_end)
        return b_end

    def _op(self, width: int) -> tuple[Any, ...]:
        return ("dense", self.in_features, self.out_features, *self._offsets)

    def __repr__(self) -> str:
        extra = "" if self.weight_init == "glorot" else f", weight_init={self.weight_init!r}"
        extra += "" if self.bias_init == "zeros" else f", bias_init={self.bias_init!r}"
        return f"Dense({self.in_features}, {self.out_features}{extra})"


class Activation(Layer):
    """An element-wise (or, for Softmax, row-wise) activation; it has no parameters."""

    name = ""

    def clone(self) -> Activation:
        return type(self)()

    def _op(self, width: int) -> tuple[Any, ...]:
        return (self.name, width, 0.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sigmoid(Activation):
    """1 / (1 + exp(-z))"""

    name = "sigmoid"


class ReLU(Activation):
    """max(z, 0); derivative 0 at z = 0 and NaN passed through (as PyTorch)."""

    name = "relu"


class Tanh(Activation):
    """tanh(z)"""

    name = "tanh"


class Identity(Activation):
    """z: the linear activation."""

    name = "identity"


class Softmax(Activation):
    """exp(z_j) / sum_k exp(z_k) per row. For classification, end the network with Dense and
    use SoftmaxCrossEntropy, which applies softmax itself (from the logits, stably)."""

    name = "softmax"


class LeakyReLU(Activation):
    """z if z > 0 else alpha * z, alpha >= 0; derivative alpha at z = 0 (as PyTorch)."""

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = check_range(alpha, "LeakyReLU: alpha", 0.0, 1.0, hi_open=False)

    def clone(self) -> LeakyReLU:
        return LeakyReLU(self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def _op(self, width: int) -> tuple[Any, ...]:
        return (self.name, width, self.alpha)

    def __repr__(self) -> str:
        return f"LeakyReLU(alpha={self.alpha})"


class Dropout(Layer):
    """Inverted dropout: in training, each value is zeroed with probability p and the rest
    are scaled by 1 / (1 - p), so predict needs no rescaling. Active in train_step,
    gradients and fit while the model is in training mode (model.train(), the default);
    predict, evaluate and model.eval() pass values through unchanged. 0 <= p < 1.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_range(p, "Dropout: p", 0.0, 1.0)

    def clone(self) -> Dropout:
        return Dropout(self.p)

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p}

    def _op(self, width: int) -> tuple[Any, ...]:
        return ("dropout", width, self.p)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


#: layer class name -> class: what a config may name (get_config / Sequential.from_config)
LAYERS: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (Dense, Dropout, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh)
}
