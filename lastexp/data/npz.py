"""CTR-GCN-style preprocessed ``.npz`` files (``NTU60_CS.npz``...) as a data source.

Keys: ``x_train`` / ``x_test`` float ``(N, T, 150)`` = T x (2 bodies x 25 joints x 3), and
``y_train`` / ``y_test`` one-hot ``(N, num_classes)`` (integer labels ``(N,)`` are accepted
too), and, in the files lastexp writes, ``train_names`` / ``test_names``. They are read
into the :class:`SplitArrays` layout ``(N, 3, T, 25, M)``: M=1 keeps body
0, M=2 both; a sample's length is its frame count up to the trailing all-zero frames.
numpy only (no torch).
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lastexp.errors import DataError

from .arrays import (
    SIDES,
    SplitArrays,
    _zeros,
    body_stats,
    frame_stats,
    store_frames,
    stored_frames_text,
)
from .skeleton import MAX_ABS_COORD, MISSING_SKELETON, NUM_JOINTS, parse_ntu_name
from .splits import SPLITS, is_train

BODIES = 2
KEYS = ("x_train", "y_train", "x_test", "y_test")


def to_ctrgcn(x: np.ndarray, frames: int | None = None) -> np.ndarray:
    """(N, 3, T, 25, M<=2) -> CTR-GCN's (N, frames or T, 2*25*3) float32 (a missing body 2
    and frames past T are zero)."""
    n, c, t, v, m = x.shape
    out = np.zeros((n, frames or t, BODIES, v, c), dtype=np.float32)
    out[:, :t, :m] = np.transpose(x, (0, 2, 4, 3, 1))
    return out.reshape(n, frames or t, BODIES * v * c)


# the field that orders each side of the reference's split (get_indices in CTR-GCN's
# seq_transformation.py concatenates the samples of each ID in ascending ID order)
ORDER_FIELD = {"xsub": "subject", "xview": "camera", "xset": "setup"}


def reference_order(names: list[str], split: str) -> np.ndarray:
    """Indices that put name-sorted samples in the reference's order for ``split``."""
    field = ORDER_FIELD[split]
    keys = [getattr(parse_ntu_name(n), field) for n in names]
    return np.argsort(np.asarray(keys, dtype=np.int64), kind="stable")


def write_ctrgcn_npz(path: str | Path, train: SplitArrays, test: SplitArrays,
                     num_classes: int, split: str | None = None) -> None:
    """Write ``train``/``test`` in CTR-GCN's npz layout, atomically: ``x_*`` float32
    (N, T, 150) with T the longest stored sequence of both sides (as the reference's
    ``align_frames``), one-hot float64 ``y_*`` (as the reference's ``one_hot_vector``) and
    ``train_names`` / ``test_names`` as fixed-width strings. With ``split`` each side is put
    in the reference's sample order."""
    path = Path(path)
    frames = max(int(train.x.shape[2]), int(test.x.shape[2]))
    eye = np.eye(num_classes, dtype=np.float64)
    arrays = {}
    for side, data in (("train", train), ("test", test)):
        order = (reference_order(data.names, split) if split and data.names
                 else np.arange(len(data)))
        arrays[f"x_{side}"] = to_ctrgcn(np.asarray(data.x), frames)[order]
        arrays[f"y_{side}"] = eye[np.asarray(data.y)[order]]
        arrays[f"{side}_names"] = np.asarray([data.names[i] for i in order.tolist()], dtype=str)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:  # a file object: savez adds no ".npz" to the name
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# CTR-GCN's file names: NTU60_CS.npz, NTU60_CV.npz, NTU120_CSub.npz, NTU120_CSet.npz
_CTRGCN_NAME = re.compile(r"NTU(60|120)_(CS|CV|CSub|CSet)\b", re.IGNORECASE)
_CTRGCN_SPLIT = {"cs": "xsub", "csub": "xsub", "cv": "xview", "cset": "xset"}


