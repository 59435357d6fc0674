"""What a command may change in a run directory: only what it wrote itself.

A command that skips a completed run, or is refused, leaves the directory byte-identical; one
that fails before training removes only what it added; one that fails while training keeps
what it trained and records why in metrics.json. ``.hydra/`` is written by the command that
trains the run (``hydra.output_subdir`` is null), never by one that skips it or is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lastexp.config import ConfigError
from lastexp.io import atomic_write
from lastexp.runstore.layout import HYDRA_LOG, TRAINED, RunDir
from lastexp.runstore.metrics import (
    foreign_kind,
    is_failed,
    read_metrics,
    timestamp,
    write_metrics,
)


def stamp(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of a file, to tell whether a command rewrote it; None when absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def entries(run: RunDir) -> set[str]:
    return set(os.listdir(run.path)) if run.path.is_dir() else set()


def holds_a_run(before: set[str]) -> bool:
    """Whether a directory listing is of a run that existed before this command."""
    return bool(before & {"metrics.json", "checkpoints"})


def trained_here(run: RunDir, before: set[str]) -> bool:
    """Whether this command started training (wrote a file only training writes)."""
    return any(name not in before and (run.path / name).exists() for name in TRAINED)


def unchanged_since(run: RunDir, before: set[str], metrics_stamp: tuple | None) -> bool:
    """A command that skipped a completed run: its metrics.json and listing as they were."""
    return bool(metrics_stamp) and metrics_stamp == stamp(run.metrics) and \
        entries(run) <= before


def remove_own_log(run: RunDir, started_ns: int) -> None:
    """Hydra's log in the run directory when this process created it and left it empty."""
    with contextlib.suppress(OSError):
        st = run.hydra_log.stat()
        if st.st_size == 0 and st.st_mtime_ns >= started_ns:
            run.hydra_log.unlink()


def remove_added(run: RunDir, before: set[str]) -> None:
    """After a failed first attempt, remove what this command added (entries not in
    ``before``), and the directory itself when it held nothing but Hydra's log before;
    whatever was there before the command started stays."""
    try:
        added = set(os.listdir(run.path)) - before
    except OSError:
        return
    for name in sorted(added):
        path = run.path / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if before <= {HYDRA_LOG}:
        run.hydra_log.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run.path.rmdir()


def refuse_foreign_metrics(run: RunDir) -> None:
    """A metrics.json that is valid JSON but no object (a list, a number) is no run's: refuse
    to resume, skip or overwrite the directory rather than lose what it holds."""
    kind = foreign_kind(run.metrics)
    if kind is not None:
        raise ConfigError(f"{run.metrics} holds a JSON {kind}, not a run's metrics (an "
                          "object); move that file away, then run the command again")


def save_hydra_files(run: RunDir, cfg: DictConfig) -> None:
    """What Hydra's ``output_subdir`` would hold (``.hydra/config.yaml``, ``hydra.yaml``,
    ``overrides.yaml``), written atomically by the command that trains the run."""
    files = {"config.yaml": OmegaConf.to_yaml(cfg)}
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        files["hydra.yaml"] = OmegaConf.to_yaml(OmegaConf.create({"hydra": hc}))
        files["overrides.yaml"] = OmegaConf.to_yaml(hc.overrides.task)
    run.hydra.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        atomic_write(run.hydra / name, lambda f, t=text: f.write(t))


def mark_failed(run: RunDir, cfg: DictConfig, exc: BaseException) -> None:
    """metrics.json with status failed and the error, for a job that failed before training
    wrote its own (a missing raw_dir on the node, a teacher not found, ...)."""
    if foreign_kind(run.metrics) is not None:  # a foreign file: left as it is
        return
    prev = read_metrics(run.metrics)
    if isinstance(prev, str):  # absent or truncated
        prev = {}
    if is_failed(prev):
        return

    def sel(key: str) -> Any:
        try:
            return OmegaConf.select(cfg, key)
        except Exception:  # noqa: BLE001 -- an invalid config may not even resolve
            return None

    base = {"ablation": sel("ablation"), "model": sel("model.name"),
            "stream": sel("stream.name"), "dataset": sel("dataset.name"),
            "preprocessing": sel("preprocessing.name"), "seed": sel("seed"),
            "epochs": sel("training.epochs"), "best_top1": None, "final_top1": None}
    if os.environ.get("SLURM_JOB_ID"):
        base["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    run.path.mkdir(parents=True, exist_ok=True)
    write_metrics(run.metrics, {**base, **prev, "status": "failed",
                                "error": f"{exc.__class__.__name__}: {exc}",
                                "finished_at": timestamp()})
    if not run.hydra.exists():  # a run that failed before training: its config too (an
        save_hydra_files(run, cfg)  # existing run's .hydra/ is never rewritten)
