"""Losses: mean loss and its gradient with respect to the network output, from the core.

The gradient carries the 1/n factor of the mean exactly once. SoftmaxCrossEntropy and
BinaryCrossEntropy take the network's raw outputs (logits): the model ends with a Dense layer
and the loss applies softmax / sigmoid itself, stably and fused with its gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

import backprop_core as core

from ._validation import as_predictions, as_targets, check_positive

Array = NDArray[Any]


class Loss:
    """Base class: `name` is the core's loss name."""

    name = ""
    #: the loss's parameter in the core (Huber's delta)
    param = 1.0
    #: the output activation this loss applies itself (a final layer of this kind is refused)
    fused_activation = ""

    def value_and_grad(self, y_pred: Any, y_true: Any) -> tuple[float, Array]:
        """(mean loss, dL/dy_pred) for y_pred:(n, m) float32/float64 and targets y_true."""
        Y = self._outputs(y_pred)
        T = as_targets(y_true, self.name, Y.shape[0], Y.shape[1], Y.dtype, type(self).__name__)
        G = np.empty_like(Y)
        return self._kernel(Y, T, G), G

    def __call__(self, y_pred: Any, y_true: Any) -> float:
        """The mean loss."""
        Y = self._outputs(y_pred)
        T = as_targets(y_true, self.name, Y.shape[0], Y.shape[1], Y.dtype, type(self).__name__)
        return self._kernel(Y, T, None)

    def core_param(self, n_outputs: int) -> float:
        """The core's loss parameter for a network of n_outputs outputs."""
        return self.param

    def link(self, outputs: Array) -> Array:
        """Network outputs -> probabilities: the activation the loss applies itself."""
        if not self.fused_activation:
            raise TypeError(f"{type(self).__name__} has no probability link; use model.predict")
        P = np.empty_like(outputs)
        core.activation_forward(self.fused_activation, outputs, P)
        return P

    def _kernel(self, Y: Array, T: Array, G: Array | None) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON types), for model.save."""
        return {}

    def _outputs(self, y_pred: Any) -> Array:
        return as_predictions(y_pred, type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSE(Loss):
    """Squared error, in the convention a user brings:

    reduction="mean" (default): the mean over all elements, mean((y_pred - y)**2), as
    torch.nn.MSELoss() and Keras; "sum_outputs": summed over each row's outputs, then the
    mean over rows, mean(sum_j (y_pred - y)**2) (the cost of the seed articles);
    half=True halves either: MSE(half=True) is scikit-learn's squared_error, and
    MSE("sum_outputs", half=True) the classic step-by-step example's E = 1/2 sum (t - o)**2.
    The gradient follows the convention, so an article's learning rate needs no rescaling.
    """

    name = "mse"
    REDUCTIONS = ("mean", "sum_outputs")

    def __init__(self, reduction: str = "mean", half: bool = False) -> None:
        if reduction not in self.REDUCTIONS:
            raise ValueError(
                f"MSE: reduction must be one of {list(self.REDUCTIONS)}, got {reduction!r}"
            )
        if not isinstance(half, bool):
            raise TypeError(f"MSE: half must be a bool, got {half!r}")
        self.reduction = reduction
        self.half = half

    def core_param(self, n_outputs: int) -> float:
        """The multiple of the mean over all elements: n_outputs for "sum_outputs", 1/2 for
        half."""
        return (n_outputs if self.reduction == "sum_outputs" else 1) * (0.5 if self.half else 1)

    def _kernel(self, Y: Array, T: Array, G: Array | None) -> float:
        return float(core.mse_loss(Y, T, G, scale=self.core_param(Y.shape[1])))

    def get_config(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "half": self.half}

    def __repr__(self) -> str:
        if self.reduction == "mean" and not self.half:
            return "MSE()"
        return f"MSE(reduction={self.reduction!r}, half={self.half})"


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of softmax(logits) against integer class labels, mean over the batch,
    as torch.nn.CrossEntropyLoss(). y: (n_samples,) labels in [0, n_classes)."""

    name = "softmax_cross_entropy"
    fused_activation = "softmax"

    def _kernel(self, Y: Array, T: Array, G: Array | None) -> float:
        return float(core.softmax_cross_entropy_loss(Y, T, G))


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy from logits, mean over all elements, as
    torch.nn.BCEWithLogitsLoss(). y: targets in [0, 1], (n_samples,) or (n_samples, n_out)."""

    name = "binary_cross_entropy"
    fused_activation = "sigmoid"

    def _kernel(self, Y: Array, T: Array, G: Array | None) -> float:
        return float(core.binary_cross_entropy_loss(Y, T, G))


class MAE(Loss):
    """Mean absolute error over all elements: mean(|y_pred - y|), as torch.nn.L1Loss();
    gradient sign(y_pred - y) / size, 0 where they are equal."""

    name = "mae"

    def _kernel(self, Y: Array, T: Array, G: Array | None) -> float:
        return float(core.mae_loss(Y, T, G))


class Huber(Loss):
    """Huber loss, mean over all elements, as torch.nn.HuberLoss(delta=delta): for
    d = y_pred - y, d**2 / 2 where |d| <= delta, else delta * (|d| - delta / 2)."""

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        self.param = self.delta = check_positive(delta, "Huber: delta")

    def _kernel(self, Y: Array, T: Array, G: Array | None) -> float:
        return float(core.huber_loss(Y, T, G, delta=self.delta))

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def __repr__(self) -> str:
        return f"Huber(delta={self.delta})"


class Poisson(Loss):
    """Half the Poisson deviance of counts or rates y >= 0 against the means exp(z) of the
    network's outputs z (a log link, as scikit-learn's MLPRegressor(loss="poisson")):
    exp(z) - y z + y log y - y per element; reduction="mean" (default) averages over all
    elements, "sum_outputs" sums each row's outputs and averages over rows (scikit-learn's
    poisson_loss). predict gives z; predict_proba gives the means exp(z)."""

    name = "poisson"

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in MSE.REDUCTIONS:
            raise ValueError(
                f"Poisson: reduction must be one of {list(MSE.REDUCTIONS)}, got {reduction!r}"
            )
        self.reduction = reduction

    def core_param(self, n_outputs: int) -> float:
        return n_outputs if self.reduction == "sum_outputs" else 1

    def link(self, outputs: Array) -> Array:
        """The predicted means exp(z)."""
        with np.errstate(over="ignore"):
            return np.exp(outputs)

    def _kernel(self, Y: Array, T: Array, G: Array | None) -> float:
        return float(core.poisson_loss(Y, T, G, scale=self.core_param(Y.shape[1])))

    def get_config(self) -> dict[str, Any]:
        return {"reduction": self.reduction}

    def __repr__(self) -> str:
        return "Poisson()" if self.reduction == "mean" else f"Poisson({self.reduction!r})"


#: loss class name -> class: what a config may name (get_config / Sequential.from_config)
LOSSES: dict[str, type[Loss]] = {
    cls.__name__: cls for cls in (MSE, MAE, Huber, SoftmaxCrossEntropy, BinaryCrossEntropy, Poisson)
}
