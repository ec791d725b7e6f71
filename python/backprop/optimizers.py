"""Optimizers: hyper-parameters checked here, updates done in place by the core.

Semantics follow torch.optim (weight decay is L2 added to the gradient of every parameter,
weights and biases alike). An optimizer serves one model; compile() attaches it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from backprop_core import Executor

from ._validation import check_positive, check_range


class Optimizer:
    """Base class."""

    def __init__(self, lr: float) -> None:
        self._lr = check_positive(lr, f"{type(self).__name__}: lr")
        # the core executor this optimizer drives, from compile() on
        self._bound: Executor | None = None

    @property
    def lr(self) -> float:
        """Learning rate; may be changed between steps (it takes effect at the next one)."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        lr = check_positive(value, f"{type(self).__name__}: lr")
        if self._bound is not None:
            _check_fits({"lr": lr}, self._bound.dtype, type(self).__name__)
            self._bound.lr = lr
        self._lr = lr

    @property
    def steps(self) -> int:
        """Update steps taken since compile() (for a loaded model: since the original's)."""
        return 0 if self._bound is None else int(self._bound.step_count)

    @property
    def state(self) -> dict[str, NDArray[Any]]:
        """Optimizer buffers over the model's flat parameters: read-only views of the memory
        each step updates (Sequential.set_state writes them)."""
        if self._bound is None:
            return {}
        return {k: _read_only(v) for k, v in self._bound.optimizer_state.items()}

    @property
    def buffer_names(self) -> tuple[str, ...]:
        """Names of the buffers this optimizer keeps over the parameters (its state)."""
        raise NotImplementedError

    def check_state(self, buffers: dict[str, NDArray[Any]], where: str) -> None:
        """Refuse buffers this optimizer could not continue from: non-finite values (and,
        for Adam, a negative second moment). Names and shapes are the caller's to check."""
        for name, value in buffers.items():
            if not np.isfinite(value).all():
                raise ValueError(f"{where}: optimizer buffer {name!r} holds NaN or infinity")

    def _attach(self, executor: Executor) -> None:
        if self._bound is not None and self._bound is not executor:
            raise ValueError(
                f"{self!r} is already attached to another model; create one optimizer per model"
            )
        _check_fits(self.get_config(), executor.dtype, type(self).__name__)
        self._bound = executor
        self._configure(executor)

    def _configure(self, executor: Executor) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON types), lr being the current one."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD (dampening 0):

    d = g + weight_decay*w;  v = momentum*v + d;  w -= lr * (d + momentum*v if nesterov else v)
    """

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr)
        self.momentum = check_range(momentum, "SGD: momentum", 0.0, 1.0)
        if nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = check_range(weight_decay, "SGD: weight_decay", 0.0, float("inf"))

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self._lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }

    @property
    def buffer_names(self) -> tuple[str, ...]:
        return ("velocity",) if self.momentum != 0 else ()

    def _configure(self, executor: Executor) -> None:
        executor.set_sgd(self._lr, self.momentum, self.nesterov, self.weight_decay)

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self._lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
            f"weight_decay={self.weight_decay})"
        )


class Adam(Optimizer):
    """Adam with bias correction, as torch.optim.Adam (L2 weight decay, not AdamW)."""

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (
            check_range(betas[0], "Adam: betas[0]", 0.0, 1.0),
            check_range(betas[1], "Adam: betas[1]", 0.0, 1.0),
        )
        self.eps = check_positive(eps, "Adam: eps")
        self.weight_decay = check_range(weight_decay, "Adam: weight_decay", 0.0, float("inf"))

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self._lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }

    @property
    def buffer_names(self) -> tuple[str, ...]:
        return ("m", "v")

    def _configure(self, executor: Executor) -> None:
        executor.set_adam(self._lr, self.betas[0], self.betas[1], self.eps, self.weight_decay)

    def check_state(self, buffers: dict[str, NDArray[Any]], where: str) -> None:
        super().check_state(buffers, where)
        if "v" in buffers and (buffers["v"] < 0).any():
            raise ValueError(f"{where}: Adam's second moment 'v' must be >= 0")

    def __repr__(self) -> str:
        return (
            f"Adam(lr={self._lr}, betas={self.betas}, eps={self.eps}, "
            f"weight_decay={self.weight_decay})"
        )


#: optimizer class name -> class: what a config may name (get_config / Sequential.from_config)
OPTIMIZERS: dict[str, type[Optimizer]] = {cls.__name__: cls for cls in (SGD, Adam)}


def _read_only(a: NDArray[Any]) -> NDArray[Any]:
    """A view of `a` that cannot be made writable again (its base is a read-only buffer)."""
    view: NDArray[Any] = np.frombuffer(a.data.toreadonly(), dtype=a.dtype)
    return view.reshape(a.shape)


def _check_fits(hyper: dict[str, Any], dtype: np.dtype[Any], who: str) -> None:
    """Refuse a hyper-parameter that the model's dtype cannot hold: one that overflows it, or
    a positive one that rounds to 0 (an lr or eps of 1e-50 in float32)."""
    info = np.finfo(dtype)
    for name, value in hyper.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if abs(v) > float(info.max):
                raise ValueError(
                    f"{who}: {name}={v} does not fit the model's {dtype} (largest {info.max:.4g})"
                )
            if v != 0 and dtype.type(v) == 0:
                raise ValueError(
                    f"{who}: {name}={v} rounds to 0 in the model's {dtype} (smallest "
                    f"{info.smallest_subnormal:.4g})"
                )
