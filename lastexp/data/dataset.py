"""Torch dataset over preprocessed :class:`SplitArrays` with P0 / crop-resize sampling.

A uniform preprocessing stores exactly its ``window`` frames per sample (the default): items are
those frames, unchanged, in training and testing. With ``preprocessing.temporal_jitter=true`` the
cache holds every frame and training draws a random frame in each of the ``window`` segments
every epoch (testing takes the segment centres, the frames the default stores)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .arrays import SplitArrays, uniform_frames

SAMPLINGS = ("uniform", "crop_resize")


def uniform_indices(length: int, window: int, train: bool, rng: np.random.Generator) -> np.ndarray:
    """Split ``[0, length)`` into ``window`` equal segments; train draws a random frame in each
    (temporal jitter), test takes each segment's centre (:func:`uniform_frames`, the frames a
    stored-window cache holds). Short sequences repeat frames."""
    length = max(int(length), 1)
    if not train:
        return uniform_frames(length, window)
    edges = np.linspace(0.0, length, window + 1)
    lo, hi = edges[:-1], edges[1:]
    pos = lo + rng.random(window) * (hi - lo)
    return np.clip(np.floor(pos).astype(np.int64), 0, length - 1)


def _resize(data: np.ndarray, window: int) -> np.ndarray:
    """Linear interpolation along axis 1 to ``window`` frames (align_corners=False)."""
    n = data.shape[1]
    src = (np.arange(window) + 0.5) * (n / window) - 0.5
    src = np.clip(src, 0.0, n - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (src - i0).astype(np.float32)[None, :, None, None]
    return data[:, i0] * (1 - w) + data[:, i1] * w


def valid_crop_resize(
    data: np.ndarray,
    length: int,
    p_interval: list[float],
    window: int,
    train: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """CTR-GCN's valid_crop_resize on ``data`` (C, T, V, M) with ``length`` valid frames."""
    valid = max(int(length), 1)
    if not train or len(p_interval) == 1:
        p = float(p_interval[0])
        bias = int((1 - p) * valid / 2)
        crop = data[:, bias: valid - bias] if valid - 2 * bias >= 1 else data[:, :valid]
    else:
        p = rng.random() * (p_interval[1] - p_interval[0]) + p_interval[0]
        size = int(min(max(int(np.floor(valid * p)), window), valid))
        bias = int(rng.integers(0, valid - size + 1))
        crop = data[:, bias: bias + size]
    return _resize(crop, window)


class SkeletonDataset(Dataset):
    """Items are ``(x float32 (3, window, 25, M), y int64)``; randomness is a pure function of
    ``(seed, epoch, index)``, so it does not depend on worker processes."""

    def __init__(
        self,
        arrays: SplitArrays,
        window: int,
        sampling: str,
        train: bool,
        p_interval: list[float],
        seed: int,
    ):
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling {sampling!r} is not one of {', '.join(SAMPLINGS)}")
        self.arrays = arrays
        self.window = int(window)
        self.sampling = sampling
        self.train = bool(train)
        self.p_interval = [float(p) for p in p_interval]
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.arrays.y)

    @property
    def labels(self):
        return self.arrays.y

    @property
    def names(self) -> list[str]:
        return list(self.arrays.names)

    @property
    def num_person(self) -> int:
        return int(self.arrays.x.shape[-1])

    def __getitem__(self, i: int):
        if i < 0:
            i += len(self)
        length = int(self.arrays.lengths[i])
        data = self.arrays.x[i]
        if self.sampling == "uniform" and length == self.window == data.shape[1]:
            # the stored subsample (uniform_indices would take every frame in order); a copy,
            # never a view of the read-only cache
            out = np.array(data, dtype=np.float32)
        else:
            rng = np.random.default_rng((self.seed, self.epoch, int(i)))
            if self.sampling == "uniform":
                out = data[:, uniform_indices(length, self.window, self.train, rng)]
            else:
                out = valid_crop_resize(data, length, self.p_interval, self.window, self.train,
                                        rng)
        x = torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
        return x, torch.tensor(int(self.arrays.y[i]), dtype=torch.int64)
