"""Per-epoch learning-rate schedules of the training recipe, built from torch's own schedulers.

The scheduler steps once per epoch, after validation (the pipeline-improvements guide), so
``lr(epoch)`` is the rate used throughout that epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    """Warmup (LinearLR, ``warmup_start_lr`` -> ``lr`` reached on the last warmup epoch), then:

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
    # Linear warmup: epoch 0 trains at warmup_start_lr, epoch warm-1 at lr. torch's LinearLR
    # cannot start from 0 (its start_factor must be > 0, and warming up from 0 is a recipe of
    # the notes), so its closed form goes through LambdaLR.
    start = warmup_start_lr / lr if warm > 1 else 1.0  # one warmup epoch trains at lr
    if not 0.0 <= start <= 1.0:
        raise ValueError(f"scheduler.warmup_start_lr={warmup_start_lr:g} must not exceed the "
                         f"peak optimizer.lr={lr:g}")
    steps = max(warm - 1, 1)

    def factor(epoch: int) -> float:
        return start + (1.0 - start) * min(epoch, steps) / steps

    warmup: LRScheduler = LambdaLR(optimizer, factor)
    return SequentialLR(optimizer, [warmup, main], milestones=[warm])
