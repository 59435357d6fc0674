"""Optional figures for the ablation tables, drawn when matplotlib is installed (Agg backend, no
display; the tables never depend on it; PNGs carry no timestamp):

- ``<table>_delta.png``: each Δ with its 95% Welch interval as an error bar and the
  significance marker of the table;
- ``<table>_curves.png``: per-epoch val top-1 of the baseline and full model, mean over seeds
  with a ± std band, n in the legend;
- ``<table>_<ID>_per_class.png``: the ten largest per-class gains and losses of a Δ row against
  its baseline, by action name (rows with predictions on both sides);
- ``<table>_<ID>_confusion.png``: the confusion matrix of the full-model row (every row with
  ``--confusion all``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from lastexp.results.actions import action_name
from lastexp.results.aggregate import DATASET_ORDER, Row, Runs, table_deltas, table_rows_cache
from lastexp.results.notes import row_name
from lastexp.results.perclass import class_delta, confusion
from lastexp.results.render import MARKER
from lastexp.results.store import load_history

# (baseline, full model) whose validation curves are compared per table.
CURVE_PAIRS = {"base": ("B0", "B7"), "lite": ("L0", "L5"), "preprocessing": ("P0", "P1")}
# The full-model row of each table: its confusion matrix is drawn by default.
FULL_MODEL = {"base": "B7", "lite": "L5", "preprocessing": "P0"}
TOP_CLASSES = 10


def available() -> bool:
    try:  # deferred: asks only whether matplotlib is installed, at import cost of ~0.4 s
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _main_dataset(runs: Runs, ids: set[str]) -> str | None:
    present = runs.datasets([r for r in runs.tabled(runs.completed) if r["ablation"] in ids])
    ntu = [d for d in present if d in DATASET_ORDER and d != "synthetic"]
    return (ntu or present or [None])[0]


def _file_stem(table: str, row: Row) -> str:
    tag = hashlib.sha1(row.variant.encode()).hexdigest()[:6] if row.variant else ""
    bits = [table, row.label, *row.shown, tag]
    return "_".join(b.replace("/", "-").replace(" ", "") for b in bits if b)


def _save(fig, out: Path, name: str) -> str:
    fig.savefig(out / name, dpi=100, metadata={"Software": None})
    return name


def draw(runs: Runs, table: str, out_dir: str | os.PathLike[str],
         confusion_all: bool = False) -> list[tuple[str, str]]:
    """Draw the table's figures into ``out_dir``; returns ``(caption, file name)`` pairs."""
    # deferred: matplotlib (~1.3 s with pyplot) loads only when figures are drawn
    import matplotlib

    matplotlib.use("Agg")
    # after matplotlib.use('Agg'): pyplot picks its backend when it is imported
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "lastexp"
    rows = table_rows_cache(runs, table)
    dataset = _main_dataset(runs, {r.label for r in rows})
    if dataset is None:
        return []
    out, figures = Path(out_dir), []
    figures += _delta_plot(plt, runs, table, rows, dataset, out)
    figures += _curves(plt, runs, table, rows, dataset, out)
    for row in rows:
        gains = class_delta(runs, row, dataset) if row.baseline_row is not None else None
        if gains is not None:
            figures.append(_per_class_plot(plt, table, row, dataset, gains[0], out))
    for row in rows:
        if confusion_all or (row.label == FULL_MODEL[table] and not row.variant):
            counts = confusion(runs, row, dataset)
            if counts is not None:
                figures.append(_confusion_plot(plt, table, row, dataset, counts, out))
    return figures


