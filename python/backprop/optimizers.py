"""Optimizers: hyper-parameters checked here, updates done in place by the core.

Semantics follow torch.optim (SGD's, Adam's and RMSprop's weight decay is L2 added to the
gradient of every parameter, weights and biases alike; AdamW's is decoupled). Every optimizer
takes clipnorm (the global L2 norm of all gradients, as torch.nn.utils.clip_grad_norm_ and
Keras's global_clipnorm) and clipvalue (each gradient clamped, as clip_grad_value_), applied
in that order to the raw gradients before the update. An optimizer serves one model;
compile() attaches it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from backprop_core import Executor

from ._validation import check_positive, check_range


class Optimizer:
    """Base class."""

    def __init__(
        self, lr: float, clipnorm: float | None = None, clipvalue: float | None = None
    ) -> None:
        who = type(self).__name__
        self._lr = check_positive(lr, f"{who}: lr")
        self.clipnorm = None if clipnorm is None else check_positive(clipnorm, f"{who}: clipnorm")
        self.clipvalue = (
            None if clipvalue is None else check_positive(clipvalue, f"{who}: clipvalue")
        )
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
        executor.set_clip(self.clipnorm or 0.0, self.clipvalue or 0.0)

    def _clip_config(self) -> dict[str, Any]:
        return {"clipnorm": self.clipnorm, "clipvalue": self.clipvalue}

    def _clip_repr(self) -> str:
        return "".join(f", {k}={v}" for k, v in self._clip_config().items() if v is not None)

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
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(lr, clipnorm, clipvalue)
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
            **self._clip_config(),
        }

    @property
    def buffer_names(self) -> tuple[str, ...]:
        return ("velocity",) if self.momentum != 0 else ()

    def _configure(self, executor: Executor) -> None:
        executor.set_sgd(self._lr, self.momentum, self.nesterov, self.weight_decay)

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self._lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
            f"weight_decay={self.weight_decay}{self._clip_repr()})"
        )


class Adam(Optimizer):
    """Adam with bias correction, as torch.optim.Adam (L2 weight decay, not AdamW)."""

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(lr, clipnorm, clipvalue)
        who = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (
            check_range(betas[0], f"{who}: betas[0]", 0.0, 1.0),
            check_range(betas[1], f"{who}: betas[1]", 0.0, 1.0),
        )
        self.eps = check_positive(eps, f"{who}: eps")
        self.weight_decay = check_range(weight_decay, f"{who}: weight_decay", 0.0, float("inf"))

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self._lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            **self._clip_config(),
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
            f"{type(self).__name__}(lr={self._lr}, betas={self.betas}, eps={self.eps}, "
            f"weight_decay={self.weight_decay}{self._clip_repr()})"
        )


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW (its default weight_decay
    0.01): w *= 1 - lr * weight_decay, then Adam's step from the gradient alone."""

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(lr, betas, eps, weight_decay, clipnorm=clipnorm, clipvalue=clipvalue)

    def _configure(self, executor: Executor) -> None:
        executor.set_adamw(self._lr, self.betas[0], self.betas[1], self.eps, self.weight_decay)


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop (defaults lr 0.01, alpha 0.99, eps 1e-8):

    d = g + weight_decay*w;  s = alpha*s + (1-alpha)*d**2;  centered: q = alpha*q +
    (1-alpha)*d and r = max(s - q**2, 0) (torch takes the root of a rounding-negative r
    and gets NaN); else r = s;  u = d / (sqrt(r) + eps);  momentum: b = momentum*b + u,
    w -= lr*b; else w -= lr*u.
    """

    def __init__(
        self,
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(lr, clipnorm, clipvalue)
        self.alpha = check_range(alpha, "RMSprop: alpha", 0.0, 1.0)
        self.eps = check_positive(eps, "RMSprop: eps")
        self.weight_decay = check_range(weight_decay, "RMSprop: weight_decay", 0.0, float("inf"))
        self.momentum = check_range(momentum, "RMSprop: momentum", 0.0, 1.0)
        self.centered = bool(centered)

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self._lr,
            "alpha": self.alpha,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "centered": self.centered,
            **self._clip_config(),
        }

    @property
    def buffer_names(self) -> tuple[str, ...]:
        return (
            ("square_avg",)
            + (("momentum_buffer",) if self.momentum != 0 else ())
            + (("grad_avg",) if self.centered else ())
        )

    def check_state(self, buffers: dict[str, NDArray[Any]], where: str) -> None:
        super().check_state(buffers, where)
        if "square_avg" in buffers and (buffers["square_avg"] < 0).any():
            raise ValueError(f"{where}: RMSprop's 'square_avg' must be >= 0")

    def _configure(self, executor: Executor) -> None:
        executor.set_rmsprop(
            self._lr, self.alpha, self.eps, self.weight_decay, self.momentum, self.centered
        )

    def __repr__(self) -> str:
        return (
            f"RMSprop(lr={self._lr}, alpha={self.alpha}, eps={self.eps}, "
            f"weight_decay={self.weight_decay}, momentum={self.momentum}, "
            f"centered={self.centered}{self._clip_repr()})"
        )


#: optimizer class name -> class: what a config may name (get_config / Sequential.from_config)
OPTIMIZERS: dict[str, type[Optimizer]] = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop)}


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
