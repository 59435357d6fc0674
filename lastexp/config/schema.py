"""The root of the structured config (:class:`Config`, every group under it) and
:func:`validate`, which runs every group's checks and those across groups."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Optional, get_type_hints

from omegaconf import DictConfig, ListConfig, OmegaConf

from lastexp.config.bookkeeping import LoggerConfig, PathsConfig, SearchConfig, check_paths
from lastexp.config.data import (
    STREAMS,
    DatasetConfig,
    PreprocessingConfig,
    StreamConfig,
    check_dataset,
    check_preprocessing,
    check_selection,
)
from lastexp.config.model import ModelConfig, check_model, schema_of
from lastexp.config.ranges import Range
from lastexp.config.teachers import (
    DistillConfig,
    EnsembleConfig,
    PretrainConfig,
    check_distill,
    check_ensemble,
)
from lastexp.config.training import (
    COMPILE_MODES,
    OptimizerConfig,
    SchedulerConfig,
    TrainingConfig,
    check_optimizer,
    check_scheduler,
    check_training,
)
from lastexp.errors import ConfigError


@dataclass
class Config:
    RANGES: ClassVar[dict[str, Range]] = {"seed": Range(0, 2**63, high_open=True)}

    model: ModelConfig = field(default_factory=ModelConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    env: str = "local"  # local | kaggle | slurm: paths and loader workers (conf/env)
    seed: int = 1
    ablation: Optional[str] = None  # set by +ablation=<ID>
    fresh: bool = False  # ignore an existing checkpoint in the run directory and start over
    init_from: Optional[str] = None  # fine-tune: initialise weights from this checkpoint
    run_name: Optional[str] = None  # directory name below paths.runs; default derived from config
    run_dependencies: bool = False  # train missing teachers / ensemble members first


CHOICES = {
    "stream.name": STREAMS,
    "optimizer.name": ("sgd", "adamw"),
    "scheduler.name": ("cosine_warmup", "cosine_warmup_restart", "multistep_warmup", "cosine"),
    "distill.name": ("none", "from_existing", "from_base"),
    "preprocessing.sampling": ("uniform", "crop_resize"),
    "dataset.benchmark": ("synthetic", "ntu60", "ntu120"),
    "dataset.split": ("xsub", "xview", "xset"),
    "logger.name": ("wandb", "tensorboard", "wandb_tensorboard", "none"),
    "logger.mode": ("auto", "online", "offline"),
    "pretrain.mask_strategy": ("body_region", "random"),
    "training.compile_mode": COMPILE_MODES,
    "training.early_stopping_monitor": ("val_top1", "val_loss"),
    "training.causal_scope": ("tcn", "all"),
}


def validate(cfg: DictConfig) -> None:
    """Check what a type cannot express; raise ConfigError naming the key. Every key must be
    the schema's (also one added with ``+``), every number finite and in its group's
    ``RANGES``, every choice known; then each group's own rules and those across groups."""
    known_keys(cfg, Config)
    finite_numbers(cfg)
    in_ranges(cfg, Config)
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    check_model(cfg.model)
    check_optimizer(cfg.optimizer)
    check_scheduler(cfg.scheduler, epochs=cfg.training.epochs, lr=cfg.optimizer.lr)
    check_distill(cfg.distill, student_stream=cfg.stream.name)
    check_ensemble(cfg.ensemble)
    check_preprocessing(cfg.preprocessing)
    check_dataset(cfg.dataset)
    check_training(cfg.training)
    check_paths(cfg.paths)
    check_selection(cfg)


def known_keys(node: DictConfig, schema: type, prefix: str = "") -> None:
    """Every key of ``node`` is a field of the dataclass ``schema``: Hydra refuses a typo'd key,
    but a ``+`` adds any key to the config (``+trainng.epochs=3`` would train and store it).
    A node is checked against its runtime type where that refines ``schema`` (a model family's)."""
    schema = schema_of(node, schema)
    names = {f.name for f in fields(schema)}
    hints = get_type_hints(schema)
    for key in node.keys():
        key = str(key)
        if prefix == "" and key == "hydra":
            continue
        if key not in names:
            leaf = _first_leaf(node, key)
            raise ConfigError(f"Key '{key}' not in '{schema.__name__}': {prefix}{leaf} is no "
                              "lastexp key (a + does not add keys to the schema); check its "
                              "spelling (python -m lastexp --cfg job lists every key)")
        sub = node._get_node(key)
        if is_dataclass(hints.get(key)) and isinstance(sub, DictConfig):
            known_keys(sub, hints[key], f"{prefix}{key}.")


def _first_leaf(node: DictConfig, key: str) -> str:
    """``key`` and, when it holds a mapping, its first leaf: ``trainng.epochs=3``."""
    path, value = key, node._get_node(key)
    while isinstance(value, DictConfig) and len(value) and not value._is_missing():
        first = str(next(iter(value.keys())))
        path, value = f"{path}.{first}", value._get_node(first)
    shown = value._value() if hasattr(value, "_value") else value
    return path if isinstance(shown, DictConfig) else f"{path}={shown}"


def finite_numbers(node: Any, prefix: str = "") -> None:
    """No key holds NaN or infinity: NaN passes every range check (it compares false), and
    ``swa_start=nan`` or ``width_mult=inf`` would fail deep in the run instead of here."""
    items = (node.items_ex(resolve=False) if isinstance(node, DictConfig) else
             enumerate(node._iter_ex(resolve=False)))
    for key, value in items:
        name = f"{prefix}{key}" if isinstance(node, DictConfig) else f"{prefix[:-1]}[{key}]"
        if isinstance(value, (DictConfig, ListConfig)):
            finite_numbers(value, f"{name}.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}={value} is not a finite number; give a number "
                              "(null where the key allows it)")


def in_ranges(node: DictConfig, schema: type, prefix: str = "") -> None:
    """Each number of ``node`` within its range (``schema.RANGES``, of its runtime type where
    that refines ``schema``), in nested groups too."""
    schema = schema_of(node, schema)
    for key, allowed in getattr(schema, "RANGES", {}).items():
        value = node[key]
        if value is not None and not allowed.holds(value):
            raise ConfigError(f"{prefix}{key}={value} must {allowed.text()}")
    hints = get_type_hints(schema)
    for f in fields(schema):
        if is_dataclass(hints.get(f.name)) and isinstance(node.get(f.name), DictConfig):
            in_ranges(node[f.name], hints[f.name], f"{prefix}{f.name}.")
