"""test_scores.npz: per-sample test logits of the model a run delivers (the SWA model when SWA
is on), with the labels and sample names; what ensembles (B14, the "(4s)" rows) combine.

Beside them, in the same sample order, the predicted class of each test sample under every
weight set a selection rule can report (:data:`PREDICTIONS`): ``pred_best`` (the weights of
``best_top1``, checkpoints/best.pt), ``pred_final`` (``final_top1``) and, with SWA,
``pred_swa`` (``swa_top1``); an ensemble has ``pred_final`` of its combined scores. A run
written before these existed has none of them: :func:`read_predictions` then returns only the
labels and names, and a reader must not guess them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np

from lastexp.errors import RunStoreError
from lastexp.io import atomic_write

# the metrics.json top-1 of each selection rule -> the npz array of its predictions
PREDICTIONS: dict[str, str] = {"best_top1": "pred_best", "final_top1": "pred_final",
                               "swa_top1": "pred_swa"}
PRED_DTYPE = np.int32


def write_scores(path: str | os.PathLike[str], scores: np.ndarray, labels: np.ndarray,
                 names: np.ndarray, preds: Mapping[str, np.ndarray] | None = None) -> None:
    """One atomic file; ``preds`` maps names of :data:`PREDICTIONS` to predicted classes (one
    per row of ``scores``)."""
    extra = {}
    for key, pred in (preds or {}).items():
        if key not in PREDICTIONS.values():
            raise ValueError(f"{key} is not one of {', '.join(PREDICTIONS.values())}")
        pred = np.asarray(pred, dtype=PRED_DTYPE)
        if pred.shape != (len(scores),):
            raise ValueError(f"{key} has shape {pred.shape}, the scores {len(scores)} rows")
        extra[key] = pred
    atomic_write(path, lambda f: np.savez(f, scores=np.asarray(scores, dtype=np.float32),
                                          labels=labels, names=names, **extra), mode="wb")


class ScoresError(RunStoreError):
    """A test_scores.npz that cannot be read (truncated, a member cut, not an npz, a key
    missing); the message is one line naming the file and the fix."""


def read_scores(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scores as float64, labels, names as str)``; plain arrays only (no pickles). A file
    that cannot be read raises :class:`ScoresError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return (np.asarray(z["scores"], dtype=np.float64), np.asarray(z["labels"]),
                    np.asarray(z["names"]).astype(str))
    except Exception as exc:  # noqa: BLE001 -- zipfile, zlib, numpy and OS errors alike
        raise _unreadable(path, exc) from None


def _unreadable(path: str | os.PathLike[str], exc: Exception) -> ScoresError:
    detail = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:160]
    return ScoresError(f"{path} cannot be read ({exc.__class__.__name__}: {detail}); "
                       "run that run again with fresh=true, or remove it from the command")


def read_predictions(path: str | os.PathLike[str],
                     keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """``labels``, ``names`` and those of ``keys`` (default: every :data:`PREDICTIONS` array)
    the file holds, without reading the scores; an absent key is simply left out (a run from
    before the predictions were stored). A file that cannot be read raises
    :class:`ScoresError`."""
    wanted = list(PREDICTIONS.values()) if keys is None else list(keys)
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {"labels": np.asarray(z["labels"]),
                   "names": np.asarray(z["names"]).astype(str)}
            for key in wanted:
                if key in z.files:
                    out[key] = np.asarray(z[key])
    except Exception as exc:  # noqa: BLE001 -- zipfile, zlib, numpy and OS errors alike
        raise _unreadable(path, exc) from None
    return out


__all__ = ["PREDICTIONS", "PRED_DTYPE", "ScoresError", "read_predictions", "read_scores",
           "write_scores"]
