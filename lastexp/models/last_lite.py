"""LAST-Lite / ShiftFuse-GCN (the training plan §3, ablations L0-L12): the distillation student.

data BN -> 1x1 stem (+ JointEmbed) -> 3 stages of [joint shift -> 1x1 conv -> EpSepTCN] blocks
with residuals (temporal stride 2 entering stages 2 and 3), then per stage the optional
FrozenDCTGate and FrameGate -> gated pooling head. L0 = every flag False (random shift).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .blocks import DropPath, _bn, _conv_init
from .components import (
    BASE_FLAGS,
    BodyRegionShift,
    EpSepTCN,
    FrameGate,
    FrozenDCTGate,
    JointEmbed,
    RandomJointShift,
    SkeletonNet,
)
from .graph import NUM_JOINTS
from .last_e import check_flags, scale_width

IGNORED = frozenset({"use_st_att", "num_prototypes"})


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
    """LAST-Lite. ``forward(x)`` takes (N, C, T, V, M) and returns logits (N, num_classes)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        num_person: int = 1,
        num_joints: int = NUM_JOINTS,
        channels: tuple[int, int, int] = (48, 72, 96),
        blocks: tuple[int, int, int] = (1, 1, 2),
        width_mult: float = 1.0,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        joint_embed: bool = False,
        frame_gate: bool = False,
        body_region_shift: bool = False,
        dct_gate: bool = False,
        ib_head: bool = False,
        **other_flags: Any,
    ) -> None:
        super().__init__()
        check_flags(type(self).__name__, other_flags, BASE_FLAGS, IGNORED)
        if len(channels) != 3 or len(blocks) != 3 or min(blocks) < 1:
            raise ValueError("channels and blocks need one entry per stage (3), blocks >= 1")
        self.stage_channels = tuple(scale_width(c, width_mult) for c in channels)
        c0 = self.stage_channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c0, 1), nn.BatchNorm2d(c0), nn.ReLU(inplace=True)
        )
        self.joint_embed = JointEmbed(c0, num_joints) if joint_embed else nn.Identity()
        total = sum(blocks)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = nn.ModuleList()
        c_in, i = c0, 0
        for s, (c_out, depth) in enumerate(zip(self.stage_channels, blocks, strict=True)):
            layers: list[nn.Module] = []
            for b in range(depth):
                stride = 2 if (s > 0 and b == 0) else 1
                layers.append(
                    ShiftBlock(c_in, c_out, stride, rates[i], body_region_shift, num_joints, i)
                )
                c_in, i = c_out, i + 1
            if dct_gate:
                layers.append(FrozenDCTGate(c_out, num_frames=64 // 2**s))
            if frame_gate:
                layers.append(FrameGate(c_out))
            self.stages.append(nn.Sequential(*layers))
        self._init_io(num_classes, in_channels, num_person, num_joints, dropout, ib_head)

    def backbone(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.joint_embed(self.stem(x))  # (N*M, C0, T, V)
        stages = []
        for stage in self.stages:
            x = stage(x)  # (N*M, C_s, T_s, V)
            stages.append(x)
        return stages


def last_lite_nano(**kwargs: Any) -> LastLite:
    """LAST-Lite nano, ~60K parameters (60 classes); stage channels 28/40/56."""
    return LastLite(channels=(28, 40, 56), blocks=(1, 1, 2), **kwargs)


def last_lite_small(**kwargs: Any) -> LastLite:
    """LAST-Lite small (ShiftFuse-GCN), ~166K parameters (60 classes); 48/72/96."""
    return LastLite(channels=(48, 72, 96), blocks=(1, 1, 2), **kwargs)
