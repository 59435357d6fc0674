"""Structured-config schema for the Hydra app and the checks of its values.

Every YAML file under ``conf/`` is merged onto these dataclasses, so a typo'd key or a
value of the wrong type fails at composition time, naming the key. Value checks that a
type cannot express (a negative learning rate, batch_size 0) live in :func:`validate`.

This module must stay importable without torch: ``python -m lastexp --cfg job`` only
composes a config and should take well under a second.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional, get_type_hints

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from lastexp.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """The values a number key may take: ``low`` and ``high`` (None: unbounded), each bound
    included unless ``*_open``. Every group's schema lists its keys' ranges in ``RANGES``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open
                                        else value <= self.high)
        return low_ok and high_ok

    def text(self) -> str:
        """As the refusal says it: ``be > 0``, ``be >= 1``, ``lie in [0, 1)``, ``lie in (0, 8]``."""
        low, high = _number(self.low), _number(self.high)
        if self.high is None:
            return f"be {'>' if self.low_open else '>='} {low}"
        return (f"lie in {'(' if self.low_open else '['}{low}, {high}"
                f"{')' if self.high_open else ']'}")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if value == int(value) else f"{value:g}"


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
UNIT = Range(0, 1)  # a probability or share: [0, 1]
BELOW_ONE = Range(0, 1, high_open=True)  # [0, 1)


@dataclass
class ModelConfig:
    RANGES: ClassVar[dict[str, Range]] = {  # the allowed values of this group's numbers
        "width_mult": Range(0, 8, low_open=True),
        "drop_path_rate": UNIT, "dropout": BELOW_ONE, "num_prototypes": AT_LEAST_ONE,
    }

    name: str = MISSING  # registry key in lastexp.models
    width_mult: float = 1.0  # debug=tiny narrows every stage, keeping every component on
    drop_path_rate: float = 0.0
    dropout: float = 0.0
    use_st_att: list[bool] = field(default_factory=lambda: [False, False, True])
    # LAST-Base components (the training plan §9A); ignored by families that lack them.
    cross_temporal: bool = False
    prototype_graph: bool = False
    num_prototypes: int = 15
    freq_gate: bool = False
    partitioned_attention: bool = False
    hbra: bool = False
    factorized_att: bool = False
    ib_head: bool = False
    # LAST-Lite components (the training plan §9B).
    joint_embed: bool = False
    frame_gate: bool = False
    body_region_shift: bool = False
    dct_gate: bool = False


def check_model(m: DictConfig) -> None:
    if len(m.use_st_att) != 3:
        raise ConfigError(
            "model.use_st_att must list one flag per stage, e.g. [false,false,true]"
        )


@dataclass
class StreamConfig:
    name: str = "joint"  # joint | bone | velocity | bone_velocity


@dataclass
class OptimizerConfig:
    RANGES: ClassVar[dict[str, Range]] = {
        "lr": POSITIVE, "weight_decay": NON_NEGATIVE, "momentum": BELOW_ONE,
    }

    name: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    weight_decay: float = 0.0004
    momentum: float = 0.9
    nesterov: bool = True
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


def check_optimizer(o: DictConfig) -> None:
    betas = list(o.betas or [])
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"optimizer.betas={betas} must be two values in [0, 1), e.g. "
                          "[0.9,0.999]")
    if o.name == "sgd" and o.nesterov and o.momentum == 0:
        raise ConfigError("optimizer.momentum=0 with optimizer.nesterov=true: Nesterov "
                          "momentum needs momentum > 0; set optimizer.nesterov=false")


@dataclass
class SchedulerConfig:
    RANGES: ClassVar[dict[str, Range]] = {
        "warmup_epochs": NON_NEGATIVE, "warmup_start_lr": NON_NEGATIVE,
        "min_lr": NON_NEGATIVE, "restart_period": POSITIVE, "restart_mult": AT_LEAST_ONE,
        "gamma": POSITIVE,
    }

    name: str = "cosine_warmup_restart"
    warmup_epochs: int = 5
    warmup_start_lr: float = 0.01
    min_lr: float = 0.0001
    restart_period: int = 30
    restart_mult: int = 1
    milestones: list[int] = field(default_factory=lambda: [50, 65])
    gamma: float = 0.1


