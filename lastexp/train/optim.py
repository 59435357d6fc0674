"""Optimizers with the training recipe's weight-decay exclusions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

# the one rule of the training recipe's weight-decay exclusions
from lastexp.models.backbone import no_weight_decay_names


def no_decay_names(model: nn.Module, extra: Iterable[str] = ()) -> set[str]:
    """Names of ``model``'s parameters that get weight decay 0 (:func:`no_weight_decay_names`:
    biases, norm layers, the structural parameters and zero-initialised gates), plus ``extra``
    and what a model outside lastexp's families declares in ``no_weight_decay()``."""
    names = set(extra) | no_weight_decay_names(model)
    declared = getattr(model, "no_weight_decay", None)
    if callable(declared):
        names |= set(declared())
    return names


def param_groups(model: nn.Module, weight_decay: float,
                 extra: Sequence[nn.Module] = ()) -> list[dict]:
    """Two groups: decayed weights and the exclusions of :func:`no_decay_names`, over ``model``
    and the ``extra`` modules trained with it (a distillation projector: its biases are not
    decayed either)."""
    decay, no_decay = [], []
    for module in (model, *extra):
        skip = no_decay_names(module)
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if name in skip else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module,
    *,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    nesterov: bool = True,
    betas: Sequence[float] = (0.9, 0.999),
    extra: Sequence[nn.Module] = (),
) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW over ``model`` and ``extra`` (:func:`param_groups`)."""
    groups = param_groups(model, weight_decay, extra)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
    raise ValueError(f"optimizer.name={name!r} is not one of sgd, adamw")
