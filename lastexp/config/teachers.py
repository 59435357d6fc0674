"""What a run learns from besides its labels: distillation from a teacher, MaskCLR pretraining,
and an ensemble of finished runs; their groups' schema and checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Optional

from omegaconf import DictConfig

from lastexp.config.data import STREAMS
from lastexp.config.ranges import BELOW_ONE, NON_NEGATIVE, POSITIVE, Range
from lastexp.errors import ConfigError


@dataclass
class DistillConfig:
    RANGES: ClassVar[dict[str, Range]] = {
        "alpha": NON_NEGATIVE, "beta": NON_NEGATIVE, "gamma": NON_NEGATIVE, "tau": POSITIVE,
    }

    name: str = "none"  # none | from_existing | from_base
    alpha: float = 1.0  # CE weight
    beta: float = 0.0  # KD weight (a component is on when its weight is > 0)
    gamma: float = 0.0  # feature-mimicry weight
    tau: float = 4.0
    teacher: Optional[str] = None  # run directory, or ablation ID looked up in the run store
    # empty: the teacher is the one run of the student's stream (the training plan §3's
    # command); [joint,bone,velocity,bone_velocity]: §3A's four-stream ensemble of that ablation
    # ID, its averaged logits for KD and the student-stream member for feature mimicry
    teacher_streams: list[str] = field(default_factory=list)


def check_distill(d: DictConfig, *, student_stream: str) -> None:
    streams = list(d.teacher_streams or [])
    for stream in streams:
        if stream not in STREAMS:
            raise ConfigError(f"distill.teacher_streams: {stream!r} is not one of "
                              f"{', '.join(STREAMS)}")
    if streams and d.name != "none":
        if student_stream not in streams:
            raise ConfigError(f"distill.teacher_streams={streams} lacks the student's stream "
                              f"{student_stream}: feature mimicry and the ensemble need it; "
                              "add it")
        if len(set(streams)) != len(streams):
            raise ConfigError(f"distill.teacher_streams={streams} names a stream twice")
        teacher = str(d.teacher or "")
        if "/" in teacher or teacher.startswith("."):
            raise ConfigError(f"distill.teacher={teacher} is one run directory; an ensemble "
                              "teacher (distill.teacher_streams) needs an ablation ID, e.g. "
                              "distill.teacher=B7")
    if d.name == "none":
        for key in ("beta", "gamma", "teacher", "teacher_streams"):
            if d[key]:
                raise ConfigError(f"distill.{key}={d[key]} has no effect without distillation; "
                                  "add distill=from_base or distill=from_existing")


@dataclass
class PretrainConfig:
    """MaskCLR (the training plan §4): when enabled, runs before the main training phase."""

    RANGES: ClassVar[dict[str, Range]] = {
        "epochs": POSITIVE, "lr": POSITIVE, "batch_size": POSITIVE, "mask_ratio": BELOW_ONE,
        "temperature": POSITIVE, "contrastive_weight": NON_NEGATIVE,
    }

    enabled: bool = False
    epochs: int = 100
    lr: float = 0.001
    batch_size: int = 128
    mask_ratio: float = 0.6
    temperature: float = 0.07
    mask_strategy: str = "body_region"
    contrastive_weight: float = 0.5


@dataclass
class EnsembleConfig:
    """An ensemble run (B14, the "4s" rows): combines finished runs instead of training."""

    of: Optional[str] = None  # ablation ID of the members, e.g. B7; null = not an ensemble
    streams: list[str] = field(
        default_factory=lambda: ["joint", "bone", "velocity", "bone_velocity"]
    )
    weights: list[float] = field(default_factory=lambda: [0.6, 0.6, 0.4, 0.4])  # CTR-GCN


def weights_problem(weights: list[float], name: str) -> str | None:
    """Ensemble weights (``ensemble.weights``, ``--weights``) must be finite, >= 0 and not all
    0: a NaN, negative or all-zero weight would give a "completed" ensemble at chance."""
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
        shown = " ".join(f"{w:g}" for w in weights)
        return (f"{name} {shown}: each weight must be a finite number >= 0, and not all 0 "
                "(e.g. 0.6 0.6 0.4 0.4)")
    return None


def check_ensemble(e: DictConfig) -> None:
    if len(e.streams) != len(e.weights):
        raise ConfigError("ensemble.weights must give one weight per entry of ensemble.streams")
    for stream in e.streams:
        if stream not in STREAMS:
            raise ConfigError(f"ensemble.streams: {stream!r} is not one of "
                              f"{', '.join(STREAMS)}")
    problem = weights_problem(list(e.weights), "ensemble.weights")
    if problem:
        raise ConfigError(problem)
