"""From the loaded run frame to table rows: duplicates resolved, runs grouped into the catalog's
rows and cells, each cell under the row's selection rule, each row's baseline row found (the Δ
against it: :mod:`lastexp.results.deltas`).

A cell is one config: the runs it averages share their whole run identity but the seed
(:mod:`lastexp.results.cell_config`, plus the debug preset, the world size and the selection
protocol metrics.json records). Other configs of a row are its labelled variant lines; the
row's main config is the catalog's recipe (the runs whose command line chose only the row).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from lastexp import catalog
from lastexp.results.cell_config import UNKNOWN, ConfigReader, catalog_recipe, differing
from lastexp.results.predictions import PredictionReader
from lastexp.results.render import DASH
from lastexp.results.stats import mean_interval
from lastexp.results.store import Problem
from lastexp.runstore.metrics import is_completed
from lastexp.runstore.walk import newest_per_seed

DATASET_ORDER = ["synthetic", "ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset"]
STREAM_ORDER = ["joint", "bone", "velocity", "bone_velocity"]
INCOMPLETE = ("failed", "interrupted", "running")
VARIANT_SHOWN = 80  # characters of a variant line's differing keys printed in md / tex

Variant = tuple[str, str, str]  # (model, stream, preprocessing)


@dataclass
class Cell:
    """The runs of one table row on one dataset."""

    values: list[float] = field(default_factory=list)  # top-1 of completed runs, by seed
    seeds: list[float] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)  # the run of each value
    protocols: set[str] = field(default_factory=set)  # "test" | "validation" (selection split)
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

    @property
    def ci95(self) -> tuple[float, float] | None:
        """The 95% t-interval of the mean over seeds (n >= 2)."""
        return mean_interval(self.values)

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
    variant: str = ""  # config keys where this line differs from the row's main config
    first_of_id: bool = True
    rule: catalog.Selection = "best"  # which weights its cells report
    cells: dict[str, Cell] = field(default_factory=dict)  # dataset -> cell under ``rule``
    # rule -> dataset -> cell: the same runs under every rule, for a Δ read under another one
    by_rule: dict[str, dict[str, Cell]] = field(default_factory=dict)
    gpu_seconds: float = 0.0
    devices: set[str] = field(default_factory=set)  # "GPU" / "CPU" of the runs counted
    baseline_row: Row | None = None

    def cell(self, dataset: str, rule: str | None = None) -> Cell:
        cells = self.cells if rule is None or rule == self.rule else self.by_rule.get(rule, {})
        return cells.get(dataset) or Cell()

    @property
    def display_title(self) -> str:
        title = f"{self.title} ({', '.join(self.shown)})" if self.shown else self.title
        return f"{title} [{short_variant(self.variant)}]" if self.variant else title

    @property
    def protocol(self) -> str:
        """The selection protocol of its cells: ``test``, ``validation``, ``mixed`` or ``""``."""
        found = {p for c in self.cells.values() for p in c.protocols}
        return found.pop() if len(found) == 1 else ("mixed" if found else "")


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
    include_debug: bool = False  # debug-preset runs in the ablation and paper tables
    predictions: PredictionReader | None = None
    # "table:dataset" -> that table's Δs there (lastexp.results.deltas.table_deltas)
    deltas_cache: dict[str, dict] = field(default_factory=dict)

    def tabled(self, runs: list[dict]) -> list[dict]:
        """The runs the ablation and paper tables may use (no debug preset unless asked)."""
        return runs if self.include_debug else [r for r in runs if not r["debug"]]

    def datasets(self, runs: list[dict] | None = None) -> list[str]:
        return _order({r["dataset"] for r in (self.all if runs is None else runs)}, DATASET_ORDER)


def short_variant(text: str) -> str:
    """A variant line's differing keys as md / tex print them (the csv has them whole)."""
    return text if len(text) <= VARIANT_SHOWN else text[:VARIANT_SHOWN - 1].rstrip(", ") + "…"


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


def device_kind(device: object) -> str:
    """``CPU`` for a run on the CPU, ``GPU`` for one on an accelerator, ``""`` when unknown."""
    text = as_text(device).strip().lower()
    return "" if not text else "CPU" if text.startswith("cpu") else "GPU"


def _world_size(value: object) -> int:
    return int(value) if isinstance(value, (int, float)) and value == value and value >= 1 else 1


def prepare(df: pd.DataFrame, problems: list[Problem] = (), provenance: str = "",
            include_debug: bool = False) -> Runs:
    """Plain-dict view of the frame: each run's config identity and variant line, duplicate
    seeds of one config resolved (newest run kept)."""
    cols = ["run_dir", "status", "ablation", "model", "stream", "dataset", "preprocessing",
            "seed", "best_top1", "final_top1", "swa_top1", "params", "flops", "train_seconds",
            "int8_bytes", "error", "started_at", "finished_at", "teacher_members", "debug",
            "world_size", "selection", "device"]  # fmt: skip
    data = {c: df[c].tolist() if c in df.columns else [None] * len(df) for c in cols}
    runs = [dict(zip(cols, vals)) for vals in zip(*(data[c] for c in cols))]
    root = str(df.attrs.get("runs_root", ""))
    reader = ConfigReader()
    for r in runs:
        for k in ("ablation", "model", "stream", "dataset", "preprocessing", "status", "debug"):
            r[k] = as_text(r[k])
        r["dataset"] = r["dataset"] or "?"
        ts = r["train_seconds"]
        r["train_seconds"] = ts if isinstance(ts, float) and ts == ts else 0.0
        r["world_size"] = _world_size(r["world_size"])
        r["protocol"] = "validation" if r["selection"] == "validation" else "test"
        r["device_kind"] = device_kind(r["device"])
        r["config"] = reader.read(f"{root}/{r['run_dir']}") if root else UNKNOWN
        r["group"] = (r["config"].key, r["world_size"], r["debug"], r["protocol"])
    _assign_variants(runs, include_debug,
                     lambda r: catalog_recipe(f"{root}/{r['run_dir']}") if root else None)
    runs.sort(key=lambda r: r["run_dir"])
    done = [r for r in runs if is_completed(r) and r["best_top1"] == r["best_top1"]]
    completed, duplicates = newest_per_seed(done, _slot_view, lambda r: r["run_dir"])
    return Runs(runs, completed, duplicates, list(problems), provenance, root,
                include_debug=include_debug, predictions=PredictionReader(root))


