"""LAST-E v3: an efficient GCN for skeleton action recognition (the training recipe).

data BN -> 1x1 stem -> 3 stages of [SpatialGCN -> MultiScaleTCN] blocks with residuals and
DropPath (temporal stride 2 entering stages 2 and 3), an optional ST-joint attention at the end of
each stage -> gated avg/max pooling head, optionally through InfoGCN's information bottleneck.
Variants are small functions over the one class (timm style).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .backbone import (
    GraphTCNBlock,
    SkeletonFlags,
    SkeletonNet,
    block_rates,
    build_stages,
    check_stages,
    ntu_adjacency,
    scale_width,
    stem,
)
from .blocks import MultiScaleTCN, SpatialGCN, STJointAtt
from .graph import NUM_JOINTS


@dataclass(frozen=True)
class LastEFlags(SkeletonFlags):
    """The flags LAST-E reads (the training recipe): ST-joint attention per stage."""

    use_st_att: tuple[bool, bool, bool] = (False, False, True)


class LastE(SkeletonNet):
    """LAST-E v3. ``forward(x)`` takes (N, C, T, V, M) and returns logits (N, num_classes).

    One unit: SpatialGCN then MultiScaleTCN, a (strided) residual around both (GraphTCNBlock).
    """

    Flags = LastEFlags

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
        **flags: Any,
    ) -> None:
        super().__init__()
        f = LastEFlags(**flags)
        check_stages(channels, blocks)
        if len(f.use_st_att) != 3:
            raise ValueError(f"use_st_att needs one entry per stage (3), got {f.use_st_att}")
        self.stage_channels = tuple(scale_width(c, width_mult) for c in channels)
        A = ntu_adjacency(type(self).__name__, num_joints)
        # Input BN over (M, V, C), the optional IB head and the gated pooling head.
        self._init_io(num_classes, in_channels, num_person, num_joints, dropout, f.ib_head)
        rates = block_rates(drop_path_rate, blocks)

        def block(c_in: int, c_out: int, stride: int, s: int, i: int) -> nn.Module:
            gcn = SpatialGCN(c_in, c_out, A)
            tcn = MultiScaleTCN(c_out, c_out, stride=stride)
            return GraphTCNBlock(gcn, tcn, c_in, c_out, stride, rates[i])

        self.stem = stem(in_channels, self.stage_channels[0])
        self.stages = build_stages(
            self.stage_channels[0], self.stage_channels, blocks, block,
            lambda s, c: [STJointAtt(c)] if f.use_st_att[s] else [],
        )


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
