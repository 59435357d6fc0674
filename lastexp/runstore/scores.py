"""test_scores.npz: per-sample test logits of the model a run delivers (the SWA model when SWA
is on), with the labels and sample names; what ensembles (B14, the "(4s)" rows) combine."""

from __future__ import annotations

import os

import numpy as np

from lastexp.io import atomic_write


def write_scores(path: str | os.PathLike[str], scores: np.ndarray, labels: np.ndarray,
                 names: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez(f, scores=np.asarray(scores, dtype=np.float32),
                                          labels=labels, names=names), mode="wb")


class ScoresError(ValueError):
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
        detail = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:160]
        raise ScoresError(f"{path} cannot be read ({exc.__class__.__name__}: {detail}); "
                          "run that run again with fresh=true, or remove it from the "
                          "command") from None
