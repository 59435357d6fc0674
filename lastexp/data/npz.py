"""CTR-GCN-style preprocessed ``.npz`` files (``NTU60_CS.npz``...) as a data source.

Keys: ``x_train`` / ``x_test`` float ``(N, T, 150)`` = T x (2 bodies x 25 joints x 3), and
``y_train`` / ``y_test`` one-hot ``(N, num_classes)`` (integer labels ``(N,)`` are accepted
too). They are read into the :class:`SplitArrays` layout ``(N, 3, T, 25, M)``: M=1 keeps body
0, M=2 both; a sample's length is its frame count up to the trailing all-zero frames.
numpy only (no torch).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import DataError
from .preprocess import SplitArrays, _zeros
from .skeleton import MISSING_SKELETON, NUM_JOINTS

BODIES = 2
KEYS = ("x_train", "y_train", "x_test", "y_test")


def to_ctrgcn(x: np.ndarray) -> np.ndarray:
    """(N, 3, T, 25, M<=2) -> CTR-GCN's (N, T, 2*25*3) float32 (a missing body 2 is zero)."""
    n, c, t, v, m = x.shape
    out = np.zeros((n, t, BODIES, v, c), dtype=np.float32)
    out[:, :, :m] = np.transpose(x, (0, 2, 4, 3, 1))
    return out.reshape(n, t, BODIES * v * c)


def write_ctrgcn_npz(path: str | Path, train: SplitArrays, test: SplitArrays,
                     num_classes: int) -> None:
    """Write ``train``/``test`` as a CTR-GCN-style npz (one-hot labels)."""
    eye = np.eye(num_classes, dtype=np.float32)
    np.savez(path, x_train=to_ctrgcn(np.asarray(train.x)), y_train=eye[train.y],
             x_test=to_ctrgcn(np.asarray(test.x)), y_test=eye[test.y])


def _labels(y: np.ndarray, key: str, path: Path, n: int) -> tuple[np.ndarray, int]:
    if y.ndim == 2:
        labels, classes = y.argmax(axis=1).astype(np.int64), int(y.shape[1])
    elif y.ndim == 1:
        labels, classes = y.astype(np.int64), int(y.max(initial=-1)) + 1
    else:
        raise DataError(f"dataset.npz={str(path)!r}: {key} has shape {tuple(y.shape)}, expected "
                        "(N, num_classes) one-hot or (N,) labels")
    if len(labels) != n:
        raise DataError(f"dataset.npz={str(path)!r}: {key} has {len(labels)} labels but "
                        f"x_{key[2:]} has {n} samples")
    return labels, classes


def load_npz(path: str | Path, num_person: int, max_frames: int, limit: int | None = None,
             alloc: Callable = _zeros) -> tuple[SplitArrays, SplitArrays, dict]:
    """Read a CTR-GCN npz into train/test :class:`SplitArrays` plus a summary."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset.npz={str(path)!r} is not a file")
    try:
        z = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DataError(f"dataset.npz={str(path)!r} is not a readable npz ({exc})") from None
    with z:
        missing = [k for k in KEYS if k not in z.files]
        if missing:
            raise DataError(f"dataset.npz={str(path)!r}: missing key(s) {', '.join(missing)} "
                            f"(a CTR-GCN npz holds {', '.join(KEYS)})")
        out: dict[str, SplitArrays] = {}
        skipped: dict[str, str] = {}
        lengths_all: list[np.ndarray] = []
        bodies: Counter = Counter()
        num_classes = 0
        for side in ("train", "test"):
            x = z[f"x_{side}"]
            if x.ndim != 3 or x.shape[2] != BODIES * NUM_JOINTS * 3:
                raise DataError(f"dataset.npz={str(path)!r}: x_{side} has shape "
                                f"{tuple(x.shape)}, expected (N, T, {BODIES * NUM_JOINTS * 3})")
            labels, classes = _labels(np.asarray(z[f"y_{side}"]), f"y_{side}", path, len(x))
            num_classes = max(num_classes, classes)
            if limit is not None:
                x, labels = x[:limit], labels[:limit]
            data = np.asarray(x, dtype=np.float32).reshape(len(x), x.shape[1], BODIES,
                                                           NUM_JOINTS, 3)
            present = np.abs(data).max(axis=(3, 4)) > 0  # (N, T, 2)
            any_frame = present.any(axis=2)
            lengths = np.where(any_frame.any(axis=1),
                               x.shape[1] - np.argmax(any_frame[:, ::-1], axis=1), 0)
            names = [f"{side}_{i:06d}" for i in range(len(x))]
            keep = np.flatnonzero(lengths > 0)
            for i in np.flatnonzero(lengths == 0).tolist():
                skipped[f"{path.name}:{names[i]}"] = MISSING_SKELETON
            if not len(keep):
                raise DataError(f"the {side} split of dataset.npz={str(path)!r} is empty")
            bodies.update(present[keep].any(axis=1).sum(axis=1).tolist())
            t_store = min(max_frames, int(lengths[keep].max()))
            arr = alloc(side, (len(keep), 3, t_store, NUM_JOINTS, num_person))
            new_len = np.minimum(lengths[keep], max_frames)
            for j, i in enumerate(keep.tolist()):
                seq = data[i, : lengths[i], :num_person]  # (L, M, 25, 3)
                if len(seq) > max_frames:
                    idx = np.rint(np.linspace(0, len(seq) - 1, max_frames)).astype(np.int64)
                    seq = seq[idx]
                arr[j, :, : len(seq)] = seq.transpose(3, 0, 2, 1)
            out[side] = SplitArrays(arr, labels[keep], new_len.astype(np.int64),
                                    [names[i] for i in keep.tolist()])
            lengths_all.append(new_len)
    lens = np.concatenate(lengths_all)
    summary = {
        "source": "npz",
        "npz": str(path),
        "n_train": len(out["train"]),
        "n_test": len(out["test"]),
        "num_classes": num_classes,
        "num_person": num_person,
        "skipped": dict(sorted(skipped.items())),
        "frames": {"min": int(lens.min()), "mean": round(float(lens.mean()), 2),
                   "max": int(lens.max())},
        "bodies": {str(k): v for k, v in sorted(bodies.items())},
    }
    return out["train"], out["test"], summary


def npz_source(dataset: Any) -> Path | None:
    npz = dataset.get("npz") if isinstance(dataset, dict) else getattr(dataset, "npz", None)
    return Path(npz) if npz else None