def _slot_view(run: dict) -> dict:
    """A run's metrics as :func:`lastexp.runstore.walk.seed_slot` reads them, its config group
    folded into ``preprocessing`` so that only runs of one config are duplicates."""
    return {**run, "preprocessing": f"{run['preprocessing']}\0{run['group']}"}


def _label(run: dict, main: dict | None) -> str:
    """What sets ``run``'s config apart from the ``main`` run's (``""`` when nothing does)."""
    parts = [] if not run["debug"] else [f"debug={run['debug']}"]
    if main is None:
        return ", ".join(parts)
    parts += [_unquote(p) for p in differing(run["config"], main["config"])]
    if run["world_size"] != main["world_size"]:
        parts.append(f"world_size={run['world_size']}")
    if run["protocol"] != main["protocol"]:
        parts.append(f"selection on {run['protocol']}")
    return ", ".join(parts)


def _unquote(part: str) -> str:
    key, sep, value = part.partition("=")
    if sep and len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return f"{key}{sep}{value}"


def _assign_variants(runs: list[dict], include_debug: bool = False,
                     catalog_of: Callable[[dict], bool | None] = lambda r: None) -> None:
    """``run["variant"]``: ``""`` for the runs of their row's main config on their dataset,
    else the config keys that differ from it. The main config is, among the configs without a
    debug preset, the one whose runs' command lines chose only the catalog row (the recipe),
    then the one with the most completed runs, then the most runs. A debug run is always a
    labelled variant, except with ``include_debug`` in a row that has only debug runs.
    ``catalog_of`` reads whether a run's command line chose only its row (asked only where
    a row has several configs on a dataset)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        groups[(r["ablation"], *variant_of(r), r["dataset"])].append(r)
    for members in groups.values():
        by_group: dict[tuple, list[dict]] = defaultdict(list)
        for r in members:
            by_group[r["group"]].append(r)

        def rank(item: tuple[tuple, list[dict]], several: bool = len(by_group) > 1) -> tuple:
            key, rs = item
            return (several and any(catalog_of(r) for r in rs),
                    sum(map(is_completed, rs)), len(rs), str(key))

        ordinary = [item for item in by_group.items() if not item[0][2]]
        main = max(ordinary, key=rank)[1][0] if ordinary else \
            max(by_group.items(), key=rank)[1][0]
        for r in members:
            if r["group"] == main["group"] and (not r["debug"] or include_debug):
                r["variant"] = ""
            else:
                r["variant"] = _label(r, main) or f"config {r['config'].key or 'unknown'}"


def fill_row(row: Row, runs: list[dict], completed: list[dict]) -> None:
    """Count ``runs`` (every status) into the row's GPU time and incomplete flags, and the
    ``completed`` ones into its cells under every selection rule."""
    for r in runs:
        row.gpu_seconds += r["train_seconds"]
        if r["device_kind"] and r["train_seconds"]:
            row.devices.add(r["device_kind"])
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
            cell.run_dirs.append(r["run_dir"])
            cell.protocols.add(r["protocol"])


def table_rows(table: str, runs: Runs) -> list[Row]:
    """The rows of one ablation table in catalog order, split by varying model/stream/prep."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    done_by_id: dict[str, list[dict]] = defaultdict(list)
    for r in runs.tabled(runs.all):
        by_id[r["ablation"]].append(r)
    for r in runs.tabled(runs.completed):
        done_by_id[r["ablation"]].append(r)
    rows: list[Row] = []
    rows_of: dict[str, list[Row]] = {}
    for ab_id in catalog.ids(table):
        ab = catalog.get(ab_id)
        mine = by_id.get(ab_id, [])
        lines = {(variant_of(r), r["variant"]) for r in mine} or {(("", "", ""), "")}
        lines = sorted(lines, key=lambda v: (variant_sort_key(v[0]), v[1] != "", v[1]))
        varying = [i for i in range(3) if len({v[0][i] for v in lines}) > 1]
        rows_of[ab_id] = []
        for k, (variant, config) in enumerate(lines):
            row = Row(
                label=ab_id,
                title=ab.title,
                key=variant,
                shown=tuple(variant[i] or "?" for i in varying),
                ablation=ab,
                variant=config,
                first_of_id=k == 0,
                rule=ab.selection,
            )

            def of_line(r: dict, variant: Variant = variant, config: str = config) -> bool:
                return variant_of(r) == variant and r["variant"] == config

            fill_row(row, [r for r in mine if of_line(r)],
                     [r for r in done_by_id.get(ab_id, []) if of_line(r)])  # fmt: skip
            rows.append(row)
            rows_of[ab_id].append(row)
    for row in rows:
        if row.ablation is not None and row.ablation.baseline and not row.variant:
            mains = [c for c in rows_of[row.ablation.baseline] if not c.variant]
            row.baseline_row = _match_baseline(row, mains)
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
