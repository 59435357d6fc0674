"""What :func:`lastexp.run.fit` assembles from a run's config before it trains: the device
(and, under torchrun, the process group), the checked data, the distillation teachers, the SWA
tracker, and the Trainer around the trainables (loaders, transforms, loss, loggers, the compiled
/ DDP models). The components themselves come from :mod:`lastexp.build`, each from its node.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from lastexp import build
from lastexp.data import load_data as load_dataset
from lastexp.dependencies.lookup import resolve
from lastexp.dependencies.requirements import distillation_on, teacher_streams
from lastexp.errors import ConfigError
from lastexp.io import write_json
from lastexp.runstore import RunDir, debug_of
from lastexp.runstore.key import identity, row_group, run_key
from lastexp.train.distributed import init_distributed
from lastexp.train.early_stopping import EarlyStopping
from lastexp.train.fastpath import Precision, compiled
from lastexp.train.loop import NanGuard, StepContext
from lastexp.train.sampler import EpochSampler
from lastexp.train.signals import StopFlag
from lastexp.train.state import Progress, RunFacts, Trainables
from lastexp.train.swa import SWATracker
from lastexp.train.tracking import job_type, wandb_tags
from lastexp.train.trainer import Outputs, Schedule, Trainer


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training.device={requested} but no CUDA device is available")
    return dev


def place(requested: str):
    """The device and, under torchrun, the process group (each rank its own GPU)."""
    device = pick_device(requested)
    dinfo = init_distributed(device.type == "cuda")
    if dinfo.active and device.type == "cuda":
        device = torch.device("cuda", dinfo.local_rank)
    return device, dinfo


def load_data(cfg: DictConfig, run: RunDir, *, main: bool):
    """The dataset's splits, checked; the files it skipped reported and summarised."""
    data = load_dataset(cfg.dataset, cfg.preprocessing, cfg.paths.data, seed=cfg.seed)
    if len(data.train) == 0 or len(data.test) == 0:
        raise ConfigError(f"dataset={cfg.dataset.name}: empty split (train {len(data.train)}, "
                          f"test {len(data.test)})")
    if cfg.dataset.num_classes and cfg.dataset.num_classes != data.num_classes:
        raise ConfigError(f"dataset.num_classes={cfg.dataset.num_classes} but the data has "
                          f"{data.num_classes} classes")
    skipped = data.summary.get("skipped", {})
    if skipped:
        shown = "; ".join(f"{k} ({v})" for k, v in list(skipped.items())[:5])
        more = f"; ... see {run.data_summary}" if len(skipped) > 5 else ""
        print(f"lastexp: skipped {len(skipped)} file(s): {shown}{more}")
    if main:
        write_json(run.data_summary, data.summary)
    return data


def distillation(cfg: DictConfig, model: nn.Module, num_classes: int, device: torch.device):
    """The frozen teacher members of ``distill.teacher`` (one run of the student's stream, or
    one per ``distill.teacher_streams``, the student's first), the stage projections when
    gamma > 0, and the members' run directories; nothing when the run does not distil."""
    dcfg = cfg.distill
    if not distillation_on(dcfg):
        return [], None, []
    if not dcfg.teacher:
        raise ConfigError(f"distill={dcfg.name} needs distill.teacher (an ablation ID or a run "
                          "directory)")
    refs = [(s, resolve(cfg, ref=dcfg.teacher, stream=s, role="teacher"))
            for s in teacher_streams(cfg)]
    members, projector = build.teacher(dcfg, refs=refs, student=model, num_classes=num_classes,
                                       dataset=cfg.dataset.name, split=cfg.dataset.split,
                                       device=device)
    return members, projector, [run for _, run in refs]


def swa_tracker(model: nn.Module, start_epoch: int | None):
    return SWATracker(model, start_epoch) if start_epoch is not None else None


