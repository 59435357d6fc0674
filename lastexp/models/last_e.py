"""LAST-E v3: an efficient GCN for skeleton action recognition (seed 000).

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

from .blocks import DropPath, GatedPoolHead, IBHead, MultiScaleTCN, SpatialGCN, STJointAtt
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
NO_DECAY_SUFFIXES = ("alpha", "A_learned", "pool_gate", "edge")


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


class LastE(nn.Module):
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
        self.num_classes, self.num_person, self.num_joints = num_classes, num_person, num_joints
        self.stage_channels = tuple(scale_width(c, width_mult) for c in channels)
        A = spatial_adjacency(num_joints)

        self.data_bn = nn.BatchNorm1d(num_person * num_joints * in_channels)
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
        self.ib = IBHead(c_in, num_classes) if ib_head else None
        self.head = GatedPoolHead(c_in, num_classes, dropout)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
        n, c, t, v, m = x.shape  # (N, C, T, V, M)
        if m != self.num_person:
            raise ValueError(
                f"input has M={m} persons, model was built with num_person={self.num_person}"
            )
        x = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)  # (N, M*V*C, T)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)  # (N*M, C, T, V)
        x = self.stem(x)  # (N*M, C0, T, V)
        stages = []
        for stage in self.stages:
            x = stage(x)  # (N*M, C_s, T_s, V)
            stages.append(x)
        pooled = self.head.pool(x, m)  # (N, C)
        feats: dict[str, Any] = {"stages": stages}
        if self.ib is not None:
            z, feats["mu"], feats["logvar"] = self.ib(pooled)  # (N, C) each
        else:
            z = pooled
        feats["z"] = z
        logits = self.head.classify(z)  # (N, num_classes)
        return (logits, feats) if return_features else logits

    def ib_loss(self, feats: dict[str, Any], y: torch.Tensor) -> torch.Tensor:
        """InfoGCN's IB loss on ``forward(x, return_features=True)[1]``; needs ib_head=True."""
        if self.ib is None:
            raise RuntimeError("ib_loss needs the IB head: build the model with model.ib_head=true")
        return self.ib.loss(feats["z"], feats["logvar"], y)

    def no_weight_decay(self) -> set[str]:
        """Names of parameters kept out of weight decay: biases, norms, structural parameters."""
        norm_types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
        names = set()
        for mod_name, module in self.named_modules():
            for p_name, _ in module.named_parameters(recurse=False):
                full = f"{mod_name}.{p_name}" if mod_name else p_name
                if (
                    p_name == "bias"
                    or isinstance(module, norm_types)
                    or full.endswith(NO_DECAY_SUFFIXES)
                ):
                    names.add(full)
        return names


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
