"""Where each file of a run directory lives (the README's "Runs and results").

Every module that reads or writes a run directory takes its paths from :class:`RunDir`; no
other module spells ``metrics.json`` or ``checkpoints/best.pt``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
SCORES_FILE = "test_scores.npz"
DATA_SUMMARY_FILE = "data_summary.json"
HYDRA_DIR = ".hydra"
HYDRA_CONFIG = "config.yaml"  # in HYDRA_DIR: the composed config
HYDRA_OVERRIDES = "overrides.yaml"  # in HYDRA_DIR: the command line's overrides
HYDRA_LOG = "lastexp.log"  # what the run logs and prints (lastexp/logs.py), once it trains
CHECKPOINT_DIR = "checkpoints"
LAST_FILE = "last.pt"  # in CHECKPOINT_DIR: the resume point
BEST_FILE = "best.pt"  # in CHECKPOINT_DIR: the best epoch's weights
# What a run restarts from: its own, which nobody points at (starting it over replaces them)
RESUME_FILES = frozenset({LAST_FILE, "pretrain_last.pt", "encoder.pt"})
EXPORT_DIR = "export"
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
# Folders of the runs root that never hold runs: the lock files, the records of sweeps, the
# searches' studies (lastexp.optuna_study.SEARCH_DIR)
LOCK_DIR = ".locks"
SWEEP_DIR = ".sweeps"
SEARCH_DIR = "search"
INTERNAL_DIRS = frozenset({LOCK_DIR, SWEEP_DIR, SEARCH_DIR})
# Folders inside a run directory (or beside runs) that never hold runs themselves.
NOT_RUNS = frozenset({CHECKPOINT_DIR, EXPORT_DIR, WANDB_DIR, TENSORBOARD_DIR, "__pycache__"})
# What only a run that started training writes (.hydra: once data, model and checkpoints are
# in hand); a command that fails before writing any of them trained nothing.
TRAINED = (CHECKPOINT_DIR, HISTORY_FILE, HYDRA_DIR)


@dataclass(frozen=True)
class RunDir:
    """One run directory and the paths of what it holds."""

    path: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> RunDir:
        return cls(Path(path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def history(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def scores(self) -> Path:
        """Per-sample test logits of the model the run delivers (what ensembles combine)."""
        return self.path / SCORES_FILE

    @property
    def data_summary(self) -> Path:
        return self.path / DATA_SUMMARY_FILE

    @property
    def hydra(self) -> Path:
        return self.path / HYDRA_DIR

    @property
    def hydra_config(self) -> Path:
        return self.hydra / HYDRA_CONFIG

    @property
    def hydra_overrides(self) -> Path:
        return self.hydra / HYDRA_OVERRIDES

    @property
    def hydra_log(self) -> Path:
        return self.path / HYDRA_LOG

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def last(self) -> Path:
        """The resume point: written after every epoch and when a run is stopped."""
        return self.checkpoints / LAST_FILE

    @property
    def best(self) -> Path:
        """The best epoch's weights (``best_top1``); written before ``last.pt``."""
        return self.checkpoints / BEST_FILE

    @property
    def swa(self) -> Path:
        return self.checkpoints / "swa.pt"

    @property
    def encoder(self) -> Path:
        """The MaskCLR-pretrained encoder, kept so that a restarted run does not pretrain."""
        return self.checkpoints / "encoder.pt"

    @property
    def pretrain_last(self) -> Path:
        """The MaskCLR pretraining state (every epoch end, and when stopped): a restarted run
        continues pretraining from it; removed once ``encoder.pt`` is kept."""
        return self.checkpoints / "pretrain_last.pt"

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:04d}.pt"

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def export(self) -> Path:
        return self.path / EXPORT_DIR

    def model_checkpoint(self) -> Path | None:
        """The weights a finished run is used by: ``best.pt``, else ``last.pt``, else None."""
        for path in (self.best, self.last):
            if path.is_file():
                return path
        return None


def is_resume_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a run's own resume point (``checkpoints/last.pt``,
    ``pretrain_last.pt`` or ``encoder.pt``), not a file somebody pointed at."""
    p = Path(path)
    return p.name in RESUME_FILES and p.parent.name == CHECKPOINT_DIR