def check_scheduler(s: DictConfig, *, epochs: int, lr: float) -> None:
    """The schedule against the run: warmup shorter than the epochs, climbing to the lr."""
    warm = s.warmup_epochs
    if s.name != "cosine" and warm >= epochs and epochs > 1:
        raise ConfigError(
            f"scheduler.warmup_epochs={warm} must be below training.epochs={epochs}"
        )
    for milestone in s.milestones:
        if milestone < 0:
            raise ConfigError(f"scheduler.milestones={list(s.milestones)} must be epochs >= 0")
    if s.name != "cosine" and warm > 0 and s.warmup_start_lr > lr:
        raise ConfigError(f"scheduler.warmup_start_lr={s.warmup_start_lr:g} is above the peak "
                          f"optimizer.lr={lr:g}: warmup climbs to the lr; lower "
                          "scheduler.warmup_start_lr")


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
        if stream not in CHOICES["stream.name"]:
            raise ConfigError(f"distill.teacher_streams: {stream!r} is not one of "
                              f"{', '.join(CHOICES['stream.name'])}")
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
    0: a NaN, negative or all-zero weight gave a "completed" ensemble at chance."""
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
        shown = " ".join(f"{w:g}" for w in weights)
        return (f"{name} {shown}: each weight must be a finite number >= 0, and not all 0 "
                "(e.g. 0.6 0.6 0.4 0.4)")
    return None


def check_ensemble(e: DictConfig) -> None:
    if len(e.streams) != len(e.weights):
        raise ConfigError("ensemble.weights must give one weight per entry of ensemble.streams")
    for stream in e.streams:
        if stream not in CHOICES["stream.name"]:
            raise ConfigError(f"ensemble.streams: {stream!r} is not one of "
                              f"{', '.join(CHOICES['stream.name'])}")
    problem = weights_problem(list(e.weights), "ensemble.weights")
    if problem:
        raise ConfigError(problem)


@dataclass
class PreprocessingConfig:
    RANGES: ClassVar[dict[str, Range]] = {
        "window": POSITIVE, "max_frames": POSITIVE, "num_person": Range(1, 2),
    }

    name: str = "t64_uniform"
    window: int = 64  # frames fed to the model
    max_frames: int = 300  # frames stored per sample in the cache
    sampling: str = "uniform"  # uniform | crop_resize
    num_person: int = 1  # M: main actor only (1) or both bodies (2)
    # A one-actor clip's second body slot: zero (CTR-GCN's data/ntu scripts, the default) or,
    # with true, a copy of the first (what CTR-GCN's data/ntu120 align_frames writes)
    copy_single_body: bool = False
    p_interval_train: list[float] = field(default_factory=lambda: [0.5, 1.0])
    p_interval_test: list[float] = field(default_factory=lambda: [0.95])
    # uniform sampling: false (the training plan's Phase 0) stores exactly `window` frames per
    # sample, frame floor((i + 0.5) * L / window) of L valid frames, the same for train and
    # test; true stores up to `max_frames` and draws a random frame in each of the `window`
    # segments every training epoch (temporal jitter, an augmentation the notes do not give)
    temporal_jitter: bool = False


def check_preprocessing(p: DictConfig) -> None:
    for key in ("p_interval_train", "p_interval_test"):
        interval = list(p[key] or [])
        if not 1 <= len(interval) <= 2 or not all(0.0 < v <= 1.0 for v in interval) or \
                sorted(interval) != interval:
            raise ConfigError(f"preprocessing.{key}={interval} must be one or two increasing "
                              "values in (0, 1], e.g. [0.5,1.0]")


@dataclass
class SyntheticConfig:
    RANGES: ClassVar[dict[str, Range]] = {
        "subjects": AT_LEAST_ONE, "samples_per_class": AT_LEAST_ONE, "min_frames": AT_LEAST_ONE,
        "max_frames": AT_LEAST_ONE, "noise": NON_NEGATIVE, "seed": NON_NEGATIVE,
    }

    subjects: int = 40  # NTU subject ids 1..N, so the official xsub rule applies
    samples_per_class: int = 100
    min_frames: int = 48
    max_frames: int = 110
    noise: float = 0.01  # sensor noise, metres
    seed: int = 0


@dataclass
class DatasetConfig:
    RANGES: ClassVar[dict[str, Range]] = {"num_classes": NON_NEGATIVE, "limit": AT_LEAST_ONE,
                                          "val_fraction": Range(0, 1, True, True)}

    name: str = "synthetic"
    benchmark: str = "synthetic"  # synthetic | ntu60 | ntu120
    split: str = "xsub"  # xsub | xview | xset
    num_classes: int = 0  # 0 = taken from the data (synthetic)
    raw_dir: Optional[str] = None
    npz: Optional[str] = None
    # NTU's published list of samples with missing skeletons (a text file, one sample name per
    # line); those samples are excluded and reported in summary.json's `skipped`
    missing_list: Optional[str] = None
    limit: Optional[int] = None  # keep only the first N samples of each split (debug)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    # A validation split carved from the training split (lastexp.data.validation; none by
    # default: the best epoch is then chosen on the test split, as the field reports): whole
    # training subjects for xsub/xset (a list of subject IDs, or a count picked reproducibly),
    # or a class-stratified fraction for xview and the synthetic corpus.
    val_subjects: Any = None
    val_fraction: Optional[float] = None


def check_dataset(d: DictConfig) -> None:
    if d.benchmark != "synthetic" and d.split == "xset" and d.benchmark != "ntu120":
        raise ConfigError("dataset.split=xset exists for ntu120 only; use xsub or xview")
    s = d.synthetic
    if s.min_frames > s.max_frames:
        raise ConfigError(f"dataset.synthetic.min_frames={s.min_frames} is above "
                          f"dataset.synthetic.max_frames={s.max_frames}; lower it")


@dataclass
class TrainingConfig:
    RANGES: ClassVar[dict[str, Range]] = {
        "epochs": POSITIVE, "batch_size": POSITIVE, "eval_batch_size": POSITIVE,
        "gradient_accumulation_steps": POSITIVE, "gradient_clip": NON_NEGATIVE,
        "label_smoothing": UNIT, "ib_loss_weight": NON_NEGATIVE, "causal_prob": UNIT,
        "save_interval": NON_NEGATIVE, "max_hours": POSITIVE,
        "early_stopping_patience": POSITIVE, "early_stopping_min_delta": NON_NEGATIVE,
        "rotation_deg": Range(0, 180), "max_nonfinite_steps": POSITIVE,
        "num_workers": NON_NEGATIVE,
    }

    epochs: int = 90
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 2
    gradient_clip: float = 1.0  # 0 disables
    label_smoothing: float = 0.1
    ib_loss_weight: float = 0.0
    # autocast: off | fp16 (with GradScaler) | bf16; true = fp16 on CUDA, off elsewhere
    amp: Any = True
    compile: bool = False  # torch.compile the model (speed only: not part of the run identity)
    compile_mode: str = "default"  # default | reduce-overhead | max-autotune | ...
    channels_last: bool = False  # NHWC layout of the 4-D weights and activations (speed only)
    # SWA from this epoch (0-based) or, as 0 < f < 1, from int(f * epochs) (the training plan
    # §7: int(0.75 * total_epochs)); null = off
    swa_start: Optional[float] = None
    causal_prob: float = 0.0
    # what a causal batch makes causal: tcn (the training plan §8: left-only padding in the TCN
    # layers) | all (attention, pooled means, prototype graph, refinement and gates too)
    causal_scope: str = "tcn"
    save_interval: int = 10  # keep checkpoints/epoch_XXXX.pt every N epochs (0 = never)
    max_hours: Optional[float] = None  # checkpoint and exit cleanly past this wall time
    early_stopping_patience: Optional[int] = None  # epochs without a gain; null = off
    early_stopping_monitor: str = "val_top1"  # val_top1 | val_loss
    early_stopping_min_delta: float = 0.0  # a smaller change is no gain
    overfit_check: bool = False  # stop once all training samples are right (debug=overfit)
    # rotation and scale of the training plan's MaskCLR views, on supervised training too; off:
    # the notes give no augmentation for supervised runs (an option lastexp adds)
    augment: bool = False
    rotation_deg: float = 15.0
    scale_range: list[float] = field(default_factory=lambda: [0.9, 1.1])
    max_nonfinite_steps: int = 20  # consecutive non-finite losses before the run aborts
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = False  # torch.use_deterministic_algorithms


def check_training(t: DictConfig) -> None:
    swa, epochs = t.swa_start, t.epochs
    if swa is not None and not (0 < swa < 1 or (swa == int(swa) and 0 <= swa < epochs)):
        raise ConfigError(f"training.swa_start={swa:g} must be a fraction of the epochs in (0, 1) "
                          f"or an epoch in [0, training.epochs={epochs})")
    scale = list(t.scale_range)
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise ConfigError(f"training.scale_range={scale} must be two numbers [low,high] with "
                          "0 < low <= high, e.g. [0.9,1.1]")
    amp_mode(t.amp, "cpu")  # refuses an unknown mode
    device = str(t.device)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ConfigError(f"training.device={device} is not one of auto, cpu, cuda, cuda:N")


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


# ----------------------------------------------------------------------------- values

AMP_CHOICES = ("off", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CHOICES = {
    "stream.name": ("joint", "bone", "velocity", "bone_velocity"),
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
    but a ``+`` adds any key to the config (``+trainng.epochs=3`` trained and stored it)."""
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
    """No key holds NaN or infinity (each passed every range check before: nan compares
    false; ``swa_start=nan`` and ``width_mult=inf`` then failed deep in the run)."""
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
    """Each number of ``node`` within its range (``schema.RANGES``), in nested groups too."""
    for key, allowed in getattr(schema, "RANGES", {}).items():
        value = node[key]
        if value is not None and not allowed.holds(value):
            raise ConfigError(f"{prefix}{key}={value} must {allowed.text()}")
    hints = get_type_hints(schema)
    for f in fields(schema):
        if is_dataclass(hints.get(f.name)) and isinstance(node.get(f.name), DictConfig):
            in_ranges(node[f.name], hints[f.name], f"{prefix}{f.name}.")


