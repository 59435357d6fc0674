"""Data: NTU ``.skeleton`` parsing, splits, the synthetic corpus, preprocessing, datasets.

Importing this package does not import torch (``SkeletonDataset`` is loaded lazily).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .dataset import SkeletonDataset
    from .preprocess import SplitArrays  # noqa: F401

# 3: the reference denoising, actor assignment and frame removal (lastexp.data.denoise)
CACHE_VERSION = 3


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
    raise DataError(
        f"dataset.raw_dir is not set for benchmark {_get(dataset, 'benchmark')!r}; pass "
        "dataset.raw_dir=/path/to/nturgb+d_skeletons (or dataset.npz=FILE, a CTR-GCN npz)"
    )


# the preprocessing fields that change the stored arrays (window, sampling and p_interval act
# when items are drawn, so P0 and P2 share one cache)
STORED_PREP_FIELDS = ("max_frames", "num_person", "copy_single_body")
SIDES = ("train", "test")


def cache_key(dataset: Any, prep: Any, files: list) -> str:
    """Hash of everything the built arrays depend on: the source listing (names and sizes of
    the raw files, or the npz path, size and mtime) and the storing preprocessing fields."""
    from .synthetic import _cfg_fields

    synth = _get(dataset, "synthetic")
    generated = (_get(dataset, "benchmark") == "synthetic" and synth
                 and not _get(dataset, "raw_dir") and not _get(dataset, "npz"))
    ident = {
        "v": CACHE_VERSION,
        "benchmark": _get(dataset, "benchmark"),
        "split": _get(dataset, "split"),
        "limit": _get(dataset, "limit"),
        **{k: int(_get(prep, k) or 0) for k in STORED_PREP_FIELDS},
        "files": files,
        "synthetic": _cfg_fields(synth) if generated else None,
    }
    blob = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cache_dir(dataset: Any, prep: Any, data_root: str | Path, key: str) -> Path:
    """``<data_root>/cache/<dataset>-<split>-<preprocessing>-<key>``."""
    parts = [str(_get(dataset, "name") or _get(dataset, "benchmark")),
             str(_get(dataset, "split")), str(_get(prep, "name") or "prep"), key]
    return Path(data_root) / "cache" / "-".join(p.replace("/", "_") for p in parts)


def _read_cache(path: Path):
    """Memory-map a finished cache directory (raises OSError/ValueError/KeyError if broken)."""
    from .preprocess import SplitArrays  # noqa: F401

    summary = json.loads((path / "summary.json").read_text())
    sides = []
    for s in SIDES:
        x = np.load(path / f"{s}_x.npy", mmap_mode="r")
        y = np.load(path / f"{s}_y.npy")
        lengths = np.load(path / f"{s}_lengths.npy")
        names = np.load(path / f"{s}_names.npy").tolist()
        if not len(x) == len(y) == len(lengths) == len(names):
            raise ValueError(f"inconsistent cache {path}")
        sides.append(SplitArrays(x, y, lengths, names))
    return sides[0], sides[1], summary


def _build_cache(final: Path, build: Callable) -> None:
    """Run ``build(alloc)`` into a temporary directory next to ``final`` and move it into place
    atomically (``os.replace`` of the directory): a reader sees a complete cache or none, and
    an interrupted build leaves nothing (at worst a ``.tmp-*`` directory, never read)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        maps: dict[str, np.ndarray] = {}

        def alloc(side: str, shape: tuple) -> np.ndarray:
            maps[side] = np.lib.format.open_memmap(tmp / f"{side}_x.npy", mode="w+",
                                                   dtype=np.float32, shape=shape)
            return maps[side]

        train, test, summary = build(alloc)
        for side, arrays in zip(SIDES, (train, test)):
            if side in maps:
                maps[side].flush()
            else:  # the builder did not use alloc
                np.save(tmp / f"{side}_x.npy", np.asarray(arrays.x, dtype=np.float32))
            np.save(tmp / f"{side}_y.npy", np.asarray(arrays.y, dtype=np.int64))
            np.save(tmp / f"{side}_lengths.npy", np.asarray(arrays.lengths, dtype=np.int64))
            np.save(tmp / f"{side}_names.npy", np.asarray(arrays.names, dtype=str))
        maps.clear()
        del train, test
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "summary.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_missing_list(path: str | None) -> set[str]:
    """Sample names of NTU's missing-skeleton list (``S001C002P005R002A008`` per line; blank
    lines, ``#`` comments and a ``.skeleton`` suffix are allowed)."""
    if not path:
        return set()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DataError(f"dataset.missing_list={path!r} cannot be read ({exc.strerror or exc}); "
                        "give the path of NTU's missing-skeleton list, or null") from None
    from .skeleton import parse_ntu_name

    names = set()
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            names.add(parse_ntu_name(line).stem)
        except ValueError:
            raise DataError(f"dataset.missing_list={path!r} line {n}: {line!r} is not an NTU "
                            "sample name (SsssCcccPpppRrrrAaaa)") from None
    return names


def load_arrays(dataset: Any, prep: Any, data_root: str | Path,
                progress: Callable[[int, int], None] | None = None,
                workers: int | None = None):
    """Map the train/test arrays from ``cache_dir(...)``, building the cache first if needed.

    Returns ``(train, test, summary)``; ``x`` is a read-only memory map (N, C, T, V, M)."""
    from .npz import load_npz
    from .preprocess import build_arrays, list_skeleton_files

    npz = _get(dataset, "npz")
    num_person = int(_get(prep, "num_person"))
    max_frames = int(_get(prep, "max_frames"))
    limit = _get(dataset, "limit")
    if npz:
        src = Path(npz)
        if not src.is_file():
            raise DataError(f"dataset.npz={str(npz)!r} is not a file"
                            "; give the path of a CTR-GCN npz (x_train, y_train, x_test, y_test)")
        st = src.stat()
        listing: list = [str(src.resolve()), st.st_size, st.st_mtime_ns]

        def build(alloc):
            return load_npz(src, num_person, max_frames, limit=limit, alloc=alloc,
                            benchmark=_get(dataset, "benchmark"), split=_get(dataset, "split"),
                            num_classes=int(_get(dataset, "num_classes") or 0))
    else:
        raw_dir = resolve_raw_dir(dataset, data_root)
        files = list_skeleton_files(raw_dir)
        listing = [(str(p.relative_to(raw_dir)), p.stat().st_size) for p in files]
        missing = read_missing_list(_get(dataset, "missing_list"))
        if missing:
            listing.append(("missing_list", sorted(missing)))

        def build(alloc):
            return build_arrays(raw_dir, _get(dataset, "benchmark"), _get(dataset, "split"),
                                prep, limit=limit, workers=workers, progress=progress,
                                alloc=alloc, missing=missing)

    key = cache_key(dataset, prep, listing)
    path = cache_dir(dataset, prep, data_root, key)
    if path.is_dir():
        try:
            train, test, summary = _read_cache(path)
            return train, test, dict(summary, cache=str(path), cached=True)
        except (OSError, ValueError, KeyError):
            shutil.rmtree(path, ignore_errors=True)  # unreadable cache: rebuild

    def named_build(alloc):
        train, test, summary = build(alloc)
        summary.update(dataset=_get(dataset, "name"), preprocessing=_get(prep, "name"),
                       cache_key=key)
        return train, test, summary

    _build_cache(path, named_build)
    train, test, summary = _read_cache(path)
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


__all__ = ["DataBundle", "DataError", "cache_dir", "cache_key", "load_arrays", "load_data",
           "resolve_raw_dir"]
