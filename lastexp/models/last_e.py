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
    ntu_adjacency,
)
from .blocks import MultiScaleTCN, SpatialGCN, STJointAtt


@dataclass(frozen=True)
class LastEFlags(SkeletonFlags):
    """The flags LAST-E reads (the training recipe): ST-joint attention per stage."""

    use_st_att: tuple[bool, bool, bool] = (False, False, True)


class LastE(SkeletonNet):
    """LAST-E v3. One unit: SpatialGCN then MultiScaleTCN, a (strided) residual around both
    (:class:`GraphTCNBlock`); an ST-joint attention ends each stage that ``use_st_att`` names."""

    Flags = LastEFlags
    CHANNELS, BLOCKS = (48, 96, 192), (2, 2, 2)
    HEAD_FIRST = True

    def make_stages(self, flags: LastEFlags, num_joints: int, blocks: tuple[int, ...],
                    drop_path_rate: float) -> nn.ModuleList:
        if len(flags.use_st_att) != 3:
            raise ValueError(f"use_st_att needs one entry per stage (3), got {flags.use_st_att}")
        A = ntu_adjacency(type(self).__name__, num_joints)
        rates = block_rates(drop_path_rate, blocks)

        def block(c_in: int, c_out: int, stride: int, s: int, i: int) -> nn.Module:
            gcn = SpatialGCN(c_in, c_out, A)
            tcn = MultiScaleTCN(c_out, c_out, stride=stride)
            return GraphTCNBlock(gcn, tcn, c_in, c_out, stride, rates[i])

        return build_stages(self.stage_channels[0], self.stage_channels, blocks, block,
                            lambda s, c: [STJointAtt(c)] if flags.use_st_att[s] else [])


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
