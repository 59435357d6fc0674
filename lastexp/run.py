"""One run: validate, build data and model, fit with resume, write the run directory.

The run directory (README, "Runs and results") is Hydra's output directory, named from the
config so that the same config always lands in the same place: a finished run is skipped, an
interrupted one resumes from ``checkpoints/last.pt``. :func:`fit` reads as the steps of a run;
the components come from :mod:`lastexp.build`, the epoch loop from
:mod:`lastexp.train.trainer`, checkpoint contents and resume from :mod:`lastexp.train.state`,
and every path of the run directory from :mod:`lastexp.runstore`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from torch import nn

from lastexp import STARTED_NS, build
from lastexp.config import amp_mode, swa_start_epoch, validate
from lastexp.data import DataError
from lastexp.data import load_data as load_dataset
from lastexp.dependencies.lookup import resolve
from lastexp.dependencies.requirements import distillation_on, teacher_streams
from lastexp.ensemble import EnsembleError, ensemble_runs
from lastexp.errors import ConfigError, NumericalError
from lastexp.io import disk_full_line, is_disk_full, read_json, remove_orphan_temps, write_json
from lastexp.models import count_flops, count_params
from lastexp.provenance import git_commit
from lastexp.runstore import RunDir, RunLockedError, debug_of, discard_lock, lock_path, run_lock
from lastexp.runstore.guard import (
    entries,
    holds_a_run,
    mark_failed,
    refuse_foreign_metrics,
    remove_added,
    remove_own_log,
    run_dir_problem,
    run_dir_store_problem,
    save_hydra_files,
    stamp,
    trained_here,
    unchanged_since,
)
from lastexp.runstore.key import identity, row_group, run_key
from lastexp.runstore.metrics import is_completed, read_metrics, timestamp
from lastexp.sweep_failures import in_process_sweep, record_failure
from lastexp.train.checkpoint import load_checkpoint
from lastexp.train.distributed import init_distributed, shutdown
from lastexp.train.early_stopping import EarlyStopping
from lastexp.train.fastpath import Precision, compiled, to_channels_last
from lastexp.train.loop import NanGuard, StepContext
from lastexp.train.pretrain import PretrainStopped, pretrain_phase, pretrain_record
from lastexp.train.sampler import EpochSampler
from lastexp.train.seeding import seed_everything
from lastexp.train.signals import StopFlag
from lastexp.train.state import Progress, RunFacts, Trainables, initialise, resume
from lastexp.train.swa import SWATracker
from lastexp.train.tracking import job_type, wandb_tags
from lastexp.train.trainer import Outputs, Schedule, Trainer, selection_fields


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training.device={requested} but no CUDA device is available")
    return dev


# --------------------------------------------------------------------------- the job

def run_job(cfg: DictConfig) -> float | None:
    """Hydra task: returns the final top-1 so Hydra sweepers can optimise it."""
    hc = HydraConfig.get()
    run = RunDir(Path(hc.runtime.output_dir))
    multirun = hc.mode == RunMode.MULTIRUN
    outside = run_dir_problem(run.path, cfg.paths.runs)
    if outside:  # (a sweep's run_name reaches here; a single run is refused before Hydra)
        print(f"lastexp: error: {outside}", file=sys.stderr)
        sys.exit(2)
    unsafe = run_dir_store_problem(run.path, cfg.paths.runs)
    if unsafe:  # (a sweep's or SLURM's job: a single run is refused before Hydra starts)
        remove_own_log(run, STARTED_NS)
        with contextlib.suppress(OSError):  # the directory Hydra made for it, when empty
            run.path.rmdir()
        print(f"lastexp: error: {unsafe}", file=sys.stderr)
        sys.exit(2)
    before = entries(run)
    main = int(os.environ.get("RANK", "0")) == 0  # DDP: rank 0 holds the run's lock
    lock_existed = lock_path(run.path, cfg.paths.runs).exists()
    metrics_stamp = stamp(run.metrics)
    try:
        with run_lock(run.path, cfg.paths.runs) if main else contextlib.nullcontext():
            refuse_foreign_metrics(run)
            result = fit(cfg, run.path)
        if main and unchanged_since(run, before, metrics_stamp):  # skipped: as it was
            remove_own_log(run, STARTED_NS)
            if not lock_existed:
                discard_lock(run.path, cfg.paths.runs)
        return result
    except RunLockedError as exc:  # the other command owns the directory: touch nothing
        print(f"lastexp: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a full disk: one line; every file was written atomically, so the
        if not is_disk_full(exc):  # last good checkpoint is intact
            raise
        print(f"lastexp: error: {disk_full_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except (ConfigError, ValueError) as exc:  # a user's, the data's or a diverged run
        if not isinstance(exc, (ConfigError, DataError, NumericalError)):
            raise
        if main:
            _after_refusal(run, cfg, exc, before=before, multirun=multirun,
                           started_ns=STARTED_NS)
            if not lock_existed and not trained_here(run, before):  # the runs root as it was
                discard_lock(run.path, cfg.paths.runs)
        if multirun:  # a sweep's job: recorded as failed, the other jobs go on
            if not in_process_sweep(hc):
                raise
            line = f"sweep job {' '.join(hc.overrides.task)}: {exc}"
            print(f"lastexp: error: {line}", file=sys.stderr, flush=True)
            record_failure(line)
            return None
        print(f"lastexp: error: {exc}", file=sys.stderr)
        sys.exit(2)


def _after_refusal(run: RunDir, cfg: DictConfig, exc: BaseException, *, before: set[str],
                   multirun: bool, started_ns: int) -> None:
    """A command stopped by a user error leaves only what it trained: a new run directory
    that trained, or a sweep's new job, records why it failed; a first attempt that trained
    nothing removes what it wrote; an existing run refused is left byte-identical."""
    if not holds_a_run(before):
        if multirun or trained_here(run, before):  # keep what it trained; say why it stopped
            mark_failed(run, cfg, exc)
        else:  # refused before training: remove only what this command wrote
            remove_added(run, before)
    elif not trained_here(run, before):  # an existing run, refused: left as it was
        remove_added(run, before)
        remove_own_log(run, started_ns)


# --------------------------------------------------------------------------- fit


def fit(cfg: DictConfig, run_dir: Path) -> float | None:
    """One run, from its config to a completed (or resumable) run directory."""
    validate(cfg)
    t_start, run, tcfg = time.time(), RunDir(Path(run_dir)), cfg.training
    done = completed(run, fresh=cfg.fresh)
    if done is not None:
        print(f"lastexp: already completed, skipping: {run.path}")
        return done.get("final_top1")
    prepare(run, fresh=cfg.fresh)
    if cfg.ensemble.of:
        return ensemble_job(cfg, run)
    device, dinfo = place(tcfg.device)
    seed_everything(cfg.seed)
    if tcfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    data = load_data(cfg, run, main=dinfo.main)
    seed_everything(cfg.seed)
    model = build.model(cfg.model, num_classes=data.num_classes, num_person=data.num_person,
                        ib_loss_weight=tcfg.ib_loss_weight)
    size = model_size(model, window=cfg.preprocessing.window, num_person=data.num_person)
    model.to(device)
    if tcfg.channels_last:
        to_channels_last(model)
    precision = Precision(amp_mode(tcfg.amp, device.type))
    teachers, projector, teacher_dirs = distillation(cfg, model, data.num_classes, device)
    optimizer = build.optimizer(model, cfg.optimizer, projector)
    swa_epoch = swa_start_epoch(tcfg.swa_start, tcfg.epochs)
    parts = Trainables(
        model, optimizer,
        build.scheduler(optimizer, cfg.scheduler, epochs=tcfg.epochs, lr=cfg.optimizer.lr),
        precision.scaler(device), projector, swa_tracker(model, swa_epoch))
    progress, mid_epoch, resumed = start_point(run, parts, model_name=cfg.model.name,
                                               init_from=cfg.init_from, key=run_key(cfg))
    check_time_left(tcfg.max_hours, time.time() - t_start, dinfo=dinfo, device=device)
    save_hydra_files(run, cfg)  # data, model and checkpoints are in hand: it trains now
    extra = dict(size, **teacher_fields(teacher_dirs))
    out = Outputs(run, main=dinfo.main)
    stop = StopFlag()  # before pretraining: a signal there checkpoints it too
    stop.install()
    try:
        if cfg.pretrain.enabled:
            extra.update(pretraining(cfg, run, model, data.train, device=device, dinfo=dinfo,
                                     stop=stop, resumed=resumed, t_start=t_start))
    except (PretrainStopped, KeyboardInterrupt) as exc:
        metrics = start_metrics(cfg, progress, device=device, amp=precision.mode, data=data,
                                extra=extra, resumed=resumed)
        out.metrics({**metrics, "status": "interrupted", "reason": pretrain_stop_reason(
            exc, stop, tcfg.max_hours), "finished_at": timestamp()})
        if isinstance(exc, KeyboardInterrupt):
            stop.restore()
            raise
        print(f"lastexp: {exc}; checkpoint saved", flush=True)
        shutdown()
        stop.release(run.name)
        return None
    except BaseException:  # a failure: the signals are no longer this run's to handle
        stop.restore()
        raise
    metrics = start_metrics(cfg, progress, device=device, amp=precision.mode, data=data,
                            extra=extra, resumed=resumed, world_size=dinfo.world)
    if progress.history:  # as the killed run left them, also when it died before rewriting
        out.history(progress.history)
    out.metrics(metrics)
    trainer = make_trainer(cfg, parts, data, out=out, device=device, dinfo=dinfo,
                           precision=precision, teachers=teachers, metrics=metrics,
                           progress=progress, t_start=t_start, stop=stop)
    status, reason = trainer.train(progress, mid_epoch)
    trainer.finish(progress, status, reason)
    shutdown()
    trainer.stop.release(run.name)
    return metrics.get("final_top1")


def check_time_left(max_hours: float | None, spent_s: float, *, dinfo: Any,
                    device: torch.device) -> None:
    """``training.max_hours`` must leave room for training once the data is loaded and the
    model built: a limit already past would stop every launch before its first step, and a
    requeued job would start again forever without progress. Refused (exit 2), not requeued."""
    if not max_hours or not dinfo.any(spent_s >= max_hours * 3600, device):
        return
    raise ConfigError(f"training.max_hours={max_hours:g} leaves no room for one epoch: its "
                      f"{max_hours * 3600:.3g} s were spent before training could start "
                      f"({spent_s:.1f} s to load the data and build the model); raise "
                      "training.max_hours (the wall time of one launch) or leave it out")


def pretraining(cfg: DictConfig, run: RunDir, model: nn.Module, train_set: Any, *,
                device: torch.device, dinfo: Any, stop: StopFlag, resumed: bool,
                t_start: float) -> dict[str, Any]:
    """MaskCLR before the main phase (its figures for metrics.json). It stops, saving its
    state, on SIGTERM / SIGUSR2 or past ``training.max_hours`` (:class:`PretrainStopped`); a
    run whose main phase is under way reads the figures from its kept encoder."""
    if resumed:  # last.pt holds the weights since; the encoder file holds the record
        return pretrain_record(load_checkpoint(run.encoder), cfg.pretrain.epochs) \
            if run.encoder.is_file() else {}
    limit_s = Schedule.of(cfg.training, cfg.seed).limit_s

    def should_stop() -> bool:
        return dinfo.any(stop.requested or time.time() - t_start > limit_s, device)

    return pretrain_phase(
        model, train_set, pcfg=cfg.pretrain, seed=cfg.seed,
        num_workers=cfg.training.num_workers, stream=cfg.stream.name,
        model_name=cfg.model.name, device=device, path=run.encoder, dinfo=dinfo,
        state_path=run.pretrain_last, run_key=run_key(cfg), should_stop=should_stop)


def pretrain_stop_reason(exc: BaseException, stop: StopFlag, max_hours: float | None) -> str:
    """metrics.json's ``reason`` of a run stopped in MaskCLR pretraining."""
    if isinstance(exc, KeyboardInterrupt):
        cause = "SIGINT"
    elif stop.requested:
        cause = f"signal {signal.Signals(stop.signum).name}"
    else:
        cause = f"training.max_hours={max_hours} reached"
    return f"{cause} in MaskCLR pretraining: resume by running the same command again"


