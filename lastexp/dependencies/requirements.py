"""What a run reads from other runs: its distillation teachers and ensemble members, and the
overrides such a dependency shares with the run that needs it. The one rule that the run
itself (:mod:`~lastexp.dependencies.lookup`), ``python -m lastexp.plan`` and the SLURM
launcher's ordering (:mod:`~lastexp.dependencies.waves`) all apply.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

# Overrides of the dependent run that its dependency must share: where runs and data live,
# the debug preset, dataset sources and logging. Recipes (training.*, model.*) are the
# dependency's own.
_SHARED = ("debug=", "paths.", "logger=", "logger.", "dataset.", "training.device=")


def shared_overrides(task: list[str] | None = None) -> list[str]:
    """The overrides of ``task`` (default: the running job's) that a dependency inherits."""
    if task is None:
        try:
            task = list(HydraConfig.get().overrides.task)
        except ValueError:  # no Hydra job is running
            return []
    return [o for o in task if o.lstrip("+").startswith(_SHARED)]


def requirements(cfg: DictConfig) -> list[tuple[str, str, str]]:
    """``(role, ref, stream)`` of every other run this one reads: the distillation teacher
    (when a KD or feature term is on) and the ensemble members. ``ref`` is an ablation ID or a
    run directory. The same conditions under which run.py resolves them."""
    ens, d = cfg.get("ensemble"), cfg.get("distill")  # (absent: not a lastexp config)
    if ens is not None and ens.get("of"):
        return [("ensemble member", str(ens.of), str(s)) for s in ens.streams]
    if d is not None and distillation_on(d) and d.teacher:
        return [("teacher", str(d.teacher), s) for s in teacher_streams(cfg)]
    return []


def teacher_streams(cfg: DictConfig) -> list[str]:
    """The streams of the teacher's runs, the student's own first (its member is the one
    feature mimicry reads): the student's stream alone unless ``distill.teacher_streams``."""
    own = str(cfg.stream.name)
    streams = [str(s) for s in (cfg.distill.get("teacher_streams") or [])]
    return [own, *(s for s in streams if s != own)]


def distillation_on(dcfg: DictConfig) -> bool:
    """The one rule for "this run distils": a distill option with a KD or feature term."""
    return dcfg.name != "none" and (dcfg.beta > 0 or dcfg.gamma > 0)


def is_path(value: str) -> bool:
    """A run directory given as a path (as opposed to an ablation ID such as B7)."""
    return "/" in value or value.startswith(".") or Path(value).is_dir()
