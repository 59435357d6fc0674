"""A pretrained encoder's weights: what pretraining keeps (the encoder without decoder,
projector and classifier), its file, and loading it into a student.

The student initialised this way (``model.load_state_dict(state, strict=False)``) misses
exactly :func:`classifier_keys`, which pretraining cannot learn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lastexp.errors import ConfigError
from lastexp.io import atomic_write
from lastexp.train.checkpoint import load_checkpoint


def classifier_keys(encoder: nn.Module) -> list[str]:
    """State-dict keys pretraining cannot learn: the classifier (``head.fc``: any Linear with
    ``num_classes`` outputs) and the IB head (``ib.*``), whose class priors need labels."""
    keys = []
    k = getattr(encoder, "num_classes", None)
    for name, module in encoder.named_modules():
        is_cls = isinstance(module, nn.Linear) and k is not None and module.out_features == k
        if is_cls or name == "ib" or name.startswith("ib."):
            keys += [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)]
            keys += [f"{name}.{b}" for b, _ in module.named_buffers(recurse=False)]
    return sorted(set(keys))


def _encoder(maskclr_or_encoder: nn.Module) -> nn.Module:
    return getattr(maskclr_or_encoder, "encoder", maskclr_or_encoder)


def encoder_state(maskclr: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's state dict (of a :class:`lastexp.train.maskclr.MaskCLR` or the encoder
    itself) without decoder, projector and classifier keys; a fresh model of the same
    architecture loads it with ``strict=False`` and reports exactly :func:`classifier_keys` as
    missing (for LAST-E: ``head.fc.weight``, ``head.fc.bias``, plus ``ib.*`` when it has the IB
    head)."""
    enc = _encoder(maskclr)
    drop = set(classifier_keys(enc))
    return {k: v.detach().clone() for k, v in enc.state_dict().items() if k not in drop}


def save_encoder(path: str | os.PathLike, maskclr: nn.Module, **meta: Any) -> None:
    """Write ``{"kind": "maskclr_encoder", "encoder": state, "missing": keys, **meta}``
    atomically (meta: e.g. model_name, config, history)."""
    state = {"kind": "maskclr_encoder", "encoder": encoder_state(maskclr),
             "missing": classifier_keys(_encoder(maskclr)), **meta}
    atomic_write(path, lambda f: torch.save(state, f), mode="wb")


def load_encoder_into(model: nn.Module, path_or_state: str | os.PathLike | dict) -> list[str]:
    """Initialise ``model`` from a pretrained encoder (a file of :func:`save_encoder` or a state
    dict). Every key but the classifier must match in name and shape; returns the missing keys."""
    state = path_or_state
    if not isinstance(state, dict):
        state = load_checkpoint(Path(path_or_state))
    state = state.get("encoder", state)
    mine = model.state_dict()
    allowed = set(classifier_keys(model))
    bad_shape = [k for k, v in state.items() if k in mine and mine[k].shape != v.shape]
    extra = [k for k in state if k not in mine]
    missing = sorted(k for k in mine if k not in state)
    unexpected_missing = [k for k in missing if k not in allowed]
    if bad_shape or extra or unexpected_missing:
        first = (bad_shape or extra or unexpected_missing)[0]
        raise ValueError(
            f"pretrained encoder does not fit this model: {len(bad_shape)} reshaped, "
            f"{len(extra)} unexpected, {len(unexpected_missing)} missing tensors (e.g. {first})"
        )
    model.load_state_dict(state, strict=False)
    return missing


def load_encoder(model: nn.Module, state: dict, path: str | os.PathLike) -> list[str]:
    """A MaskCLR encoder's weights into ``model``, refused with one line when it does not
    fit; returns the missing (classifier) keys."""
    try:
        return load_encoder_into(model, state)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"encoder {path} does not fit model {type(model).__name__}: {exc}") \
            from None


__all__ = [
    "classifier_keys",
    "encoder_state",
    "load_encoder",
    "load_encoder_into",
    "save_encoder",
]
