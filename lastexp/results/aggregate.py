"""From the loaded run frame to table rows: duplicates resolved, runs grouped into the catalog's
rows and cells, each cell under the row's selection rule, and the Δ against the baseline row.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from lastexp import catalog
from lastexp.results.render import DASH
from lastexp.results.stats import welch
from lastexp.results.store import Problem
from lastexp.runstore.walk import newest_per_seed

DATASET_ORDER = ["synthetic", "ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset"]
STREAM_ORDER = ["joint", "bone", "velocity", "bone_velocity"]
INCOMPLETE = ("failed", "interrupted", "running")

Variant = tuple[str, str, str]  # (model, stream, preprocessing)


@dataclass
class Cell:
    """The runs of one table row on one dataset."""

    values: list[float] = field(default_factory=list)  # top-1 of completed runs, by seed
    seeds: list[float] = field(default_factory=list)
    incomplete: dict[str, int] = field(default_factory=dict)  # status -> count
    # completed runs without the rule's number (e.g. a B13 run written before swa_top1)
    lacking: dict[str, int] = field(default_factory=dict)  # metrics key -> count

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) >= 2 else None

    def flags(self) -> str:
        flags = [f"{self.incomplete[s]} {s}" for s in INCOMPLETE if self.incomplete.get(s)]
        flags += [f"{n} without {key}" for key, n in sorted(self.lacking.items())]
        return ", ".join(flags)

    def text(self) -> str:
        """``91.2 ± 0.3 (n=2, 1 failed)``; ``—`` when no completed run."""
        flags = self.flags()
        if not self.values:
            return f"{DASH} ({flags})" if flags else DASH
        mean = f"{self.mean:.1f}"
        spread = f" ± {self.std:.1f}" if self.std is not None else ""
        return f"{mean}{spread} (n={self.n}{', ' + flags if flags else ''})"


@dataclass
class Row:
    """One table row: an ablation ID (or an ad-hoc key) × one variant of model/stream/prep."""

    label: str
    title: str
    key: Variant  # (model, stream, preprocessing) of its runs; "" when no runs
    shown: tuple[str, ...]  # the variant values printed because they vary within the ID
    ablation: catalog.Ablation | None = None
    first_of_id: bool = True
    rule: catalog.Selection = "best"  # which weights its cells report
    cells: dict[str, Cell] = field(default_factory=dict)  # dataset -> cell under ``rule``
    # rule -> dataset -> cell: the same runs under every rule, for a Δ read under another one
    by_rule: dict[str, dict[str, Cell]] = field(default_factory=dict)
    gpu_seconds: float = 0.0
    baseline_row: Row | None = None

    def cell(self, dataset: str, rule: str | None = None) -> Cell:
        cells = self.cells if rule is None or rule == self.rule else self.by_rule.get(rule, {})
        return cells.get(dataset) or Cell()

    @property
    def display_title(self) -> str:
        return f"{self.title} ({', '.join(self.shown)})" if self.shown else self.title


@dataclass
class Runs:
    """Runs prepared once for all tables: plain dicts, duplicates resolved."""

    all: list[dict]
    completed: list[dict]  # after keeping the newest of duplicate seeds
    duplicates: list[tuple[dict, list[dict]]]  # (kept, dropped)
    problems: list[Problem]
    provenance: str
    root: str = ""  # absolute runs root, for reading history.csv
    figures: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    rows_cache: dict[str, list[Row]] = field(default_factory=dict)

    def datasets(self, runs: list[dict] | None = None) -> list[str]:
        return _order({r["dataset"] for r in (self.all if runs is None else runs)}, DATASET_ORDER)


def as_text(value: object) -> str:
    """A text field of a run, or ``""`` when it is absent (None, NaN)."""
    return value if isinstance(value, str) else ""


def _order(values: set[str] | list[str], preferred: list[str]) -> list[str]:
    rank = {v: i for i, v in enumerate(preferred)}
    return sorted(set(values), key=lambda v: (rank.get(v, len(rank)), v))


def variant_of(run: dict) -> Variant:
    return (run["model"], run["stream"], run["preprocessing"])


def variant_sort_key(key: Variant) -> tuple:
    """Model, then the streams in the plan's order (joint, bone, velocity, bone_velocity)."""
    stream_rank = STREAM_ORDER.index(key[1]) if key[1] in STREAM_ORDER else len(STREAM_ORDER)
    return (key[0], stream_rank, key[1], key[2])


def _seed_sort(run: dict) -> tuple:
    seed = run["seed"]
    if seed is None or seed != seed:
        return (1, 0.0, run["run_dir"])
    return (0, seed, run["run_dir"])


