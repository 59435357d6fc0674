"""Raw ``.skeleton`` files -> padded (N, 3, T, 25, M) arrays per split, through the reference
pipeline of :mod:`lastexp.data.denoise`.

numpy only (no torch): worker processes import just this module and the parser.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lastexp.errors import DataError

from .denoise import reference_sequence
from .skeleton import SkeletonFormatError, implausible_coordinates, parse_ntu_name, parse_skeleton
from .splits import NUM_CLASSES, is_train, keep_action
from .synthetic_motion import ACTIONS
from .workers import map_jobs

if TYPE_CHECKING:  # pragma: no cover
    from lastexp.config import PreprocessingConfig

POOL_MIN_FILES = 64


@dataclass
class SplitArrays:
    x: np.ndarray  # float32 (N, 3, T_store, 25, M)
    y: np.ndarray  # int64 (N,)
    lengths: np.ndarray  # int64 (N,) valid frames per sample
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, n: int) -> SplitArrays:
        return SplitArrays(self.x[:n], self.y[:n], self.lengths[:n], list(self.names[:n]))


def list_skeleton_files(raw_dir: str | Path) -> list[Path]:
    """All ``*.skeleton`` files below ``raw_dir``, sorted by file name then path."""
    root = Path(raw_dir)
    if not root.is_dir():
        raise DataError(
            f"dataset.raw_dir={str(raw_dir)!r} is not a directory; point dataset.raw_dir at the "
            "folder holding the NTU .skeleton files"
        )
    files = []
    for dirpath, _dirs, names in os.walk(root):
        files.extend(Path(dirpath) / n for n in names if n.endswith(".skeleton"))
    if not files:
        raise DataError(
            f"no .skeleton files under dataset.raw_dir={str(raw_dir)!r}; point dataset.raw_dir "
            "at the folder holding the NTU .skeleton files"
        )
    return sorted(files, key=lambda p: (p.name, str(p)))


def uniform_frames(length: int, window: int) -> np.ndarray:
    """The frames a uniform subsample takes from ``length`` valid frames: frame
    ``floor((i + 0.5) * length / window)`` for i = 0 .. window - 1, the centre of each of
    ``window`` equal segments (short clips repeat frames). Integer arithmetic, so a centre
    that falls exactly on a frame boundary is that frame."""
    length = max(int(length), 1)
    i = np.arange(int(window), dtype=np.int64)
    return ((2 * i + 1) * length) // (2 * int(window))


def stored_window(prep: PreprocessingConfig) -> int | None:
    """``window`` when a sample stores exactly its uniform subsample (uniform sampling
    without ``temporal_jitter``); None when it stores every frame (up to ``max_frames``)."""
    if str(prep.sampling) == "uniform" and not bool(getattr(prep, "temporal_jitter", False)):
        return int(prep.window)
    return None


def store_frames(seq: np.ndarray, window: int | None, max_frames: int) -> np.ndarray:
    """The frames of ``seq`` (valid frames first axis) a cache keeps: its uniform subsample of
    ``window`` frames, or with ``window`` None every frame, thinned to ``max_frames`` nearest
    frames when longer (never for NTU's <= 300 frames at the default 300)."""
    if window is not None:
        return seq[uniform_frames(len(seq), window)]
    if len(seq) > max_frames:
        idx = np.rint(np.linspace(0, len(seq) - 1, max_frames)).astype(np.int64)
        return seq[idx]
    return seq


def sequence_from_file(path: str | Path, num_person: int, max_frames: int,
                       copy_single: bool = False, window: int | None = None):
    """One file through the reference pipeline (:mod:`lastexp.data.denoise`), then lastexp's
    storage: the first ``num_person`` body slots and :func:`store_frames` (``window``: the
    uniform subsample of a stored-window preprocessing).

    Returns ``(seq float32 (T, M, 25, 3), raw body count, kept body count, valid frames L
    before storage)``; raises :class:`SkeletonFormatError` (also for coordinates no capture
    has: :func:`lastexp.data.skeleton.implausible_coordinates`).
    """
    parsed = parse_skeleton(path)
    bad = implausible_coordinates(parsed)
    if bad:
        raise SkeletonFormatError(bad)
    data = reference_sequence(parsed, copy_single)[:, :num_person]
    kept = int((np.abs(data).reshape(len(data), num_person, -1).max(axis=2) > 0).any(axis=0).sum())
    return store_frames(data, window, max_frames), len(parsed["bodies"]), kept, len(data)


def _work(args: tuple) -> tuple[str, Any]:
    path, num_person, max_frames, copy_single, window = args
    try:
        return "ok", sequence_from_file(path, num_person, max_frames, copy_single, window)
    except SkeletonFormatError as exc:
        return "skip", exc.reason
    except (OSError, MemoryError) as exc:  # an unreadable file is reported, never a crash
        return "skip", f"unreadable: {exc}"


def _zeros(side: str, shape: tuple) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


def _stack(seqs: list[np.ndarray], labels: list[int], names: list[str],
           alloc: Callable = _zeros, side: str = "train") -> SplitArrays:
    """Pad the stored sequences to the longest (the reference layout) in ``alloc``'s array."""
    t_store = max(len(s) for s in seqs)
    m = seqs[0].shape[1]
    x = alloc(side, (len(seqs), 3, t_store, 25, m))  # zero-filled float32
    for i, s in enumerate(seqs):
        x[i, :, : len(s)] = s.transpose(3, 0, 2, 1)
    return SplitArrays(
        x=x,
        y=np.asarray(labels, dtype=np.int64),
        lengths=np.asarray([len(s) for s in seqs], dtype=np.int64),
        names=list(names),
    )


def stored_frames_text(window: int | None, max_frames: int) -> str:
    """summary.json's ``stored_frames``: what each sample of the cache holds."""
    if window is not None:
        return f"{window} (uniform subsample: segment centres, the same in training)"
    return f"every frame (at most {max_frames})"


MISSING_LISTED = "in NTU's missing-skeleton list (dataset.missing_list)"
NOT_REGULAR = "not a regular file (a FIFO, socket or device); not opened"
DANGLING = "a symbolic link to nothing"


SIDES = ("train", "test")


@dataclass
class _Chosen:
    """The files each side of a split reads (path, label), in name order, and what the walk
    left out: ``skipped`` (file name -> reason) and the count of ``excluded`` actions."""

    files: dict[str, list[tuple[Path, int]]] = field(
        default_factory=lambda: {side: [] for side in SIDES})
    skipped: dict[str, str] = field(default_factory=dict)
    excluded: int = 0


@dataclass
class _Tally:
    """The clip lengths and body counts of the samples kept, for the summary."""

    lengths: list[int] = field(default_factory=list)
    raw_bodies: Counter = field(default_factory=Counter)
    kept_bodies: Counter = field(default_factory=Counter)


def _choose_files(files: list[Path], benchmark: str, split: str, limit: int | None,
                  missing: set[str] | None) -> _Chosen:
    """Sort ``files`` into the sides of ``benchmark``/``split`` (the first ``limit`` of each),
    skipping what is no regular file, not NTU-named or in the ``missing`` list."""
    chosen = _Chosen()
    for path in files:
        if not path.is_file():  # a FIFO, socket or device: opening it could block forever
            chosen.skipped[path.name] = (DANGLING if path.is_symlink() and not path.exists()
                                         else NOT_REGULAR)
            continue
        try:
            name = parse_ntu_name(path.stem)
        except ValueError:
            chosen.skipped[path.name] = "not NTU naming"
            continue
        if not keep_action(name, benchmark):
            chosen.excluded += 1
            continue
        if missing and name.stem in missing:
            chosen.skipped[path.name] = MISSING_LISTED
            continue
        side = "train" if is_train(name, benchmark, split) else "test"
        if limit is None or len(chosen.files[side]) < limit:
            chosen.files[side].append((path, name.label))
    return chosen


def _keep(files: list[tuple[Path, int]], results: list[tuple[str, Any]],
          skipped: dict[str, str], tally: _Tally) -> tuple[list[np.ndarray], list[int], list[str]]:
    """The sequences, labels and names of the ``files`` whose ``results`` (one each, from
    :func:`_work`) are usable; the others go to ``skipped`` with their reason."""
    seqs, labels, names = [], [], []
    for (path, label), (status, value) in zip(files, results):
        if status == "skip":
            skipped[path.name] = value
            continue
        seq, n_raw, n_kept, n_frames = value
        seqs.append(seq)
        labels.append(label)
        names.append(path.stem)
        tally.lengths.append(n_frames)
        tally.raw_bodies[n_raw] += 1
        tally.kept_bodies[n_kept] += 1
    return seqs, labels, names


def frame_stats(lengths: list[int] | np.ndarray) -> dict[str, Any]:
    """summary.json's ``frames``: min, mean (2 decimals) and max of the clips' valid frames."""
    lengths = np.asarray(lengths)
    return {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 2),
            "max": int(lengths.max())}


