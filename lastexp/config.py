"""Structured-config schema for the Hydra app, and the run identity derived from it.

Every YAML file under ``conf/`` is merged onto these dataclasses, so a typo'd key or a
value of the wrong type fails at composition time, naming the key. Value checks that a
type cannot express (a negative learning rate, batch_size 0) live in :func:`validate`.

This module must stay importable without torch: ``python -m lastexp --cfg job`` only
composes a config and should take well under a second.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from lastexp.runstore.layout import RunDir


class ConfigError(ValueError):
    """A user-facing configuration or input error: printed as one line, exit code 2."""


@dataclass
class ModelConfig:
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


@dataclass
class StreamConfig:
    name: str = "joint"  # joint | bone | velocity | bone_velocity


@dataclass
class OptimizerConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    weight_decay: float = 0.0004
    momentum: float = 0.9
    nesterov: bool = True
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class SchedulerConfig:
    name: str = "cosine_warmup_restart"
    warmup_epochs: int = 5
    warmup_start_lr: float = 0.01
    min_lr: float = 0.0001
    restart_period: int = 30
    restart_mult: int = 1
    milestones: list[int] = field(default_factory=lambda: [50, 65])
    gamma: float = 0.1


@dataclass
class DistillConfig:
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


@dataclass
class PretrainConfig:
    """MaskCLR (the training plan §4): when enabled, runs before the main training phase."""

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


@dataclass
class PreprocessingConfig:
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


@dataclass
class SyntheticConfig:
    subjects: int = 40  # NTU subject ids 1..N, so the official xsub rule applies
    samples_per_class: int = 100
    min_frames: int = 48
    max_frames: int = 110
    noise: float = 0.01  # sensor noise, metres
    seed: int = 0


@dataclass
class DatasetConfig:
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


@dataclass
class TrainingConfig:
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
    # torch.set_num_threads before training (speed only: not part of the run identity); by
    # default SLURM_CPUS_PER_TASK in a SLURM job, else this process's CPUs minus loader workers
    num_threads: int = "${lastexp_threads:${training.num_workers}}"  # type: ignore[assignment]
    deterministic: bool = False  # torch.use_deterministic_algorithms


@dataclass
class LoggerConfig:
    name: str = "wandb"  # wandb | tensorboard | wandb_tensorboard (both) | none
    project: str = "lastexp"
    entity: Optional[str] = None
    mode: str = "auto"  # auto (online with credentials, else offline) | online | offline
    group: Optional[str] = None  # default: the sweep directory name
    tags: list[str] = field(default_factory=list)


@dataclass
class PathsConfig:
    runs: str = "runs"
    data: str = "data"


@dataclass
class Config:
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
}


def validate(cfg: DictConfig) -> None:
    """Check values a type cannot express; raise ConfigError naming the key."""

    def get(key: str) -> Any:
        return OmegaConf.select(cfg, key)

    for key, allowed in CHOICES.items():
        value = get(key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")

    def positive(key: str, strict: bool = True) -> None:
        value = get(key)
        if value is None:
            return
        if (strict and not value > 0) or (not strict and value < 0):
            sign = "> 0" if strict else ">= 0"
            raise ConfigError(f"{key}={value} must be {sign}")

    for key in (
        "optimizer.lr",
        "training.epochs",
        "training.batch_size",
        "training.eval_batch_size",
        "training.gradient_accumulation_steps",
        "training.max_nonfinite_steps",
        "preprocessing.window",
        "preprocessing.max_frames",
        "model.width_mult",
        "distill.tau",
        "training.max_hours",
    ):
        positive(key)
    for key in (
        "optimizer.weight_decay",
        "optimizer.momentum",
        "training.gradient_clip",
        "training.early_stopping_min_delta",
        "training.ib_loss_weight",
        "training.save_interval",
        "training.num_workers",
        "scheduler.warmup_epochs",
        "scheduler.min_lr",
        "scheduler.warmup_start_lr",
        "distill.alpha",
        "distill.beta",
        "distill.gamma",
    ):
        positive(key, strict=False)
    for key in ("training.label_smoothing", "training.causal_prob", "model.dropout",
                "model.drop_path_rate", "pretrain.mask_ratio"):
        value = get(key)
        if not 0.0 <= value <= 1.0 or (key == "model.dropout" and value == 1.0):
            raise ConfigError(f"{key}={value} must lie in [0, 1)")
    if get("preprocessing.num_person") not in (1, 2):
        num = get("preprocessing.num_person")
        raise ConfigError(f"preprocessing.num_person={num} must be 1 or 2")
    if len(get("model.use_st_att")) != 3:
        raise ConfigError(
            "model.use_st_att must list one flag per stage, e.g. [false,false,true]"
        )
    if get("dataset.benchmark") != "synthetic" and get("dataset.split") == "xset" and get(
        "dataset.benchmark"
    ) != "ntu120":
        raise ConfigError("dataset.split=xset exists for ntu120 only; use xsub or xview")
    epochs, warm = get("training.epochs"), get("scheduler.warmup_epochs")
    if get("scheduler.name") != "cosine" and warm >= epochs and epochs > 1:
        raise ConfigError(
            f"scheduler.warmup_epochs={warm} must be below training.epochs={epochs}"
        )
    swa = get("training.swa_start")
    if swa is not None and not (0 < swa < 1 or (swa == int(swa) and 0 <= swa < epochs)):
        raise ConfigError(f"training.swa_start={swa:g} must be a fraction of the epochs in (0, 1) "
                          f"or an epoch in [0, training.epochs={epochs})")
    if len(get("ensemble.streams")) != len(get("ensemble.weights")):
        raise ConfigError("ensemble.weights must give one weight per entry of ensemble.streams")
    for stream in get("ensemble.streams"):
        if stream not in CHOICES["stream.name"]:
            raise ConfigError(f"ensemble.streams: {stream!r} is not one of "
                              f"{', '.join(CHOICES['stream.name'])}")
    positive("pretrain.epochs")
    positive("pretrain.lr")
    positive("pretrain.batch_size")
    positive("pretrain.temperature")
    positive("training.num_threads")
    lo, hi = get("training.scale_range")
    if not 0 < lo <= hi:
        raise ConfigError(f"training.scale_range=[{lo},{hi}] must satisfy 0 < low <= high")
    amp_mode(get("training.amp"), "cpu")  # refuses an unknown mode
    device = str(get("training.device"))
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ConfigError(f"training.device={device} is not one of auto, cpu, cuda, cuda:N")
    data_root = get("paths.data")
    if data_root and Path(str(data_root)).exists() and not Path(str(data_root)).is_dir():
        raise ConfigError(f"paths.data={data_root} is a file; name a folder for the data and "
                          "its caches")
    positive("training.early_stopping_patience")
    positive("scheduler.restart_period")
    positive("seed", strict=False)
    betas = list(get("optimizer.betas") or [])
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"optimizer.betas={betas} must be two values in [0, 1), e.g. "
                          "[0.9,0.999]")
    for key in ("preprocessing.p_interval_train", "preprocessing.p_interval_test"):
        p = list(get(key) or [])
        if not 1 <= len(p) <= 2 or not all(0.0 < v <= 1.0 for v in p) or sorted(p) != p:
            raise ConfigError(f"{key}={p} must be one or two increasing values in (0, 1], "
                              "e.g. [0.5,1.0]")
    streams = list(get("distill.teacher_streams") or [])
    for stream in streams:
        if stream not in CHOICES["stream.name"]:
            raise ConfigError(f"distill.teacher_streams: {stream!r} is not one of "
                              f"{', '.join(CHOICES['stream.name'])}")
    if streams and get("distill.name") != "none":
        if get("stream.name") not in streams:
            raise ConfigError(f"distill.teacher_streams={streams} lacks the student's stream "
                              f"{get('stream.name')}: feature mimicry and the ensemble need it; "
                              "add it")
        if len(set(streams)) != len(streams):
            raise ConfigError(f"distill.teacher_streams={streams} names a stream twice")
        teacher = str(get("distill.teacher") or "")
        if "/" in teacher or teacher.startswith("."):
            raise ConfigError(f"distill.teacher={teacher} is one run directory; an ensemble "
                              "teacher (distill.teacher_streams) needs an ablation ID, e.g. "
                              "distill.teacher=B7")
    if get("distill.name") == "none":
        for key in ("distill.beta", "distill.gamma", "distill.teacher",
                    "distill.teacher_streams"):
            if get(key):
                raise ConfigError(f"{key}={get(key)} has no effect without distillation; add "
                                  "distill=from_base or distill=from_existing")
    start, peak = get("scheduler.warmup_start_lr"), get("optimizer.lr")
    if get("scheduler.name") != "cosine" and warm > 1 and start > peak:
        raise ConfigError(f"scheduler.warmup_start_lr={start:g} is above the peak optimizer.lr="
                          f"{peak:g}: warmup climbs to the lr; lower scheduler.warmup_start_lr")


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


# The training plan's own commands (``--set training.lr=...``, ``data.dataset.stream=...``)
# name keys that live elsewhere here: each is accepted as an alias of its key.
KEY_ALIASES = {
    "training.lr": "optimizer.lr",
    "training.momentum": "optimizer.momentum",
    "training.nesterov": "optimizer.nesterov",
    "training.weight_decay": "optimizer.weight_decay",
    "training.warmup_epochs": "scheduler.warmup_epochs",
    "training.warmup_start_lr": "scheduler.warmup_start_lr",
    "training.min_lr": "scheduler.min_lr",
    "training.restart_period": "scheduler.restart_period",
    "training.restart_mult": "scheduler.restart_mult",
    "data.dataset.stream": "stream",
}
# List-valued keys the notes write without brackets (``model.use_st_att=false,false,true``);
# in Hydra a bare comma would mean a sweep, which a list of flags can never be.
LIST_KEYS = ("model.use_st_att",)


# What users of other Hydra templates write for "no logger": ``logger=null`` and ``~logger``
# (which would otherwise fail, or fall back to the schema's W&B); both mean ``logger=none``.
NO_LOGGER = ("logger=null", "logger=none", "logger=~", "~logger")


def _normalize(arg: str) -> str:
    if arg.split("=", 1)[0] == "~logger" or arg.lower() in NO_LOGGER:
        return "logger=none"
    plus = arg[: len(arg) - len(arg.lstrip("+"))]
    body = arg[len(plus):]
    key, sep, value = body.partition("=")
    if not sep:
        return arg
    if key in ("ablation", "sweep"):  # see normalize_overrides
        return body
    if key in ("logger", "logger.name") and value.startswith("["):  # logger=[wandb,tensorboard]
        names = sorted({v.strip() for v in value.strip("[]").split(",") if v.strip()})
        if names == ["tensorboard", "wandb"]:
            return f"{plus}{key}=wandb_tensorboard"
        if len(names) == 1:
            return f"{plus}{key}={names[0]}"
    if key in KEY_ALIASES:
        return f"{plus}{KEY_ALIASES[key]}={value}"
    if key in LIST_KEYS and "," in value and not value.lstrip().startswith("["):
        return f"{plus}{key}=[{value}]"
    return arg


def normalize_overrides(argv: list[str]) -> list[str]:
    """Overrides as Hydra composes them: the README's ``+ablation=<ID>`` for the ``ablation`` group,
    the notes' key names (:data:`KEY_ALIASES`), bracket-less lists (:data:`LIST_KEYS`),
    ``logger=[wandb,tensorboard]`` (the ``wandb_tensorboard`` option) and ``logger=null`` /
    ``~logger`` (:data:`NO_LOGGER`: no logger).

    The ablation group sits in the defaults list *before* ``debug`` so that ``debug=tiny`` can
    shrink any ablation; Hydra would refuse to append (``+``) a group that is already listed,
    so the ``+`` is dropped here. ``ablation=<ID>`` works too. The same holds for ``+sweep=``
    (after the ablation row, before ``debug``).
    """
    return [_normalize(a) for a in argv]


# -------------------------------------------------------------------------- identity

# Keys that do not change what a run computes: where things live, how it is watched,
# how it is resumed. Two configs that differ only here are the same run.
VOLATILE_KEYS = (
    "hydra",
    "env",
    "paths",
    "logger",
    "fresh",
    "run_name",
    "run_dependencies",
    "training.max_hours",
    "training.save_interval",
    "training.num_workers",
    "training.device",
    "training.compile",
    "training.compile_mode",
    "training.channels_last",
    "training.num_threads",
)


# Keys added after runs were stored: at this value they are left out of the identity, so a new
# option never renames the runs trained before it existed.
ADDED_KEYS: dict[str, Any] = {"distill.teacher_streams": []}


def identity(cfg: Any) -> dict:
    """The resolved config minus volatile keys (and added keys at their default): what makes
    two runs the same run."""
    raw = OmegaConf.to_container(cfg, resolve=False) if not isinstance(cfg, dict) else dict(cfg)
    raw.pop("hydra", None)  # holds enums and the run directory itself
    raw = json.loads(json.dumps(raw))  # deep copy of plain containers
    for key in VOLATILE_KEYS:
        node, *rest = key.split(".")
        if not rest:
            raw.pop(node, None)
        elif isinstance(raw.get(node), dict):
            raw[node].pop(rest[0], None)
    for key, default in ADDED_KEYS.items():
        node, leaf = key.split(".")
        if isinstance(raw.get(node), dict) and raw[node].get(leaf, default) == default:
            raw[node].pop(leaf, None)
    return OmegaConf.to_container(OmegaConf.create(raw), resolve=True)


def run_key(cfg: Any) -> str:
    """A short stable hash of :func:`identity`."""
    blob = json.dumps(identity(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def run_dir_name(cfg: Any) -> str:
    """Readable and unique: ``<ablation|model>_<stream>_<dataset>_s<seed>_<key>``."""
    sel = (lambda k: OmegaConf.select(cfg, k)) if not isinstance(cfg, dict) else (
        lambda k: _dict_select(cfg, k)
    )
    if sel("run_name"):
        return str(sel("run_name"))
    head = sel("ablation") or sel("model.name")
    parts = [head, sel("stream.name"), sel("dataset.name"), f"s{sel('seed')}", run_key(cfg)]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", "_".join(str(p) for p in parts))


def run_dir_problem(run_dir: str | Path, runs_root: str | Path) -> str | None:
    """Why ``run_dir`` may not hold a run: it must lie strictly inside the runs root (so that
    no ``run_name=..``, ``run_name=.``, absolute path or ``hydra.run.dir=.`` can make a command
    write, resume or clean up outside it, or treat the root itself as a run)."""
    target, root = Path(run_dir).resolve(), Path(runs_root).resolve()
    if target == root or root not in target.parents:
        return (f"run directory {run_dir} is {'the runs root' if target == root else 'outside'} "
                f"paths.runs={runs_root}; give run_name a plain name (run_name=my_run) and "
                "leave hydra.run.dir / hydra.sweep.dir at their defaults")
    return None


def init_from_problem(cfg: DictConfig) -> str | None:
    """``init_from=`` must name a checkpoint file when the run will read it: when it starts from
    scratch (a run that resumes from its ``last.pt`` or is complete never reads it, so a source
    deleted since does not stop a resume). Checked before Hydra, where a bad path cost a data
    load before."""
    src = OmegaConf.select(cfg, "init_from")
    if not src or Path(str(src)).is_file():
        return None
    run = RunDir(Path(str(OmegaConf.select(cfg, "paths.runs"))) / run_dir_name(cfg))
    try:
        status = json.loads(run.metrics.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if run.last.exists() or status == "completed":
        return None
    what = "is a folder, not a file" if Path(str(src)).is_dir() else "does not exist"
    return (f"init_from={src} {what}; give the path of a checkpoint file, e.g. "
            "init_from=runs/<run>/checkpoints/best.pt, or leave init_from out")


def _dict_select(d: dict, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d
