"""backprop: train multilayer perceptrons by backpropagation on a compiled core.

import backprop as bp
model = bp.Sequential([bp.Dense(2, 3), bp.Sigmoid(), bp.Dense(3, 1)], seed=0)
model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=0.5))
history = model.fit(X, y, epochs=10, batch_size=32)
"""

import os

from .callbacks import (
    CosineDecay,
    EarlyStopping,
    ExponentialDecay,
    LearningRateScheduler,
    ModelCheckpoint,
    StepDecay,
)
from .explain import Explanation, explain
from .gradcheck import gradcheck
from .layers import (
    Activation,
    Dense,
    Dropout,
    Identity,
    Layer,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import MAE, MSE, BinaryCrossEntropy, Huber, Loss, SoftmaxCrossEntropy
from .model import Sequential, load
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .serialization import ModelFileError
from .training import Callback, History

__all__ = [
    "MAE",
    "MSE",
    "SGD",
    "Activation",
    "Adam",
    "AdamW",
    "BinaryCrossEntropy",
    "Callback",
    "CosineDecay",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Explanation",
    "ExponentialDecay",
    "History",
    "Huber",
    "Identity",
    "Layer",
    "LeakyReLU",
    "LearningRateScheduler",
    "Loss",
    "ModelCheckpoint",
    "ModelFileError",
    "Optimizer",
    "RMSprop",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "StepDecay",
    "Tanh",
    "explain",
    "gradcheck",
    "load",
    "save",
]


def save(model: Sequential, path: str | os.PathLike[str]) -> None:
    """Write `model` to `path` (model.save(path)); backprop.load(path) reads it back."""
    model.save(path)


def __getattr__(name: str) -> str:
    # __version__ comes from the installed metadata (pyproject.toml holds the one version
    # string); read on first use, since importing importlib.metadata costs ~15 ms
    if name == "__version__":
        from importlib import metadata

        return metadata.version("backprop-core")
    raise AttributeError(f"module 'backprop' has no attribute {name!r}")
