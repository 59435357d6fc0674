"""Rebuilding the model a finished run trained, from its checkpoint alone.

Imports torch: kept out of ``lastexp.runstore``'s own namespace so that walking the store and
planning never load it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lastexp.models.from_config import model_from_config


def model_from_checkpoint(state: dict[str, Any]) -> nn.Module:
    """The model a lastexp checkpoint was written by, with its weights loaded: the model
    config of ``state["config"]``, built by the same rule as a training run's
    (:func:`lastexp.models.from_config.model_from_config`), ``num_classes`` from the state."""
    cfg = state.get("config") or {}
    model_cfg = dict(cfg.get("model") or {})
    if "name" not in model_cfg:
        raise ValueError("checkpoint has no config.model.name; it was not written by lastexp")
    model = model_from_config(
        model_cfg, num_classes=int(state["num_classes"]),
        num_person=int((cfg.get("preprocessing") or {}).get("num_person", 1)),
        ib_loss_weight=float((cfg.get("training") or {}).get("ib_loss_weight") or 0.0),
    )
    model.load_state_dict(state["model"])
    return model
