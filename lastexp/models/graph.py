"""The NTU RGB+D 25-joint skeleton as a graph: spatial-partition adjacency, body regions.

The bones are ``lastexp.ntu_skeleton``'s table (re-exported here as ``BONES_1BASED``/``INWARD``).

Convention: ``A[k, w, v]`` is the weight of input joint ``v`` in output joint ``w`` (output
first), so a graph convolution is ``y[w] = sum_v A[k, w, v] x[v]`` and every non-empty row of a
normalised subset sums to 1. This is the transpose of how ST-GCN / CTR-GCN store ``A`` (they
multiply ``x @ A``); the maths is the same.
"""

from __future__ import annotations

import torch

from lastexp.ntu_skeleton import BONES_1BASED, INWARD, NUM_JOINTS

__all__ = ["A", "BODY_REGIONS", "BONES_1BASED", "INWARD", "NUM_JOINTS", "OUTWARD",
           "edge_matrix", "normalize_rows", "spatial_adjacency"]

OUTWARD: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in INWARD)

# Body regions, 0-based joint indices (for region-wise masking, shifts and pooling).
BODY_REGIONS: dict[str, tuple[int, ...]] = {
    "torso_head": (0, 1, 2, 3, 20),
    "left_arm": (4, 5, 6, 7, 21, 22),
    "right_arm": (8, 9, 10, 11, 23, 24),
    "left_leg": (12, 13, 14, 15),
    "right_leg": (16, 17, 18, 19),
}


def edge_matrix(edges: tuple[tuple[int, int], ...], num_joints: int = NUM_JOINTS) -> torch.Tensor:
    """Binary (V, V) matrix with ``M[a, b] = 1`` for every pair ``(a, b)``: ``a`` reads ``b``."""
    m = torch.zeros(num_joints, num_joints)
    for a, b in edges:
        m[a, b] = 1.0
    return m


def normalize_rows(m: torch.Tensor) -> torch.Tensor:
    """Divide each row by its sum (empty rows stay zero): each joint averages its inputs."""
    deg = m.sum(dim=-1, keepdim=True)
    return torch.where(deg > 0, m / deg.clamp(min=1e-12), torch.zeros_like(m))


def spatial_adjacency(num_joints: int = NUM_JOINTS) -> torch.Tensor:
    """ST-GCN's spatial partition, (3, V, V): identity, normalised inward, normalised outward."""
    eye = torch.eye(num_joints)
    inward = normalize_rows(edge_matrix(INWARD, num_joints))
    outward = normalize_rows(edge_matrix(OUTWARD, num_joints))
    return torch.stack([eye, inward, outward])


A: torch.Tensor = spatial_adjacency()  # (3, 25, 25); clone before modifying
