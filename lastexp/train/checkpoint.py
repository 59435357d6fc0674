"""Checkpoints: written atomically, refused when they belong to another architecture."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lastexp.errors import ConfigError
from lastexp.io import atomic_write
from lastexp.runstore.layout import is_resume_file


def architecture(model: nn.Module) -> dict[str, list[int]]:
    """Parameter and buffer names with shapes: what a state dict must match to load."""
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save(state, f), mode="wb")


def unusable_fix(path: str | os.PathLike) -> str:
    """What to do about a checkpoint lastexp cannot use. A run's own ``checkpoints/last.pt`` is
    where a command resumes from, and nobody points at it: starting the run over replaces it. Any
    other file was named on the command line (``init_from=``) or found as a teacher's or an
    export's weights."""
    p = Path(path)
    if is_resume_file(p):
        return (f"pass fresh=true to start the run {p.parent.parent.name} over (or move that file "
                "away)")
    return "point at a checkpoint lastexp wrote"


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The one way lastexp opens a checkpoint: ``weights_only=True``, so a file can hold only
    tensors, numbers, strings and plain containers and never runs code when read (lastexp
    writes nothing else). A crafted, truncated or foreign file is refused with one line."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"checkpoint {path} is refused: it holds objects other than tensors, numbers, "
            "strings and plain containers (lastexp never writes such files, and does not "
            f"unpickle them); {unusable_fix(path)}"
        ) from None
    except Exception as exc:  # a truncated or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(
            f"checkpoint {path} cannot be read ({exc.__class__.__name__}: {first}); "
            f"{unusable_fix(path)}"
        ) from None
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path} holds a {type(state).__name__}, not a "
                          f"checkpoint dict; {unusable_fix(path)}")
    return state


def check_compatible(state: dict[str, Any], model: nn.Module, model_name: str, path: Path) -> None:
    """Refuse a checkpoint written by another architecture (the pipeline-improvements guide's
    --force-fresh rule)."""
    theirs = state.get("architecture") or {
        k: list(v.shape) for k, v in state.get("model", {}).items()
    }
    mine = architecture(model)
    if theirs == mine:
        return
    missing = sorted(set(mine) - set(theirs))
    extra = sorted(set(theirs) - set(mine))
    shape = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
    what = (
        f"{len(missing)} missing, {len(extra)} unexpected, {len(shape)} reshaped tensors"
        + (f" (e.g. {(missing or extra or shape)[0]})" if (missing or extra or shape) else "")
    )
    raise ConfigError(
        f"checkpoint {path} was written by model {state.get('model_name', '?')!r}, which does not "
        f"match {model_name!r}: {what}; pass fresh=true to start over"
    )
