"""A validation split carved from the training split, for honest selection (off by default).

With it, the best epoch, early stopping and a search read validation, and the test split is
scored once, at the end, for the weights each selection rule reports. Two ways to carve it,
each deterministic and independent of the run's seed (every seed of a cell validates on the
same samples):

- ``dataset.val_subjects`` (xsub, xset): whole training subjects are held out, so validation
  is disjoint from training by subject as the test split is. A list names the subjects; a
  count ``k`` takes the first ``k`` training subjects present in the data when they are ranked
  by ``sha256("lastexp-validation:subject:<id>")`` (a fixed seed: no numpy stream that could
  change between versions, and adding data never reshuffles the ranks).
- ``dataset.val_fraction`` (xview, the synthetic corpus): in each class, the training samples
  ranked by ``sha256("lastexp-validation:sample:<name>")`` give the first
  ``floor(f * n + 0.5)`` of them to validation, at most ``n - 1`` (every class keeps a
  training sample).

The carved rows are views of the cache's memory map (:class:`RowView`): nothing is copied.
The run's ``summary.json`` records the split under ``validation`` (rule, subjects or fraction,
counts and the validation sample names).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lastexp.config import val_subjects_spec
from lastexp.errors import ConfigError, DataError

from .arrays import SplitArrays
from .skeleton import parse_ntu_name

SALT = "lastexp-validation"


def rank(kind: str, item: Any) -> str:
    """The fixed pseudo-random rank of a subject or a sample name (lower is picked first)."""
    return hashlib.sha256(f"{SALT}:{kind}:{item}".encode()).hexdigest()


class RowView:
    """Rows ``rows`` of ``base`` (a memory-mapped array) read on demand, never copied whole."""

    def __init__(self, base: Any, rows: np.ndarray) -> None:
        self.base, self.rows = base, np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: Any) -> np.ndarray:
        return self.base[self.rows[i]]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.base[self.rows], dtype=dtype)


def subset(arrays: SplitArrays, rows: np.ndarray) -> SplitArrays:
    """The samples ``rows`` of ``arrays``, in that order."""
    return SplitArrays(RowView(arrays.x, rows), np.asarray(arrays.y)[rows],
                       np.asarray(arrays.lengths)[rows], [arrays.names[i] for i in rows])


@dataclass(frozen=True)
class Carve:
    """Which training rows stay training rows and which validate (both ascending)."""

    train_rows: np.ndarray
    val_rows: np.ndarray
    record: dict[str, Any]  # summary.json's ``validation``


def subjects_of(names: Sequence[str]) -> np.ndarray:
    """The subject (NTU ``Pppp``) of each sample name."""
    out = np.empty(len(names), dtype=np.int64)
    for i, name in enumerate(names):
        try:
            out[i] = parse_ntu_name(name).subject
        except ValueError:
            raise DataError(f"dataset.val_subjects needs NTU sample names (SsssCcccPpppRrrrAaaa) "
                            f"to find the subjects, but the training split holds {name!r}; "
                            "carve by share instead (dataset.val_fraction=0.1)") from None
    return out


def pick_subjects(spec: int | list[int], present: list[int]) -> list[int]:
    """The held-out subjects: the listed ones (each a training subject) or the first ``spec``
    of the training subjects ranked by :func:`rank`; at least one subject stays training."""
    if isinstance(spec, int):
        if spec >= len(present):
            raise DataError(f"dataset.val_subjects={spec} would hold out every training subject "
                            f"(the training split has {len(present)}); hold out fewer")
        return sorted(sorted(present, key=lambda s: rank("subject", s))[:spec])
    absent = [s for s in spec if s not in present]
    if absent:
        raise DataError(f"dataset.val_subjects: subject(s) {', '.join(map(str, absent))} are not "
                        f"in the training split (its subjects: {', '.join(map(str, present))}); "
                        "name training subjects, or give a count")
    if len(spec) >= len(present):
        raise DataError(f"dataset.val_subjects={spec} holds out every training subject; leave "
                        "at least one to train on")
    return list(spec)


def stratified_rows(names: Sequence[str], labels: np.ndarray, fraction: float) -> np.ndarray:
    """Per class, the ``floor(fraction * n + 0.5)`` lowest-ranked samples (at most ``n - 1``)."""
    picked: list[int] = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c).tolist()
        k = min(int(np.floor(fraction * len(rows) + 0.5)), len(rows) - 1)
        picked += sorted(rows, key=lambda i: rank("sample", names[i]))[:k]
    return np.asarray(sorted(picked), dtype=np.int64)


def carve(names: Sequence[str], labels: np.ndarray, *, subjects: Any = None,
          fraction: float | None = None) -> Carve | None:
    """The validation split of a training split (None when neither key is set)."""
    if subjects is None and fraction is None:
        return None
    labels = np.asarray(labels)
    record: dict[str, Any]
    if subjects is not None:
        try:
            spec = val_subjects_spec(subjects)
        except ConfigError as exc:
            raise DataError(str(exc)) from None
        of = subjects_of(names)
        held = pick_subjects(spec, sorted(set(of.tolist())))
        val_rows = np.flatnonzero(np.isin(of, held))
        record = {"rule": "subjects", "subjects": held,
                  "requested": spec if isinstance(spec, int) else list(spec)}
    else:
        if not 0.0 < float(fraction) < 1.0:
            raise DataError(f"dataset.val_fraction={fraction} must lie in (0, 1), e.g. 0.1")
        val_rows = stratified_rows(names, labels, float(fraction))
        record = {"rule": "fraction", "fraction": float(fraction)}
    if not len(val_rows):
        raise DataError(f"dataset.val_fraction={fraction} carves no sample from the "
                        f"{len(names)} training samples; raise it")
    train_rows = np.setdiff1d(np.arange(len(names)), val_rows)
    record.update(n_val=int(len(val_rows)), n_train=int(len(train_rows)),
                  names=[str(names[i]) for i in val_rows])
    return Carve(train_rows, val_rows, record)


def split_validation(train: SplitArrays, test_names: Sequence[str], *, subjects: Any = None,
                     fraction: float | None = None
                     ) -> tuple[SplitArrays, SplitArrays | None, dict[str, Any] | None]:
    """``(training rows, validation rows or None, summary.json's validation record)``; a
    validation sample that is also a test sample (a source listing it twice) is refused."""
    cut = carve(train.names, train.y, subjects=subjects, fraction=fraction)
    if cut is None:
        return train, None, None
    shared = set(cut.record["names"]) & set(test_names)
    if shared:
        raise DataError(f"{len(shared)} validation sample(s) are also test samples (e.g. "
                        f"{sorted(shared)[0]}); the source lists them in both splits")
    return subset(train, cut.train_rows), subset(train, cut.val_rows), cut.record


__all__ = ["SALT", "Carve", "RowView", "carve", "pick_subjects", "rank", "split_validation",
           "stratified_rows", "subjects_of", "subset"]
