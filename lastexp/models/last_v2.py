"""LAST-v2 base (the training recipe, ``base``): the older ~9.2M-parameter CTR-GCN-like teacher.

data BN -> 1x1 stem -> 3 stages of [CTR graph conv (adaptive ``A_learned`` + channel-wise
topology refinement) -> MultiScaleTCN] blocks with residuals -> gated pooling head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .blocks import DropPath, MultiScaleTCN, _bn, _conv_init
from .components import BASE_FLAGS, LITE_FLAGS, SkeletonNet
from .graph import NUM_JOINTS, spatial_adjacency
from .last_e import check_flags, scale_width

IGNORED = frozenset({"use_st_att", "num_prototypes"})


class CTRGraphConv(nn.Module):
    """CTR-GCN's graph conv: per subset k, y = (A_learned_k + alpha * R_k(x)) applied to W_k x,
    where R_k is a per-sample, per-channel topology tanh(q_u - k_v) from time-pooled features.

    In causal mode the refinement (a pool over all frames) is skipped; A_learned stays.
    """

    def __init__(
        self, in_channels: int, out_channels: int, A: torch.Tensor, rel_reduction: int = 8
    ) -> None:
        super().__init__()
        k = A.shape[0]
        rel = max(in_channels // rel_reduction, 8)
        self.num_subsets, self.out_channels, self.rel = k, out_channels, rel
        self.A_learned = nn.Parameter(A.clone().float())  # (K, V, V), starts at the skeleton
        self.conv_q = nn.Conv2d(in_channels, k * rel, 1)
        self.conv_k = nn.Conv2d(in_channels, k * rel, 1)
        self.conv_v = nn.Conv2d(in_channels, k * out_channels, 1)
        self.conv_r = nn.Conv2d(k * rel, k * out_channels, 1, groups=k)  # rel -> out, per subset
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = _bn(out_channels, init=1e-6)
        if in_channels == out_channels:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), _bn(out_channels)
            )
        self.causal = False
        _conv_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape  # (N, C_in, T, V)
        k, c = self.num_subsets, self.out_channels
        val = self.conv_v(x).view(n, k, c, t, v)  # (N, K, C, T, V)
        y = torch.einsum("nkctv,kwv->nctw", val, self.A_learned)  # (N, C, T, V)
        if not self.causal:
            xm = x.mean(dim=2, keepdim=True)  # (N, C_in, 1, V)
            q, kk = self.conv_q(xm), self.conv_k(xm)  # (N, K*R, 1, V)
            rel = torch.tanh(q.squeeze(2)[..., :, None] - kk.squeeze(2)[..., None, :])
            refine = self.conv_r(rel).view(n, k, c, v, v)  # (N, K, C, V, V)
            y = y + self.alpha * torch.einsum("nkctv,nkcwv->nctw", val, refine)
        return torch.relu(self.bn(y) + self.residual(x))  # (N, C, T, V)


class V2Block(nn.Module):
    """CTR graph conv -> MultiScaleTCN (kernel 5), a (strided) residual around both."""

    def __init__(
        self, in_channels: int, out_channels: int, A: torch.Tensor, stride: int, drop_path: float
    ) -> None:
        super().__init__()
        self.gcn = CTRGraphConv(in_channels, out_channels, A)
        self.tcn = MultiScaleTCN(out_channels, out_channels, kernel_size=5, stride=stride)
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


class LastV2(SkeletonNet):
    """LAST-v2. ``forward(x)`` takes (N, C, T, V, M) and returns logits (N, num_classes)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        num_person: int = 1,
        num_joints: int = NUM_JOINTS,
        channels: tuple[int, int, int] = (128, 256, 512),
        blocks: tuple[int, int, int] = (4, 4, 5),
        width_mult: float = 1.0,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        ib_head: bool = False,
        **other_flags: Any,
    ) -> None:
        super().__init__()
        check_flags(type(self).__name__, other_flags, BASE_FLAGS | LITE_FLAGS, IGNORED)
        if num_joints != NUM_JOINTS:
            raise ValueError(f"LastV2 has the NTU {NUM_JOINTS}-joint graph only")
        if len(channels) != 3 or len(blocks) != 3 or min(blocks) < 1:
            raise ValueError("channels and blocks need one entry per stage (3), blocks >= 1")
        self.stage_channels = tuple(scale_width(c, width_mult) for c in channels)
        A = spatial_adjacency(num_joints)
        c0 = self.stage_channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c0, 1), nn.BatchNorm2d(c0), nn.ReLU(inplace=True)
        )
        total = sum(blocks)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = nn.ModuleList()
        c_in, i = c0, 0
        for s, (c_out, depth) in enumerate(zip(self.stage_channels, blocks, strict=True)):
            layers = []
            for b in range(depth):
                layers.append(V2Block(c_in, c_out, A, 2 if (s > 0 and b == 0) else 1, rates[i]))
                c_in, i = c_out, i + 1
            self.stages.append(nn.Sequential(*layers))
        self._init_io(num_classes, in_channels, num_person, num_joints, dropout, ib_head)

    def backbone(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (N*M, C0, T, V)
        stages = []
        for stage in self.stages:
            x = stage(x)  # (N*M, C_s, T_s, V)
            stages.append(x)
        return stages


def last_v2_base(**kwargs: Any) -> LastV2:
    """LAST-v2 base, ~9.1M parameters (60 classes); stage channels 128/256/512."""
    return LastV2(**kwargs)
