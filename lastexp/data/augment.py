"""Training-time augmentation on (N, 3, T, V, M) skeleton batches."""

from __future__ import annotations

import math

import torch


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """(N, 3) angles (rad) about x, y, z -> (N, 3, 3) rotation Rz @ Ry @ Rx."""
    cx, cy, cz = angles.cos().unbind(1)
    sx, sy, sz = angles.sin().unbind(1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def random_rotate_scale(
    x: torch.Tensor,
    generator: torch.Generator,
    max_deg: float = 15.0,
    scale: tuple[float, float] | list[float] = (0.9, 1.1),
) -> torch.Tensor:
    """One random rotation (about x, y, z, each in [-max_deg, max_deg]) and one isotropic
    scale per sample. Linear, so zero-padded frames stay zero. Draws only from ``generator``,
    which must live on ``x.device``."""
    if x.dim() != 5 or x.shape[1] != 3:
        raise ValueError(f"expected (N, 3, T, V, M), got {tuple(x.shape)}")
    n = x.shape[0]
    u = torch.rand(n, 4, generator=generator, device=x.device, dtype=torch.float32)
    angles = (u[:, :3] * 2 - 1) * math.radians(max_deg)
    lo, hi = float(scale[0]), float(scale[1])
    s = lo + u[:, 3] * (hi - lo)
    mat = (_rotation(angles) * s[:, None, None]).to(x.dtype)
    n_, c, t, v, m = x.shape
    out = torch.bmm(mat, x.reshape(n_, c, t * v * m))
    return out.view(n_, c, t, v, m)