def body_stats(counts: Counter) -> dict[str, int]:
    """summary.json's ``bodies``: how many samples have each body count, by count."""
    return {str(k): v for k, v in sorted(counts.items())}


def build_arrays(
    raw_dir: str | Path,
    benchmark: str,
    split: str,
    prep: PreprocessingConfig,
    limit: int | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    alloc: Callable = _zeros,
    missing: set[str] | None = None,
) -> tuple[SplitArrays, SplitArrays, dict]:
    """Walk ``raw_dir`` and build the train/test arrays of ``benchmark``/``split``.

    ``prep`` gives ``num_person``, ``copy_single_body`` and the frames stored: exactly
    ``window`` (the uniform subsample, :func:`stored_window`) or every frame up to
    ``max_frames``; ``lengths`` are the stored valid frames, the summary's ``frames`` those of
    the clips.
    ``limit`` keeps the first N files (by name) of each split. Bad files land in
    ``summary["skipped"]`` with a reason.
    ``progress(done, total)`` is called as files are parsed; ``alloc(side, shape)`` returns the
    zero-filled float32 array each split is written into (a memory map when caching).
    ``missing``: sample names of NTU's missing-skeleton list, skipped as such.
    """
    num_person = int(prep.num_person)
    max_frames = int(prep.max_frames)
    chosen = _choose_files(list_skeleton_files(raw_dir), benchmark, split, limit, missing)
    window = stored_window(prep)
    jobs = [(str(p), num_person, max_frames, bool(prep.copy_single_body), window)
            for side in SIDES for p, _ in chosen.files[side]]
    if workers is None:
        workers = os.cpu_count() or 1
    total = len(jobs)
    chunk = max(1, min(64, total // (max(workers, 1) * 16)))
    results = map_jobs(_work, jobs, workers if total >= POOL_MIN_FILES else 1, chunk, progress)

    out: dict[str, SplitArrays] = {}
    tally = _Tally()
    for side in SIDES:
        files = chosen.files[side]
        seqs, labels, names = _keep(files, results[:len(files)], chosen.skipped, tally)
        results = results[len(files):]
        if not seqs:
            raise DataError(
                f"the {side} split of {benchmark}/{split} is empty: no usable .skeleton file "
                f"under dataset.raw_dir={str(raw_dir)!r} ({len(chosen.skipped)} skipped); check "
                "dataset.raw_dir, dataset.benchmark and dataset.split"
            )
        out[side] = _stack(seqs, labels, names, alloc, side)
    summary = {
        "source": "raw",
        "raw_dir": str(raw_dir),
        "benchmark": benchmark,
        "split": split,
        "n_train": len(out["train"]),
        "n_test": len(out["test"]),
        "num_classes": len(ACTIONS) if benchmark == "synthetic" else NUM_CLASSES[benchmark],
        "num_person": num_person,
        "skipped": dict(sorted(chosen.skipped.items())),
        "excluded_actions": chosen.excluded,
        "frames": frame_stats(tally.lengths),
        "stored_frames": stored_frames_text(window, max_frames),
        "bodies": body_stats(tally.raw_bodies),
        "bodies_kept": body_stats(tally.kept_bodies),
    }
    return out["train"], out["test"], summary