SUBJECT_SPLITS = ("xsub", "xset")  # the splits whose validation split holds out subjects


def check_selection(cfg: DictConfig) -> None:
    """The validation split's keys (``dataset.val_subjects`` / ``dataset.val_fraction``) and the
    search's protocol: a search tunes on a validation split unless ``search.on_test=true``.
    What only the data can tell (a subject that is not a training subject) is checked when the
    split is carved (:mod:`lastexp.data.validation`)."""
    subjects = OmegaConf.select(cfg, "dataset.val_subjects")
    fraction = OmegaConf.select(cfg, "dataset.val_fraction")
    split, benchmark = OmegaConf.select(cfg, "dataset.split"), OmegaConf.select(
        cfg, "dataset.benchmark")
    if subjects is not None and fraction is not None:
        raise ConfigError("dataset.val_subjects and dataset.val_fraction both carve the "
                          "validation split; set one of them")
    if subjects is not None:
        val_subjects_spec(subjects)
        if split not in SUBJECT_SPLITS:
            raise ConfigError(f"dataset.val_subjects: the {split} split is by camera, its "
                              "training subjects are test subjects too; carve a class-stratified "
                              "share instead, e.g. dataset.val_fraction=0.1")
    if fraction is not None:
        if not 0.0 < fraction < 1.0:
            raise ConfigError(f"dataset.val_fraction={fraction} must lie in (0, 1), e.g. 0.1")
        if benchmark != "synthetic" and split in SUBJECT_SPLITS:
            raise ConfigError(f"dataset.val_fraction: the {benchmark} {split} split holds out "
                              "subjects, so validation holds out whole training subjects: "
                              "dataset.val_subjects=3 (a count) or a list of subject IDs")
    name = OmegaConf.select(cfg, "search.name")
    if name and subjects is None and fraction is None and not OmegaConf.select(
            cfg, "search.on_test"):
        raise ConfigError(f"+search={name} would tune on the test split: carve a validation "
                          "split with dataset.val_subjects=N (xsub, xset) or "
                          "dataset.val_fraction=0.1 (xview, synthetic), or pass "
                          "search.on_test=true to tune on the test split and say so")


