"""Where a run lives and how it is watched: the ``logger``, ``search`` and ``paths`` groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

from omegaconf import DictConfig

from lastexp.config.ranges import NON_NEGATIVE, Range
from lastexp.errors import ConfigError


@dataclass
class LoggerConfig:
    RANGES: ClassVar[dict[str, Range]] = {"log_every_n_steps": NON_NEGATIVE}

    name: str = "wandb"  # wandb | tensorboard | wandb_tensorboard (both) | none
    project: str = "lastexp"
    entity: Optional[str] = None
    mode: str = "auto"  # auto (online with credentials, else offline) | online | offline
    group: Optional[str] = None  # default: the row's config without the seed (row_group)
    tags: list[str] = field(default_factory=list)
    # train loss, lr and gradient norm every N optimizer steps (global step as x-axis); 0 = off
    log_every_n_steps: int = 50


@dataclass
class SearchConfig:
    """A hyper-parameter search (``+search=<name>`` sets ``name``): it tunes on the validation
    split (``dataset.val_subjects`` / ``dataset.val_fraction``); ``on_test=true`` lets it tune on
    the test split instead, and its table says so."""

    name: Optional[str] = None
    on_test: bool = False


@dataclass
class PathsConfig:
    runs: str = "runs"
    data: str = "data"


def check_paths(p: DictConfig) -> None:
    data_root = p.data
    if data_root and Path(str(data_root)).exists() and not Path(str(data_root)).is_dir():
        raise ConfigError(f"paths.data={data_root} is a file; name a folder for the data and "
                          "its caches")
