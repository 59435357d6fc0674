"""Input streams of (N, C, T, V, M) skeleton tensors: joint, bone, velocity, bone velocity."""

from __future__ import annotations

import torch

# NTU RGB+D bone pairs, 1-based (child, parent); joint 21 (spine centre) is the root.
BONE_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
)
STREAMS = ("joint", "bone", "velocity", "bone_velocity")

# parent index (0-based) of every joint; the root (21) is its own parent -> zero bone
_PARENT = list(range(25))
for _child, _parent in BONE_PAIRS:
    _PARENT[_child - 1] = _parent - 1
PARENT: tuple[int, ...] = tuple(_PARENT)


def _bone(x: torch.Tensor) -> torch.Tensor:
    idx = torch.tensor(PARENT, device=x.device)
    return x - x.index_select(3, idx)


def _velocity(x: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(x)
    out[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    return out


def to_stream(x: torch.Tensor, stream: str) -> torch.Tensor:
    """Convert joint coordinates ``x`` (N, C, T, V, M) to ``stream`` on x's device."""
    if stream == "joint":
        return x
    if stream == "bone":
        return _bone(x)
    if stream == "velocity":
        return _velocity(x)
    if stream == "bone_velocity":
        return _velocity(_bone(x))
    raise ValueError(f"unknown stream {stream!r}; expected one of {', '.join(STREAMS)}")
