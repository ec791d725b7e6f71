"""backprop: train multilayer perceptrons by backpropagation on a compiled core.

import backprop as bp
model = bp.Sequential([bp.Dense(2, 3), bp.Sigmoid(), bp.Dense(3, 1)], seed=0)
model.compile(loss=bp.MSE(), optimizer=bp.SGD(lr=0.5))
history = model.fit(X, y, epochs=10, batch_size=32)
"""

from .callbacks import (
    Callback,
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
from .model import Sequential
from .optimizers import SGD, Adam, Optimizer
from .serialization import ModelFileError
from .serialization import load_model as load
from .training import History

__version__ = "0.1.0"

__all__ = [
    "MAE",
    "MSE",
    "SGD",
    "Activation",
    "Adam",
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
]
