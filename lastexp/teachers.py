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

from lastexp.errors import ConfigError
from lastexp.runstore.finished import RunError, model_checkpoint, open_finished
from lastexp.runstore.models import model_from_checkpoint
from lastexp.train.checkpoint import load_checkpoint
from lastexp.train.distill import freeze


class TeacherError(ValueError):
    """A run directory that cannot serve as a teacher; the message says why, on one line."""


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
    run_dir = Path(run_dir)
    try:
        run = open_finished(run_dir, role="teacher")
        path = model_checkpoint(run, role="teacher")
    except RunError as exc:
        raise TeacherError(str(exc)) from None
    metrics = run.metrics
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


__all__ = ["TeacherError", "load_teacher"]