def _delta_plot(plt, runs: Runs, table: str, rows: list[Row], dataset: str,
                out: Path) -> list[tuple[str, str]]:
    deltas = table_deltas(table, runs, [dataset])
    bars = [(r, deltas.get((id(r), dataset))) for r in rows]
    bars = [(r, d) for r, d in bars if d is not None and d.value is not None]
    if not bars:
        return []
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(bars) + 1.4))
    labels = [f"{row_name(r)}{' ' + MARKER if d.marked else ''}" for r, d in bars]
    values = [d.value for _, d in bars]
    err = np.array([[d.value - d.ci95[0], d.ci95[1] - d.value] if d.ci95 else [0.0, 0.0]
                    for _, d in bars]).T  # fmt: skip
    ax.barh(labels, values, xerr=err, capsize=3, ecolor="black",
            color=["tab:green" if v >= 0 else "tab:red" for v in values])  # fmt: skip
    ax.axvline(0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ top-1 vs baseline row (%), {dataset}; bars: 95% Welch interval (n ≥ 2)")
    ax.set_title(f"{MARKER}: Holm-adjusted p < 0.05", fontsize=9)
    fig.tight_layout()
    name = _save(fig, out, f"{table}_delta.png")
    plt.close(fig)
    return [(f"Δ vs baseline on {dataset}, 95% intervals", name)]


def _curves(plt, runs: Runs, table: str, rows: list[Row], dataset: str,
            out: Path) -> list[tuple[str, str]]:
    base_id, full_id = CURVE_PAIRS[table]
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for ab_id, color in ((base_id, "tab:blue"), (full_id, "tab:orange")):
        row = next((r for r in rows if r.label == ab_id and not r.variant
                    and r.cell(dataset).values), None)  # fmt: skip
        if row is None or not runs.root:
            continue
        curves = []
        for run_dir in row.cell(dataset).run_dirs:
            hist = load_history(runs.root, run_dir)
            if hist is not None and "val_top1" in hist and "epoch" in hist:
                curves.append(hist.set_index("epoch")["val_top1"])
        if not curves:
            continue
        epochs = sorted(set.intersection(*(set(c.index) for c in curves)))
        if not epochs:
            continue
        values = np.array([[float(c.loc[e]) for e in epochs] for c in curves])
        mean = values.mean(axis=0)
        ax.plot(epochs, mean, color=color, label=f"{row_name(row)} (mean of n={len(curves)})")
        if len(curves) >= 2:
            std = values.std(axis=0, ddof=1)
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.25)
        drawn = True
    name = None
    if drawn:
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"val top-1 (%), {dataset}")
        ax.set_title("mean over seeds, band ± 1 std", fontsize=9)
        ax.legend()
        fig.tight_layout()
        name = _save(fig, out, f"{table}_curves.png")
    plt.close(fig)
    return [(f"val top-1 per epoch, {base_id} vs {full_id} on {dataset}", name)] if name else []


def _per_class_plot(plt, table: str, row: Row, dataset: str, gains: np.ndarray,
                    out: Path) -> tuple[str, str]:
    order = [k for k in np.argsort(-np.nan_to_num(gains, nan=0.0)) if not np.isnan(gains[k])]
    top = order[:TOP_CLASSES]
    bottom = [k for k in order[::-1][:TOP_CLASSES] if k not in top]
    picked = top + bottom[::-1]
    height = 0.28 * len(picked) + 1.4
    fig, ax = plt.subplots(figsize=(7, height))
    # fixed margins (room for action names) instead of tight_layout: a third of the drawing
    # time, and a store with predictions draws one of these per Δ row
    fig.subplots_adjust(left=0.45, right=0.97, bottom=0.75 / height, top=1 - 0.25 / height)
    ax.barh([action_name(dataset, int(k)) for k in picked], [gains[k] for k in picked],
            color=["tab:green" if gains[k] >= 0 else "tab:red" for k in picked])  # fmt: skip
    ax.axvline(0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel(f"per-class top-1 Δ (%) {row_name(row)} vs {row_name(row.baseline_row)}, "
                  f"{dataset}", fontsize=8)  # fmt: skip
    name = _save(fig, out, f"{_file_stem(table, row)}_per_class.png")
    plt.close(fig)
    return (f"{row_name(row)}: largest per-class gains and losses vs "
            f"{row_name(row.baseline_row)} on {dataset}", name)


def _confusion_plot(plt, table: str, row: Row, dataset: str, counts: np.ndarray,
                    out: Path) -> tuple[str, str]:
    k = counts.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = counts / counts.sum(axis=1, keepdims=True)
    size = min(14.0, 3.0 + 0.12 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(np.nan_to_num(rates), cmap="Blues", vmin=0.0, vmax=1.0)
    if k <= 30:
        names = [action_name(dataset, i) for i in range(k)]
        ax.set_xticks(range(k), [n.split(" ", 1)[0] if dataset.startswith("ntu") else str(i)
                                 for i, n in enumerate(names)], rotation=90, fontsize=6)
        ax.set_yticks(range(k), names, fontsize=6)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{row_name(row)} on {dataset}: row-normalised, summed over seeds", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    name = _save(fig, out, f"{_file_stem(table, row)}_confusion.png")
    plt.close(fig)
    return f"confusion matrix of {row_name(row)} on {dataset}", name
