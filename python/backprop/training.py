"""Training bookkeeping: the History that fit() returns and its per-epoch progress lines."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class History:
    """Per-epoch record of a fit() call (index i is epoch i + 1)."""

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def as_dict(self) -> dict[str, list[float]]:
        out = {"loss": list(self.loss), "epoch_time": list(self.epoch_time)}
        if self.val_loss:
            out["val_loss"] = list(self.val_loss)
        return out


def report_epoch(
    history: History, epoch: int, epochs: int, n_samples: int, stream: TextIO | None = None
) -> None:
    """One line per epoch: works the same in a terminal and in a CI log."""
    seconds = history.epoch_time[-1]
    parts = [f"epoch {epoch}/{epochs}", f"loss {history.loss[-1]:.6g}"]
    if history.val_loss:
        parts.append(f"val_loss {history.val_loss[-1]:.6g}")
    rate = n_samples / seconds if seconds > 0 else float("inf")
    parts.append(f"{seconds * 1e3:.1f} ms ({rate:,.0f} samples/s)")
    print(" - ".join(parts), file=stream or sys.stdout, flush=True)
