"""One run: validate, build data and model, fit with resume, write the run directory.

The run directory (README, "Runs and results") is Hydra's output directory, named from the
config so that the same config always lands in the same place: a finished run is skipped, an
interrupted one resumes from ``checkpoints/last.pt``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lastexp.config import (
    ConfigError,
    amp_mode,
    identity,
    run_dir_problem,
    run_key,
    swa_start_epoch,
    validate,
)
from lastexp.io import atomic_write, read_json, remove_orphan_temps, write_json
from lastexp.runstore import RunLockedError, discard_lock, lock_path, run_lock
from lastexp.train.early_stopping import EarlyStopping
from lastexp.train.fastpath import Precision, compiled, to_channels_last, unwrap

# --------------------------------------------------------------------------- helpers


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training.device={requested} but no CUDA device is available")
    return dev


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """Each epoch's randomness derives from (seed, epoch) alone: a resumed run replays exactly."""
    return (seed * 1_000_003 + epoch * 7919) % 2**63


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class StopFlag:
    """Set by SIGTERM / SIGUSR2 (SLURM preemption): the loop stops at the next step."""

    requested: bool = False
    signum: int | None = None
    previous: dict = field(default_factory=dict)

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGUSR2):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):  # not the main thread
                pass

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        # Only note it: the loop stops after the current optimizer step and saves a
        # mid-epoch checkpoint; then hand_over() gives the signal to whoever had it before.
        self.requested = True
        self.signum = signum

    def hand_over(self) -> None:
        """Call the handler we displaced (submitit's: checkpoint and requeue the job)."""
        if self.signum is None:
            return
        prev = self.previous.get(self.signum)
        self.restore()
        if callable(prev):
            prev(self.signum, None)
        elif prev == signal.SIG_DFL:  # nobody else listens: die of the signal, as asked
            os.kill(os.getpid(), self.signum)


# --------------------------------------------------------------------------- builders


def build_model_from_cfg(cfg: DictConfig, num_classes: int, num_person: int) -> nn.Module:
    from lastexp.models import build_model

    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    name = kwargs.pop("name")
    kwargs["ib_head"] = bool(kwargs.get("ib_head")) or cfg.training.ib_loss_weight > 0
    try:
        return build_model(name, num_classes=num_classes, num_person=num_person, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model={name}: {exc}") from exc


def make_loss(label_smoothing: float, ib_weight: float):
    ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        if ib_weight > 0:
            logits, feats = model(x, return_features=True)
            return ce(logits.float(), y) + ib_weight * unwrap(model).ib_loss(feats, y), logits
        logits = model(x)
        return ce(logits.float(), y), logits

    return loss_fn


def make_transform(stream: str, *, augment: bool, generator, max_deg: float, scale):
    from lastexp.data.augment import random_rotate_scale
    from lastexp.data.streams import to_stream

    if not augment:
        return lambda x: to_stream(x, stream)
    return lambda x: to_stream(
        random_rotate_scale(x, generator, max_deg=max_deg, scale=tuple(scale)), stream
    )


# --------------------------------------------------------------------------- the job


def run_job(cfg: DictConfig) -> float | None:
    """Hydra task: returns the final top-1 so Hydra sweepers can optimise it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    outside = run_dir_problem(run_dir, cfg.paths.runs)
    if outside:  # (a sweep's run_name reaches here; a single run is refused before Hydra)
        print(f"lastexp: error: {outside}", file=sys.stderr)
        sys.exit(2)
    entries_before = set(os.listdir(run_dir)) if run_dir.is_dir() else set()
    existed_before = bool(entries_before & {"metrics.json", "checkpoints"})
    main = int(os.environ.get("RANK", "0")) == 0  # DDP: rank 0 holds the run's lock
    lock_existed = lock_path(run_dir, cfg.paths.runs).exists()
    metrics_stamp = _stamp(run_dir / "metrics.json")
    try:
        with run_lock(run_dir, cfg.paths.runs) if main else contextlib.nullcontext():
            refuse_foreign_metrics(run_dir)
            result = fit(cfg, run_dir, sweep_dir=Path(hc.sweep.dir) if multirun else None)
        if main and metrics_stamp and metrics_stamp == _stamp(run_dir / "metrics.json") and \
                set(os.listdir(run_dir)) <= entries_before:  # skipped: leave it as it was
            remove_own_log(run_dir)
            if not lock_existed:
                discard_lock(run_dir, cfg.paths.runs)
        return result
    except RunLockedError as exc:  # the other command owns the directory: touch nothing
        print(f"lastexp: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (ConfigError, ValueError) as exc:
        from lastexp.data import DataError

        user = isinstance(exc, (ConfigError, DataError))
        if not user:
            raise
        if multirun:  # a sweep's job: record why it failed, the other jobs go on
            if main:
                mark_failed(run_dir, cfg, exc)
            raise
        if main and not existed_before:
            if trained_here(run_dir, entries_before):  # keep what it trained; say why it stopped
                mark_failed(run_dir, cfg, exc)
            else:  # refused before training: remove only what this command wrote
                remove_added(run_dir, entries_before)
        elif main and not trained_here(run_dir, entries_before):  # an existing run, refused:
            remove_added(run_dir, entries_before)  # left as it was, Hydra's new empty log too
            remove_own_log(run_dir)
        if main and not lock_existed:  # a refused command leaves the runs root as it was
            discard_lock(run_dir, cfg.paths.runs)
        print(f"lastexp: error: {exc}", file=sys.stderr)
        sys.exit(2)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def remove_own_log(run_dir: Path) -> None:
    """Hydra's log in ``run_dir`` when this process created it and left it empty."""
    from lastexp import STARTED_NS

    log = run_dir / HYDRA_LOG
    with contextlib.suppress(OSError):
        st = log.stat()
        if st.st_size == 0 and st.st_mtime_ns >= STARTED_NS:
            log.unlink()


def refuse_foreign_metrics(run_dir: Path) -> None:
    """A metrics.json that is valid JSON but no object (a list, a number) is no run's: refuse
    to resume, skip or overwrite the directory rather than lose what it holds."""
    path = run_dir / "metrics.json"
    try:
        data = read_json(path)
    except (OSError, ValueError):  # absent, or truncated: fit's own rules apply
        return
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a JSON {type(data).__name__}, not a run's metrics "
                          "(an object); move that file away, then run the command again")


