"""LAST-Base (the training plan §2, ablations B0-B14): the ~4.2M-parameter teacher.

data BN -> 1x1 stem -> 3 stages (128/256/384 channels, 2/3/4 blocks, temporal stride 2 entering
stages 2 and 3) of [graph conv -> multi-scale TCN (-> FreqTemporalGate)] blocks with residuals
and DropPath, then per stage the optional attentions (PartitionedAttention, STJointAtt, HBRA)
-> gated pooling head (optionally InfoGCN's IB, 256-d z). B0 = every flag False; each flag adds
one component. At 60 classes B0 has ~3.88M parameters and the full model B7 ~4.65M: both within
15% of the plan's ~4.2M (tests/models/test_zoo.py checks both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .backbone import (
    GraphTCNBlock,
    SkeletonFlags,
    SkeletonNet,
    build_stages,
    ntu_adjacency,
)
from .blocks import MultiScaleTCN, SpatialGCN, STJointAtt
from .components import (
    HBRA,
    ActionPrototypeGraph,
    CrossTemporalGCN,
    FreqTemporalGate,
    PartitionedAttention,
)


@dataclass(frozen=True)
class LastBaseFlags(SkeletonFlags):
    """The flags LAST-Base reads: its components (the training plan §9A, rows B1-B11)."""

    cross_temporal: bool = False  # HI-GCN's cross-temporal graph refinement (B1)
    prototype_graph: bool = False  # Idea B: learned prototype adjacencies (B2)
    num_prototypes: int = 15  # K of the prototype graph
    freq_gate: bool = False  # Idea A: frequency-domain gate after each TCN (B3)
    partitioned_attention: bool = False  # SkateFormer's partition attention per stage (B4)
    hbra: bool = False  # Idea D: hierarchical body-region attention per stage (B5)
    factorized_att: bool = False  # EfficientGCN's ST-joint attention per stage (B11)


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


class LastBase(SkeletonNet):
    """LAST-Base. One unit: graph conv -> MultiScaleTCN (-> FreqTemporalGate), residual
    (:class:`GraphTCNBlock`): y = ReLU(DropPath(Freq(TCN(GCN(x)))) + res(x)); then per stage
    the attentions its flags switch on."""

    Flags = LastBaseFlags
    CHANNELS, BLOCKS = (128, 256, 384), (2, 3, 4)
    IB_DIM = 256  # InfoGCN's 256-d latent z (at width 1)

    def make_stages(self, flags: LastBaseFlags, num_joints: int, blocks: tuple[int, ...],
                    drop_path_rate: float) -> nn.ModuleList:
        f = flags
        A = ntu_adjacency(type(self).__name__, num_joints)
        # DropPath per stage, linearly increasing (the training plan §2: [0.0, 0.1, 0.2] at 0.2)
        stage_rates = [drop_path_rate * s / (len(blocks) - 1) for s in range(len(blocks))]

        def block(c_in: int, c_out: int, stride: int, s: int, i: int) -> nn.Module:
            gcn = RefinedGCN(c_in, c_out, A, f.cross_temporal, f.prototype_graph,
                             f.num_prototypes)
            tcn = MultiScaleTCN(c_out, c_out, kernel_size=5, stride=stride)
            freq = FreqTemporalGate(c_out) if f.freq_gate else nn.Identity()
            return GraphTCNBlock(gcn, tcn, c_in, c_out, stride, stage_rates[s], freq)

        def tail(s: int, c: int) -> list[nn.Module]:  # the per-stage attentions, in this order
            return [
                *([PartitionedAttention(c, num_joints)] if f.partitioned_attention else []),
                *([STJointAtt(c)] if f.factorized_att else []),
                *([HBRA(c, num_joints)] if f.hbra else []),
            ]

        return build_stages(self.stage_channels[0], self.stage_channels, blocks, block, tail)


def last_base(**kwargs: Any) -> LastBase:
    """LAST-Base, ~4.2M parameters (60 classes: B0 ~3.88M, B7 ~4.65M); channels 128/256/384."""
    return LastBase(**kwargs)


__all__ = ["LastBase", "LastBaseFlags", "last_base"]
