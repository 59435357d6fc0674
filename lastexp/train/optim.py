"""Optimizers with the training recipe's weight-decay exclusions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

# the training recipe's structural parameters
from lastexp.models.components import NO_DECAY_SUFFIXES

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def no_decay_names(model: nn.Module, extra: Iterable[str] = ()) -> set[str]:
    """Names of parameters that get weight decay 0: biases, norm layers, structural params.

    Decided by parameter name and module kind, plus whatever the model declares itself.
    """
    names = set(extra)
    declared = getattr(model, "no_weight_decay", None)
    if callable(declared):
        names |= set(declared())
    for mod_name, module in model.named_modules():
        for p_name, _ in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            leaf = p_name.split(".")[-1]
            if (
                isinstance(module, _NORM_TYPES)
                or leaf == "bias"
                or leaf.endswith(NO_DECAY_SUFFIXES)
            ):
                names.add(full)
    return names


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights and the exclusions of :func:`no_decay_names`."""
    skip = no_decay_names(model)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
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
) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
    raise ValueError(f"optimizer.name={name!r} is not one of sgd, adamw")