HYDRA_LOG = "__main__.log"  # Hydra creates it with the run directory, before the job starts
TRAINED = ("checkpoints", "history.csv", ".hydra")  # what only a run that started training
# writes (.hydra: save_hydra_files, once data, model and checkpoints are in hand)


def trained_here(run_dir: Path, before: set[str]) -> bool:
    return any(name not in before and (run_dir / name).exists() for name in TRAINED)


def remove_added(run_dir: Path, before: set[str]) -> None:
    """After a failed first attempt, remove what this command added to ``run_dir`` (entries
    not in ``before``), and ``run_dir`` itself when it held nothing but Hydra's log before;
    whatever was there before the command started stays."""
    try:
        added = set(os.listdir(run_dir)) - before
    except OSError:
        return
    for name in sorted(added):
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if before <= {HYDRA_LOG}:
        (run_dir / HYDRA_LOG).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run_dir.rmdir()


def save_hydra_files(run_dir: Path, cfg: DictConfig) -> None:
    """What Hydra's ``output_subdir`` would hold (``.hydra/config.yaml``, ``hydra.yaml``,
    ``overrides.yaml``), written atomically when this command trains the run, never by a
    command that skips it or is refused (``hydra.output_subdir`` is null in conf/config.yaml).
    """
    from hydra.core.hydra_config import HydraConfig

    out = run_dir / ".hydra"
    out.mkdir(parents=True, exist_ok=True)
    files = {"config.yaml": OmegaConf.to_yaml(cfg)}
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        files["hydra.yaml"] = OmegaConf.to_yaml(OmegaConf.create({"hydra": hc}))
        files["overrides.yaml"] = OmegaConf.to_yaml(hc.overrides.task)
    for name, text in files.items():
        atomic_write(out / name, lambda f, t=text: f.write(t))


def mark_failed(run_dir: Path, cfg: DictConfig, exc: BaseException) -> None:
    """metrics.json with status failed and the error, for a job that failed before training
    wrote its own (a missing raw_dir on the node, a teacher not found, ...)."""
    path = run_dir / "metrics.json"
    try:
        prev = read_json(path) if path.exists() else {}
    except ValueError:
        prev = {}
    if not isinstance(prev, dict):  # a foreign file (refuse_foreign_metrics): left as it is
        return
    if prev.get("status") == "failed" and prev.get("error"):
        return

    def sel(key: str) -> Any:
        try:
            return OmegaConf.select(cfg, key)
        except Exception:  # an invalid config may not even resolve
            return None

    base = {"ablation": sel("ablation"), "model": sel("model.name"),
            "stream": sel("stream.name"), "dataset": sel("dataset.name"),
            "preprocessing": sel("preprocessing.name"), "seed": sel("seed"),
            "epochs": sel("training.epochs"), "best_top1": None, "final_top1": None}
    if os.environ.get("SLURM_JOB_ID"):
        base["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, {**base, **prev, "status": "failed",
                      "error": f"{exc.__class__.__name__}: {exc}", "finished_at": now_iso()})
    if not (run_dir / ".hydra").exists():  # a run that failed before training: its config
        save_hydra_files(run_dir, cfg)  # too (an existing run's .hydra/ is never rewritten)


