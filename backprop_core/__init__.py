"""backprop_core: the compiled kernels behind ``backprop``.

Kernels take C-contiguous float32 or float64 arrays of one dtype, release the GIL, write
their outputs into arrays the caller allocated, and allocate nothing per call.
"""

try:
    from ._activations import ACTIVATIONS, activation_backward, activation_forward
except ModuleNotFoundError as e:  # pragma: no cover - only in an unbuilt source checkout
    import os

    raise ImportError(
        f"backprop_core was imported from {os.path.dirname(__file__)}, a source tree without "
        "its compiled extensions (often: `python -m ...` run from the repository root after a "
        "non-editable install). Install in place with `pip install -e .`, or run from "
        "another directory."
    ) from e
from ._blas import (
    blas_loaded,
    blas_source,
    blas_threads,
    set_blas_threads,
    small_gemm_threshold,
)
from ._checks import first_label_outside, first_nonfinite_row
from ._dense import dense_backward, dense_forward
from ._executor import Executor, Mode
from ._losses import (
    LOSSES,
    binary_cross_entropy_loss,
    huber_loss,
    mae_loss,
    mse_loss,
    poisson_loss,
    softmax_cross_entropy_loss,
)
from ._optim import adam_update, sgd_update

# Executor.step's modes: the loss only, also the gradients, also an optimizer update
MODE_LOSS, MODE_GRAD, MODE_UPDATE = Mode.MODE_LOSS, Mode.MODE_GRAD, Mode.MODE_UPDATE

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MODE_GRAD",
    "MODE_LOSS",
    "MODE_UPDATE",
    "Executor",
    "Mode",
    "activation_backward",
    "activation_forward",
    "adam_update",
    "binary_cross_entropy_loss",
    "blas_loaded",
    "blas_source",
    "blas_threads",
    "dense_backward",
    "dense_forward",
    "first_label_outside",
    "first_nonfinite_row",
    "huber_loss",
    "mae_loss",
    "mse_loss",
    "poisson_loss",
    "set_blas_threads",
    "sgd_update",
    "small_gemm_threshold",
    "softmax_cross_entropy_loss",
]