def stored_names(z) -> dict[str, list[str]] | None:
    """``train_names`` / ``test_names`` of an npz (files lastexp writes have them), or None."""
    if not all(f"{s}_names" in z.files for s in ("train", "test")):
        return None
    return {s: np.asarray(z[f"{s}_names"]).astype(str).tolist() for s in ("train", "test")}


def _split_of_names(names: dict[str, list[str]], benchmark: str) -> list[str] | None:
    """The splits whose train/test rule the stored sample names follow (None: not NTU names)."""
    try:
        parsed = {side: [parse_ntu_name(n) for n in ns] for side, ns in names.items()}
    except ValueError:
        return None
    fits = []
    for split in SPLITS:
        try:
            if all(is_train(n, benchmark, split) == (side == "train")
                   for side, ns in parsed.items() for n in ns):
                fits.append(split)
        except ValueError:  # a split the benchmark does not have (xset on ntu60)
            continue
    return fits


def check_split(path: Path, names: dict[str, list[str]] | None, benchmark: str | None,
                split: str | None) -> str:
    """Refuse an npz made for another split than ``dataset.split``, judged by its sample
    ``names`` or else CTR-GCN's file name; return how it was checked."""
    if not benchmark or not split:
        return "not checked"
    if names is not None:
        fits = _split_of_names(names, benchmark)
        if fits is None:
            return "not checked: sample names are not NTU names"
        if split not in fits:
            made = " or ".join(fits) if fits else "no NTU split"
            raise DataError(f"dataset.npz={str(path)!r} holds the {made} split but "
                            f"dataset.split={split}; choose the dataset option of that split "
                            "or the npz made for this one")
        return "sample names"
    m = _CTRGCN_NAME.search(path.name)
    if m:
        file_bench, file_split = f"ntu{m.group(1)}", _CTRGCN_SPLIT[m.group(2).lower()]
        if (file_bench, file_split) != (benchmark, split):
            raise DataError(f"dataset.npz={str(path)!r} is named for {file_bench} {file_split} "
                            f"but the dataset option is {benchmark} {split}; choose the "
                            "dataset option of that split or the npz made for this one")
        return "file name (no sample names in the file)"
    return "not checked: no sample names in the file"


def _read(z, key: str, path: Path) -> np.ndarray:
    """``z[key]``; a member that cannot be read (a truncated file, pickled objects) is refused
    in one line."""
    try:
        return z[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise DataError(f"dataset.npz={str(path)!r}: {key} cannot be read ({first}); write the "
                        "file again with numpy.savez (numbers only, no objects)") from None


def _labels(y: np.ndarray, key: str, path: Path, n: int,
            num_classes: int = 0) -> tuple[np.ndarray, int]:
    where = f"dataset.npz={str(path)!r}: {key}"
    if y.dtype.kind not in "biuf":
        raise DataError(f"{where} holds {y.dtype} values; expected one-hot (N, num_classes) or "
                        "integer labels (N,)")
    if y.ndim == 2:
        if not (((y == 0) | (y == 1)).all() and (y.sum(axis=1) == 1).all()):
            raise DataError(f"{where} is not one-hot (each row one 1, zeros elsewhere); write "
                            "one-hot rows or integer labels")
        labels, classes = y.argmax(axis=1).astype(np.int64), int(y.shape[1])
    elif y.ndim == 1:
        if y.dtype.kind == "f":
            raise DataError(f"{where} holds float labels; write integer class indices (N,) "
                            "or one-hot rows (N, num_classes)")
        if len(y) and y.min() < 0:
            raise DataError(f"{where} holds a negative label ({int(y.min())}); class indices "
                            "start at 0")
        labels, classes = y.astype(np.int64), int(y.max(initial=-1)) + 1
    else:
        raise DataError(f"dataset.npz={str(path)!r}: {key} has shape {tuple(y.shape)}, expected "
                        "(N, num_classes) one-hot or (N,) labels")
    if len(labels) != n:
        raise DataError(f"dataset.npz={str(path)!r}: {key} has {len(labels)} labels but "
                        f"x_{key[2:]} has {n} samples")
    if num_classes and len(labels) and int(labels.max()) >= num_classes:
        raise DataError(f"{where} holds label {int(labels.max())}, out of range for "
                        f"dataset.num_classes={num_classes} (labels 0..{num_classes - 1}); "
                        "choose the dataset option the file was made for")
    return labels, classes


def _open(path: Path) -> Any:
    """The npz at ``path``, memory-mapped; refused in one line when it is no readable npz or
    lacks one of :data:`KEYS`."""
    if not path.is_file():
        raise DataError(f"dataset.npz={str(path)!r} is not a file"
                            "; give the path of a CTR-GCN npz (x_train, y_train, x_test, y_test)")
    try:
        z = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0].split(". ")[0]
        raise DataError(f"dataset.npz={str(path)!r} is not a readable npz ({first}); a "
                        "truncated copy? copy it again, or point dataset.npz at a CTR-GCN "
                        "npz") from None
    missing = [k for k in KEYS if k not in z.files]
    if missing:
        z.close()
        raise DataError(f"dataset.npz={str(path)!r}: missing key(s) {', '.join(missing)} "
                        f"(a CTR-GCN npz holds {', '.join(KEYS)})")
    return z


