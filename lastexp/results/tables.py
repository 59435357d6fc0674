"""Turns the run store into the ablation tables of the training plan §9 and the paper tables of §10.

Everything here is a pure function of the loaded runs (plus a provenance string), so the same
store always yields the same bytes: rows follow the catalog, floats use fixed formats, and the
only dates printed are the runs' own. :func:`build_report` returns ``{file name: text}``;
:func:`write_tables` writes it. Welch's t-test is SciPy's (``ttest_ind(equal_var=False)``);
the results command needs no torch.
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lastexp import catalog
from lastexp.results.store import Problem

DATASET_ORDER = ["synthetic", "ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset"]
STREAM_ORDER = ["joint", "bone", "velocity", "bone_velocity"]
INCOMPLETE = ("failed", "interrupted", "running")
MASKCLR_THRESHOLD = 88.0  # the training plan §4: below EfficientGCN-B0's 88.3 → add MaskCLR
DASH = "—"
NO_RUNS = "(no runs)"

# The training plan §10, verbatim: the literature rows and the placeholders of our own rows.
PAPER_BASE_HEADER = ["Model", "NTU-60 xsub", "NTU-60 xview", "NTU-120 xsub", "NTU-120 xset",
                     "Params"]  # fmt: skip
PAPER_BASE_DATASETS = ["ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset"]
PAPER_BASE_LITERATURE = [
    "| EfficientGCN-B0 | 88.3 | — | — | — | 150K |",
    "| CTR-GCN (4s) | 92.4 | 96.8 | 88.9 | 90.6 | 1.7M |",
    "| InfoGCN (6s) | 93.0 | 97.1 | 89.8 | 91.2 | 1.5M |",
    "| HD-GCN (6s) | 93.4 | — | 90.1 | — | ~3M |",
    "| HI-GCN | 93.3 | — | 90.3 | — | ~3-4M |",
]
# (label, ablation, model filter or None, stream filter or None, params placeholder)
PAPER_BASE_OURS = [
    ("**LAST-Base (1s)**", "B7", None, "joint", "~4.2M"),
    ("**LAST-Base (4s)**", "B14", None, None, "~16.8M"),
]
PAPER_LITE_HEADER = ["Model", "NTU-60 xsub", "Params", "FLOPs", "INT8 size"]
PAPER_LITE_LITERATURE = ["| EfficientGCN-B0 | 88.3 | 150K | — | — |"]
# (label, ablation, model, placeholders for params / FLOPs / INT8 size)
PAPER_LITE_OURS = [
    ("LAST-Lite nano (standalone)", "L5", "last_lite_nano", ("~60K", "—", "~15KB")),
    ("LAST-Lite small (standalone)", "L5", "last_lite_small", ("~190K", "—", "~48KB")),
    ("LAST-Lite small + distill (existing model)", "L10", "last_lite_small",
     ("~190K", "—", "~48KB")),
    ("LAST-Lite small + distill (Base)", "L11", "last_lite_small", ("~190K", "—", "~48KB")),
    ("LAST-Lite small + MaskCLR + distill", "L12", "last_lite_small", ("~190K", "—", "~48KB")),
]  # fmt: skip


# --------------------------------------------------------------------------- statistics


def welch(a: list[float], b: list[float]) -> tuple[float, float, float] | None:
    """Welch's unequal-variance t-test: ``(t, dof, two-sided p)`` of
    ``scipy.stats.ttest_ind(a, b, equal_var=False)``, or ``None`` when undefined (n < 2 on a
    side, or a zero pooled standard error, where SciPy would answer NaN)."""
    if len(a) < 2 or len(b) < 2:
        return None
    se2 = statistics.variance(a) / len(a) + statistics.variance(b) / len(b)
    if se2 <= 0.0:
        return None
    import warnings

    from scipy import stats

    with warnings.catch_warnings():  # near-identical seeds: SciPy warns of precision loss
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.df), min(1.0, max(0.0, float(res.pvalue)))


# --------------------------------------------------------------------------- aggregation


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
    key: tuple[str, str, str]  # (model, stream, preprocessing) of its runs; "" when no runs
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


def _s(value: object) -> str:
    return value if isinstance(value, str) else ""


def _order(values: set[str] | list[str], preferred: list[str]) -> list[str]:
    rank = {v: i for i, v in enumerate(preferred)}
    return sorted(set(values), key=lambda v: (rank.get(v, len(rank)), v))


def _variant(run: dict) -> tuple[str, str, str]:
    return (run["model"], run["stream"], run["preprocessing"])


def _variant_sort(key: tuple[str, str, str]) -> tuple:
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
            r[k] = _s(r[k])
        r["dataset"] = r["dataset"] or "?"
        ts = r["train_seconds"]
        r["train_seconds"] = ts if isinstance(ts, float) and ts == ts else 0.0
    runs.sort(key=lambda r: r["run_dir"])
    groups: dict[tuple, list[dict]] = defaultdict(list)
    completed: list[dict] = []
    for r in runs:
        if r["status"] != "completed" or not (r["best_top1"] == r["best_top1"]):
            continue
        seed = r["seed"]
        if seed is None or seed != seed:
            completed.append(r)
        else:
            groups[(r["ablation"], *_variant(r), r["dataset"], seed)].append(r)
    duplicates = []
    for group in groups.values():
        group.sort(key=lambda r: (_s(r["finished_at"]), _s(r["started_at"]), r["run_dir"]))
        completed.append(group[-1])
        if len(group) > 1:
            duplicates.append((group[-1], group[:-1]))
    completed.sort(key=lambda r: r["run_dir"])
    duplicates.sort(key=lambda d: d[0]["run_dir"])
    root = str(df.attrs.get("runs_root", ""))
    return Runs(runs, completed, duplicates, list(problems), provenance, root)


def _fill(row: Row, runs: list[dict], completed: list[dict]) -> None:
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
        variants = _order({_variant(r) for r in mine}, []) if mine else [("", "", "")]
        variants = sorted(variants, key=_variant_sort)
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
            _fill(
                row,
                [r for r in mine if _variant(r) == variant],
                [r for r in done_by_id.get(ab_id, []) if _variant(r) == variant],
            )
            rows.append(row)
            rows_of[ab_id].append(row)
    for row in rows:
        if row.ablation is not None and row.ablation.baseline:
            row.baseline_row = _match_baseline(row, rows_of[row.ablation.baseline])
    return rows


def _match_baseline(row: Row, candidates: list[Row]) -> Row | None:
    """The baseline row sharing most of model/stream/prep with ``row``; None if ambiguous."""
    if len(candidates) == 1:
        return candidates[0]
    scores = [sum(a == b for a, b in zip(row.key, c.key)) for c in candidates]
    best = max(scores)
    winners = [c for c, s in zip(candidates, scores) if s == best]
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


def _fmt_p(p: float | None) -> str:
    if p is None:
        return ""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _fmt_delta(d: tuple[float, float | None] | None, has_baseline: bool) -> str:
    if d is None:
        return DASH if has_baseline else ""
    value = f"{d[0]:+.1f}".replace("-0.0", "+0.0")
    return f"{value} ({_fmt_p(d[1])})" if d[1] is not None else value


def fmt_params(params: float | None) -> str | None:
    """150K / 4.2M style; None when unknown."""
    if params is None or params != params:
        return None
    if params >= 1e6:
        return f"{params / 1e6:.1f}M"
    if params >= 1e3:
        return f"{params / 1e3:.0f}K"
    return f"{params:.0f}"


def fmt_flops(flops: float | None) -> str | None:
    """0.15G / 12.3M style; None when unknown."""
    if flops is None or flops != flops:
        return None
    if flops >= 1e8:
        return f"{flops / 1e9:.2f}G"
    return f"{flops / 1e6:.1f}M"


def fmt_kb(nbytes: float | None) -> str | None:
    if nbytes is None or nbytes != nbytes:
        return None
    return f"{nbytes / 1024:.0f}KB"


def _median(values: list) -> float | None:
    vals = [float(v) for v in values if v is not None and v == v]
    return statistics.median(vals) if vals else None


# --------------------------------------------------------------------------- rendering


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_TEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "—": "---", "−": "$-$", "Δ": r"$\Delta$", "→": r"$\to$", "×": r"$\times$",
    "<": r"$<$", ">": r"$>$", "≥": r"$\geq$", "§": r"\S{}",
}  # fmt: skip


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def _strip_md_bold(text: str) -> tuple[str, bool]:
    if text.startswith("**") and text.endswith("**") and len(text) > 4:
        return text[2:-2], True
    return text, False


# Hand-written on purpose: tabulate pads every cell to the column width (different bytes, and
# noisy diffs when one cell changes), and pandas' to_latex needs jinja2 and escapes and places
# caption/label otherwise; these twenty lines keep the published files byte-identical.
def render_md(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured pipe table; cells may already carry ``**bold**``."""
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def render_tex(header: list[str], rows: list[list[str]], caption: str, label: str) -> str:
    """A booktabs table; ``**x**`` cells become ``\\textbf{x}``."""

    def cell(text: str) -> str:
        inner, bold = _strip_md_bold(text)
        inner = tex_escape(inner)
        return f"\\textbf{{{inner}}}" if bold else inner

    spec = "l" * len(header)
    out = [
        "% Generated by `python -m lastexp.results` from the run store; do not edit by hand.",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{tex_escape(caption)}}}",
        f"\\label{{tab:{label}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(tex_escape(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    out += [" & ".join(cell(c) for c in row) + " \\\\" for row in rows]
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(out)


