"""metrics.json: what a run records about itself, how it is read and written.

A run rewrites its metrics.json atomically after every epoch (a reader never sees half a file);
``status`` says where it stands. The keys every consumer relies on are typed in
:class:`Metrics`; a run may add more (export figures, pretraining, ...), and readers keep them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from typing import Any, Literal, TypedDict

from lastexp.io import write_json
from lastexp.runstore.layout import METRICS_FILE

Status = Literal["completed", "failed", "interrupted", "running"]
STATUSES: tuple[str, ...] = ("completed", "failed", "interrupted", "running")
TOP1_KEYS = ("best_top1", "final_top1", "swa_top1", "int8_top1")


class Metrics(TypedDict, total=False):
    """The keys of metrics.json that lastexp's commands read (``total=False``: a failed run
    holds only its identity, ``status`` and ``error``)."""

    status: Status
    error: str  # failed / interrupted: "<ExceptionClass>: <message>"
    reason: str  # interrupted: why, and how to resume
    # identity (RunIdentity) and what was trained
    ablation: str | None
    dataset: str
    split: str
    stream: str  # "ensemble" for a combination of runs
    seed: int
    debug: str | None  # the debug preset (part of the identity)
    model: str
    preprocessing: str
    epochs: int
    run_key: str
    # the three selection rules (the training plan §7), each its own number
    best_top1: float | None  # best epoch of the trained weights (checkpoints/best.pt)
    best_epoch: int | None
    final_top1: float | None  # the weights the schedule ends with
    swa_top1: float  # the SWA model (checkpoints/swa.pt)
    # the split the best epoch, early stopping and a search read: "test" (the default, as the
    # field reports) or "validation" (dataset.val_subjects / dataset.val_fraction); the three
    # top-1s above are test numbers either way, each with its predictions in test_scores.npz
    # (lastexp.runstore.scores.PREDICTIONS)
    selection: Literal["test", "validation"]
    best_val_top1: float | None  # validation: the best epoch's validation top-1
    n_val: int  # validation: samples carved from the training split (n_train excludes them)
    world_size: int  # processes that trained the run (torchrun, SLURM tasks); 1 = one
    # cost and provenance
    params: int
    flops: int
    train_seconds: float
    epochs_done: int
    device: str
    n_train: int
    n_test: int
    num_classes: int
    git_commit: str | None
    started_at: str
    finished_at: str
    teacher: str  # distillation: the teacher run of the student's stream
    teacher_members: list[str]
    members: list[str]  # an ensemble's member runs
    int8_bytes: int  # python -m lastexp.export
    int8_top1: float
    onnx_max_abs_diff: float


# The columns of the results frame (lastexp.results), in this order; absent keys are None/NaN.
COLUMNS = [
    "run_dir", "status", "ablation", "model", "stream", "dataset", "preprocessing", "seed",
    "epochs", "best_top1", "best_epoch", "final_top1", "swa_top1", "params", "flops",
    "train_seconds", "device", "n_train", "n_test", "error", "int8_bytes", "int8_top1",
    "onnx_max_abs_diff",
    "started_at", "finished_at",
]  # fmt: skip
NUMERIC = [
    "seed", "epochs", "best_top1", "best_epoch", "final_top1", "swa_top1", "params", "flops",
    "train_seconds", "n_train", "n_test", "int8_bytes", "int8_top1", "onnx_max_abs_diff",
]  # fmt: skip
TEXT = ["status", "ablation", "model", "stream", "dataset", "preprocessing", "device", "error",
        "started_at", "finished_at"]  # fmt: skip

def read_metrics(path: str | os.PathLike[str]) -> dict[str, Any] | str:
    """The parsed metrics of a run, or a one-line reason why the file is unusable (absent,
    unreadable, truncated, or JSON that is no object)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        return f"corrupt or truncated {METRICS_FILE} ({exc.msg}: {where})"
    except (OSError, UnicodeDecodeError) as exc:
        return f"unreadable {METRICS_FILE} ({type(exc).__name__}: {exc})"
    if not isinstance(data, dict):
        return f"{METRICS_FILE} is not a JSON object"
    return data


def foreign_kind(path: str | os.PathLike[str]) -> str | None:
    """The JSON type (``list``, ``int``, ...) of a metrics.json that parses but is no object:
    no run's file, which no command may overwrite. None for an object, or an unreadable file.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return None if isinstance(data, dict) else type(data).__name__


def schema_problem(metrics: dict[str, Any]) -> str | None:
    """Why a parsed metrics.json cannot be tabulated (no valid status, a non-finite top-1 in a
    completed run), or None."""
    status = metrics.get("status")
    if status not in STATUSES:
        return f"{METRICS_FILE} has no valid status (got {status!r})"
    for key in TOP1_KEYS if is_completed(metrics) else ():  # Infinity / NaN parse as floats
        value = metrics.get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and not (math.isfinite(value) and 0 <= value <= 100):  # a percentage
            return f"{METRICS_FILE} holds {key}={value}, not a top-1 in [0, 100]"
    return None


def is_completed(metrics: dict[str, Any] | None) -> bool:
    """The one rule for "this run is done": it says so. (Its checkpoints and scores were all
    written before the status was, so a completed run is complete.)"""
    return isinstance(metrics, dict) and metrics.get("status") == "completed"


def is_failed(metrics: dict[str, Any] | None) -> bool:
    """A run that stopped on an error and recorded it (not an interrupted one)."""
    return isinstance(metrics, dict) and metrics.get("status") == "failed" and \
        bool(metrics.get("error"))


def write_metrics(path: str | os.PathLike[str], metrics: dict[str, Any]) -> None:
    """Atomically (temporary file, fsync, rename): a reader sees the old or the new file."""
    write_json(path, metrics)


def timestamp() -> str:
    """``started_at`` / ``finished_at``: UTC, ISO 8601, to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
