"""Stochastic weight averaging (the training plan §7, ablation B13) over ``torch.optim.swa_utils``.

The average starts at ``training.swa_start`` (an epoch index, 0-based: the weights after
epoch ``swa_start + 1`` are the first averaged). BatchNorm statistics of the averaged weights
are unknown until :meth:`SWATracker.finalize` recomputes them with one pass over the training
inputs, through the same transform the model trains on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn


class _Inputs:
    """(x, y) batches -> transformed x on ``device``: what ``update_bn`` expects to iterate."""

    def __init__(self, batches: Iterable, transform: Callable | None, device: torch.device):
        self.batches, self.transform, self.device = batches, transform, device

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for batch in self.batches:
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            x = x.to(self.device)
            yield self.transform(x) if self.transform is not None else x


class SWATracker:
    """Keeps the running average of ``model``'s weights from ``start_epoch`` on."""

    def __init__(self, model: nn.Module, start_epoch: int) -> None:
        self.model = model
        self.start_epoch = int(start_epoch)
        self.averaged = AveragedModel(model)
        self.finalized = False

    @property
    def n_averaged(self) -> int:
        return int(self.averaged.n_averaged)

    def update(self, epoch: int) -> bool:
        """Call after training epoch ``epoch`` (0-based); averages when ``epoch >= start``."""
        if epoch < self.start_epoch:
            return False
        self.averaged.update_parameters(self.model)
        self.finalized = False
        return True

    @torch.no_grad()
    def finalize(
        self,
        batches: Iterable,
        transform: Callable[[torch.Tensor], torch.Tensor] | None,
        device: torch.device | str,
    ) -> nn.Module:
        """Recompute BN statistics of the averaged weights; returns the averaged model (a
        plain module with the trained model's architecture and state-dict keys)."""
        if self.n_averaged == 0:
            raise RuntimeError(
                f"SWA averaged no epoch (training.swa_start={self.start_epoch}); lower it"
            )
        update_bn(_Inputs(batches, transform, torch.device(device)), self.averaged)
        self.averaged.module.eval()
        self.finalized = True
        return self.averaged.module

    def state_dict(self) -> dict[str, Any]:
        return {"start_epoch": self.start_epoch, "averaged": self.averaged.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.start_epoch = int(state["start_epoch"])
        self.averaged.load_state_dict(state["averaged"])
        self.finalized = False


__all__ = ["SWATracker"]