def render_csv(header: list[str], rows: list[list[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "" if value is None or value != value else fmt.format(value)


def _bold_best(rows: list[list[str]], means: list[list[float | None]], columns: list[int]) -> None:
    """Bold, per column, every cell whose 1-decimal mean equals the column's best."""
    for j, col in enumerate(columns):
        shown = [round(m[j], 1) if m[j] is not None and math.isfinite(m[j]) else None
                 for m in means]  # a non-finite mean is no result: never the best
        present = [v for v in shown if v is not None]
        if not present:
            continue
        best = max(present)
        for i, v in enumerate(shown):
            if v == best:
                rows[i][col] = f"**{rows[i][col]}**"


# --------------------------------------------------------------------------- footnotes


def _run_line(r: dict) -> str:
    bits = [r["ablation"] or "no ablation", r["model"], r["stream"], r["dataset"],
            r["preprocessing"], f"seed {_num(r['seed'], '{:.0f}') or '?'}"]  # fmt: skip
    text = f"`{r['run_dir']}` ({' · '.join(b for b in bits if b)}): {r['status'] or '?'}"
    err = _s(r["error"]).strip().replace("\n", " ")
    if err:
        text += f" — {err[:200]}{'…' if len(err) > 200 else ''}"
    return text


def _notes(runs: Runs, mine: list[dict], extra: list[str]) -> list[str]:
    """Footnote paragraphs shared by every file: incomplete runs, duplicates, problems."""
    notes = list(extra)
    incomplete = [r for r in mine if r["status"] in INCOMPLETE]
    if incomplete:
        notes.append(
            f"Incomplete runs ({len(incomplete)}; counted in their cells, not in the means):\n"
            + "\n".join(f"   - {_run_line(r)}" for r in incomplete)
        )
    dirs = {r["run_dir"] for r in mine}
    dups = [(k, d) for k, d in runs.duplicates if k["run_dir"] in dirs]
    if dups:
        notes.append(
            f"Duplicate seeds ({len(dups)}; the newest run is used, the others ignored):\n"
            + "\n".join(
                f"   - kept `{k['run_dir']}`, ignored "
                + ", ".join(f"`{d['run_dir']}`" for d in dropped)
                for k, dropped in dups
            )
        )
    if runs.problems:
        notes.append(
            f"Unreadable run dirs ({len(runs.problems)}; skipped):\n"
            + "\n".join(f"   - `{p.run_dir}`: {p.message}" for p in runs.problems)
        )
    notes.append(provenance_line(runs))
    return notes


def _notes_md(notes: list[str]) -> str:
    return "\n**Notes**\n\n" + "\n".join(f"{i}. {n}" for i, n in enumerate(notes, 1)) + "\n"


def provenance_line(runs: Runs) -> str:
    starts = [_s(r["started_at"])[:10] for r in runs.all if _s(r["started_at"])]
    ends = [_s(r["finished_at"])[:10] for r in runs.all if _s(r["finished_at"])]
    dates = starts + ends
    span = f"{min(dates)} to {max(dates)}" if dates else "unknown dates"
    datasets = ", ".join(runs.datasets()) or "none"
    return (
        f"Provenance: code {runs.provenance or 'unknown'}; {len(runs.all)} runs read "
        f"({len(runs.completed)} completed after de-duplication), {span}; datasets: {datasets}."
    )


def git_provenance(cwd: str | os.PathLike[str] | None = None) -> str:
    """``commit abc1234`` (+ ``, dirty``) of the repo at ``cwd``; ``unknown`` outside one."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "commit unknown"
    return f"commit {head}{' (dirty)' if dirty else ''}" if head else "commit unknown"


# --------------------------------------------------------------------------- the files


def maskclr_verdict(runs: Runs) -> str:
    """The training plan §4's rule, evaluated on the best L10/L11 mean on ntu60_xsub."""
    best: tuple[float, str] | None = None
    for ab_id in ("L10", "L11"):
        for row in table_rows_cache(runs, "lite"):
            if row.label == ab_id and row.cell("ntu60_xsub").values:
                m = row.cell("ntu60_xsub").mean
                if best is None or m > best[0]:
                    best = (m, ab_id)
    if best is None:
        return ("MaskCLR rule (the training plan §4): undecided — no completed L10/L11 run on "
                "ntu60_xsub yet.")
    if best[0] < MASKCLR_THRESHOLD:
        return (
            f"MaskCLR rule (the training plan §4): **MaskCLR (L12) is due** — the best "
            f"distilled Lite result is {best[1]} at {best[0]:.1f}% on ntu60_xsub, below "
            f"{MASKCLR_THRESHOLD:.0f}%."
        )
    return (
        f"MaskCLR rule (the training plan §4): not needed — the best distilled Lite result is "
        f"{best[1]} at {best[0]:.1f}% on ntu60_xsub (≥ {MASKCLR_THRESHOLD:.0f}%)."
    )


def teacher_note(mine: list[dict]) -> str:
    """Which teacher L10-L12 distilled from: one run of the student's stream, or an ensemble."""
    ensembles = sorted({r["ablation"] for r in mine
                        if r["ablation"] in ("L10", "L11", "L12")
                        and isinstance(r.get("teacher_members"), list)})
    text = ("Teachers: L10 distils from the same-stream P0 run, L11 and L12 from the same-stream "
            "B7 run (the training plan's §3 command)")
    if ensembles:
        text += (f"; {', '.join(ensembles)} include runs distilled from the four-stream ensemble "
                 "of §3A (distill.teacher_streams)")
    return text + "."


def selection_note(table: str) -> str:
    """The table's selection rule: which weights each row reports, and what a Δ compares."""
    rules = {i: catalog.get(i).selection for i in catalog.ids(table)}
    text = f"Selection rule: {catalog.SELECTION_TEXT['best']}"
    others = {i: r for i, r in rules.items() if r != "best"}
    if not others:
        return text + " for every row, and for both sides of every Δ."
    text += ", except " + "; ".join(
        f"{i}: {catalog.SELECTION_TEXT[r]}" for i, r in others.items()
    )
    return text + (". A Δ of those rows compares with the baseline's final weights (the model "
                   "its training ends with), so neither side picks an epoch on the test split; "
                   "every other Δ compares best epochs.")


def table_rows_cache(runs: Runs, table: str) -> list[Row]:
    if table not in runs.rows_cache:
        runs.rows_cache[table] = table_rows(table, runs)
    return runs.rows_cache[table]


def ablation_table(runs: Runs, table: str) -> dict[str, str]:
    """``{table}.md``, ``.csv`` and ``.tex`` for one of the catalog's tables."""
    meta = catalog.TABLES[table]
    rows = table_rows_cache(runs, table)
    ids = set(catalog.ids(table))
    mine = [r for r in runs.all if r["ablation"] in ids]
    datasets = runs.datasets(mine) or runs.datasets() or [NO_RUNS]
    header = ["#", "Experiment", "Δ vs"]
    for ds in datasets:
        header += [ds, "Δ"]
    header += ["GPU h", "Budget h"]
    md_rows, means, csv_rows = [], [], []
    for row in rows:
        has_base = row.ablation.baseline is not None
        cells = [row.label if row.first_of_id else "", row.display_title,
                 (row.ablation.baseline or "") if row.first_of_id else ""]  # fmt: skip
        row_means = []
        for ds in datasets:
            cell, d = row.cell(ds), delta(row, ds)
            cells += [cell.text(), _fmt_delta(d, has_base)]
            row_means.append(cell.mean)
            csv_rows.append([
                row.label, row.title, row.ablation.baseline or "", *row.key, ds, cell.n,
                _num(cell.mean), _num(cell.std), *(cell.incomplete.get(s, 0) for s in INCOMPLETE),
                _num(d[0] if d else None), _num(d[1] if d else None, "{:.4g}"),
                " ".join(_num(s, "{:.0f}") for s in cell.seeds),
                _num(row.gpu_seconds / 3600, "{:.2f}"), _num(row.ablation.gpu_hours, "{:g}"),
            ])  # fmt: skip
        cells += [f"{row.gpu_seconds / 3600:.1f}",
                  f"{row.ablation.gpu_hours:g}" if row.first_of_id else ""]  # fmt: skip
        md_rows.append(cells)
        means.append(row_means)
    _bold_best(md_rows, means, [3 + 2 * j for j in range(len(datasets))])
    used = sum(r.gpu_seconds for r in rows) / 3600
    budget_line = (
        f"GPU hours: {used:.1f} used of the plan's ~{meta.budget_hours:g} h budget "
        f"(its rows sum to {catalog.rows_budget(table):g} h)."
    )
    extra = [
        "Cells: top-1 (%) on the test split, mean ± sample std over seeds of the "
        "completed runs (n); Δ is the mean difference to the row named in “Δ vs” on the same "
        "dataset, with Welch's t-test p when both sides have n ≥ 2; best per column in bold; "
        "— means no completed run. GPU h counts every run of the row (failed ones too).",
        selection_note(table),
        budget_line,
    ]
    if table == "lite":
        extra.append(maskclr_verdict(runs))
        extra.append(teacher_note(mine))
    title = f"{meta.title} (the training plan §{meta.section})"
    figures = "".join(f"\n![{cap}]({name})\n" for cap, name in runs.figures.get(table, []))
    md = f"# {title}\n\n" + render_md(header, md_rows) + figures
    md += _notes_md(_notes(runs, mine, extra))
    csv_header = ["id", "title", "baseline", "model", "stream", "preprocessing", "dataset", "n",
                  "mean_top1", "std_top1", "n_failed", "n_interrupted", "n_running", "delta",
                  "p_value", "seeds", "gpu_hours_used", "gpu_hours_budget"]  # fmt: skip
    return {
        f"{table}.md": md,
        f"{table}.csv": render_csv(csv_header, csv_rows),
        f"{table}.tex": render_tex(header, md_rows, f"{title}. {budget_line}", table),
    }


def other_table(runs: Runs) -> dict[str, str]:
    """``other.md``/``.csv``: every run outside the catalog, so nothing is lost."""
    mine = [r for r in runs.all if r["ablation"] not in catalog.ABLATIONS]
    done = [r for r in runs.completed if r["ablation"] not in catalog.ABLATIONS]

    def key(r: dict) -> tuple[str, str, str, str]:
        return (r["ablation"], *_variant(r))

    keys = sorted({key(r) for r in mine}, key=lambda k: (k[0], *_variant_sort(k[1:])))
    datasets = runs.datasets(mine) or [NO_RUNS]
    header = ["Ablation", "Model", "Stream", "Preprocessing", *datasets, "GPU h"]
    md_rows, means, csv_rows = [], [], []
    for k in keys:
        label = f"{k[0]} (unknown)" if k[0] else DASH
        row = Row(label=label, title="", key=k[1:], shown=())
        _fill(row, [r for r in mine if key(r) == k], [r for r in done if key(r) == k])
        md_rows.append([label, *(v or "?" for v in k[1:]), *(row.cell(d).text() for d in datasets),
                        f"{row.gpu_seconds / 3600:.1f}"])  # fmt: skip
        means.append([row.cell(d).mean for d in datasets])
        for d in datasets:
            c = row.cell(d)
            csv_rows.append([k[0], *k[1:], d, c.n, _num(c.mean), _num(c.std),
                             *(c.incomplete.get(s, 0) for s in INCOMPLETE),
                             _num(row.gpu_seconds / 3600, "{:.2f}")])  # fmt: skip
    _bold_best(md_rows, means, [4 + j for j in range(len(datasets))])
    extra = [
        "Runs with no ablation ID (—) or an ID outside the training plan §9, keyed by model, "
        "stream and preprocessing; cells as in base.md."
    ]
    body = render_md(header, md_rows) if md_rows else "No runs outside the ablation tables.\n"
    md = "# Other runs\n\n" + body + _notes_md(_notes(runs, mine, extra))
    csv_header = [
        "ablation",
        "model",
        "stream",
        "preprocessing",
        "dataset",
        "n",
        "mean_top1",
        "std_top1",
        "n_failed",
        "n_interrupted",
        "n_running",
        "gpu_hours_used",
    ]
    return {"other.md": md, "other.csv": render_csv(csv_header, csv_rows)}


def _select(runs: Runs, ablation: str, model: str | None, stream: str | None) -> list[dict]:
    return [
        r for r in runs.all
        if r["ablation"] == ablation and (model is None or r["model"] == model)
        and (stream is None or r["stream"] == stream)
    ]  # fmt: skip


def _paper_cell(runs: Runs, selected: list[dict], dataset: str, ablation: str) -> Cell:
    dirs = {r["run_dir"] for r in selected if r["dataset"] == dataset}
    row = Row(label="", title="", key=("", "", ""), shown=(),
              rule=catalog.get(ablation).selection)
    _fill(
        row,
        [r for r in runs.all if r["run_dir"] in dirs],
        [r for r in runs.completed if r["run_dir"] in dirs],
    )
    return row.cell(dataset)


def paper_tables(runs: Runs) -> dict[str, str]:
    """``paper.md``/``.csv``/``.tex``: the two tables of the training plan §10, literature
    rows kept."""
    base_rows: list[list[str]] = []
    for label, ab, model, stream, params_ph in PAPER_BASE_OURS:
        sel = _select(runs, ab, model, stream)
        cells = [_paper_cell(runs, sel, ds, ab).text() for ds in PAPER_BASE_DATASETS]
        done = {r["run_dir"] for r in runs.completed}
        shown = [r for r in sel if r["run_dir"] in done and r["dataset"] in PAPER_BASE_DATASETS]
        params = fmt_params(_median([r["params"] for r in shown])) or params_ph
        base_rows.append([label, *cells, params])
    lite_rows: list[list[str]] = []
    for label, ab, model, (p_ph, f_ph, i_ph) in PAPER_LITE_OURS:
        sel = _select(runs, ab, model, None)
        cell = _paper_cell(runs, sel, "ntu60_xsub", ab)
        done = {r["run_dir"] for r in runs.completed}
        shown = [r for r in sel if r["run_dir"] in done and r["dataset"] == "ntu60_xsub"]
        lite_rows.append([
            label, cell.text(),
            fmt_params(_median([r["params"] for r in shown])) or p_ph,
            fmt_flops(_median([r["flops"] for r in shown])) or f_ph,
            fmt_kb(_median([r["int8_bytes"] for r in shown])) or i_ph,
        ])  # fmt: skip
    md = ["# Results tables (the training plan §10)", "", "## LAST-Base Results", ""]
    md += render_md(PAPER_BASE_HEADER, [])[:-1].split("\n")
    md += PAPER_BASE_LITERATURE
    md += render_md(PAPER_BASE_HEADER, base_rows).split("\n")[2:-1]
    md += ["", "## LAST-Lite Results", ""]
    md += render_md(PAPER_LITE_HEADER, [])[:-1].split("\n")
    md += PAPER_LITE_LITERATURE
    md += render_md(PAPER_LITE_HEADER, lite_rows).split("\n")[2:-1]
    ntu = [d for d in runs.datasets() if d.startswith("ntu")]
    extra = [
        "Literature rows are copied from the training plan §10. LAST-Base (1s) = B7 on the joint "
        "stream, LAST-Base (4s) = B14; Lite rows: standalone = L5 with last_lite_nano / "
        "last_lite_small, + distill (existing model) = L10, + distill (Base) = L11, "
        "+ MaskCLR + distill = L12. "
        "Cells are best-epoch top-1 (%), except LAST-Base (4s): the ensemble of its members' "
        "final weights; mean ± std over seeds (n); Params, FLOPs and INT8 size "
        "are measured on the runs when present, otherwise the plan's placeholders (~).",
        maskclr_verdict(runs),
    ]
    if not ntu:
        extra.append(
            f"No NTU runs in the store (datasets present: {', '.join(runs.datasets()) or 'none'});"
            " the LAST rows stay empty."
        )
    paper_ids = {row[1] for row in PAPER_BASE_OURS} | {row[1] for row in PAPER_LITE_OURS}
    mine = [r for r in runs.all if r["ablation"] in paper_ids]
    text = "\n".join(md) + "\n" + _notes_md(_notes(runs, mine, extra))

    lit_base = [_split_md(line) for line in PAPER_BASE_LITERATURE]
    lit_lite = [_split_md(line) for line in PAPER_LITE_LITERATURE]
    csv_rows = [["base", *_pad(r, 6)] for r in lit_base + base_rows]
    csv_rows += [["lite", *_pad(r, 6)] for r in lit_lite + lite_rows]
    csv_header = ["table", "model", "ntu60_xsub", "ntu60_xview_or_params", "ntu120_xsub_or_flops",
                  "ntu120_xset_or_int8", "params"]  # fmt: skip
    csv_rows = [[c.replace("**", "") for c in r] for r in csv_rows]
    tex = render_tex(PAPER_BASE_HEADER, lit_base + base_rows, "LAST-Base results.", "paper-base")
    tex += "\n" + render_tex(PAPER_LITE_HEADER, lit_lite + lite_rows, "LAST-Lite results.",
                             "paper-lite")  # fmt: skip
    return {"paper.md": text, "paper.csv": render_csv(csv_header, csv_rows), "paper.tex": tex}


def _split_md(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _pad(row: list[str], width: int) -> list[str]:
    if len(row) == 5 and width == 6:  # lite row: model, xsub, params, flops, int8 → 6 columns
        return [row[0], row[1], row[2], row[3], row[4], ""]
    return row + [""] * (width - len(row))


def build_report(
    df: pd.DataFrame,
    problems: list[Problem] = (),
    provenance: str = "",
    figures_dir: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """Every output file's text, keyed by file name; a pure function of its arguments.

    With ``figures_dir`` (and matplotlib installed) PNG figures are drawn there first and
    linked from the ablation tables.
    """
    runs = prepare(df, problems, provenance)
    if figures_dir is not None:
        from lastexp.results import plots

        if plots.available():
            for table in catalog.TABLES:
                runs.figures[table] = plots.draw(runs, table, figures_dir)
    files: dict[str, str] = {}
    for table in catalog.TABLES:
        files.update(ablation_table(runs, table))
    files.update(paper_tables(runs))
    files.update(other_table(runs))
    return files


def write_tables(
    df: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    problems: list[Problem] = (),
    provenance: str | None = None,
    plots: bool = True,
) -> dict[str, str]:
    """Write :func:`build_report`'s files into ``out_dir``; returns them (PNGs not included).

    ``provenance`` defaults to :func:`git_provenance` of the working directory; ``plots``
    draws the optional figures when matplotlib is installed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prov = git_provenance() if provenance is None else provenance
    files = build_report(df, problems, prov, figures_dir=out if plots else None)
    for name, text in files.items():
        (out / name).write_bytes(text.encode("utf-8"))
    return files


def table_part(md: str) -> str:
    """The heading and table of a generated ``.md`` (what the CLI prints), without notes."""
    return md.split("\n**Notes**", 1)[0].rstrip("\n") + "\n"
