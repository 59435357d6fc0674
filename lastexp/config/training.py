"""The training groups (``optimizer``, ``scheduler``, ``training``) and their checks, with what
the trainer reads of them (:func:`amp_mode`, :func:`swa_start_epoch`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from omegaconf import DictConfig

from lastexp.config.ranges import AT_LEAST_ONE, BELOW_ONE, NON_NEGATIVE, POSITIVE, UNIT, Range
from lastexp.errors import ConfigError

AMP_CHOICES = ("off", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


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
class TrainingConfig:
    RANGES: ClassVar[dict[str, Range]] = {
        "epochs": POSITIVE, "batch_size": POSITIVE, "eval_batch_size": POSITIVE,
        "gradient_accumulation_steps": POSITIVE, "gradient_clip": NON_NEGATIVE,
        "label_smoothing": UNIT, "ib_loss_weight": NON_NEGATIVE, "causal_prob": UNIT,
        "save_interval": NON_NEGATIVE, "max_hours": POSITIVE,
        "early_stopping_patience": POSITIVE, "early_stopping_min_delta": NON_NEGATIVE,
        "rotation_deg": Range(0, 180), "max_nonfinite_steps": POSITIVE,
        "num_workers": NON_NEGATIVE, "num_threads": AT_LEAST_ONE,
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
    # torch.set_num_threads before training (speed only: not part of the run identity); by
    # default SLURM_CPUS_PER_TASK in a SLURM job, else this process's CPUs minus loader workers
    num_threads: int = "${lastexp_threads:${training.num_workers}}"  # type: ignore[assignment]
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


def amp_mode(value: Any, device_type: str) -> str:
    """``training.amp`` -> one of :data:`AMP_CHOICES` on this device. ``true`` means fp16 on
    CUDA and off elsewhere; ``false`` means off. An explicit
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
