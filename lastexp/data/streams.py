"""Input streams of (N, C, T, V, M) skeleton tensors: joint, bone, velocity, bone velocity."""

from __future__ import annotations

import torch

from lastexp.ntu_skeleton import BONES_1BASED, PARENT

# The bone stream's pairs, 1-based (child, parent), and each joint's 0-based parent (the root,
# joint 21, is its own: a zero bone), both from the one NTU bone table in lastexp.ntu_skeleton.
BONE_PAIRS: tuple[tuple[int, int], ...] = BONES_1BASED
STREAMS = ("joint", "bone", "velocity", "bone_velocity")
__all__ = ["BONE_PAIRS", "PARENT", "STREAMS", "to_stream"]


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