def completed(run: RunDir, *, fresh: bool) -> dict[str, Any] | None:
    """The metrics of a completed run (skipped unless ``fresh=true``), else None."""
    if fresh:
        return None
    metrics = read_metrics(run.metrics)
    return metrics if is_completed(metrics if isinstance(metrics, dict) else None) else None


def prepare(run: RunDir, *, fresh: bool) -> None:
    """``fresh=true`` starts the run over; a killed run's half-written files go (this command
    holds the run's lock)."""
    if fresh:
        shutil.rmtree(run.checkpoints, ignore_errors=True)
    for folder in (run.path, run.checkpoints, run.hydra):
        remove_orphan_temps(folder)
    if not os.access(run.path, os.W_OK):
        raise ConfigError(f"run directory {run.path} is not writable; change paths.runs")


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


def model_size(model: nn.Module, *, window: int, num_person: int) -> dict[str, int]:
    return {"params": count_params(model),
            "flops": count_flops(model, num_frames=window, num_person=num_person)}


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


def teacher_fields(teacher_dirs: list[Path]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if teacher_dirs:
        fields["teacher"] = str(teacher_dirs[0])  # the student's stream
    if len(teacher_dirs) > 1:
        fields["teacher_members"] = [str(d) for d in teacher_dirs]
    return fields


def swa_tracker(model: nn.Module, start_epoch: int | None):
    return SWATracker(model, start_epoch) if start_epoch is not None else None


def start_point(run: RunDir, parts: Trainables, *, model_name: str, init_from: str | None,
                key: str | None = None) -> tuple[Progress, dict | None, bool]:
    """Where training starts: ``last.pt`` when the run was interrupted (resumed exactly; it
    must be this run's, by its run ``key``), else ``init_from=`` weights, else scratch.
    ``(progress, mid-epoch position, resumed)``."""
    if run.last.exists():
        progress, mid = resume(run.last, parts, model_name, run_key=key)
        where = (f"in epoch {progress.epoch + 1} after {mid['progress']['batches']} batches"
                 if mid else f"after epoch {progress.epoch}")
        print(f"lastexp: resuming {run.name} {where}")
        return progress, mid, True
    if init_from:
        src = Path(init_from)
        if not src.exists():
            raise ConfigError(f"init_from={src} does not exist")
        initialise(src, parts.model, model_name)
    return Progress(), None, False


def start_metrics(cfg: DictConfig, progress: Progress, *, device: torch.device, amp: str,
                  data: Any, extra: dict[str, Any], resumed: bool,
                  world_size: int = 1) -> dict[str, Any]:
    """metrics.json as a run starts (or resumes): what it is, and where it stands."""
    metrics: dict[str, Any] = {
        "ablation": cfg.ablation, "model": cfg.model.name, "stream": cfg.stream.name,
        "dataset": cfg.dataset.name, "split": cfg.dataset.split,
        "preprocessing": cfg.preprocessing.name, "seed": cfg.seed,
        "epochs": cfg.training.epochs, **extra,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "amp": amp, "n_train": len(data.train), "n_test": len(data.test),
        "num_classes": data.num_classes, "run_key": run_key(cfg), "git_commit": git_commit(),
        "skipped_files": len(data.summary.get("skipped", {})), "debug": debug_of(cfg),
        "status": "running", "started_at": timestamp(),
        "best_top1": progress.best_top1 if progress.best_top1 >= 0 else None,
        "best_epoch": progress.best_epoch if progress.best_epoch >= 0 else None,
        "final_top1": None, "train_seconds": progress.seconds,
        # processes that trained it (torchrun / SLURM tasks); part of the run identity
        "world_size": int(world_size),
        # the split the best epoch, early stopping and a search read (test: as the field does)
        "selection": "test" if data.val is None else "validation",
    }
    if data.val is not None:
        metrics.update(selection_fields(progress, validation=True), n_val=len(data.val))
    if os.environ.get("SLURM_JOB_ID"):
        metrics["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    if resumed:
        metrics["resumed_from_epoch"] = progress.epoch
    if progress.history:
        metrics["epochs_done"] = len(progress.history)
    return metrics


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


def ensemble_job(cfg: DictConfig, run: RunDir) -> float | None:
    """B14 and the "(4s)" rows: combine the members' test scores into a run of its own."""
    members = [resolve(cfg, ref=cfg.ensemble.of, stream=s, role="ensemble member")
               for s in cfg.ensemble.streams]
    try:
        m = ensemble_runs(members, list(cfg.ensemble.weights), run.path, ablation=cfg.ablation)
    except EnsembleError as exc:
        raise ConfigError(str(exc)) from None
    extra = {"debug": debug_of(cfg), "run_key": run_key(cfg), "git_commit": git_commit()}
    write_json(run.metrics, {**read_json(run.metrics), **extra})
    save_hydra_files(run, cfg)
    if cfg.logger.name in ("wandb", "wandb_tensorboard"):  # its numbers, in the row's group
        build.wandb_logger(cfg.logger, log_dir=run.path, config=identity(cfg),
                           **tracking(cfg)).finish(read_json(run.metrics))
    best = max(m.get("member_top1") or [0])
    print(f"lastexp: ensemble of {len(members)} runs: {m['final_top1']:.2f}% top-1 "
          f"(best member {best:.2f}%) -> {run.path}", flush=True)
    return m["final_top1"]
