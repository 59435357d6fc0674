"""What a training checkpoint holds, and resuming from one.

``checkpoints/last.pt`` is written after every epoch and when a run is stopped mid-epoch; it
holds everything the next epoch depends on (weights, optimizer, schedule, loss scaler,
distillation projector, SWA average, the best epoch so far, the history and, mid-epoch, the
batch position and RNG states), so a resumed run continues bit for bit; and the ``run_key`` of
the run that wrote it, so that a ``last.pt`` copied from another run is refused. It holds only
tensors, numbers, strings and plain containers: it is read with ``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from lastexp.errors import ConfigError
from lastexp.train.checkpoint import (
    architecture,
    check_compatible,
    load_checkpoint,
    unusable_fix,
)
from lastexp.train.pretrained_encoder import load_encoder


@dataclass
class Progress:
    """What the epochs run so far established (saved in every checkpoint)."""

    epoch: int = 0  # epochs completed
    best_top1: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    global_step: int = 0  # optimizer steps taken, mid-epoch ones included (the vision guide)

    def record(self, row: dict[str, Any]) -> bool:
        """Add an epoch's history row; True when its ``val_top1`` is a new best."""
        self.history.append(row)
        self.epoch = int(row["epoch"])
        improved = row["val_top1"] > self.best_top1
        if improved:
            self.best_top1, self.best_epoch = row["val_top1"], self.epoch
        return improved

    @property
    def seconds(self) -> float:
        return float(self.history[-1].get("cum_seconds", 0.0)) if self.history else 0.0


@dataclass
class Trainables:
    """Everything a checkpoint restores besides the progress."""

    model: nn.Module
    optimizer: Any
    scheduler: Any
    scaler: Any = None  # fp16 GradScaler
    projector: nn.Module | None = None  # distillation feature projections
    swa: Any = None  # SWATracker


@dataclass(frozen=True)
class RunFacts:
    """What a checkpoint says about the run that wrote it (teachers and export rebuild the
    model from ``config``)."""

    model_name: str
    config: dict[str, Any]  # lastexp.runstore.key.identity of the run
    num_classes: int
    stream: str
    run_key: str | None = None  # lastexp.runstore.key.run_key: resume refuses another run's last.pt


def checkpoint_contents(parts: Trainables, progress: Progress, facts: RunFacts, *,
                        epoch: int, mid_epoch: dict | None = None) -> dict[str, Any]:
    """A checkpoint at ``epoch`` completed epochs; ``mid_epoch``: where in the next epoch a
    stopped run stands (batches, partial sums, RNG states, seconds)."""
    return {
        "mid_epoch": mid_epoch,
        "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict() if parts.scaler is not None else None,
        "epoch": epoch, "global_step": progress.global_step,
        "best_top1": progress.best_top1, "best_epoch": progress.best_epoch,
        "history": progress.history, "model_name": facts.model_name,
        "architecture": architecture(parts.model), "config": facts.config,
        "num_classes": facts.num_classes, "stream": facts.stream, "run_key": facts.run_key,
        "projector": parts.projector.state_dict() if parts.projector is not None else None,
        "swa": parts.swa.state_dict() if parts.swa is not None else None,
    }


def resume(path: Path, parts: Trainables, model_name: str,
           run_key: str | None = None) -> tuple[Progress, dict | None]:
    """Restore ``parts`` from ``path`` (refused when another architecture or, by its stored
    ``run_key``, another run wrote it); the progress, and the mid-epoch position when the run
    was stopped inside an epoch."""
    state = load_checkpoint(path)
    check_resumable(state, path)
    check_compatible(state, parts.model, model_name, path)  # names the model: said first
    check_same_run(state, path, run_key)
    parts.model.load_state_dict(state["model"])
    try:
        parts.optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as exc:  # another optimizer's state (param groups, keys)
        raise ConfigError(f"checkpoint {path} holds an optimizer state that does not fit "
                          f"optimizer.name or this lastexp's weight-decay groups ({exc}); "
                          f"{unusable_fix(path)}") from None
    try:
        parts.scheduler.load_state_dict(state["scheduler"])
    except KeyError:  # LambdaLR reads the "lr_lambdas" a LinearLR state lacks
        raise ConfigError(f"{path} holds a learning-rate schedule of an older lastexp "
                          "(LinearLR warmup) that cannot be resumed; start the run over "
                          "with fresh=true") from None
    if parts.scaler is not None and state.get("scaler"):
        parts.scaler.load_state_dict(state["scaler"])
    if parts.projector is not None and state.get("projector"):
        parts.projector.load_state_dict(state["projector"])
    if parts.swa is not None and state.get("swa"):
        parts.swa.load_state_dict(state["swa"])
    progress = Progress(epoch=state["epoch"], best_top1=state["best_top1"],
                        best_epoch=state["best_epoch"], history=state.get("history", []),
                        global_step=int(state.get("global_step", 0)))
    return progress, state.get("mid_epoch")


RESUME_KEYS = ("model", "optimizer", "scheduler", "epoch", "best_top1", "best_epoch")


def check_resumable(state: dict[str, Any], path: Path) -> None:
    """A ``last.pt`` holds every part a resume restores."""
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        raise ConfigError(f"checkpoint {path} lacks {', '.join(missing)}: it is no training "
                          f"checkpoint lastexp wrote; {unusable_fix(path)}")


def check_same_run(state: dict[str, Any], path: Path, run_key: str | None) -> None:
    """A ``last.pt`` written by this run (its stored ``run_key``); one without a stored key
    (none in it) is accepted."""
    theirs = state.get("run_key")
    if theirs and run_key and theirs != run_key:
        raise ConfigError(f"checkpoint {path} belongs to another run (run key {theirs}, this "
                          f"run's is {run_key}; copied from another run?): resuming it would "
                          f"mix two runs; {unusable_fix(path)}")


def initialise(path: Path, net: nn.Module, model_name: str) -> None:
    """``init_from=``: the weights of a lastexp checkpoint, or a MaskCLR encoder."""
    state = load_checkpoint(path)
    if state.get("kind") == "maskclr_encoder":
        load_encoder(net, state, path)
        return
    check_compatible(state, net, model_name, path)
    net.load_state_dict(state["model"])

