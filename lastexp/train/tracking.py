"""Per-epoch records of a run: history.csv always, Weights & Biases and TensorBoard when
configured (``logger=wandb|tensorboard|wandb_tensorboard|none``); those two also get per-step
records (train loss, lr, gradient norm every ``logger.log_every_n_steps`` optimizer steps, the
global step as their x-axis).

A full disk under either is :class:`~lastexp.io.DiskFullError` naming its file or folder (the
TensorBoard event file, the run's W&B folder), raised in the main thread where the run writes
its records: the command ends with that one line (README, "Runs and results"), never with a
traceback of TensorBoard's writer thread or of W&B."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any

from lastexp.io import atomic_write, is_disk_full, names_full_disk

# grad_norm: mean pre-clip global gradient norm over the epoch's optimizer steps (runs written
# before it existed have no such column; readers take the columns a file has)
HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "seconds",
                  "grad_norm")
# the per-step records (lastexp.train.loop): W&B keys and TensorBoard tags "step/<field>"
STEP_FIELDS = ("train_loss", "lr", "grad_norm")
STEP_PREFIX = "step/"


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite history.csv whole (atomically): it is tiny, and a resumed run stays consistent."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in HISTORY_FIELDS})
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def wandb_mode(requested: str) -> str:
    """``auto``: online only when credentials exist, so a run never blocks on a login prompt."""
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        if "api.wandb.ai" in netrc.read_text():
            return "online"
    except OSError:
        pass
    return "offline"


def wandb_tags(*, ablation: str | None, model: str, stream: str, dataset: str,
               debug: str | None, extra: list[str]) -> list[str]:
    """A run's W&B tags: its ablation ID, model, stream, dataset, ``debug=<preset>`` when one is
    set, then ``logger.tags``; each once, in that order."""
    found = [ablation, model, stream, dataset, f"debug={debug}" if debug else None, *extra]
    return list(dict.fromkeys(str(t) for t in found if t))


def job_type(*, ensemble: bool, pretrain: bool) -> str:
    """W&B's job_type: ``ensemble`` (a combination of runs), ``pretrain`` (MaskCLR pretraining,
    then fine-tuning), else ``train``."""
    return "ensemble" if ensemble else "pretrain" if pretrain else "train"


class WandbLogger:
    """One wandb run per lastexp run, resumable: the id derives from the run directory name,
    so a requeued or restarted job continues the same wandb run (online: W&B resumes it;
    offline: each attempt writes its own ``wandb/offline-run-<time>-<id>`` folder with that
    id, and ``wandb sync`` uploads them in start order as the one run)."""

    folder = Path("wandb")  # named by a full disk: the run's W&B folder (set by __init__)

    def __init__(
        self,
        run_dir: Path,
        *,
        project: str,
        entity: str | None,
        group: str | None,
        tags: list[str],
        mode: str,
        config: dict,
        job_type: str = "train",
    ) -> None:
        # deferred: wandb takes ~1.2 s to import; only logger=wandb needs it
        import wandb

        self._wandb = wandb
        self.run_id = hashlib.sha1(str(run_dir.name).encode()).hexdigest()[:16]
        self.folder = Path(run_dir) / "wandb"  # named by a full disk; then the run's own
        with names_full_disk(self.folder):
            self.run = wandb.init(
                project=project,
                entity=entity,
                group=group,
                tags=tags or None,
                job_type=job_type,
                name=run_dir.name,
                id=self.run_id,
                resume="allow",
                dir=str(run_dir),
                config=config,
                mode=wandb_mode(mode),
                reinit="create_new",
                settings=wandb.Settings(silent=True, console="off"),
            )
            self._define_axes()
        if getattr(self.run, "dir", None):  # <run>/wandb/offline-run-<time>-<id>/files
            self.folder = Path(self.run.dir).parent

    def _define_axes(self) -> None:
        """W&B's own step is the global optimizer step; the per-step series are drawn over it,
        the per-epoch series over ``epoch``."""
        self.run.define_metric("global_step")
        self.run.define_metric(f"{STEP_PREFIX}*", step_metric="global_step")
        self.run.define_metric("epoch")
        for key in HISTORY_FIELDS[1:]:
            self.run.define_metric(key, step_metric="epoch")

    def log_epoch(self, row: dict[str, Any]) -> None:
        data = {k: v for k, v in row.items() if k != "global_step"
                and isinstance(v, (int, float))}
        # a resumed run's repeated steps are dropped by W&B (their values are the same)
        with names_full_disk(self.folder):
            self.run.log(data, step=int(row.get("global_step", row["epoch"])))

    def log_step(self, stats: dict[str, Any]) -> None:
        step = int(stats["global_step"])
        with names_full_disk(self.folder):
            self.run.log({"global_step": step, **{STEP_PREFIX + k: float(stats[k])
                                                  for k in STEP_FIELDS}}, step=step)

    def finish(self, summary: dict[str, Any], exit_code: int = 0) -> None:
        with names_full_disk(self.folder):
            for k, v in summary.items():
                if isinstance(v, (int, float, str)) or v is None:
                    self.run.summary[k] = v
            self.run.finish(exit_code=exit_code)


# the history columns TensorBoard shows, one scalar series each (tag = column name)
TENSORBOARD_FIELDS = tuple(k for k in HISTORY_FIELDS if k != "epoch")


class TensorBoardLogger:
    """Event files in ``<run_dir>/tensorboard/``: one scalar series per history.csv column
    (the learning rate included), the epoch as the step.

    Resumable without duplicate steps, for every reader: each start writes the epochs already
    in the run's history into a new event file (with the wall times the earlier attempts
    logged), then deletes the earlier files; the new file also starts with ``purge_step=1``, so
    a reader that still sees an old file drops its events. The series always equal the history,
    even when an attempt died between its checkpoint and its log, or when an earlier attempt
    ran with another logger.

    The per-step series (``step/train_loss``, ``step/lr``, ``step/grad_norm``, the global step as
    their step) are carried over the same way up to ``global_step``, the checkpoint's count.

    The writer writes from a thread of its own; a full disk there is raised by its next
    ``add_scalar`` or flush, here as :class:`~lastexp.io.DiskFullError` naming the event file
    (every call flushes, so that is the same call), and the thread itself prints nothing
    (:class:`QuietWriterThreads`)."""

    def __init__(self, log_dir: Path, history: list[dict[str, Any]],
                 global_step: int = 0) -> None:
        # deferred: ~0.9 s to import; only logger=tensorboard needs it
        from torch.utils.tensorboard import SummaryWriter

        QuietWriterThreads.install()
        log_dir = self.path = Path(log_dir)  # the event file, once it is made
        old = sorted(log_dir.glob("events.out.tfevents.*"))
        self._walltimes = _logged_walltimes(log_dir) if old else {}
        steps = _logged_steps(log_dir, global_step) if old else []  # before the new file purges
        with names_full_disk(log_dir):
            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=1)
        made = sorted(set(log_dir.glob("events.out.tfevents.*")) - set(old))
        self.path = made[-1] if made else log_dir
        with names_full_disk(self.path):
            for tag, step, value, walltime in steps:
                self.writer.add_scalar(tag, value, global_step=step, walltime=walltime)
            for row in history:
                self.log_epoch(row, flush=False)
            self.writer.flush()
        self._walltimes = {}
        for path in old:
            path.unlink(missing_ok=True)

    def log_epoch(self, row: dict[str, Any], flush: bool = True) -> None:
        step = int(row["epoch"])
        with names_full_disk(self.path):
            for key in TENSORBOARD_FIELDS:
                value = row.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, float(value), global_step=step,
                                           walltime=self._walltimes.get((key, step)))
            if flush:
                self.writer.flush()

    def log_step(self, stats: dict[str, Any]) -> None:
        step = int(stats["global_step"])
        with names_full_disk(self.path):
            for key in STEP_FIELDS:
                self.writer.add_scalar(STEP_PREFIX + key, float(stats[key]), global_step=step)
            self.writer.flush()

    def finish(self, summary: dict[str, Any], exit_code: int = 0) -> None:
        with names_full_disk(self.path):
            self.writer.flush()  # raises what the writer's thread died of (close would not)
            self.writer.close()


class QuietWriterThreads:
    """``threading.excepthook`` that lets a TensorBoard writer thread die of a full disk
    without printing its traceback: the writer raises the same error in the thread that
    writes next (:class:`TensorBoardLogger` names the file). Anything else goes to the
    hook it replaced."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, args: Any) -> None:
        if is_disk_full(args.exc_value) and \
                type(args.thread).__module__.startswith("tensorboard."):
            return
        self.previous(args)

    @classmethod
    def install(cls) -> None:
        if not isinstance(threading.excepthook, cls):
            threading.excepthook = cls(threading.excepthook)


