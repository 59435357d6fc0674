"""A model from its ``model`` config node: the one rule that builds it, for a training run and
for rebuilding a finished run from its checkpoint (teachers, export)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from lastexp.errors import ConfigError
from lastexp.models import build_model


def ib_head_on(flag: Any, ib_loss_weight: float) -> bool:
    """The IB head exists when asked for (``model.ib_head``) or when its loss is trained
    (``training.ib_loss_weight > 0``)."""
    return bool(flag) or float(ib_loss_weight) > 0


def model_from_config(model_cfg: Mapping[str, Any], *, num_classes: int, num_person: int,
                      ib_loss_weight: float) -> nn.Module:
    """``model_cfg``: the ``model`` node as a plain mapping (``name`` plus the family's
    flags). A flag the family does not take, or a bad value, is one line naming the model."""
    kwargs = dict(model_cfg)
    name = kwargs.pop("name")
    kwargs["ib_head"] = ib_head_on(kwargs.get("ib_head"), ib_loss_weight)
    try:
        return build_model(name, num_classes=num_classes, num_person=num_person, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model={name}: {exc}") from exc
