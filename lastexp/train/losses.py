"""The training losses: cross-entropy, plus InfoGCN's information-bottleneck term when
``training.ib_loss_weight > 0`` (the training recipe). Distillation's loss is
:class:`lastexp.train.distill.Distiller`; :func:`lastexp.build.loss` picks between them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lastexp.train.fastpath import unwrap

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def classification_loss(label_smoothing: float, ib_weight: float) -> LossFn:
    """``loss_fn(model, x, y) -> (loss, logits)``: CE with label smoothing (in fp32 under
    autocast), plus ``ib_weight`` times the IB head's loss on the pooled features."""
    ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        if ib_weight > 0:
            logits, feats = model(x, return_features=True)
            return ce(logits.float(), y) + ib_weight * unwrap(model).ib_loss(feats, y), logits
        logits = model(x)
        return ce(logits.float(), y), logits

    return loss_fn
