"""Per-sample test predictions of a run (``test_scores.npz``: ``pred_best``, ``pred_final``,
``pred_swa`` beside ``labels`` and ``names``), read lazily: only the arrays a statistic needs,
only for the Δs and per-class rows that need them, each run once."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lastexp.runstore.layout import RunDir

# The per-sample predictions of the weights each selection rule reports.
PRED_KEY = {"best": "pred_best", "final": "pred_final", "swa": "pred_swa"}


@dataclass(frozen=True)
class Predictions:
    labels: np.ndarray  # int, one per test sample
    pred: np.ndarray  # int, the predicted class of each sample
    names: np.ndarray  # str, the sample names (same order)

    @property
    def correct(self) -> np.ndarray:
        return self.pred == self.labels


class PredictionReader:
    """Reads (run_dir, rule) predictions below a runs root, each run's file opened once; None
    when the run has no scores file or none for that rule (a run written before predictions
    were stored). Only ``labels``, ``names`` and the ``pred_*`` arrays are read, never the
    logits."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) if root else None
        self._cache: dict[str, dict[str, Predictions]] = {}

    def get(self, run_dir: str, rule: str) -> Predictions | None:
        if run_dir not in self._cache:
            self._cache[run_dir] = self._read(run_dir)
        return self._cache[run_dir].get(PRED_KEY[rule])

    def _read(self, run_dir: str) -> dict[str, Predictions]:
        if self.root is None:
            return {}
        try:
            with np.load(RunDir(self.root / run_dir).scores, allow_pickle=False) as z:
                keys = [k for k in PRED_KEY.values() if k in z.files]
                if not keys or "labels" not in z.files:
                    return {}
                labels = np.asarray(z["labels"]).astype(np.int64).ravel()
                names = (np.asarray(z["names"]).ravel() if "names" in z.files
                         else np.arange(len(labels)))
                names = names if names.dtype.kind == "U" else names.astype(str)
                preds = {k: np.asarray(z[k]).astype(np.int64).ravel() for k in keys}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return {}
        return {k: Predictions(labels, p, names) for k, p in preds.items()
                if len(p) == len(labels) == len(names)}


def discordant(row: Predictions, base: Predictions) -> tuple[int, int] | None:
    """(b, c): samples ``row`` gets right and ``base`` wrong, and the reverse, over the samples
    both scored (matched by name); None when they share no sample."""
    if len(row.names) == len(base.names) and np.array_equal(row.names, base.names):
        r, s = row.correct, base.correct
    else:
        common, i, j = np.intersect1d(row.names, base.names, return_indices=True)
        if not len(common):
            return None
        r, s = row.correct[i], base.correct[j]
    return int(np.sum(r & ~s)), int(np.sum(~r & s))
