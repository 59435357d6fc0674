"""Per-epoch learning-rate schedules of the training recipe, built from torch's own schedulers.

The scheduler steps once per epoch, after validation (the pipeline-improvements guide), so
``lr(epoch)`` is the rate used throughout that epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    LambdaLR,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    name: str,
    epochs: int,
    lr: float,
    warmup_epochs: int = 5,
    warmup_start_lr: float = 0.01,
    min_lr: float = 1e-4,
    restart_period: int = 30,
    restart_mult: int = 1,
    milestones: Sequence[int] = (50, 65),
    gamma: float = 0.1,
) -> LRScheduler:
    """Warmup, then the main schedule (the training recipe's ``SequentialLR(LinearLR, main)``):

    epoch ``e < warmup_epochs`` trains at ``warmup_start_lr + (lr - warmup_start_lr) * e /
    warmup_epochs`` (torch's ``LinearLR(start_factor=warmup_start_lr / lr,
    total_iters=warmup_epochs)``: 0.01, 0.028, 0.046, 0.064, 0.082 for the recipe's five
    epochs), and epoch ``warmup_epochs`` is the main schedule's first, at the peak ``lr``:

    - ``cosine_warmup``: CosineAnnealingLR from ``lr`` to ``min_lr`` on the last epoch;
    - ``cosine_warmup_restart``: SGDR, CosineAnnealingWarmRestarts(T_0, T_mult, eta_min);
    - ``multistep_warmup``: MultiStepLR with ``milestones`` counted in absolute epochs;
    - ``cosine``: the pipeline-improvements guide's CosineAnnealingLR(T_max=epochs,
      eta_min=min_lr), no warmup.
    """
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=max(epochs, 1), eta_min=min_lr)
    warm = min(warmup_epochs, max(epochs - 1, 0))
    after = max(epochs - warm, 1)
    if name == "cosine_warmup":
        main: LRScheduler = CosineAnnealingLR(optimizer, T_max=max(after - 1, 1), eta_min=min_lr)
    elif name == "cosine_warmup_restart":
        main = CosineAnnealingWarmRestarts(
            optimizer, T_0=restart_period, T_mult=restart_mult, eta_min=min_lr
        )
    elif name == "multistep_warmup":
        main = MultiStepLR(optimizer, milestones=[m - warm for m in milestones], gamma=gamma)
    else:
        raise ValueError(
            f"scheduler.name={name!r} is not one of cosine_warmup, cosine_warmup_restart, "
            "multistep_warmup, cosine"
        )
    if warm == 0:
        return main
    # Linear warmup, LinearLR's closed form: torch's LinearLR cannot start from 0 (its
    # start_factor must be > 0, and warming up from 0 is a recipe of the notes), so the one rule
    # goes through LambdaLR; for a start > 0 it equals LinearLR's lr to rounding (tests compare
    # with torch's own SequentialLR(LinearLR, ...)).
    start = warmup_start_lr / lr
    if not 0.0 <= start <= 1.0:
        raise ValueError(f"scheduler.warmup_start_lr={warmup_start_lr:g} must not exceed the "
                         f"peak optimizer.lr={lr:g}")
    warmup: LRScheduler = LambdaLR(optimizer, partial(warmup_factor, start=start, epochs=warm))
    return SequentialLR(optimizer, [warmup, main], milestones=[warm])


def warmup_factor(epoch: int, *, start: float, epochs: int) -> float:
    """The warmup's multiple of the peak lr in ``epoch``: ``start + (1 - start) * epoch /
    epochs``, the peak from ``epochs`` on (LinearLR's ``total_iters``)."""
    return start + (1.0 - start) * min(epoch, epochs) / epochs
