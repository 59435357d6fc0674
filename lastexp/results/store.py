"""Reads the run store: every directory below the runs root that holds a ``metrics.json``.

The trainer writes one directory per run (Hydra single runs, multirun job dirs, SLURM job
dirs, in any nesting). This module only reads: a truncated or foreign ``metrics.json`` is
reported as a :class:`Problem` and skipped, never fatal, so one broken run cannot hide the
other 9,999. Loading is a plain ``os.scandir`` walk plus ``json.load`` and one DataFrame
construction, which keeps 10,000 runs to about a second on 2 cores.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lastexp.runstore import RunDir, read_metrics, run_dirs, schema_problem
from lastexp.runstore import metrics as metrics_schema

# The frame's columns and their kinds are metrics.json's schema (lastexp.runstore.metrics).
COLUMNS, _NUMERIC, _TEXT = metrics_schema.COLUMNS, metrics_schema.NUMERIC, metrics_schema.TEXT


@dataclass(frozen=True)
class Problem:
    """A run dir whose metrics could not be used, and why (shown in the tables' footnotes)."""

    run_dir: str  # relative to the runs root, POSIX separators
    message: str


def find_run_dirs(runs_dir: str | os.PathLike[str]) -> list[str]:
    """Absolute paths of every run directory below ``runs_dir``, sorted (the run store's one
    walker, :func:`lastexp.runstore.run_dirs`)."""
    return [str(p) for p in run_dirs(runs_dir)]


def _relative(path: str, root: str) -> str:
    rel = os.path.relpath(path, root)
    return "." if rel == "." else rel.replace(os.sep, "/")


def _read_metrics(path: str) -> dict | str:
    """The parsed metrics dict, or a one-line reason why it is unusable."""
    data = read_metrics(path)
    if isinstance(data, str):
        return data
    return schema_problem(data) or data


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
        data = _read_metrics(str(RunDir.at(run).metrics))
        if isinstance(data, str):
            problems.append(Problem(rel, data))
            continue
        data["run_dir"] = rel
        records.append(data)
    if warn:
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
    path = RunDir(Path(runs_root) / run_dir).history
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
