"""LAST-Lite / ShiftFuse-GCN (the training plan §3, ablations L0-L12): the distillation student.

data BN -> 1x1 stem (+ JointEmbed) -> 3 stages of [joint shift -> 1x1 conv -> EpSepTCN] blocks
with residuals (temporal stride 2 entering stages 2 and 3), then per stage the optional
FrozenDCTGate and FrameGate -> gated pooling head. L0 = every flag False (random shift).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .backbone import (
    SkeletonFlags,
    SkeletonNet,
    block_rates,
    build_stages,
)
from .blocks import DropPath, _bn, _conv_init
from .components import (
    BodyRegionShift,
    EpSepTCN,
    FrameGate,
    FrozenDCTGate,
    JointEmbed,
    RandomJointShift,
)


@dataclass(frozen=True)
class LastLiteFlags(SkeletonFlags):
    """The flags LAST-Lite reads: its components (the training plan §9B, rows L1-L8)."""

    joint_embed: bool = False  # SGN's joint semantics after the stem (L1)
    frame_gate: bool = False  # SGN's frame dynamics gate per stage (L2)
    body_region_shift: bool = False  # Idea F: shift within body regions, not at random (L3)
    dct_gate: bool = False  # Idea G: frozen DCT band gate per stage (L4)


class ShiftBlock(nn.Module):
    """One ShiftFuse unit: spatial shift + 1x1 conv (Shift-GCN), then EpSepTCN, residuals.

    s = ReLU(BN(W shift(x)) + res(x)); y = ReLU(DropPath(EpSep(s)) + res_t(s)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        drop_path: float,
        body_region_shift: bool,
        num_joints: int,
        seed: int,
    ) -> None:
        super().__init__()
        shift = BodyRegionShift if body_region_shift else RandomJointShift
        self.shift = shift(in_channels, num_joints, seed=seed)
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = _bn(out_channels)
        if in_channels == out_channels:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), _bn(out_channels)
            )
        self.tcn = EpSepTCN(out_channels, stride=stride)
        self.res_t: nn.Module = (
            nn.Identity()
            if stride == 1
            else nn.Sequential(
                nn.Conv2d(out_channels, out_channels, 1, stride=(stride, 1)), _bn(out_channels)
            )
        )
        self.drop_path = DropPath(drop_path)
        _conv_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C_in, T, V) -> (N, C_out, T/stride, V)
        s = torch.relu(self.bn(self.conv(self.shift(x))) + self.residual(x))  # (N, C_out, T, V)
        return torch.relu(self.drop_path(self.tcn(s)) + self.res_t(s))


class LastLite(SkeletonNet):
    """LAST-Lite: [joint shift -> 1x1 conv -> EpSepTCN] units (:class:`ShiftBlock`), the joint
    embedding after the stem and per stage the gates its flags switch on."""

    Flags = LastLiteFlags
    CHANNELS, BLOCKS = (48, 72, 96), (1, 1, 2)

    def make_stages(self, flags: LastLiteFlags, num_joints: int, blocks: tuple[int, ...],
                    drop_path_rate: float) -> nn.ModuleList:
        f = flags
        c0 = self.stage_channels[0]
        self.joint_embed = JointEmbed(c0, num_joints) if f.joint_embed else nn.Identity()
        rates = block_rates(drop_path_rate, blocks)

        def block(c_in: int, c_out: int, stride: int, s: int, i: int) -> nn.Module:
            return ShiftBlock(c_in, c_out, stride, rates[i], f.body_region_shift, num_joints, i)

        def tail(s: int, c: int) -> list[nn.Module]:  # the per-stage gates, in this order
            return [
                *([FrozenDCTGate(c, num_frames=64 // 2**s)] if f.dct_gate else []),
                *([FrameGate(c)] if f.frame_gate else []),
            ]

        return build_stages(c0, self.stage_channels, blocks, block, tail)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.joint_embed(x)  # (N*M, C0, T, V)


def last_lite_nano(**kwargs: Any) -> LastLite:
    """LAST-Lite nano, ~60K parameters (60 classes); stage channels 28/40/56."""
    return LastLite(channels=(28, 40, 56), blocks=(1, 1, 2), **kwargs)


def last_lite_small(**kwargs: Any) -> LastLite:
    """LAST-Lite small (ShiftFuse-GCN), ~166K parameters (60 classes); 48/72/96."""
    return LastLite(channels=(48, 72, 96), blocks=(1, 1, 2), **kwargs)
