"""Data: NTU ``.skeleton`` parsing, splits, the synthetic corpus, preprocessing, datasets.

Importing this package does not import torch (``SkeletonDataset`` is loaded lazily).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .dataset import SkeletonDataset
    from .preprocess import SplitArrays

CACHE_VERSION = 1


class DataError(ValueError):
    """A user-facing data problem (missing raw_dir, empty split...), naming the key to fix."""


@dataclass
class DataBundle:
    train: SkeletonDataset
    test: SkeletonDataset
    num_classes: int
    num_person: int
    summary: dict


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def resolve_raw_dir(dataset: Any, data_root: str | Path) -> Path:
    """The raw ``.skeleton`` folder of ``dataset`` (generating the synthetic corpus if needed)."""
    raw_dir = _get(dataset, "raw_dir")
    if raw_dir:
        return Path(raw_dir)
    if _get(dataset, "benchmark") == "synthetic":
        from .synthetic import ensure_corpus

        return ensure_corpus(data_root, _get(dataset, "synthetic"))
    if _get(dataset, "npz"):
        raise DataError("dataset.npz is not supported yet; use dataset.raw_dir")
    raise DataError(
        f"dataset.raw_dir is not set for benchmark {_get(dataset, 'benchmark')!r}; pass "
        "dataset.raw_dir=/path/to/nturgb+d_skeletons"
    )


def cache_key(dataset: Any, prep: Any, files: list[tuple[str, int]]) -> str:
    """Hash of everything the built arrays depend on."""
    from .synthetic import _cfg_fields

    synth = _get(dataset, "synthetic")
    ident = {
        "v": CACHE_VERSION,
        "name": _get(dataset, "name"),
        "benchmark": _get(dataset, "benchmark"),
        "split": _get(dataset, "split"),
        "limit": _get(dataset, "limit"),
        "max_frames": int(_get(prep, "max_frames")),
        "num_person": int(_get(prep, "num_person")),
        "files": files,
        "synthetic": _cfg_fields(synth) if _get(dataset, "benchmark") == "synthetic" and synth
        else None,
    }
    blob = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _save_cache(path: Path, train: SplitArrays, test: SplitArrays, summary: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                train_x=train.x, train_y=train.y, train_lengths=train.lengths,
                train_names=np.asarray(train.names, dtype=str),
                test_x=test.x, test_y=test.y, test_lengths=test.lengths,
                test_names=np.asarray(test.names, dtype=str),
                summary=np.asarray(json.dumps(summary)),
            )
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    path.with_suffix(".json").write_text(json.dumps(summary, indent=2, sort_keys=True))


def _load_cache(path: Path):
    from .preprocess import SplitArrays

    with np.load(path, allow_pickle=False) as z:
        sides = [
            SplitArrays(z[f"{s}_x"], z[f"{s}_y"], z[f"{s}_lengths"], z[f"{s}_names"].tolist())
            for s in ("train", "test")
        ]
        summary = json.loads(str(z["summary"]))
    return sides[0], sides[1], summary


def load_arrays(dataset: Any, prep: Any, data_root: str | Path):
    """Build (or load from ``<data_root>/cache/<key>.npz``) the train/test arrays."""
    from .preprocess import build_arrays, list_skeleton_files

    raw_dir = resolve_raw_dir(dataset, data_root)
    files = list_skeleton_files(raw_dir)
    listing = [(str(p.relative_to(raw_dir)), p.stat().st_size) for p in files]
    key = cache_key(dataset, prep, listing)
    path = Path(data_root) / "cache" / f"{key}.npz"
    if path.is_file():
        try:
            train, test, summary = _load_cache(path)
            summary = dict(summary, cache=str(path), cached=True)
            return train, test, summary
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache: rebuild
    train, test, summary = build_arrays(
        raw_dir,
        _get(dataset, "benchmark"),
        _get(dataset, "split"),
        prep,
        limit=_get(dataset, "limit"),
    )
    summary["dataset"] = _get(dataset, "name")
    _save_cache(path, train, test, summary)
    return train, test, dict(summary, cache=str(path), cached=False)


def load_data(dataset: Any, prep: Any, data_root: str, seed: int) -> DataBundle:
    """Datasets for a run. ``dataset``/``prep`` carry the fields of DatasetConfig /
    PreprocessingConfig (OmegaConf nodes or dataclasses)."""
    from .dataset import SkeletonDataset

    train, test, summary = load_arrays(dataset, prep, data_root)
    num_classes = int(_get(dataset, "num_classes") or 0) or int(summary["num_classes"])
    top = int(max(train.y.max(), test.y.max()))
    if top >= num_classes:
        raise DataError(
            f"label {top} does not fit dataset.num_classes={num_classes}; set "
            "dataset.num_classes=0 to take it from the data"
        )
    window = int(_get(prep, "window"))
    sampling = str(_get(prep, "sampling"))
    make = lambda arrays, is_train, p: SkeletonDataset(  # noqa: E731
        arrays, window, sampling, is_train, list(p), seed
    )
    return DataBundle(
        train=make(train, True, _get(prep, "p_interval_train")),
        test=make(test, False, _get(prep, "p_interval_test")),
        num_classes=num_classes,
        num_person=int(train.x.shape[-1]),
        summary=summary,
    )


__all__ = ["DataBundle", "DataError", "load_data", "load_arrays", "resolve_raw_dir"]
