"""LAST-E v3: an efficient GCN for skeleton action recognition (the training recipe).

data BN -> 1x1 stem -> 3 stages of [SpatialGCN -> MultiScaleTCN] blocks with residuals and
DropPath (temporal stride 2 entering stages 2 and 3), an optional ST-joint attention at the end of
each stage -> gated avg/max pooling head, optionally through InfoGCN's information bottleneck.
Variants are small functions over the one class (timm style).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .blocks import DropPath, MultiScaleTCN, SpatialGCN, STJointAtt
from .components import SkeletonNet
from .graph import NUM_JOINTS, spatial_adjacency

# ModelConfig fields for components that LAST-E does not have: accepted when False (so one
# config schema serves every family), a TypeError when switched on.
FOREIGN_FLAGS = frozenset(
    {
        "cross_temporal",
        "prototype_graph",
        "freq_gate",
        "partitioned_attention",
        "hbra",
        "factorized_att",
        "joint_embed",
        "frame_gate",
        "body_region_shift",
        "dct_gate",
    }
)
IGNORED_SETTINGS = frozenset({"num_prototypes"})  # settings of foreign components


def scale_width(channels: int, width_mult: float) -> int:
    """Scale a stage width, rounded to a multiple of 4 (the TCN has 4 branches), at least 8."""
    return max(8, int(round(channels * width_mult / 4)) * 4)


def check_flags(
    family: str,
    flags: dict[str, Any],
    foreign: frozenset[str] = FOREIGN_FLAGS,
    ignored: frozenset[str] = IGNORED_SETTINGS,
) -> None:
    """Reject unknown kwargs and component flags this family cannot honour (``foreign``: flags
    accepted only when False; ``ignored``: settings accepted and unused)."""
    for key, value in flags.items():
        if key in ignored:
            continue
        if key not in foreign:
            raise TypeError(f"{family}() got an unexpected keyword argument {key!r}")
        if value:
            raise TypeError(f"{family} has no {key!r} component; set model.{key}=false")


class Block(nn.Module):
    """One LAST-E unit: SpatialGCN then MultiScaleTCN, a (strided) residual around both.

    y = ReLU(DropPath(TCN(GCN(x))) + res(x)).
    """

    def __init__(
        self, in_channels: int, out_channels: int, A: torch.Tensor, stride: int, drop_path: float
    ) -> None:
        super().__init__()
        self.gcn = SpatialGCN(in_channels, out_channels, A)
        self.tcn = MultiScaleTCN(out_channels, out_channels, stride=stride)
        self.drop_path = DropPath(drop_path)
        if in_channels == out_channels and stride == 1:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C_in, T, V) -> (N, C_out, T/stride, V)
        return torch.relu(self.drop_path(self.tcn(self.gcn(x))) + self.residual(x))


class LastE(SkeletonNet):
    """LAST-E v3. ``forward(x)`` takes (N, C, T, V, M) and returns logits (N, num_classes)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        num_person: int = 1,
        num_joints: int = NUM_JOINTS,
        channels: tuple[int, int, int] = (48, 96, 192),
        blocks: tuple[int, int, int] = (2, 2, 2),
        width_mult: float = 1.0,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        use_st_att: Sequence[bool] = (False, False, True),
        ib_head: bool = False,
        **component_flags: Any,
    ) -> None:
        super().__init__()
        check_flags(type(self).__name__, component_flags)
        if num_joints != NUM_JOINTS:
            raise ValueError(f"LastE has the NTU {NUM_JOINTS}-joint graph only, got {num_joints}")
        if len(channels) != 3 or len(blocks) != 3 or len(use_st_att) != 3:
            raise ValueError("channels, blocks and use_st_att need one entry per stage (3)")
        if min(blocks) < 1:
            raise ValueError(f"every stage needs at least one block, got blocks={blocks}")
        self.stage_channels = tuple(scale_width(c, width_mult) for c in channels)
        A = spatial_adjacency(num_joints)
        # Input BN over (M, V, C), the optional IB head and the gated pooling head.
        self._init_io(num_classes, in_channels, num_person, num_joints, dropout, ib_head)
        c0 = self.stage_channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c0, 1), nn.BatchNorm2d(c0), nn.ReLU(inplace=True)
        )
        total = sum(blocks)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = nn.ModuleList()
        c_in, i = c0, 0
        for s, (c_out, depth) in enumerate(zip(self.stage_channels, blocks, strict=True)):
            layers: list[nn.Module] = []
            for b in range(depth):
                stride = 2 if (s > 0 and b == 0) else 1
                layers.append(Block(c_in, c_out, A, stride, rates[i]))
                c_in, i = c_out, i + 1
            if use_st_att[s]:
                layers.append(STJointAtt(c_out))
            self.stages.append(nn.Sequential(*layers))

    def backbone(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N*M, C, T, V) -> the 3 stage outputs (N*M, C_s, T_s, V)."""
        x = self.stem(x)  # (N*M, C0, T, V)
        stages = []
        for stage in self.stages:
            x = stage(x)  # (N*M, C_s, T_s, V)
            stages.append(x)
        return stages


def _variant(channels: tuple[int, int, int], blocks: tuple[int, int, int], **kwargs: Any) -> LastE:
    return LastE(channels=channels, blocks=blocks, **kwargs)


def last_e_nano(**kwargs: Any) -> LastE:
    """LAST-E v3 nano, ~83K parameters (60 classes)."""
    return _variant((20, 40, 80), (1, 1, 2), **kwargs)


def last_e_small(**kwargs: Any) -> LastE:
    """LAST-E v3 small, ~345K parameters (60 classes)."""
    return _variant((44, 88, 176), (1, 1, 2), **kwargs)


def last_e_base(**kwargs: Any) -> LastE:
    """LAST-E v3 base, ~720K parameters (60 classes)."""
    return _variant((52, 104, 208), (2, 2, 3), **kwargs)


def last_e_large(**kwargs: Any) -> LastE:
    """LAST-E v3 large, ~1.08M parameters (60 classes)."""
    return _variant((64, 128, 256), (2, 2, 3), **kwargs)
