"""Frozen teachers from finished run directories (the training plan §3: distillation from a
checkpoint).

A teacher is refused, with a one-line reason, unless its run completed, its checkpoint exists,
its number of classes matches the student's and (when asked) it was trained on the same
dataset and split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lastexp.config import ConfigError
from lastexp.train.checkpoint import load_checkpoint


class TeacherError(ValueError):
    """A run directory that cannot serve as a teacher; the message says why, on one line."""


def checkpoint_path(run_dir: str | Path) -> Path | None:
    """``checkpoints/best.pt``, else ``checkpoints/last.pt``, else None."""
    ckpt = Path(run_dir) / "checkpoints"
    for name in ("best.pt", "last.pt"):
        if (ckpt / name).is_file():
            return ckpt / name
    return None


def model_from_checkpoint(state: dict[str, Any]) -> nn.Module:
    """Rebuild the model a run checkpoint was written by and load its weights.

    The model comes from ``state["config"]["model"]`` (name + flags), with the IB head on when
    the run trained with ``training.ib_loss_weight > 0`` (as ``run.build_model_from_cfg``
    does), ``num_person`` from ``config["preprocessing"]`` and ``num_classes`` from the state.
    """
    from lastexp.models import build_model

    cfg = state.get("config") or {}
    kwargs = dict(cfg.get("model") or {})
    if "name" not in kwargs:
        raise ValueError("checkpoint has no config.model.name; it was not written by lastexp")
    name = kwargs.pop("name")
    ib_weight = float((cfg.get("training") or {}).get("ib_loss_weight") or 0.0)
    kwargs["ib_head"] = bool(kwargs.get("ib_head")) or ib_weight > 0
    num_person = int((cfg.get("preprocessing") or {}).get("num_person", 1))
    model = build_model(name, num_classes=int(state["num_classes"]), num_person=num_person,
                        **kwargs)
    model.load_state_dict(state["model"])
    return model


def load_teacher(
    run_dir: str | Path,
    *,
    num_classes: int,
    device: torch.device | str = "cpu",
    expect_dataset: str | None = None,
    expect_split: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Frozen (eval, no grad) model of a finished run, and facts about it.

    ``info`` holds ``run_dir``, ``checkpoint``, ``model``, ``stream``, ``dataset``, ``split``,
    ``num_classes``, ``best_top1``, ``final_top1``, ``epoch``.
    """
    from lastexp.io import read_json
    from lastexp.train.distill import freeze

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TeacherError(f"teacher run directory {run_dir} does not exist")
    metrics_path = run_dir / "metrics.json"
    try:
        metrics = read_json(metrics_path)
    except (OSError, ValueError):
        raise TeacherError(f"teacher {run_dir} has no readable metrics.json") from None
    if metrics.get("status") != "completed":
        raise TeacherError(
            f"teacher {run_dir} has status {metrics.get('status')!r}, not 'completed'; "
            "finish that run first"
        )
    path = checkpoint_path(run_dir)
    if path is None:
        raise TeacherError(f"teacher {run_dir} has no checkpoints/best.pt or checkpoints/last.pt")
    try:
        state = load_checkpoint(path)
    except ConfigError as exc:
        raise TeacherError(f"teacher {exc}") from None
    cfg = state.get("config") or {}
    ckpt_model = state.get("model_name") or (cfg.get("model") or {}).get("name")
    if metrics.get("model") and ckpt_model != metrics["model"]:
        raise TeacherError(
            f"teacher checkpoint {path} holds a {ckpt_model!r} model but the run trained "
            f"{metrics['model']!r}; the checkpoint is of the wrong architecture"
        )
    dataset = (cfg.get("dataset") or {}).get("name", metrics.get("dataset"))
    split = (cfg.get("dataset") or {}).get("split", metrics.get("split"))
    theirs = int(state.get("num_classes", metrics.get("num_classes", -1)))
    if theirs != int(num_classes):
        raise TeacherError(
            f"teacher {run_dir} predicts {theirs} classes, the student {num_classes}"
        )
    if expect_dataset is not None and dataset != expect_dataset:
        raise TeacherError(
            f"teacher {run_dir} was trained on dataset {dataset!r}, the student on "
            f"{expect_dataset!r}"
        )
    if expect_split is not None and split != expect_split:
        raise TeacherError(
            f"teacher {run_dir} was trained on split {split!r}, the student on {expect_split!r}"
        )
    try:
        model = model_from_checkpoint(state)
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise TeacherError(f"teacher {run_dir}: cannot rebuild its model ({msg})") from None
    model = freeze(model.to(device))
    info = {
        "run_dir": str(run_dir),
        "checkpoint": str(path),
        "model": state.get("model_name", cfg.get("model", {}).get("name")),
        "stream": state.get("stream", metrics.get("stream")),
        "dataset": dataset,
        "split": split,
        "num_classes": theirs,
        "best_top1": metrics.get("best_top1"),
        "final_top1": metrics.get("final_top1"),
        "epoch": state.get("epoch"),
    }
    return model, info


__all__ = ["TeacherError", "checkpoint_path", "load_teacher", "model_from_checkpoint"]
