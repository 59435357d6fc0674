"""Per-class test accuracy of each table row (``<table>_per_class.csv``), the per-class Δ of a
row against its baseline, and confusion matrices, all from the runs' per-sample predictions
(:mod:`lastexp.results.predictions`) under each row's selection rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lastexp import catalog
from lastexp.results.actions import action_name
from lastexp.results.aggregate import Row, Runs, table_rows_cache
from lastexp.results.notes import row_name
from lastexp.results.predictions import PredictionReader, Predictions
from lastexp.results.render import fmt_num, render_csv

CSV_HEADER = ["id", "model", "stream", "preprocessing", "variant", "dataset", "class", "action",
              "n_seeds", "n_samples", "top1"]  # fmt: skip


@dataclass
class PerClass:
    """Mean over seeds of each class's test accuracy (%); NaN where a class has no sample."""

    top1: np.ndarray
    n_seeds: int
    n_samples: np.ndarray  # test samples per class (of one seed)


def _runs_predictions(reader: PredictionReader | None, run_dirs: list[str],
                      rule: str) -> list[Predictions] | None:
    """Every run's predictions, or None when any run lacks them (no partial means)."""
    if reader is None or not run_dirs:
        return None
    found = [reader.get(d, rule) for d in run_dirs]
    return None if any(p is None for p in found) else found


def per_class(preds: list[Predictions], num_classes: int | None = None) -> PerClass:
    k = num_classes or 1 + max(int(max(p.labels.max(initial=0), p.pred.max(initial=0)))
                               for p in preds)  # fmt: skip
    accs = []
    for p in preds:
        total = np.bincount(p.labels, minlength=k)[:k].astype(float)
        right = np.bincount(p.labels[p.correct], minlength=k)[:k].astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            accs.append(np.where(total > 0, 100.0 * right / total, np.nan))
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(np.vstack(accs), axis=0) if len(accs) > 1 else accs[0]
    return PerClass(mean, len(preds), np.bincount(preds[0].labels, minlength=k)[:k])


def row_per_class(runs: Runs, row: Row, dataset: str, rule: str | None = None,
                  num_classes: int | None = None) -> PerClass | None:
    """The row's per-class accuracy on ``dataset`` under ``rule`` (default: its own)."""
    rule = rule or row.rule
    preds = _runs_predictions(runs.predictions, row.cell(dataset, rule).run_dirs, rule)
    return per_class(preds, num_classes) if preds else None


def class_delta(runs: Runs, row: Row, dataset: str) -> tuple[np.ndarray, int] | None:
    """Per-class Δ (row minus its baseline, under the rules its Δ compares) and the class
    count; None without predictions on both sides."""
    if row.baseline_row is None:
        return None
    mine = _runs_predictions(runs.predictions, row.cell(dataset).run_dirs, row.rule)
    base_rule = catalog.compared_rule(row.rule)
    base = _runs_predictions(runs.predictions,
                             row.baseline_row.cell(dataset, base_rule).run_dirs, base_rule)
    if not mine or not base:
        return None
    k = 1 + max(int(max(p.labels.max(initial=0), p.pred.max(initial=0))) for p in mine + base)
    return per_class(mine, k).top1 - per_class(base, k).top1, k


def confusion(runs: Runs, row: Row, dataset: str) -> np.ndarray | None:
    """Confusion counts (true class × predicted class) summed over the row's seeds."""
    preds = _runs_predictions(runs.predictions, row.cell(dataset).run_dirs, row.rule)
    if not preds:
        return None
    k = 1 + max(int(max(p.labels.max(initial=0), p.pred.max(initial=0))) for p in preds)
    out = np.zeros((k, k), dtype=np.int64)
    for p in preds:
        np.add.at(out, (p.labels, p.pred), 1)
    return out


def per_class_csv(runs: Runs, table: str, datasets: list[str]) -> tuple[str, list[str]]:
    """``<table>_per_class.csv`` and the rows (on a dataset) whose runs lack predictions."""
    lines, lacking = [], []
    for row in table_rows_cache(runs, table):
        for ds in datasets:
            if not row.cell(ds).values:
                continue
            pc = row_per_class(runs, row, ds)
            if pc is None:
                lacking.append(f"{row_name(row)} on {ds}")
                continue
            for k, acc in enumerate(pc.top1):
                lines.append([row.label, *row.key, row.variant, ds, k, action_name(ds, k),
                              pc.n_seeds, int(pc.n_samples[k]), fmt_num(acc)])  # fmt: skip
    return render_csv(CSV_HEADER, lines), lacking