def make_trainer(cfg: DictConfig, parts: Trainables, data: Any, *, out: Outputs,
                 device: torch.device, dinfo: Any, precision: Precision, teachers: list,
                 metrics: dict[str, Any], progress: Progress, t_start: float,
                 stop: StopFlag) -> Trainer:
    """Loaders, transforms, loss, trackers and the (compiled / DDP) models around ``parts``."""
    tcfg, stream, model = cfg.training, cfg.stream.name, parts.model
    loggers = build.loggers(
        cfg.logger, log_dir=out.run.path, tensorboard_dir=out.run.tensorboard,
        history=progress.history, config=identity(cfg), global_step=progress.global_step,
        **tracking(cfg)) if dinfo.main else None
    aug_gen = torch.Generator(device=device)
    sampler = EpochSampler(len(data.train), seed=cfg.seed, rank=dinfo.rank, world=dinfo.world)
    train_loader, test_loader = build.loaders(
        data.train, data.test, sampler=sampler, batch_size=tcfg.batch_size,
        eval_batch_size=tcfg.eval_batch_size, num_workers=tcfg.num_workers, seed=cfg.seed,
        pin=device.type == "cuda")
    val_loader = None if data.val is None else build.eval_loader(
        data.val, batch_size=tcfg.eval_batch_size, num_workers=tcfg.num_workers,
        pin=device.type == "cuda")
    # An ensemble teacher reads its members' own streams: the loop then hands over joint
    # coordinates (augmented only) and the Distiller derives each stream, the student's too.
    train_tf = build.transform("joint" if len(teachers) > 1 else stream, augment=tcfg.augment,
                               generator=aug_gen, max_deg=tcfg.rotation_deg,
                               scale=tcfg.scale_range)
    train_model: nn.Module = model
    if dinfo.active:  # gradients averaged over processes; each sees its shard of the epoch
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    eval_model: nn.Module = model
    if tcfg.compile:  # the wrappers share model's parameters: checkpoints stay plain
        eval_model = compiled(model, tcfg.compile_mode)
        train_model = compiled(train_model, tcfg.compile_mode) if dinfo.active else eval_model
        for member in teachers:
            member.model = compiled(member.model, tcfg.compile_mode)
    loss_fn = build.loss(label_smoothing=tcfg.label_smoothing,
                         ib_loss_weight=tcfg.ib_loss_weight, dcfg=cfg.distill,
                         teachers=teachers, projector=parts.projector, stream=stream)
    ctx = StepContext(optimizer=parts.optimizer, loss_fn=loss_fn, transform=train_tf,
                      device=device, accumulation=tcfg.gradient_accumulation_steps,
                      clip=tcfg.gradient_clip, scaler=parts.scaler, amp_dtype=precision.dtype,
                      guard=NanGuard(max_consecutive=tcfg.max_nonfinite_steps),
                      progress=None if dinfo.main else False,
                      log_every=cfg.logger.log_every_n_steps)
    stopper = EarlyStopping(tcfg.early_stopping_patience, tcfg.early_stopping_monitor,
                            tcfg.early_stopping_min_delta).replay(progress.history)
    facts = RunFacts(model_name=cfg.model.name, config=identity(cfg),
                     num_classes=data.num_classes, stream=stream, run_key=run_key(cfg))
    return Trainer(parts=parts, facts=facts, schedule=Schedule.of(tcfg, cfg.seed), out=out,
                   ctx=ctx, train_set=data.train, sampler=sampler, train_loader=train_loader,
                   test_loader=test_loader, test_set=data.test, train_model=train_model,
                   eval_model=eval_model, test_tf=build.transform(stream), aug_gen=aug_gen,
                   dinfo=dinfo, logger=loggers, stop=stop, stopper=stopper, metrics=metrics,
                   t_start=t_start, val_loader=val_loader)


def tracking(cfg: DictConfig) -> dict[str, Any]:
    """The W&B group (the row's config without the seed), tags and job type of a run."""
    return {"group": row_group(cfg), "job_type": job_type(
                ensemble=bool(cfg.ensemble.of), pretrain=bool(cfg.pretrain.enabled)),
            "tags": wandb_tags(ablation=cfg.ablation, model=cfg.model.name,
                               stream=cfg.stream.name, dataset=cfg.dataset.name,
                               debug=debug_of(cfg), extra=list(cfg.logger.get("tags") or []))}