def val_subjects_spec(value: Any) -> int | list[int]:
    """``dataset.val_subjects`` as a count (int >= 1) or a sorted list of subject IDs."""
    if isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
        items = list(value)
        if items and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                         for v in items):
            return sorted(set(items))
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ConfigError(f"dataset.val_subjects={value} must be a count of training subjects "
                      "(e.g. 3) or a list of subject IDs (e.g. [1,8])")


def amp_mode(value: Any, device_type: str) -> str:
    """``training.amp`` -> one of :data:`AMP_CHOICES` on this device. ``true`` means fp16 on
    CUDA and off elsewhere (as before the explicit modes); ``false`` means off. An explicit
    mode applies on every device (CPU autocast runs fp16 and bf16 too)."""
    if isinstance(value, bool):
        return "fp16" if value and device_type == "cuda" else "off"
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return amp_mode(text == "true", device_type)
    if text not in AMP_CHOICES:
        raise ConfigError(f"training.amp={value} is not one of {', '.join(AMP_CHOICES)} "
                          "(true: fp16 on CUDA, off on CPU)")
    return text


def swa_start_epoch(swa_start: float | None, epochs: int) -> int | None:
    """``training.swa_start`` as the 0-based epoch from which SWA averages: a fraction
    0 < f < 1 of the epochs gives ``int(f * epochs)`` (the training plan §7), a whole number is
    the epoch itself; None: SWA is off."""
    if swa_start is None:
        return None
    if 0 < swa_start < 1:
        return int(swa_start * epochs)
    return int(swa_start)