def fit(cfg: DictConfig, run_dir: Path, sweep_dir: Path | None = None) -> float | None:
    validate(cfg)
    t_start = time.time()
    metrics_path = run_dir / "metrics.json"
    ckpt_dir = run_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    tcfg = cfg.training

    if metrics_path.exists() and not cfg.fresh:
        try:
            prev = read_json(metrics_path)
        except ValueError:
            prev = {}
        if prev.get("status") == "completed":
            print(f"lastexp: already completed, skipping: {run_dir}")
            return prev.get("final_top1")
    if cfg.fresh:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    for folder in (run_dir, ckpt_dir, run_dir / ".hydra"):  # a killed run's half-written files
        remove_orphan_temps(folder)  # (this command holds the run's lock)
    if not os.access(run_dir, os.W_OK):
        raise ConfigError(f"run directory {run_dir} is not writable; change paths.runs")
    if cfg.ensemble.of:
        return ensemble_job(cfg, run_dir)

    device = pick_device(tcfg.device)
    from lastexp.train.distributed import init_distributed, shutdown

    dinfo = init_distributed(device.type == "cuda")
    if dinfo.active and device.type == "cuda":
        device = torch.device("cuda", dinfo.local_rank)

    def put_json(path: Path, data: Any) -> None:  # only the main process writes
        if dinfo.main:
            write_json(path, data)

    def put_ckpt(path: Path, state: dict) -> None:
        if dinfo.main:
            save_checkpoint(path, state)

    seed_everything(cfg.seed)
    if tcfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)

    from lastexp.data import load_data
    from lastexp.train.checkpoint import save_checkpoint

    data = load_data(cfg.dataset, cfg.preprocessing, cfg.paths.data, seed=cfg.seed)
    if len(data.train) == 0 or len(data.test) == 0:
        raise ConfigError(f"dataset={cfg.dataset.name}: empty split (train {len(data.train)}, "
                          f"test {len(data.test)})")
    if cfg.dataset.num_classes and cfg.dataset.num_classes != data.num_classes:
        raise ConfigError(f"dataset.num_classes={cfg.dataset.num_classes} but the data has "
                          f"{data.num_classes} classes")

    skipped = data.summary.get("skipped", {})
    if skipped:
        shown = "; ".join(f"{k} ({v})" for k, v in list(skipped.items())[:5])
        more = f"; ... see {run_dir / 'data_summary.json'}" if len(skipped) > 5 else ""
        print(f"lastexp: skipped {len(skipped)} file(s): {shown}{more}")
    put_json(run_dir / "data_summary.json", data.summary)

    from lastexp.models import count_flops, count_params, set_causal

    seed_everything(cfg.seed)
    model = build_model_from_cfg(cfg, data.num_classes, data.num_person)
    params = count_params(model)
    flops = count_flops(model, num_frames=cfg.preprocessing.window, num_person=data.num_person)
    model.to(device)
    if tcfg.channels_last:
        to_channels_last(model)
    precision = Precision(amp_mode(tcfg.amp, device.type))
    scaler = precision.scaler(device)
    from lastexp.train.optim import build_optimizer
    from lastexp.train.schedule import build_scheduler

    dcfg = cfg.distill
    teachers, projector, teacher_dirs = [], None, []
    if dcfg.name != "none" and (dcfg.beta > 0 or dcfg.gamma > 0):
        teachers, projector, teacher_dirs = build_teacher(cfg, model, data.num_classes, device)

    ocfg, scfg = cfg.optimizer, cfg.scheduler
    optimizer = build_optimizer(
        model, name=ocfg.name, lr=ocfg.lr, weight_decay=ocfg.weight_decay,
        momentum=ocfg.momentum, nesterov=ocfg.nesterov, betas=list(ocfg.betas),
    )
    if projector is not None:  # trained with the student, discarded after training
        optimizer.add_param_group({"params": list(projector.parameters()),
                                   "weight_decay": ocfg.weight_decay})
    scheduler = build_scheduler(
        optimizer, name=scfg.name, epochs=tcfg.epochs, lr=ocfg.lr,
        warmup_epochs=scfg.warmup_epochs, warmup_start_lr=scfg.warmup_start_lr,
        min_lr=scfg.min_lr, restart_period=scfg.restart_period,
        restart_mult=scfg.restart_mult, milestones=list(scfg.milestones), gamma=scfg.gamma,
    )

    from lastexp.train.checkpoint import (
        architecture,
        check_compatible,
        load_checkpoint,
    )
    from lastexp.train.loop import (
        EpochProgress,
        NanGuard,
        StepContext,
        evaluate,
        train_one_epoch,
    )
    from lastexp.train.sampler import EpochSampler
    from lastexp.train.swa import SWATracker

    swa_epoch = swa_start_epoch(tcfg.swa_start, tcfg.epochs)
    swa = SWATracker(model, swa_epoch) if swa_epoch is not None else None
    from lastexp.train.tracking import Loggers, TensorBoardLogger, WandbLogger, write_history

    model_name = cfg.model.name
    start_epoch, best_top1, best_epoch, history = 0, -1.0, -1, []
    guard = NanGuard(max_consecutive=tcfg.max_nonfinite_steps)
    resumed_from, mid_epoch = None, None
    if last_path.exists():
        state = load_checkpoint(last_path)
        check_compatible(state, model, model_name, last_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        try:
            scheduler.load_state_dict(state["scheduler"])
        except KeyError:  # LambdaLR reads the "lr_lambdas" a LinearLR state lacks
            raise ConfigError(f"{last_path} holds a learning-rate schedule of an older lastexp "
                              "(LinearLR warmup) that cannot be resumed; start the run over "
                              "with fresh=true") from None
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if projector is not None and state.get("projector"):
            projector.load_state_dict(state["projector"])
        if swa is not None and state.get("swa"):
            swa.load_state_dict(state["swa"])
        start_epoch = state["epoch"]
        best_top1, best_epoch = state["best_top1"], state["best_epoch"]
        history = state.get("history", [])
        resumed_from = start_epoch
        mid_epoch = state.get("mid_epoch")
        where = (f"in epoch {start_epoch + 1} after {mid_epoch['progress']['batches']} batches"
                 if mid_epoch else f"after epoch {start_epoch}")
        print(f"lastexp: resuming {run_dir.name} {where}")
    elif cfg.init_from:
        src = Path(cfg.init_from)
        if not src.exists():
            raise ConfigError(f"init_from={src} does not exist")
        state = load_checkpoint(src)
        if state.get("kind") == "maskclr_encoder":
            init_encoder(model, state, src)
        else:
            check_compatible(state, model, model_name, src)
            model.load_state_dict(state["model"])
    save_hydra_files(run_dir, cfg)  # data, model and checkpoints are in hand: it trains now
    pretrain_info = None
    if cfg.pretrain.enabled and resumed_from is None:
        pretrain_info = pretrain_phase(cfg, model, data, device, ckpt_dir / "encoder.pt", dinfo)

    static = {
        "ablation": cfg.ablation,
        "model": model_name,
        "stream": cfg.stream.name,
        "dataset": cfg.dataset.name,
        "split": cfg.dataset.split,
        "preprocessing": cfg.preprocessing.name,
        "seed": cfg.seed,
        "epochs": tcfg.epochs,
        "params": params,
        "flops": flops,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "amp": precision.mode,
        "n_train": len(data.train),
        "n_test": len(data.test),
        "num_classes": data.num_classes,
        "run_key": run_key(cfg),
        "git_commit": git_commit(),
        "skipped_files": len(data.summary.get("skipped", {})),
    }
    from lastexp.deps import debug_choice

    static["debug"] = debug_choice()
    if teacher_dirs:
        static["teacher"] = str(teacher_dirs[0])  # the student's stream
    if len(teacher_dirs) > 1:
        static["teacher_members"] = [str(d) for d in teacher_dirs]
    if pretrain_info:
        static.update(pretrain_info)
    if os.environ.get("SLURM_JOB_ID"):
        static["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    prev_seconds = float(history[-1].get("cum_seconds", 0.0)) if history else 0.0
    metrics: dict[str, Any] = {
        **static, "status": "running", "started_at": now_iso(),
        "best_top1": best_top1 if best_top1 >= 0 else None,
        "best_epoch": best_epoch if best_epoch >= 0 else None,
        "final_top1": None, "train_seconds": prev_seconds,
    }
    if resumed_from is not None:
        metrics["resumed_from_epoch"] = resumed_from
    if history:  # as the killed run left them, also when it died before rewriting them
        metrics["epochs_done"] = len(history)
        if dinfo.main:
            write_history(run_dir / "history.csv", history)
    put_json(metrics_path, metrics)

    loggers = []
    if cfg.logger.name in ("wandb", "wandb_tensorboard") and dinfo.main:
        group = cfg.logger.group or (sweep_dir.name if sweep_dir else None)
        loggers.append(WandbLogger(
            run_dir, project=cfg.logger.project, entity=cfg.logger.entity, group=group,
            tags=list(cfg.logger.tags), mode=cfg.logger.mode,
            config=identity(cfg),
        ))
    if cfg.logger.name in ("tensorboard", "wandb_tensorboard") and dinfo.main:
        loggers.append(TensorBoardLogger(run_dir / "tensorboard", history))
    logger = Loggers(loggers) if loggers else None

    pin = device.type == "cuda"
    aug_gen = torch.Generator(device=device)
    sampler = EpochSampler(len(data.train), seed=cfg.seed, rank=dinfo.rank, world=dinfo.world)
    train_loader = torch.utils.data.DataLoader(
        data.train, batch_size=tcfg.batch_size, sampler=sampler,
        num_workers=tcfg.num_workers, pin_memory=pin, drop_last=False,
        # Its own generator: otherwise each epoch's iterator draws a worker base seed from
        # the global RNG, and a run resumed mid-epoch would see dropout masks shifted by one.
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    test_loader = torch.utils.data.DataLoader(
        data.test, batch_size=tcfg.eval_batch_size, shuffle=False,
        num_workers=tcfg.num_workers, pin_memory=pin,
    )
    stream = cfg.stream.name
    # An ensemble teacher reads its members' own streams: the loop then hands over joint
    # coordinates (augmented only) and the Distiller derives each stream, the student's too.
    ensemble_teacher = len(teachers) > 1
    train_tf = make_transform("joint" if ensemble_teacher else stream, augment=tcfg.augment,
                              generator=aug_gen, max_deg=tcfg.rotation_deg,
                              scale=tcfg.scale_range)
    test_tf = make_transform(stream, augment=False, generator=None, max_deg=0, scale=(1, 1))

    stop = StopFlag()
    stop.install()
    causal_rng = np.random.default_rng(cfg.seed)
    before_step = None
    if tcfg.causal_prob > 0:
        def before_step() -> None:
            set_causal(model, bool(causal_rng.random() < tcfg.causal_prob))

    limit_s = tcfg.max_hours * 3600 if tcfg.max_hours else math.inf

    def should_stop() -> bool:
        return dinfo.any(stop.requested or time.time() - t_start > limit_s, device)

    train_model: nn.Module = model
    if dinfo.active:  # gradients averaged over processes; each sees its shard of the epoch
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    eval_model: nn.Module = model
    if tcfg.compile:  # the wrappers share model's parameters: checkpoints stay plain
        eval_model = compiled(model, tcfg.compile_mode)
        train_model = compiled(train_model, tcfg.compile_mode) if dinfo.active else eval_model

    if teachers:
        from lastexp.train.distill import Distiller

        if tcfg.compile:
            for member in teachers:
                member.model = compiled(member.model, tcfg.compile_mode)
        loss_fn = Distiller(teachers, projector, alpha=dcfg.alpha, beta=dcfg.beta,
                            gamma=dcfg.gamma, tau=dcfg.tau, label_smoothing=tcfg.label_smoothing,
                            student_stream=stream if ensemble_teacher else None)
    else:
        loss_fn = make_loss(tcfg.label_smoothing, tcfg.ib_loss_weight)
    ctx = StepContext(
        optimizer=optimizer,
        loss_fn=loss_fn,
        transform=train_tf, device=device, accumulation=tcfg.gradient_accumulation_steps,
        clip=tcfg.gradient_clip, scaler=scaler,
        amp_dtype=precision.dtype, guard=guard,
        before_step=before_step, should_stop=should_stop,
    )

    def checkpoint_state(epoch: int, mid: dict | None = None) -> dict:
        return {
            "mid_epoch": mid,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "epoch": epoch, "best_top1": best_top1, "best_epoch": best_epoch,
            "history": history, "model_name": model_name,
            "architecture": architecture(model), "config": identity(cfg),
            "num_classes": data.num_classes, "stream": stream,
            "projector": projector.state_dict() if projector is not None else None,
            "swa": swa.state_dict() if swa is not None else None,
        }

    stopper = EarlyStopping(tcfg.early_stopping_patience, tcfg.early_stopping_monitor,
                            tcfg.early_stopping_min_delta).replay(history)
    status, reason = "completed", None
    last_epoch_s = 0.0
    try:
        for epoch in range(start_epoch, tcfg.epochs):
            if dinfo.any(time.time() - t_start + last_epoch_s > limit_s, device):
                status, reason = "interrupted", f"training.max_hours={tcfg.max_hours} reached"
                break
            if stopper.should_stop:
                metrics["stopped_early_at"] = epoch
                break
            t_epoch = time.perf_counter()
            es = epoch_seed(cfg.seed, epoch)
            torch.manual_seed(es)
            aug_gen.manual_seed(es)
            # causal-mode draws too: an epoch-end checkpoint then resumes them exactly
            causal_rng = np.random.default_rng(es)
            if hasattr(data.train, "set_epoch"):
                data.train.set_epoch(epoch)
            progress = None
            if mid_epoch is not None:  # continue exactly where the interrupted run stopped
                progress = EpochProgress(**mid_epoch["progress"])
                torch.set_rng_state(mid_epoch["rng_torch"])
                aug_gen.set_state(mid_epoch["rng_aug"])
                causal_rng.bit_generator.state = mid_epoch["rng_causal"]
                t_epoch -= mid_epoch["seconds"]
                mid_epoch = None
            sampler.set_epoch(epoch, skip=progress.batches * tcfg.batch_size if progress else 0)
            lr = optimizer.param_groups[0]["lr"]
            tr = train_one_epoch(train_model, train_loader, ctx,
                                 desc=f"epoch {epoch + 1}/{tcfg.epochs}", resume=progress)
            if dinfo.active:  # report the epoch over all processes' samples
                p = tr["progress"]
                loss_sum, correct, seen = dinfo.sum([p.loss_sum, p.correct, p.seen], device)
                tr["train_loss"] = loss_sum / max(seen, 1)
                tr["train_top1"] = 100.0 * correct / max(seen, 1)
            if tr["stopped"]:
                status = "interrupted"
                reason = (f"signal {signal.Signals(stop.signum).name}" if stop.requested else
                          f"training.max_hours={tcfg.max_hours} reached")
                reason += ": resume by running the same command again"
                mid = {"progress": tr["progress"].to_dict(), "rng_torch": torch.get_rng_state(),
                       "rng_aug": aug_gen.get_state(),
                       "rng_causal": causal_rng.bit_generator.state,
                       "seconds": time.perf_counter() - t_epoch}
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                put_ckpt(last_path, checkpoint_state(epoch, mid))
                print(f"lastexp: stopped in epoch {epoch + 1} after "
                      f"{tr['progress'].batches} batches; checkpoint saved", flush=True)
                break
            set_causal(model, False)
            if swa is not None:
                swa.update(epoch)
            ev = evaluate(eval_model, test_loader, device=device, transform=test_tf,
                          amp_dtype=precision.dtype)
            scheduler.step()
            last_epoch_s = time.perf_counter() - t_epoch
            row = {"epoch": epoch + 1, "lr": lr, "train_loss": tr["train_loss"],
                   "train_top1": tr["train_top1"], "val_loss": ev["val_loss"],
                   "val_top1": ev["val_top1"], "seconds": last_epoch_s,
                   "cum_seconds": (history[-1]["cum_seconds"] if history else 0.0)
                   + last_epoch_s}
            history.append(row)
            stopper.update(row)
            improved = ev["val_top1"] > best_top1
            if improved:
                best_top1, best_epoch = ev["val_top1"], epoch + 1
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            state = checkpoint_state(epoch + 1)
            # best.pt before last.pt: a kill between the two resumes from the epoch before,
            # which replays this epoch and writes the same best.pt again
            if improved:
                put_ckpt(best_path, state)
            put_ckpt(last_path, state)
            if tcfg.save_interval and (epoch + 1) % tcfg.save_interval == 0:
                put_ckpt(ckpt_dir / f"epoch_{epoch + 1:04d}.pt", state)
            if dinfo.main:
                write_history(run_dir / "history.csv", history)
            if logger is not None:
                logger.log_epoch(row)
            if dinfo.main:
                print(
                    f"epoch {epoch + 1:3d}/{tcfg.epochs} lr {lr:.2e} "
                    f"train {tr['train_loss']:.4f}/{tr['train_top1']:5.1f}% "
                    f"val {ev['val_loss']:.4f}/{ev['val_top1']:5.1f}% ({last_epoch_s:.1f}s)",
                    flush=True,
                )
            metrics.update(best_top1=best_top1, best_epoch=best_epoch,
                           train_seconds=row["cum_seconds"], epochs_done=epoch + 1)
            if tcfg.overfit_check and tr["train_top1"] >= 100.0:
                metrics.update(memorised=True, memorised_at_epoch=epoch + 1)
            put_json(metrics_path, metrics)
            if metrics.get("memorised"):
                break
    except BaseException as exc:
        stop.restore()
        metrics.update(status="failed" if not isinstance(exc, KeyboardInterrupt) else
                       "interrupted", error=f"{exc.__class__.__name__}: {exc}",
                       finished_at=now_iso())
        put_json(metrics_path, metrics)
        if logger is not None:
            logger.finish(metrics, exit_code=1)
        raise

    if status == "completed" and tcfg.overfit_check and dinfo.main:
        print(overfit_verdict(metrics, history, len(data.train)), flush=True)
        metrics.setdefault("memorised", False)
    if status == "completed":
        if not history:
            raise ConfigError("no epoch was run; raise training.epochs")
        # Three selection rules, each its own number (the training plan §7 and the tables'
        # notes): best_top1 is the best epoch of the trained weights (best.pt), final_top1 the
        # weights the schedule ends with, swa_top1 the averaged model (swa.pt). None replaces
        # another, so B13 against B7 compares like with like.
        ev = evaluate(eval_model, test_loader, device=device, transform=test_tf,
                      amp_dtype=precision.dtype, keep_scores=True)
        metrics.update(final_top1=ev["val_top1"], final_loss=ev["val_loss"])
        # the finish draws randomness (dropout while SWA's BN statistics are recomputed) from
        # (seed, epochs) alone, so a run killed in this phase finishes the same on resume
        torch.manual_seed(epoch_seed(cfg.seed, tcfg.epochs))
        if swa is not None:  # the averaged weights, BN statistics recomputed
            sampler.set_epoch(tcfg.epochs)  # all training inputs for the BN statistics
            if hasattr(data.train, "set_epoch"):  # their clips drawn for this phase, not for
                data.train.set_epoch(tcfg.epochs)  # whichever epoch this process ran last
            swa_model = swa.finalize(train_loader, test_tf, device)
            put_ckpt(ckpt_dir / "swa.pt", {**checkpoint_state(tcfg.epochs),
                                           "model": swa_model.state_dict()})
            ev = evaluate(swa_model, test_loader, device=device, transform=test_tf,
                          amp_dtype=precision.dtype, keep_scores=True)
            metrics.update(swa_top1=ev["val_top1"], swa_loss=ev["val_loss"],
                           swa_epochs=swa.n_averaged)
        # The logits of the model the run delivers: the SWA model when SWA is on.
        _save_scores(run_dir / "test_scores.npz", ev["scores"], data.test)
    metrics.update(
        status=status, finished_at=now_iso(),
        nonfinite_inputs_skipped=guard.skipped_inputs,
        nonfinite_losses_skipped=guard.skipped_losses,
    )
    if reason:
        metrics["reason"] = reason
    put_json(metrics_path, metrics)
    if logger is not None:
        logger.finish(metrics)
    if dinfo.main:
        final = " ".join(f"{k.removesuffix('_top1')} {metrics[k]:.2f}%"
                         for k in ("final_top1", "swa_top1") if metrics.get(k) is not None)
        print(f"lastexp: {status}: {run_dir} (best {best_top1:.2f}% at epoch {best_epoch}"
              f"{', ' + final if final else ''})", flush=True)
    shutdown()
    if stop.requested:
        stop.hand_over()  # under submitit: checkpoint() requeues the job and exits
        stop.restore()
        # Still here: nobody requeued the job; it must not end as a success.
        raise RuntimeError(f"{run_dir.name}: interrupted by {signal.Signals(stop.signum).name}"
                           "; checkpoint saved, rerun the same command to resume")
    stop.restore()
    return metrics.get("final_top1")


def overfit_verdict(metrics: dict, history: list[dict], n_train: int) -> str:
    """The one line of ``debug=overfit``: memorised, or after how many epochs it was not."""
    if metrics.get("memorised"):
        return (f"lastexp: overfit check passed: all {n_train} training samples memorised "
                f"after {metrics['memorised_at_epoch']} epochs")
    last = history[-1]["train_top1"] if history else 0.0
    return (f"lastexp: overfit check FAILED: {n_train} training samples not memorised after "
            f"{len(history)} epochs (train top-1 {last:.1f}%); check the model, the loss and the "
            "labels before a long run")


def build_teacher(cfg: DictConfig, model: nn.Module, num_classes: int, device: torch.device):
    """The frozen teacher members of ``distill.teacher`` (one run of the student's stream, or
    one per ``distill.teacher_streams``, the student's first, logits averaged), the stage
    projections onto the first member when gamma > 0, and the members' run directories."""
    from lastexp.deps import resolve, teacher_streams
    from lastexp.teachers import TeacherError, load_teacher
    from lastexp.train.distill import FeatureProjector, TeacherMember

    dcfg = cfg.distill
    if not dcfg.teacher:
        raise ConfigError(f"distill={dcfg.name} needs distill.teacher (an ablation ID or a run "
                          "directory)")
    streams = teacher_streams(cfg)
    members, runs = [], []
    for stream in streams:
        run = resolve(cfg, ref=dcfg.teacher, stream=stream, role="teacher")
        try:
            teacher, info = load_teacher(run, num_classes=num_classes, device=device,
                                         expect_dataset=cfg.dataset.name,
                                         expect_split=cfg.dataset.split)
        except TeacherError as exc:
            raise ConfigError(str(exc)) from None
        if info.get("stream") not in (None, stream):
            raise ConfigError(f"teacher {run} was trained on stream {info['stream']}, the "
                              f"student on {stream}; distil within one stream")
        members.append(TeacherMember(teacher, weight=1.0 / len(streams),
                                     stream=stream if len(streams) > 1 else None))
        runs.append(run)
        top1 = info.get("final_top1")
        print(f"lastexp: distilling from {run} ({info.get('model')}, {stream}"
              f"{f', {top1:.2f}% top-1' if top1 is not None else ''})", flush=True)
    projector = None
    if dcfg.gamma > 0:
        projector = FeatureProjector.between(model, members[0].model).to(device)
    return members, projector, runs


def init_encoder(model: nn.Module, state: dict, path: Path) -> list[str]:
    from lastexp.train.pretrain import load_encoder_into

    try:
        return load_encoder_into(model, state)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"encoder {path} does not fit model {type(model).__name__}: {exc}") \
            from None


def pretrain_phase(cfg: DictConfig, model: nn.Module, data, device: torch.device,
                   path: Path, dinfo: Any = None) -> dict:
    """MaskCLR (the training plan §4) before the main phase; its encoder is kept, so a restarted run
    does not pretrain again."""
    from lastexp.train.checkpoint import load_checkpoint
    from lastexp.train.pretrain import pretrain, save_encoder
    from lastexp.train.sampler import EpochSampler

    pcfg = cfg.pretrain
    if not path.exists():
        loader = torch.utils.data.DataLoader(
            data.train, batch_size=pcfg.batch_size,
            sampler=EpochSampler(len(data.train), seed=cfg.seed),
            num_workers=cfg.training.num_workers,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        print(f"lastexp: MaskCLR pretraining for {pcfg.epochs} epochs", flush=True)
        hist = pretrain(model, loader, epochs=pcfg.epochs, lr=pcfg.lr, device=device,
                        mask_ratio=pcfg.mask_ratio, temperature=pcfg.temperature,
                        strategy=pcfg.mask_strategy, seed=cfg.seed, stream=cfg.stream.name,
                        contrastive_weight=pcfg.contrastive_weight)
        if dinfo is None or dinfo.main:
            save_encoder(path, model, model_name=cfg.model.name, history=hist)
    if dinfo is not None:
        dinfo.barrier()
    state = load_checkpoint(path)
    init_encoder(model, state, path)
    hist = state.get("history") or {}
    return {"pretrain_epochs": pcfg.epochs,
            "pretrain_seconds": float(sum(hist.get("seconds", []))),
            "pretrain_final_loss": (hist.get("loss") or [None])[-1]}


def ensemble_job(cfg: DictConfig, run_dir: Path) -> float | None:
    """B14 and the "(4s)" rows: combine the members' test scores into a run of its own."""
    from lastexp.deps import debug_choice, resolve
    from lastexp.ensemble import EnsembleError, ensemble_runs

    members = [resolve(cfg, ref=cfg.ensemble.of, stream=s, role="ensemble member")
               for s in cfg.ensemble.streams]
    try:
        m = ensemble_runs(members, list(cfg.ensemble.weights), run_dir, ablation=cfg.ablation)
    except EnsembleError as exc:
        raise ConfigError(str(exc)) from None
    extra = {"debug": debug_choice(), "run_key": run_key(cfg), "git_commit": git_commit()}
    write_json(run_dir / "metrics.json", {**read_json(run_dir / "metrics.json"), **extra})
    save_hydra_files(run_dir, cfg)
    best = max(m.get("member_top1") or [0])
    print(f"lastexp: ensemble of {len(members)} runs: {m['final_top1']:.2f}% top-1 "
          f"(best member {best:.2f}%) -> {run_dir}", flush=True)
    return m["final_top1"]


def _save_scores(path: Path, scores: torch.Tensor, test_set: Any) -> None:
    """Per-sample test logits of the final model: what ensembles (B14, "4s") combine."""
    from lastexp.io import atomic_write

    labels = np.asarray(getattr(test_set, "labels", []))
    names = np.asarray(getattr(test_set, "names", []))
    atomic_write(
        path,
        lambda f: np.savez(f, scores=scores.numpy().astype(np.float32), labels=labels,
                           names=names),
        mode="wb",
    )
