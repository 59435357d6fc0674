"""Model registry: ``build_model(name, **kwargs)`` and parameter / FLOP counting.

Every family follows one protocol (the trainer relies on it): ``forward(x)`` with x of shape
(N, C, T, V, M) returns logits (N, num_classes); ``forward(x, return_features=True)`` returns
``(logits, feats)`` with ``feats["stages"]`` (3 tensors (N*M, C_s, T_s, V)) and ``feats["z"]``
(N, D); ``ib_loss(feats, y)``; ``no_weight_decay()``; attributes ``stage_channels`` and
``num_classes``. ``lastexp.config`` never imports this package.

Each family declares the flags it reads in its ``Flags`` dataclass (next to the family class);
the registry learns a name's family from its factory's return type, so :func:`family_flags`
and the check in :func:`build_model` list no family's flags themselves. A family's ``model``
config node holds the same flags (its conf/model YAML, from which the config schema is made).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, get_type_hints

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lastexp.model_names import MODEL_ALIASES

from .backbone import SkeletonNet
from .blocks import CAUSAL_SCOPES, set_causal
from .last_base import LastBase, last_base
from .last_e import LastE, last_e_base, last_e_large, last_e_nano, last_e_small
from .last_lite import LastLite, last_lite_nano, last_lite_small
from .last_v2 import LastV2, last_v2_base

__all__ = [
    "CAUSAL_SCOPES",
    "MODELS",
    "LastBase",
    "LastE",
    "LastLite",
    "LastV2",
    "available_models",
    "build_model",
    "count_flops",
    "count_params",
    "family",
    "family_flags",
    "own_arguments",
    "set_causal",
    "takes",
]

_CANONICAL: dict[str, Callable[..., nn.Module]] = {
    "last_e_nano": last_e_nano,
    "last_e_small": last_e_small,
    "last_e_base": last_e_base,
    "last_e_large": last_e_large,
    "last_base": last_base,
    "last_lite_nano": last_lite_nano,
    "last_lite_small": last_lite_small,
    "last_v2_base": last_v2_base,
}
MODELS: dict[str, Callable[..., nn.Module]] = {
    **_CANONICAL,
    **{alias: _CANONICAL[name] for alias, name in MODEL_ALIASES.items()},  # the plan's names
}


def available_models() -> list[str]:
    """Canonical model names (aliases left out)."""
    return list(_CANONICAL)


def family(name: str) -> type[SkeletonNet]:
    """The family class a registered name builds (its factory's return type)."""
    try:
        factory = MODELS[name]
    except KeyError:
        valid = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; valid names: {valid}") from None
    return get_type_hints(factory)["return"]


def family_flags(name: str) -> dict[str, Any]:
    """The flags the family of ``name`` reads, with their defaults (its ``Flags`` dataclass)."""
    return {f.name: f.default for f in fields(family(name).Flags)}


def takes(name: str) -> frozenset[str]:
    """The keyword arguments ``build_model(name)`` accepts: its family's constructor parameters
    and the flags it reads (its ``Flags``)."""
    params = inspect.signature(family(name)).parameters.values()
    return frozenset({p.name for p in params if p.kind is not p.VAR_KEYWORD}
                     | set(family_flags(name)))


def own_arguments(name: str, node: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``node`` the family of ``name`` takes (:func:`takes`): a run stored before
    each family's config node held only its own flags has the other families' in its node too,
    at their defaults, which its family never read."""
    own = takes(name)
    return {key: value for key, value in node.items() if key in own}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; kwargs are the constructor arguments and flags of its family
    (a flag it does not read is refused, naming the ones it does)."""
    unknown = sorted(set(kwargs) - takes(name))  # an unknown name: ValueError listing the valid
    if unknown:
        own = family_flags(name)
        raise TypeError(f"model.{unknown[0]} is not a flag of {name}; the flags of {name} are "
                        f"{', '.join(own)}")
    return MODELS[name](**kwargs)


def count_params(model: nn.Module) -> int:
    """Trainable parameters that inference uses (a family's ``train_only_parameters()``, such
    as the IB head's variance branch, are left out)."""
    skip = set(model.train_only_parameters()) if hasattr(model, "train_only_parameters") else set()
    return sum(p.numel() for name, p in model.named_parameters()
               if p.requires_grad and name not in skip)


def count_flops(
    model: nn.Module, num_frames: int = 64, num_person: int = 1, in_channels: int = 3
) -> int:
    """FLOPs of one forward pass on one sample (eval mode), as torch's FlopCounterMode counts
    them: 2 per multiply-add, for matmul/conv/einsum; elementwise ops are not counted."""
    num_joints = getattr(model, "num_joints", 25)
    x = torch.zeros(1, in_channels, num_frames, num_joints, num_person)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
