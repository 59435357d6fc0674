"""The order in which a training epoch visits samples."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from lastexp.train.seeding import epoch_seed


class EpochSampler(Sampler[int]):
    """A permutation fixed by (seed, epoch), sharded across DDP ranks, startable part-way.

    torch's RandomSampler cannot start in the middle of an epoch and DistributedSampler does
    not shuffle per process group seed *and* skip; a run resumed mid-epoch after preemption
    must see exactly the batches the interrupted run had not seen yet.
    """

    def __init__(self, n: int, *, seed: int, shuffle: bool = True, rank: int = 0,
                 world: int = 1) -> None:
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """``skip``: samples of this rank already consumed in this epoch."""
        self.epoch, self.skip = epoch, skip

    def _shard(self) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        total = math.ceil(self.n / self.world) * self.world
        if total > self.n:  # pad by wrapping, as DistributedSampler does, so ranks stay in step
            order = torch.cat([order, order[: total - self.n]])
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self._shard()[self.skip :].tolist())

    def __len__(self) -> int:
        return max(math.ceil(self.n / self.world) - self.skip, 0)