def prepare(df: pd.DataFrame, problems: list[Problem] = (), provenance: str = "") -> Runs:
    """Plain-dict view of the frame with duplicate seeds resolved (newest run kept)."""
    cols = ["run_dir", "status", "ablation", "model", "stream", "dataset", "preprocessing",
            "seed", "best_top1", "final_top1", "swa_top1", "params", "flops", "train_seconds",
            "int8_bytes", "error", "started_at", "finished_at", "teacher_members"]  # fmt: skip
    data = {c: df[c].tolist() if c in df.columns else [None] * len(df) for c in cols}
    runs = [dict(zip(cols, vals)) for vals in zip(*(data[c] for c in cols))]
    for r in runs:
        for k in ("ablation", "model", "stream", "dataset", "preprocessing", "status"):
            r[k] = as_text(r[k])
        r["dataset"] = r["dataset"] or "?"
        ts = r["train_seconds"]
        r["train_seconds"] = ts if isinstance(ts, float) and ts == ts else 0.0
    runs.sort(key=lambda r: r["run_dir"])
    done = [r for r in runs if r["status"] == "completed" and r["best_top1"] == r["best_top1"]]
    completed, duplicates = newest_per_seed(done, lambda r: r, lambda r: r["run_dir"])
    root = str(df.attrs.get("runs_root", ""))
    return Runs(runs, completed, duplicates, list(problems), provenance, root)


def fill_row(row: Row, runs: list[dict], completed: list[dict]) -> None:
    """Count ``runs`` (every status) into the row's GPU time and incomplete flags, and the
    ``completed`` ones into its cells under every selection rule."""
    for r in runs:
        row.gpu_seconds += r["train_seconds"]
        if r["status"] in INCOMPLETE:
            cell = row.cells.setdefault(r["dataset"], Cell())
            cell.incomplete[r["status"]] = cell.incomplete.get(r["status"], 0) + 1
    for rule, key in catalog.SELECTION_KEY.items():
        cells = row.cells if rule == row.rule else row.by_rule.setdefault(rule, {})
        for r in sorted(completed, key=_seed_sort):
            value = r.get(key)
            finite = isinstance(value, (int, float)) and math.isfinite(value)
            if not finite and rule != row.rule:
                continue
            cell = cells.setdefault(r["dataset"], Cell())
            if not finite:
                cell.lacking[key] = cell.lacking.get(key, 0) + 1
                continue
            cell.values.append(float(value))
            cell.seeds.append(r["seed"])


def table_rows(table: str, runs: Runs) -> list[Row]:
    """The rows of one ablation table in catalog order, split by varying model/stream/prep."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    done_by_id: dict[str, list[dict]] = defaultdict(list)
    for r in runs.all:
        by_id[r["ablation"]].append(r)
    for r in runs.completed:
        done_by_id[r["ablation"]].append(r)
    rows: list[Row] = []
    rows_of: dict[str, list[Row]] = {}
    for ab_id in catalog.ids(table):
        ab = catalog.get(ab_id)
        mine = by_id.get(ab_id, [])
        variants = _order({variant_of(r) for r in mine}, []) if mine else [("", "", "")]
        variants = sorted(variants, key=variant_sort_key)
        varying = [i for i in range(3) if len({v[i] for v in variants}) > 1]
        rows_of[ab_id] = []
        for k, variant in enumerate(variants):
            row = Row(
                label=ab_id,
                title=ab.title,
                key=variant,
                shown=tuple(variant[i] or "?" for i in varying),
                ablation=ab,
                first_of_id=k == 0,
                rule=ab.selection,
            )
            fill_row(
                row,
                [r for r in mine if variant_of(r) == variant],
                [r for r in done_by_id.get(ab_id, []) if variant_of(r) == variant],
            )
            rows.append(row)
            rows_of[ab_id].append(row)
    for row in rows:
        if row.ablation is not None and row.ablation.baseline:
            row.baseline_row = _match_baseline(row, rows_of[row.ablation.baseline])
    return rows


def table_rows_cache(runs: Runs, table: str) -> list[Row]:
    """:func:`table_rows`, computed once per table for the tables, notes and plots."""
    if table not in runs.rows_cache:
        runs.rows_cache[table] = table_rows(table, runs)
    return runs.rows_cache[table]


def _match_baseline(row: Row, candidates: list[Row]) -> Row | None:
    """The baseline row sharing most of model/stream/prep with ``row``; among equals the one on
    the joint stream (the ensemble B14 shares no stream with B7's four rows; the paper's table
    sets it beside B7 on the joint stream, LAST-Base 1s vs 4s); None if still ambiguous."""
    if len(candidates) == 1:
        return candidates[0]
    scores = [sum(a == b for a, b in zip(row.key, c.key)) for c in candidates]
    best = max(scores)
    winners = [c for c, s in zip(candidates, scores) if s == best]
    if len(winners) > 1:
        winners = [c for c in winners if c.key[1] == STREAM_ORDER[0]] or winners  # joint
    return winners[0] if len(winners) == 1 else None


def delta(row: Row, dataset: str) -> tuple[float, float | None] | None:
    """(Δ mean vs baseline, Welch p or None) on ``dataset``; None when not computable."""
    if row.baseline_row is None:
        return None
    mine = row.cell(dataset)
    base = row.baseline_row.cell(dataset, catalog.compared_rule(row.rule))
    if not mine.values or not base.values:
        return None
    test = welch(mine.values, base.values)
    return mine.mean - base.mean, (test[2] if test else None)
