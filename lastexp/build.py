"""Every training component built from its config node, in one place.

Each function takes the node it reads (``cfg.model``, ``cfg.optimizer``, ...) and the facts it
needs (number of classes, the run directory), never the whole config; ``lastexp.run.fit``
calls them in order. Rebuilding a finished run's model (teachers, export) goes through
:func:`lastexp.models.from_config.model_from_config` too, so a checkpoint is always rebuilt by
the rule that trained it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lastexp.data.augment import random_rotate_scale
from lastexp.data.streams import to_stream
from lastexp.errors import ConfigError
from lastexp.models.from_config import model_from_config
from lastexp.teachers import TeacherError, load_teacher
from lastexp.train.distill import Distiller, FeatureProjector, TeacherMember
from lastexp.train.losses import LossFn, classification_loss
from lastexp.train.optim import build_optimizer
from lastexp.train.schedule import build_scheduler
from lastexp.train.tracking import Loggers, TensorBoardLogger, WandbLogger

Transform = Callable[[torch.Tensor], torch.Tensor]


def model(model_cfg: DictConfig, *, num_classes: int, num_person: int,
          ib_loss_weight: float) -> nn.Module:
    return model_from_config(OmegaConf.to_container(model_cfg, resolve=True),
                             num_classes=num_classes, num_person=num_person,
                             ib_loss_weight=ib_loss_weight)


def optimizer(net: nn.Module, ocfg: DictConfig,
              projector: nn.Module | None = None) -> torch.optim.Optimizer:
    """The training recipe's optimizer with its weight-decay exclusions; a distillation
    projector is trained with the student (its weights decayed, its biases not, by the same
    rule) and discarded after training."""
    return build_optimizer(net, name=ocfg.name, lr=ocfg.lr, weight_decay=ocfg.weight_decay,
                           momentum=ocfg.momentum, nesterov=ocfg.nesterov,
                           betas=list(ocfg.betas),
                           extra=[projector] if projector is not None else [])


def scheduler(opt: torch.optim.Optimizer, scfg: DictConfig, *, epochs: int, lr: float):
    return build_scheduler(
        opt, name=scfg.name, epochs=epochs, lr=lr, warmup_epochs=scfg.warmup_epochs,
        warmup_start_lr=scfg.warmup_start_lr, min_lr=scfg.min_lr,
        restart_period=scfg.restart_period, restart_mult=scfg.restart_mult,
        milestones=list(scfg.milestones), gamma=scfg.gamma,
    )


def teacher(dcfg: DictConfig, *, refs: Sequence[tuple[str, Path]], student: nn.Module,
            num_classes: int, dataset: str, split: str, device: torch.device):
    """The frozen teacher members (``refs``: (stream, run directory), the student's stream
    first; logits averaged) and, when ``distill.gamma > 0``, the stage projections onto the
    first member."""
    members = []
    for stream, run in refs:
        try:
            net, info = load_teacher(run, num_classes=num_classes, device=device,
                                     expect_dataset=dataset, expect_split=split)
        except TeacherError as exc:
            raise ConfigError(str(exc)) from None
        if info.get("stream") not in (None, stream):
            raise ConfigError(f"teacher {run} was trained on stream {info['stream']}, the "
                              f"student on {stream}; distil within one stream")
        members.append(TeacherMember(net, weight=1.0 / len(refs),
                                     stream=stream if len(refs) > 1 else None))
        top1 = info.get("final_top1")
        print(f"lastexp: distilling from {run} ({info.get('model')}, {stream}"
              f"{f', {top1:.2f}% top-1' if top1 is not None else ''})", flush=True)
    projector = None
    if dcfg.gamma > 0:
        projector = FeatureProjector.between(student, members[0].model).to(device)
    return members, projector


def loss(*, label_smoothing: float, ib_loss_weight: float, dcfg: DictConfig,
         teachers: list, projector: nn.Module | None, stream: str) -> LossFn:
    """Cross-entropy (+ IB), or, with teachers, the distillation loss of ``distill``."""
    if not teachers:
        return classification_loss(label_smoothing, ib_loss_weight)
    return Distiller(teachers, projector, alpha=dcfg.alpha, beta=dcfg.beta, gamma=dcfg.gamma,
                     tau=dcfg.tau, label_smoothing=label_smoothing,
                     student_stream=stream if len(teachers) > 1 else None)


def transform(stream: str, *, augment: bool = False, generator: torch.Generator | None = None,
              max_deg: float = 0.0, scale: Sequence[float] = (1.0, 1.0)) -> Transform:
    """Coordinates to ``stream``, after random rotation and scaling when ``augment``."""
    if not augment:
        return lambda x: to_stream(x, stream)
    return lambda x: to_stream(
        random_rotate_scale(x, generator, max_deg=max_deg, scale=tuple(scale)), stream
    )


def loaders(train_set, test_set, *, sampler, batch_size: int, eval_batch_size: int,
            num_workers: int, seed: int, pin: bool):
    train = torch.utils.data.DataLoader(
        train_set, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        pin_memory=pin, drop_last=False,
        # Its own generator: otherwise each epoch's iterator draws a worker base seed from
        # the global RNG, and a run resumed mid-epoch would see dropout masks shifted by one.
        generator=torch.Generator().manual_seed(seed),
    )
    test = torch.utils.data.DataLoader(test_set, batch_size=eval_batch_size, shuffle=False,
                                       num_workers=num_workers, pin_memory=pin)
    return train, test


def eval_loader(dataset, *, batch_size: int, num_workers: int, pin: bool):
    """A split evaluated in order (the validation split; the test split is :func:`loaders`')."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                       num_workers=num_workers, pin_memory=pin)


def loggers(lcfg: DictConfig, *, log_dir: Path, tensorboard_dir: Path, history: list[dict],
            group: str | None, config: dict, tags: list[str] | None = None,
            job_type: str = "train", global_step: int = 0):
    """The trackers of ``logger=`` (none, wandb, tensorboard, wandb_tensorboard), or None;
    ``history`` and ``global_step``: where a resumed run stands."""
    found = []
    if lcfg.name in ("wandb", "wandb_tensorboard"):
        found.append(wandb_logger(lcfg, log_dir=log_dir, group=group, config=config, tags=tags,
                                  job_type=job_type))
    if lcfg.name in ("tensorboard", "wandb_tensorboard"):
        found.append(TensorBoardLogger(tensorboard_dir, history, global_step))
    return Loggers(found) if found else None


def wandb_logger(lcfg: DictConfig, *, log_dir: Path, group: str | None, config: dict,
                 tags: list[str] | None = None, job_type: str = "train") -> WandbLogger:
    """The run's W&B run: ``logger.group`` else ``group``; ``tags`` (default ``logger.tags``)."""
    return WandbLogger(log_dir, project=lcfg.project, entity=lcfg.entity,
                       group=lcfg.group or group, tags=list(lcfg.tags) if tags is None else tags,
                       mode=lcfg.mode, config=config, job_type=job_type)
