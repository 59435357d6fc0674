"""Reads the run store: every directory below the runs root that holds a ``metrics.json``.

The trainer writes one directory per run (Hydra single runs, multirun job dirs, SLURM job
dirs, in any nesting). This module only reads: a truncated or foreign ``metrics.json`` is
reported as a :class:`Problem` and skipped, never fatal, so one broken run cannot hide the
other 9,999. Loading is a plain ``os.scandir`` walk plus ``json.load`` and one DataFrame
construction, which keeps 10,000 runs to about a second on 2 cores.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"

# The columns every loaded frame has, in this order (missing keys become None/NaN).
COLUMNS = [
    "run_dir", "status", "ablation", "model", "stream", "dataset", "preprocessing", "seed",
    "epochs", "best_top1", "best_epoch", "final_top1", "swa_top1", "params", "flops",
    "train_seconds", "device", "n_train", "n_test", "error", "int8_bytes", "int8_top1",
    "onnx_max_abs_diff",
    "started_at", "finished_at",
]  # fmt: skip
_NUMERIC = [
    "seed", "epochs", "best_top1", "best_epoch", "final_top1", "swa_top1", "params", "flops",
    "train_seconds", "n_train", "n_test", "int8_bytes", "int8_top1", "onnx_max_abs_diff",
]  # fmt: skip
_TEXT = ["status", "ablation", "model", "stream", "dataset", "preprocessing", "device", "error",
         "started_at", "finished_at"]  # fmt: skip
STATUSES = ("completed", "failed", "interrupted", "running")
TOP1_KEYS = ("best_top1", "final_top1", "swa_top1", "int8_top1")
# Directories inside a run dir (or beside runs) that never hold runs themselves.
_SKIP_DIRS = {"checkpoints", "export", "wandb", "tensorboard", "__pycache__"}


@dataclass(frozen=True)
class Problem:
    """A run dir whose metrics could not be used, and why (shown in the tables' footnotes)."""

    run_dir: str  # relative to the runs root, POSIX separators
    message: str


def find_run_dirs(runs_dir: str | os.PathLike[str]) -> list[str]:
    """Absolute paths of every directory below ``runs_dir`` holding a ``metrics.json``, sorted.

    A run dir is a leaf: its own sub-folders (``.hydra``, ``checkpoints``) are not searched.
    Hidden directories and plain files (Hydra's ``multirun.yaml``) are ignored.
    """
    found: list[str] = []
    stack = [os.fspath(runs_dir)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        subdirs = []
        is_run = False
        for entry in entries:
            name = entry.name
            if name == METRICS_FILE:
                is_run = True
            elif name[0] != "." and name not in _SKIP_DIRS:
                try:
                    if entry.is_dir():
                        subdirs.append(entry.path)
                except OSError:
                    continue
        if is_run:
            found.append(current)
        else:
            stack.extend(subdirs)
    found.sort()
    return found


def _relative(path: str, root: str) -> str:
    rel = os.path.relpath(path, root)
    return "." if rel == "." else rel.replace(os.sep, "/")


def _read_metrics(path: str) -> dict | str:
    """The parsed metrics dict, or a one-line reason why it is unusable."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        return f"corrupt or truncated {METRICS_FILE} ({exc.msg} at line {exc.lineno})"
    except (OSError, UnicodeDecodeError) as exc:
        return f"unreadable {METRICS_FILE} ({type(exc).__name__}: {exc})"
    if not isinstance(data, dict):
        return f"{METRICS_FILE} is not a JSON object"
    status = data.get("status")
    if status not in STATUSES:
        return f"{METRICS_FILE} has no valid status (got {status!r})"
    for key in TOP1_KEYS if status == "completed" else ():  # Infinity / NaN parse as floats
        value = data.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            return f"{METRICS_FILE} holds {key}={value}, not a top-1 in [0, 100]"
    return data


def load_store(
    runs_dir: str | os.PathLike[str], *, warn: bool = True
) -> tuple[pd.DataFrame, list[Problem]]:
    """One row per readable run below ``runs_dir`` (columns :data:`COLUMNS` plus extras).

    ``run_dir`` is relative to ``runs_dir`` so tables do not depend on where the store is
    mounted; ``df.attrs["runs_root"]`` keeps the absolute root. Unusable runs come back as
    problems (and, with ``warn``, one ``warning:`` line each on stderr).
    """
    root = os.path.abspath(os.fspath(runs_dir))
    records: list[dict] = []
    problems: list[Problem] = []
    for run in find_run_dirs(root):
        rel = _relative(run, root)
        data = _read_metrics(os.path.join(run, METRICS_FILE))
        if isinstance(data, str):
            problems.append(Problem(rel, data))
            continue
        data["run_dir"] = rel
        records.append(data)
    if warn:
        import sys

        for p in problems:
            print(f"warning: skipping {p.run_dir}: {p.message}", file=sys.stderr)
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=COLUMNS)
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = None
    for col in _NUMERIC:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in _TEXT:
        # Keep None for absent text (ablation null is meaningful), str() anything else.
        values = [
            v if isinstance(v, str) else None if v is None or v != v else str(v) for v in df[col]
        ]
        df[col] = pd.Series(values, index=df.index, dtype=object)
    extras = sorted(c for c in df.columns if c not in COLUMNS)
    df = df[COLUMNS + extras].sort_values("run_dir", kind="stable").reset_index(drop=True)
    df.attrs["runs_root"] = root
    return df, problems


def load_history(runs_root: str | os.PathLike[str], run_dir: str) -> pd.DataFrame | None:
    """A run's ``history.csv`` (one row per epoch), or ``None`` when absent or unreadable."""
    path = Path(runs_root) / run_dir / HISTORY_FILE
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