def _side_data(z: Any, side: str, path: Path, declared: int,
               limit: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """One side's coordinates as float32 (N, T, 2, 25, 3), its labels and its class count
    (the first ``limit`` samples); each check refuses in one line naming the key."""
    x = _read(z, f"x_{side}", path)
    if x.ndim != 3 or x.shape[2] != BODIES * NUM_JOINTS * 3:
        raise DataError(f"dataset.npz={str(path)!r}: x_{side} has shape "
                        f"{tuple(x.shape)}, expected (N, T, {BODIES * NUM_JOINTS * 3})")
    labels, classes = _labels(np.asarray(_read(z, f"y_{side}", path)), f"y_{side}",
                              path, len(x), declared)
    if limit is not None:
        x, labels = x[:limit], labels[:limit]
    if x.dtype.kind not in "iuf":
        raise DataError(f"dataset.npz={str(path)!r}: x_{side} holds {x.dtype} values; "
                        "expected float32 coordinates")
    if x.shape[1] == 0:
        raise DataError(f"dataset.npz={str(path)!r}: x_{side} has zero frames (shape "
                        f"{tuple(x.shape)}); write (N, T, 150) with T >= 1 frames")
    data = np.asarray(x, dtype=np.float32).reshape(len(x), x.shape[1], BODIES, NUM_JOINTS, 3)
    bad = np.flatnonzero(~np.isfinite(data).all(axis=(1, 2, 3, 4)))
    if len(bad):
        raise DataError(f"dataset.npz={str(path)!r}: x_{side} holds NaN or inf in "
                        f"{len(bad)} sample(s) (the first at index {int(bad[0])}); "
                        "clean the file or drop those samples")
    far = np.flatnonzero(np.abs(data).max(axis=(1, 2, 3, 4)) > MAX_ABS_COORD)
    if len(far):
        raise DataError(f"dataset.npz={str(path)!r}: x_{side} holds coordinates "
                        f"beyond {MAX_ABS_COORD:g} m in {len(far)} sample(s) (the "
                        f"first at index {int(far[0])}), which no capture has; clean "
                        "the file or drop those samples")
    return data, labels, classes


def _sample_names(stored: dict[str, list[str]] | None, side: str, n: int,
                  path: Path) -> list[str]:
    """The names of a side's ``n`` samples: stored in the file, or by position."""
    if stored is None:
        return [f"{side}_{i:06d}" for i in range(n)]
    names = stored[side][:n]
    if len(names) != n:
        raise DataError(f"dataset.npz={str(path)!r}: {side}_names has "
                        f"{len(names)} names but x_{side} has {n} samples")
    return names


def _stored_side(data: np.ndarray, lengths: np.ndarray, keep: np.ndarray, labels: np.ndarray,
                 names: list[str], arr: np.ndarray, window: int | None,
                 max_frames: int) -> SplitArrays:
    """The ``keep`` samples of ``data`` (valid frames ``lengths``) as the cache stores them
    (:func:`lastexp.data.arrays.store_frames`), written into ``arr``."""
    num_person = arr.shape[-1]
    if window is not None:
        new_len = np.full(len(keep), window, dtype=np.int64)
    else:
        new_len = np.minimum(lengths[keep], max_frames)
    for j, i in enumerate(keep.tolist()):
        seq = store_frames(data[i, : lengths[i], :num_person], window, max_frames)
        arr[j, :, : len(seq)] = seq.transpose(3, 0, 2, 1)
    return SplitArrays(arr, labels[keep], new_len.astype(np.int64),
                       [names[i] for i in keep.tolist()])


def load_npz(path: str | Path, num_person: int, max_frames: int, limit: int | None = None,
             alloc: Callable = _zeros, benchmark: str | None = None,
             split: str | None = None, num_classes: int = 0,
             window: int | None = None) -> tuple[SplitArrays, SplitArrays, dict]:
    """Read a CTR-GCN npz into train/test :class:`SplitArrays` plus a summary. A file made
    for another split than ``split`` is refused (:func:`check_split`); its sample names are
    used when it has them (``train_names`` / ``test_names``). Each sample keeps its valid
    frames as :func:`lastexp.data.arrays.store_frames` stores them (``window``: the
    uniform subsample of a stored-window preprocessing)."""
    path = Path(path)
    declared = int(num_classes or 0)  # dataset.num_classes (0: taken from the data)
    out: dict[str, SplitArrays] = {}
    skipped: dict[str, str] = {}
    lengths_all: list[np.ndarray] = []
    bodies: Counter = Counter()
    num_classes = 0
    with _open(path) as z:
        stored = stored_names(z)
        split_check = check_split(path, stored, benchmark, split)
        for side in SIDES:
            data, labels, classes = _side_data(z, side, path, declared, limit)
            num_classes = max(num_classes, classes)
            present = np.abs(data).max(axis=(3, 4)) > 0  # (N, T, 2)
            any_frame = present.any(axis=2)
            lengths = np.where(any_frame.any(axis=1),
                               data.shape[1] - np.argmax(any_frame[:, ::-1], axis=1), 0)
            names = _sample_names(stored, side, len(data), path)
            keep = np.flatnonzero(lengths > 0)
            for i in np.flatnonzero(lengths == 0).tolist():
                skipped[f"{path.name}:{names[i]}"] = MISSING_SKELETON
            if not len(keep):
                raise DataError(f"the {side} split of dataset.npz={str(path)!r} is empty (no "
                                "sample with a non-zero frame); point dataset.npz at a file "
                                "holding skeletons")
            bodies.update(present[keep].any(axis=1).sum(axis=1).tolist())
            t_store = window if window is not None else min(max_frames, int(lengths[keep].max()))
            arr = alloc(side, (len(keep), 3, t_store, NUM_JOINTS, num_person))
            out[side] = _stored_side(data, lengths, keep, labels, names, arr, window, max_frames)
            lengths_all.append(lengths[keep])
    summary = {
        "source": "npz",
        "npz": str(path),
        "n_train": len(out["train"]),
        "n_test": len(out["test"]),
        "num_classes": num_classes,
        "num_person": num_person,
        "sample_names": ("present" if stored is not None
                         else "absent (samples are named by position)"),
        "split_checked_by": split_check,
        "skipped": dict(sorted(skipped.items())),
        "frames": frame_stats(np.concatenate(lengths_all)),
        "stored_frames": stored_frames_text(window, max_frames),
        "bodies": body_stats(bodies),
    }
    return out["train"], out["test"], summary


def npz_source(dataset: Any) -> Path | None:
    npz = dataset.get("npz") if isinstance(dataset, dict) else getattr(dataset, "npz", None)
    return Path(npz) if npz else None
