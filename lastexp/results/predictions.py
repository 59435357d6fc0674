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
    """Reads (run_dir, rule) predictions below a runs root; None when the run has no scores
    file or none for that rule (a run written before predictions were stored). An npz member
    is read only when asked for: ``labels`` and ``names`` once per run, each ``pred_*`` array
    when a statistic needs that rule's weights, never the logits."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) if root else None
        self._cache: dict[tuple[str, str], Predictions | None] = {}
        self._samples: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}

    def get(self, run_dir: str, rule: str) -> Predictions | None:
        key = (run_dir, PRED_KEY[rule])
        if key not in self._cache:
            self._cache[key] = self._read(*key)
        return self._cache[key]

    def _read(self, run_dir: str, pred_key: str) -> Predictions | None:
        if self.root is None or self._samples.get(run_dir, ()) is None:
            return None
        try:
            with np.load(RunDir(self.root / run_dir).scores, allow_pickle=False) as z:
                if pred_key not in z.files or "labels" not in z.files:
                    return None
                if run_dir not in self._samples:
                    self._samples[run_dir] = _samples(z)
                pred = np.asarray(z[pred_key]).astype(np.int64).ravel()
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            self._samples[run_dir] = None
            return None
        samples = self._samples[run_dir]
        if samples is None or len(pred) != len(samples[0]):
            return None
        return Predictions(samples[0], pred, samples[1])


def _samples(z: np.lib.npyio.NpzFile) -> tuple[np.ndarray, np.ndarray] | None:
    """A scores file's ``labels`` and sample ``names`` (their positions when it has none);
    None when the two disagree in length."""
    labels = np.asarray(z["labels"]).astype(np.int64).ravel()
    names = np.asarray(z["names"]).ravel() if "names" in z.files else np.arange(len(labels))
    names = names if names.dtype.kind == "U" else names.astype(str)
    return (labels, names) if len(names) == len(labels) else None


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
