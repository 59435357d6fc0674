"""LAST-v2 base (the training recipe, ``base``): the older ~9.2M-parameter CTR-GCN-like teacher.

data BN -> 1x1 stem -> 3 stages of [CTR graph conv (adaptive ``A_learned`` + channel-wise
topology refinement) -> MultiScaleTCN] blocks with residuals -> gated pooling head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .backbone import (
    GraphTCNBlock,
    SkeletonNet,
    block_rates,
    build_stages,
    ntu_adjacency,
)
from .blocks import MultiScaleTCN, _bn, _conv_init


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


class LastV2(SkeletonNet):
    """LAST-v2. One unit: CTR graph conv -> MultiScaleTCN (kernel 5), a (strided) residual
    around both. LAST-v2 has no optional components: its ``Flags`` are the shared ones
    (:class:`SkeletonFlags`, inherited)."""

    CHANNELS, BLOCKS = (128, 256, 512), (4, 4, 5)

    def make_stages(self, flags: Any, num_joints: int, blocks: tuple[int, ...],
                    drop_path_rate: float) -> nn.ModuleList:
        A = ntu_adjacency(type(self).__name__, num_joints)
        rates = block_rates(drop_path_rate, blocks)

        def block(c_in: int, c_out: int, stride: int, s: int, i: int) -> nn.Module:
            gcn = CTRGraphConv(c_in, c_out, A)
            tcn = MultiScaleTCN(c_out, c_out, kernel_size=5, stride=stride)
            return GraphTCNBlock(gcn, tcn, c_in, c_out, stride, rates[i])

        return build_stages(self.stage_channels[0], self.stage_channels, blocks, block)


def last_v2_base(**kwargs: Any) -> LastV2:
    """LAST-v2 base, ~9.1M parameters (60 classes); stage channels 128/256/512."""
    return LastV2(**kwargs)
