"""Data: NTU ``.skeleton`` parsing, splits, the synthetic corpus, preprocessing, datasets.

Importing this package does not import torch: ``SkeletonDataset`` is loaded when a run asks
for datasets, so preprocessing, its pool workers and the synthetic corpus never pay for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lastexp.config import DatasetConfig, PreprocessingConfig
from lastexp.errors import DataError

from .arrays import SplitArrays, build_arrays, list_skeleton_files, stored_window
from .convert import dataset_config, preprocessing_config, synthetic_config
from .locks import cache_lock_path, held, remove_cache_leftovers
from .npz import load_npz
from .skeleton import parse_ntu_name
from .synthetic import corpus_fields, ensure_corpus
from .validation import split_validation

if TYPE_CHECKING:  # pragma: no cover
    from .dataset import SkeletonDataset

__all__ = ["DataBundle", "DataError", "dataset_config", "load_arrays", "load_data",
           "preprocessing_config", "synthetic_config"]

# 3: the reference denoising, actor assignment and frame removal (lastexp.data.denoise)
# 4: uniform preprocessings store their `window` frames; the raw folder's resolved path and
#    each file's mtime join the key; implausible coordinates and repeated body IDs are skipped
CACHE_VERSION = 4


@dataclass
class DataBundle:
    train: SkeletonDataset
    test: SkeletonDataset
    num_classes: int
    num_person: int
    summary: dict
    val: SkeletonDataset | None = None  # dataset.val_subjects / val_fraction (.validation)


# ----------------------------------------------------------------------------- typed

def resolve_raw_dir(dataset: DatasetConfig, data_root: str | Path) -> Path:
    """The raw ``.skeleton`` folder of ``dataset`` (generating the synthetic corpus if needed)."""
    if dataset.raw_dir:
        return Path(dataset.raw_dir)
    if dataset.benchmark == "synthetic":
        return ensure_corpus(data_root, dataset.synthetic)
    raise DataError(
        f"dataset.raw_dir is not set for benchmark {dataset.benchmark!r}; pass "
        "dataset.raw_dir=/path/to/nturgb+d_skeletons (or dataset.npz=FILE, a CTR-GCN npz)"
    )


SIDES = ("train", "test")


def stored_frames_key(prep: PreprocessingConfig) -> dict[str, Any]:
    """What each stored sample holds: ``{"uniform": window}`` (the stored subsample) or
    ``{"all": max_frames}`` (every frame, up to max_frames; P1 and temporal_jitter=true)."""
    window = stored_window(prep)
    if window is not None:
        return {"uniform": window}
    return {"all": int(prep.max_frames or 0)}


def raw_listing(raw_dir: Path, files: list[Path], missing: set[str]) -> dict[str, Any]:
    """The cache key's view of a raw folder, from ``stat`` alone (no file is read): its
    resolved path, each file's path below it, size and mtime in ns, and the sample names of
    ``dataset.missing_list``. An edited capture (even of the same size) changes its mtime."""
    entries = []
    for p in files:
        try:
            st = p.stat()
        except OSError:  # a dangling link: the build skips it; its own stat keys it
            st = p.lstat()
        entries.append([str(p.relative_to(raw_dir)), st.st_size, st.st_mtime_ns])
    return {"raw_dir": str(Path(raw_dir).resolve()), "files": entries,
            "missing_list": sorted(missing)}


def cache_key(dataset: DatasetConfig, prep: PreprocessingConfig, files: Any) -> str:
    """Hash of everything the built arrays depend on: the source (``files``: a raw folder's
    :func:`raw_listing`, or the npz's resolved path, size and mtime in ns) and the
    preprocessing fields that change the stored arrays (:func:`stored_frames_key`; sampling
    and p_interval of a cache that keeps every frame act when items are drawn, so P1 and a
    temporal_jitter run share one cache). Existing caches are found by it: a change of its
    text must bump :data:`CACHE_VERSION`."""
    generated = dataset.benchmark == "synthetic" and not dataset.raw_dir and not dataset.npz
    ident = {
        "v": CACHE_VERSION,
        "benchmark": dataset.benchmark,
        "split": dataset.split,
        "limit": dataset.limit,
        "stored_frames": stored_frames_key(prep),
        "num_person": int(prep.num_person or 0),
        "copy_single_body": int(prep.copy_single_body or 0),
        "files": files,
        "synthetic": corpus_fields(dataset.synthetic) if generated else None,
    }
    blob = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cache_dir(dataset: DatasetConfig, prep: PreprocessingConfig, data_root: str | Path,
              key: str) -> Path:
    """``<data_root>/cache/<dataset>-<split>-<preprocessing>-<key>``."""
    parts = [str(dataset.name or dataset.benchmark), str(dataset.split),
             str(prep.name or "prep"), key]
    return Path(data_root) / "cache" / "-".join(p.replace("/", "_") for p in parts)


def _read_cache(path: Path):
    """Memory-map a finished cache directory (raises OSError/ValueError/KeyError if broken)."""
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
    an interrupted build leaves nothing (a killed one at worst a ``.tmp-*`` directory, never
    read, which the next build under the cache's lock removes: :func:`load_arrays`)."""
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
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise DataError(f"dataset.missing_list={path!r} cannot be read ({exc.strerror or exc}); "
                        "give the path of NTU's missing-skeleton list, or null") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"dataset.missing_list={path!r} is not a text file (byte "
                        f"{exc.object[exc.start]:#04x} at offset {exc.start} is not UTF-8); "
                        "give the path of NTU's missing-skeleton list (one sample name per "
                        "line), or null") from None
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


