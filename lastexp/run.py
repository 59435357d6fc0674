"""One run: Hydra's task :func:`run_job` (the run directory's guard and lock around
:func:`fit`, and how a refused job ends) and :func:`fit`, from the config to a completed (or
resumable) run directory.

The run directory (README, "Runs and results") is Hydra's output directory, named from the
config so that the same config always lands in the same place: a finished run is skipped, an
interrupted one resumes from ``checkpoints/last.pt``. :func:`fit` reads as the steps of a run;
where it starts (skip, resume, metrics.json) comes from :mod:`lastexp.run_start`, what it
assembles (device, data, teachers, the Trainer) from :mod:`lastexp.assembly`, the components
from :mod:`lastexp.build`, the epoch loop from :mod:`lastexp.train.trainer`, checkpoint
contents and resume from :mod:`lastexp.train.state`, and every path of the run directory from
:mod:`lastexp.runstore`.
"""

from __future__ import annotations

import contextlib
import os
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
from lastexp.assembly import distillation, load_data, make_trainer, place, swa_tracker, tracking
from lastexp.config import amp_mode, swa_start_epoch, validate
from lastexp.data import DataError
from lastexp.dependencies.lookup import resolve
from lastexp.ensemble import EnsembleError, ensemble_runs
from lastexp.errors import ConfigError, NumericalError
from lastexp.io import disk_full_line, is_disk_full, read_json, write_json
from lastexp.provenance import git_commit
from lastexp.run_start import (
    completed,
    model_size,
    prepare,
    start_metrics,
    start_point,
    teacher_fields,
)
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
from lastexp.runstore.key import identity, run_key
from lastexp.runstore.metrics import timestamp
from lastexp.sweep_failures import in_process_sweep, record_failure
from lastexp.train.checkpoint import load_checkpoint
from lastexp.train.distributed import shutdown
from lastexp.train.fastpath import Precision, to_channels_last
from lastexp.train.pretrain import PretrainStopped, pretrain_phase, pretrain_record
from lastexp.train.seeding import seed_everything
from lastexp.train.signals import StopFlag
from lastexp.train.state import Trainables
from lastexp.train.trainer import Outputs, Schedule

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
