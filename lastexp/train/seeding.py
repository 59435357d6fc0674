"""Where a run's randomness comes from: the seed, and per epoch (seed, epoch) alone, so that a
run resumed at an epoch boundary replays exactly what the uninterrupted run drew."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based; ``epochs`` itself seeds the final phase)."""
    return (seed * 1_000_003 + epoch * 7919) % 2**63
