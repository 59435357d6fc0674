"""Rebuilding the model a finished run trained, from its checkpoint alone.

Imports torch: kept out of ``lastexp.runstore``'s own namespace so that walking the store and
planning never load it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from lastexp.errors import ConfigError
from lastexp.models import own_arguments
from lastexp.models.from_config import model_from_config
from lastexp.runstore.finished import RunError
from lastexp.train.checkpoint import load_checkpoint


def model_from_checkpoint(state: dict[str, Any]) -> nn.Module:
    """The model a lastexp checkpoint was written by, with its weights loaded: the model
    config of ``state["config"]``, built by the same rule as a training run's
    (:func:`lastexp.models.from_config.model_from_config`), ``num_classes`` from the state.
    Of the stored model node only the keys its family takes are read
    (:func:`lastexp.models.own_arguments`: a run stored before each family's node held only
    its own flags has every family's)."""
    cfg = state.get("config") or {}
    model_cfg = dict(cfg.get("model") or {})
    if "name" not in model_cfg:
        raise ValueError("checkpoint has no config.model.name; it was not written by lastexp")
    name = model_cfg["name"]
    model = model_from_config(
        {"name": name, **own_arguments(name, model_cfg)}, num_classes=int(state["num_classes"]),
        num_person=int((cfg.get("preprocessing") or {}).get("num_person", 1)),
        ib_loss_weight=float((cfg.get("training") or {}).get("ib_loss_weight") or 0.0),
    )
    model.load_state_dict(state["model"])
    return model


def load_model(
    checkpoint: Path, *, role: str = "", check: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], nn.Module]:
    """The state of a finished run's checkpoint (:func:`model_checkpoint`'s file, read the one
    safe way, :func:`~lastexp.train.checkpoint.load_checkpoint`) and the model it rebuilds, in
    eval mode: what a distillation teacher and an export open a run for.

    ``check(state)`` runs between reading and rebuilding (a teacher refuses another class count
    there, so the message names the count, not a shape). A refusal is a :class:`RunError`, one
    line starting with ``role``: the checkpoint file's problem, or the rebuild's.
    """
    prefix = f"{role} " if role else ""
    try:
        state = load_checkpoint(checkpoint)
    except ConfigError as exc:
        raise RunError(f"{prefix}{exc}") from None
    if check is not None:
        check(state)
    try:
        model = model_from_checkpoint(state)
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise RunError(f"{prefix}{checkpoint}: cannot rebuild its model ({msg})") from None
    return state, model.eval()