def _logged_walltimes(log_dir: Path) -> dict[tuple[str, int], float]:
    """(tag, step) -> wall time of what earlier attempts logged (their purges applied)."""
    # deferred: tensorboard's reader, only when resuming a logger=tensorboard run
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    try:
        acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
        acc.Reload()
        return {(tag, e.step): e.wall_time for tag in acc.Tags()["scalars"]
                for e in acc.Scalars(tag)}
    except Exception:  # noqa: BLE001 -- a truncated file: the epochs get the current time
        return {}


def _logged_steps(log_dir: Path, upto: int) -> list[tuple[str, int, float, float]]:
    """(tag, step, value, wall time) of the per-step series earlier attempts logged, up to the
    global step ``upto`` of the checkpoint the run resumes from (later ones are trained again)."""
    # deferred: tensorboard's reader, only when resuming a logger=tensorboard run
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    try:
        acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
        acc.Reload()
        return [(tag, e.step, e.value, e.wall_time) for tag in acc.Tags()["scalars"]
                if tag.startswith(STEP_PREFIX) for e in acc.Scalars(tag) if e.step <= upto]
    except Exception:  # noqa: BLE001 -- a truncated file: those steps are not shown again
        return []


class Loggers:
    """Several loggers behind the one interface of :class:`WandbLogger`."""

    def __init__(self, loggers: list[Any]) -> None:
        self.loggers = loggers

    def log_epoch(self, row: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_epoch(row)

    def log_step(self, stats: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_step(stats)

    def finish(self, summary: dict[str, Any], exit_code: int = 0) -> None:
        """Each logger finishes, also after another failed (a full disk under TensorBoard
        still closes the W&B run); the first error is raised."""
        errors = []
        for logger in self.loggers:
            try:
                logger.finish(summary, exit_code=exit_code)
            except Exception as exc:  # noqa: BLE001 -- raised below, once every one finished
                errors.append(exc)
        if errors:
            raise errors[0]