def load_arrays(dataset: DatasetConfig | Mapping[str, Any],
                prep: PreprocessingConfig | Mapping[str, Any], data_root: str | Path,
                progress: Callable[[int, int], None] | None = None,
                workers: int | None = None):
    """Map the train/test arrays from ``cache_dir(...)``, building the cache first if needed.
    ``dataset``/``prep``: the config dataclasses, OmegaConf nodes or dicts of their fields.

    Returns ``(train, test, summary)``; ``x`` is a read-only memory map (N, C, T, V, M).

    The cache is read and built under its lock (:mod:`lastexp.data.locks`): a second command
    waits for a build in progress and then reads it, and the temporary folders of killed
    builds are removed."""
    dataset, prep = dataset_config(dataset), preprocessing_config(prep)
    npz = dataset.npz
    num_person = int(prep.num_person)
    max_frames = int(prep.max_frames)
    window = stored_window(prep)
    limit = dataset.limit
    if npz:
        src = Path(npz)
        if not src.is_file():
            raise DataError(f"dataset.npz={str(npz)!r} is not a file"
                            "; give the path of a CTR-GCN npz (x_train, y_train, x_test, y_test)")
        st = src.stat()
        listing: list = [str(src.resolve()), st.st_size, st.st_mtime_ns]

        def build(alloc):
            return load_npz(src, num_person, max_frames, limit=limit, alloc=alloc,
                            benchmark=dataset.benchmark, split=dataset.split,
                            num_classes=int(dataset.num_classes or 0), window=window)
    else:
        missing = read_missing_list(dataset.missing_list)
        raw_dir = resolve_raw_dir(dataset, data_root)
        files = list_skeleton_files(raw_dir)
        listing = raw_listing(raw_dir, files, missing)

        def build(alloc):
            return build_arrays(raw_dir, dataset.benchmark, dataset.split,
                                prep, limit=limit, workers=workers, progress=progress,
                                alloc=alloc, missing=missing)

    key = cache_key(dataset, prep, listing)
    path = cache_dir(dataset, prep, data_root, key)

    def named_build(alloc):
        train, test, summary = build(alloc)
        summary.update(dataset=dataset.name, preprocessing=prep.name,
                       cache_key=key)
        return train, test, summary

    if path.is_dir() and not os.access(path.parent, os.W_OK):  # a read-only shared cache
        train, test, summary = _read_cache(path)
        return train, test, dict(summary, cache=str(path), cached=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with held(cache_lock_path(path), discard_on_error=True):
        remove_cache_leftovers(path.parent, own=path.name)
        if path.is_dir():
            try:
                train, test, summary = _read_cache(path)
                return train, test, dict(summary, cache=str(path), cached=True)
            except (OSError, ValueError, KeyError):
                shutil.rmtree(path, ignore_errors=True)  # unreadable cache: rebuild
        _build_cache(path, named_build)
    train, test, summary = _read_cache(path)
    return train, test, dict(summary, cache=str(path), cached=False)


def load_data(dataset: DatasetConfig | Mapping[str, Any],
              prep: PreprocessingConfig | Mapping[str, Any], data_root: str,
              seed: int) -> DataBundle:
    """Datasets for a run. ``dataset``/``prep``: the config dataclasses, OmegaConf nodes (a
    run's ``cfg.dataset``) or dicts of their fields (a checkpoint's config)."""
    # deferred: SkeletonDataset imports torch (~1.6 s), which preprocessing never needs
    from .dataset import SkeletonDataset

    dataset, prep = dataset_config(dataset), preprocessing_config(prep)
    train, test, summary = load_arrays(dataset, prep, data_root)
    train, val, carved = split_validation(train, test.names, subjects=dataset.val_subjects,
                                          fraction=dataset.val_fraction)
    if carved is not None:
        summary = dict(summary, validation=carved)
    num_classes = int(dataset.num_classes or 0) or int(summary["num_classes"])
    top = int(max(train.y.max(), test.y.max()))
    if top >= num_classes:
        raise DataError(
            f"label {top} does not fit dataset.num_classes={num_classes}; set "
            "dataset.num_classes=0 to take it from the data"
        )
    window = int(prep.window)
    sampling = str(prep.sampling)
    make = lambda arrays, is_train, p: SkeletonDataset(  # noqa: E731
        arrays, window, sampling, is_train, list(p), seed
    )
    return DataBundle(
        train=make(train, True, prep.p_interval_train),
        test=make(test, False, prep.p_interval_test),
        num_classes=num_classes,
        num_person=int(train.x.shape[-1]),
        summary=summary,
        val=make(val, False, prep.p_interval_test) if val is not None else None,
    )


__all__ = ["DataBundle", "DataError", "cache_dir", "cache_key", "dataset_config", "load_arrays",
           "load_data", "preprocessing_config", "raw_listing", "resolve_raw_dir",
           "stored_frames_key", "synthetic_config"]
