import enum
from collections.abc import Callable
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import NDArray

class Mode(enum.IntFlag):
    MODE_PREDICT = -1
    MODE_LOSS = 0
    MODE_GRAD = 1
    MODE_UPDATE = 2

class Executor:
    dtype: np.dtype[Any]
    theta: NDArray[Any]
    dtheta: NDArray[Any]
    lr: float
    def __init__(
        self, ops: list[tuple[Any, ...]], theta: NDArray[Any], dtheta: NDArray[Any]
    ) -> None: ...
    step_count: int
    @property
    def optimizer_state(self) -> dict[str, NDArray[Any]]: ...
    def claim(self) -> None: ...
    def release(self) -> None: ...
    def snapshot(self) -> tuple[NDArray[Any], dict[str, NDArray[Any]], int, int]: ...
    def restore(
        self,
        theta: NDArray[Any] | None = None,
        buffers: dict[str, NDArray[Any]] | None = None,
        step_count: int | None = None,
        rng_state: int | None = None,
    ) -> None: ...
    def parameters_changed(self) -> None: ...
    def set_loss(self, name: str, param: float = 1.0) -> None: ...
    training: bool
    def seed(self, value: int) -> None: ...
    @property
    def rng_state(self) -> int: ...
    def set_sgd(
        self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
    ) -> None: ...
    def set_adam(
        self, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float = 0.0
    ) -> None: ...
    def set_adamw(
        self, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float = 0.01
    ) -> None: ...
    def set_rmsprop(
        self,
        lr: float,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None: ...
    def set_clip(self, norm: float = 0.0, value: float = 0.0) -> None: ...
    def set_l2(self, alpha: float = 0.0) -> None: ...
    @overload
    def step(
        self,
        X: NDArray[Any],
        T: NDArray[Any],
        mode: int = ...,
        sample_weight: NDArray[Any] | None = None,
        exact: Literal[False] = False,
        out: NDArray[Any] | None = None,
    ) -> float: ...
    @overload
    def step(
        self, X: Any, T: Any, mode: int = ..., sample_weight: None = None, *, exact: Literal[True]
    ) -> float | None: ...
    def run_epoch(
        self,
        X: NDArray[Any],
        T: NDArray[Any],
        perm: NDArray[np.int64] | None,
        batch_size: int,
        sample_weight: NDArray[Any] | None = None,
        on_batch: Callable[[int, float], object] | None = None,
    ) -> float: ...
    def apply_gradient(self, grad: NDArray[Any], scale: float = 1.0) -> None: ...
    def evaluate(
        self,
        X: NDArray[Any],
        T: NDArray[Any],
        chunk: int = 1024,
        sample_weight: NDArray[Any] | None = None,
    ) -> float: ...
    def predict_exact(self, X: Any) -> NDArray[Any] | None: ...
    def predict(self, X: NDArray[Any], out: NDArray[Any], chunk: int = 1024) -> None: ...
