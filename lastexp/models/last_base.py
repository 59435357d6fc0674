"""LAST-Base (the training plan §2, ablations B0-B14): the ~4.2M-parameter teacher.

data BN -> 1x1 stem -> 3 stages (128/256/384 channels, 2/3/4 blocks, temporal stride 2 entering
stages 2 and 3) of [graph conv -> multi-scale TCN (-> FreqTemporalGate)] blocks with residuals
and DropPath, then per stage the optional attentions (PartitionedAttention, STJointAtt, HBRA)
-> gated pooling head (optionally InfoGCN's IB, 256-d z). B0 = every flag False; each flag adds
one component. At 60 classes B0 has ~3.88M parameters and the full model B7 ~4.65M: both within
15% of the plan's ~4.2M (tests/models/test_zoo.py checks both).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .blocks import DropPath, MultiScaleTCN, SpatialGCN, STJointAtt
from .components import (
    BASE_FLAGS,
    HBRA,
    LITE_FLAGS,
    ActionPrototypeGraph,
    CrossTemporalGCN,
    FreqTemporalGate,
    PartitionedAttention,
    SkeletonNet,
)
from .graph import NUM_JOINTS, spatial_adjacency
from .last_e import check_flags, scale_width

IGNORED = frozenset({"use_st_att"})  # LastE's per-stage ST-att switch; here: factorized_att


class RefinedGCN(SpatialGCN):
    """SpatialGCN whose static adjacency may be refined per sample by CrossTemporalGCN and/or
    ActionPrototypeGraph; both read the subset-averaged value features, before BN."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        A: torch.Tensor,
        cross_temporal: bool = False,
        prototype_graph: bool = False,
        num_prototypes: int = 15,
    ) -> None:
        super().__init__(in_channels, out_channels, A)
        self.cross_temporal = CrossTemporalGCN(in_channels) if cross_temporal else None
        self.prototypes = (
            ActionPrototypeGraph(in_channels, A, num_prototypes) if prototype_graph else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape  # (N, C_in, T, V)
        y = self.conv(x).view(n, self.num_subsets, self.out_channels, t, v)  # (N, K, C, T, V)
        out = torch.einsum("nkctv,kwv->nctw", y, self.adjacency())  # (N, C, T, V)
        if self.cross_temporal is not None or self.prototypes is not None:
            value = y.mean(dim=1)  # (N, C, T, V)
            if self.cross_temporal is not None:
                out = out + self.cross_temporal(x, value)
            if self.prototypes is not None:
                out = out + self.prototypes(x, value)
        return torch.relu(self.bn(out) + self.residual(x))  # (N, C, T, V)


class BaseBlock(nn.Module):
    """One LAST-Base unit: graph conv -> MultiScaleTCN (-> FreqTemporalGate), residual.

    y = ReLU(DropPath(Freq(TCN(GCN(x)))) + res(x)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        A: torch.Tensor,
        stride: int,
        drop_path: float,
        cross_temporal: bool,
        prototype_graph: bool,
        num_prototypes: int,
        freq_gate: bool,
    ) -> None:
        super().__init__()
        self.gcn = RefinedGCN(
            in_channels, out_channels, A, cross_temporal, prototype_graph, num_prototypes
        )
        self.tcn = MultiScaleTCN(out_channels, out_channels, kernel_size=5, stride=stride)
        self.freq = FreqTemporalGate(out_channels) if freq_gate else nn.Identity()
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
        return torch.relu(self.drop_path(self.freq(self.tcn(self.gcn(x)))) + self.residual(x))


class LastBase(SkeletonNet):
    """LAST-Base. ``forward(x)`` takes (N, C, T, V, M) and returns logits (N, num_classes)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        num_person: int = 1,
        num_joints: int = NUM_JOINTS,
        channels: tuple[int, int, int] = (128, 256, 384),
        blocks: tuple[int, int, int] = (2, 3, 4),
        width_mult: float = 1.0,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        cross_temporal: bool = False,
        prototype_graph: bool = False,
        num_prototypes: int = 15,
        freq_gate: bool = False,
        partitioned_attention: bool = False,
        hbra: bool = False,
        factorized_att: bool = False,
        ib_head: bool = False,
        ib_dim: int = 256,
        **other_flags: Any,
    ) -> None:
        super().__init__()
        check_flags(type(self).__name__, other_flags, LITE_FLAGS, IGNORED)
        if num_joints != NUM_JOINTS:
            raise ValueError(f"LastBase has the NTU {NUM_JOINTS}-joint graph only")
        if len(channels) != 3 or len(blocks) != 3 or min(blocks) < 1:
            raise ValueError("channels and blocks need one entry per stage (3), blocks >= 1")
        self.stage_channels = tuple(scale_width(c, width_mult) for c in channels)
        A = spatial_adjacency(num_joints)
        c0 = self.stage_channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c0, 1), nn.BatchNorm2d(c0), nn.ReLU(inplace=True)
        )
        # DropPath per stage, linearly increasing (the training plan §2: [0.0, 0.1, 0.2] at 0.2)
        stage_rates = [drop_path_rate * s / (len(blocks) - 1) for s in range(len(blocks))]
        self.stages = nn.ModuleList()
        c_in = c0
        for s, (c_out, depth) in enumerate(zip(self.stage_channels, blocks, strict=True)):
            layers: list[nn.Module] = []
            for b in range(depth):
                stride = 2 if (s > 0 and b == 0) else 1
                layers.append(
                    BaseBlock(
                        c_in,
                        c_out,
                        A,
                        stride,
                        stage_rates[s],
                        cross_temporal,
                        prototype_graph,
                        num_prototypes,
                        freq_gate,
                    )  # fmt: skip
                )
                c_in = c_out
            if partitioned_attention:
                layers.append(PartitionedAttention(c_out, num_joints))
            if factorized_att:
                layers.append(STJointAtt(c_out))
            if hbra:
                layers.append(HBRA(c_out, num_joints))
            self.stages.append(nn.Sequential(*layers))
        ib_dim = scale_width(ib_dim, width_mult)  # InfoGCN's 256-d latent z (at width 1)
        self._init_io(num_classes, in_channels, num_person, num_joints, dropout, ib_head, ib_dim)

    def backbone(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (N*M, C0, T, V)
        stages = []
        for stage in self.stages:
            x = stage(x)  # (N*M, C_s, T_s, V)
            stages.append(x)
        return stages


def last_base(**kwargs: Any) -> LastBase:
    """LAST-Base, ~4.2M parameters (60 classes: B0 ~3.88M, B7 ~4.65M); channels 128/256/384."""
    return LastBase(**kwargs)


__all__ = ["BASE_FLAGS", "LastBase", "last_base"]
