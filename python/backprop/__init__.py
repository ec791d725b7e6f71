"""backprop: train multilayer perceptrons by backpropagation on a compiled core.

import backprop as bp
model = bp.Sequential([bp.Dense(2, 3), bp.Sigmoid(), bp.Dense(3, 1)], seed=0)
model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=0.5))
history = model.fit(X, y, epochs=10, batch_size=32)
"""

import os

from . import distributed as distributed  # bp.distributed.DataParallel (mpi4py on use)
from .callbacks import (
    CosineDecay,
    CSVLogger,
    EarlyStopping,
    ExponentialDecay,
    LearningRateScheduler,
    LinearWarmup,
    ModelCheckpoint,
    ReduceLROnPlateau,
    StepDecay,
)
from .explain import Explanation, explain
from .gradcheck import gradcheck
from .interop import from_torch
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
from .losses import MAE, MSE, BinaryCrossEntropy, Huber, Loss, Poisson, SoftmaxCrossEntropy
from .model import Sequential, load
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .serialization import ModelFileError
from .threads import get_num_threads, num_threads, set_num_threads
from .training import Callback, History

__all__ = [
    "MAE",
    "MSE",
    "SGD",
    "Activation",
    "Adam",
    "AdamW",
    "BinaryCrossEntropy",
    "CSVLogger",
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
    "LinearWarmup",
    "Loss",
    "ModelCheckpoint",
    "ModelFileError",
    "Optimizer",
    "Poisson",
    "RMSprop",
    "ReLU",
    "ReduceLROnPlateau",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "StepDecay",
    "Tanh",
    "explain",
    "from_torch",
    "get_num_threads",
    "gradcheck",
    "load",
    "num_threads",
    "save",
    "set_num_threads",
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
