"""Early stopping on a validation series (the trainer practice of the other teams' guides:
stop when validation accuracy or loss has not improved by ``min_delta`` for ``patience``
epochs).

The state is rebuilt from the run's history on resume (:meth:`EarlyStopping.replay`), so a
resumed run stops at the same epoch as an uninterrupted one and checkpoints need no extra key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MONITORS = {"val_top1": "max", "val_loss": "min"}


@dataclass
class EarlyStopping:
    patience: int | None  # None: never stop
    monitor: str = "val_top1"
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = 0  # 1-based epoch of the last improvement
    epochs: int = 0  # epochs seen

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ValueError(f"training.early_stopping_monitor={self.monitor} is not one of "
                             f"{', '.join(MONITORS)}")

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if MONITORS[self.monitor] == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, row: Mapping[str, float]) -> None:
        """After each epoch, with that epoch's history row."""
        self.epochs += 1
        value = float(row[self.monitor])
        if self._improves(value):
            self.best, self.best_epoch = value, self.epochs

    def replay(self, rows: Iterable[Mapping[str, float]]) -> EarlyStopping:
        for row in rows:
            self.update(row)
        return self

    @property
    def should_stop(self) -> bool:
        """True when ``patience`` epochs passed without an improvement."""
        return (self.patience is not None and self.best is not None
                and self.epochs - self.best_epoch >= self.patience)


__all__ = ["MONITORS", "EarlyStopping"]
