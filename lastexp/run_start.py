"""Where a run starts, in its run directory: a completed run is skipped (unless ``fresh=true``),
a killed run's half-written files are cleared, training resumes from ``checkpoints/last.pt`` or
starts from ``init_from=`` weights or from scratch, and metrics.json says what the run is and
where it stands. The steps :func:`lastexp.run.fit` takes before and as it starts training.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from lastexp.errors import ConfigError
from lastexp.io import remove_orphan_temps
from lastexp.models import count_flops, count_params
from lastexp.provenance import git_commit
from lastexp.runstore import RunDir, debug_of
from lastexp.runstore.key import run_key
from lastexp.runstore.metrics import is_completed, read_metrics, timestamp
from lastexp.train.state import Progress, Trainables, initialise, resume
from lastexp.train.trainer import selection_fields


def completed(run: RunDir, *, fresh: bool) -> dict[str, Any] | None:
    """The metrics of a completed run (skipped unless ``fresh=true``), else None."""
    if fresh:
        return None
    metrics = read_metrics(run.metrics)
    return metrics if is_completed(metrics if isinstance(metrics, dict) else None) else None


def prepare(run: RunDir, *, fresh: bool) -> None:
    """``fresh=true`` starts the run over; a killed run's half-written files go (this command
    holds the run's lock)."""
    if fresh:
        shutil.rmtree(run.checkpoints, ignore_errors=True)
    for folder in (run.path, run.checkpoints, run.hydra):
        remove_orphan_temps(folder)
    if not os.access(run.path, os.W_OK):
        raise ConfigError(f"run directory {run.path} is not writable; change paths.runs")


def start_point(run: RunDir, parts: Trainables, *, model_name: str, init_from: str | None,
                key: str | None = None) -> tuple[Progress, dict | None, bool]:
    """Where training starts: ``last.pt`` when the run was interrupted (resumed exactly; it
    must be this run's, by its run ``key``), else ``init_from=`` weights, else scratch.
    ``(progress, mid-epoch position, resumed)``."""
    if run.last.exists():
        progress, mid = resume(run.last, parts, model_name, run_key=key)
        where = (f"in epoch {progress.epoch + 1} after {mid['progress']['batches']} batches"
                 if mid else f"after epoch {progress.epoch}")
        print(f"lastexp: resuming {run.name} {where}")
        return progress, mid, True
    if init_from:
        src = Path(init_from)
        if not src.exists():
            raise ConfigError(f"init_from={src} does not exist")
        initialise(src, parts.model, model_name)
    return Progress(), None, False


def start_metrics(cfg: DictConfig, progress: Progress, *, device: torch.device, amp: str,
                  data: Any, extra: dict[str, Any], resumed: bool,
                  world_size: int = 1) -> dict[str, Any]:
    """metrics.json as a run starts (or resumes): what it is, and where it stands."""
    metrics: dict[str, Any] = {
        "ablation": cfg.ablation, "model": cfg.model.name, "stream": cfg.stream.name,
        "dataset": cfg.dataset.name, "split": cfg.dataset.split,
        "preprocessing": cfg.preprocessing.name, "seed": cfg.seed,
        "epochs": cfg.training.epochs, **extra,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "amp": amp, "n_train": len(data.train), "n_test": len(data.test),
        "num_classes": data.num_classes, "run_key": run_key(cfg), "git_commit": git_commit(),
        "skipped_files": len(data.summary.get("skipped", {})), "debug": debug_of(cfg),
        "status": "running", "started_at": timestamp(),
        "best_top1": progress.best_top1 if progress.best_top1 >= 0 else None,
        "best_epoch": progress.best_epoch if progress.best_epoch >= 0 else None,
        "final_top1": None, "train_seconds": progress.seconds,
        # processes that trained it (torchrun / SLURM tasks); part of the run identity
        "world_size": int(world_size),
        # the split the best epoch, early stopping and a search read (test: as the field does)
        "selection": "test" if data.val is None else "validation",
    }
    if data.val is not None:
        metrics.update(selection_fields(progress, validation=True), n_val=len(data.val))
    if os.environ.get("SLURM_JOB_ID"):
        metrics["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    if resumed:
        metrics["resumed_from_epoch"] = progress.epoch
    if progress.history:
        metrics["epochs_done"] = len(progress.history)
    return metrics


def model_size(model: nn.Module, *, window: int, num_person: int) -> dict[str, int]:
    return {"params": count_params(model),
            "flops": count_flops(model, num_frames=window, num_person=num_person)}


def teacher_fields(teacher_dirs: list[Path]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if teacher_dirs:
        fields["teacher"] = str(teacher_dirs[0])  # the student's stream
    if len(teacher_dirs) > 1:
        fields["teacher_members"] = [str(d) for d in teacher_dirs]
    return fields
