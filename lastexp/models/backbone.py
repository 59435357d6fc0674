"""What every family shares, written once: the protocol base class (:class:`SkeletonNet`), its
flags (:class:`SkeletonFlags`), the stem, the stage loop (:func:`build_stages`), the
graph-conv -> TCN residual unit (:class:`GraphTCNBlock`) and the weight-decay rule.

A family is a :class:`SkeletonNet` subclass with a ``Flags`` dataclass (a subclass of
:class:`SkeletonFlags`) that declares the flags it reads, and a ``make_stages`` method (a block
factory for :func:`build_stages`); the registry (``lastexp.models``) learns a family's flags
from ``Flags``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .blocks import DropPath, GatedPoolHead, IBHead
from .graph import NUM_JOINTS, spatial_adjacency


@dataclass(frozen=True)
class SkeletonFlags:
    """The flags every family reads; a family's ``Flags`` subclass adds its own components."""

    ib_head: bool = False  # InfoGCN's information-bottleneck latent before the classifier


def scale_width(channels: int, width_mult: float) -> int:
    """Scale a stage width, rounded to a multiple of 4 (the TCN has 4 branches), at least 8."""
    return max(8, int(round(channels * width_mult / 4)) * 4)


def check_stages(channels: Sequence[int], blocks: Sequence[int]) -> None:
    if len(channels) != 3 or len(blocks) != 3 or min(blocks) < 1:
        raise ValueError("channels and blocks need one entry per stage (3), blocks >= 1; got "
                         f"channels={tuple(channels)}, blocks={tuple(blocks)}")


def ntu_adjacency(family: str, num_joints: int) -> torch.Tensor:
    """The NTU skeleton's (K, V, V) spatial partition, for the families built on that graph."""
    if num_joints != NUM_JOINTS:
        raise ValueError(f"{family} has the NTU {NUM_JOINTS}-joint graph only, got {num_joints}")
    return spatial_adjacency(num_joints)


def block_rates(drop_path_rate: float, blocks: Sequence[int]) -> list[float]:
    """DropPath rate of every block, rising linearly from 0 to ``drop_path_rate``."""
    total = sum(blocks)
    return [drop_path_rate * i / max(total - 1, 1) for i in range(total)]


def stem(in_channels: int, channels: int) -> nn.Sequential:
    """The 1x1 conv -> BN -> ReLU that lifts the joint coordinates to the first stage's width."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
    )


# (in_channels, out_channels, stride, stage, block index over all stages) -> one block
BlockFactory = Callable[[int, int, int, int, int], nn.Module]
# (stage, channels) -> the layers appended after the stage's blocks (attentions, gates)
StageTail = Callable[[int, int], list[nn.Module]]


def build_stages(
    c0: int, stage_channels: Sequence[int], blocks: Sequence[int], block: BlockFactory,
    tail: StageTail | None = None,
) -> nn.ModuleList:
    """The stage loop: ``blocks[s]`` blocks per stage (temporal stride 2 entering stages 2 and
    3), then the stage's ``tail`` layers, each stage one ``nn.Sequential``."""
    stages = nn.ModuleList()
    c_in, i = c0, 0
    for s, (c_out, depth) in enumerate(zip(stage_channels, blocks, strict=True)):
        layers: list[nn.Module] = []
        for b in range(depth):
            layers.append(block(c_in, c_out, 2 if (s > 0 and b == 0) else 1, s, i))
            c_in, i = c_out, i + 1
        layers.extend(tail(s, c_out) if tail is not None else [])
        stages.append(nn.Sequential(*layers))
    return stages


class GraphTCNBlock(nn.Module):
    """One graph conv -> temporal conv unit (-> an optional gate ``freq``), a (strided) residual
    around all: y = ReLU(DropPath(freq(TCN(GCN(x)))) + res(x)).

    The caller builds ``gcn``, ``tcn`` and ``freq`` (in that order: they draw their initial
    weights from the global RNG); the residual is a strided 1x1 conv + BN where the shape
    changes, else the identity.
    """

    def __init__(
        self, gcn: nn.Module, tcn: nn.Module, in_channels: int, out_channels: int, stride: int,
        drop_path: float, freq: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.gcn, self.tcn = gcn, tcn
        self.freq = freq
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
        y = self.tcn(self.gcn(x))
        if self.freq is not None:
            y = self.freq(y)
        return torch.relu(self.drop_path(y) + self.residual(x))


class SkeletonNet(nn.Module):
    """The model protocol (see ``lastexp.models``) every family shares: input BN and person
    folding, stem -> stages, gated pooling head, optional IB head, weight-decay names.

    ``forward(x)`` takes (N, C, T, V, M) and returns logits (N, num_classes). A family sets
    ``Flags`` (the flags it reads), its default ``CHANNELS`` / ``BLOCKS`` and implements
    :meth:`make_stages`; the constructor, which every family shares, does the rest.
    """

    Flags: ClassVar[type[SkeletonFlags]] = SkeletonFlags
    CHANNELS: ClassVar[tuple[int, int, int]]  # stage widths at width_mult 1
    BLOCKS: ClassVar[tuple[int, int, int]]  # blocks per stage
    IB_DIM: ClassVar[int | None] = None  # the IB latent's width at width_mult 1 (None: C_last)
    # LAST-E builds its head before its stages: the initial weights follow the RNG's order
    HEAD_FIRST: ClassVar[bool] = False
    num_classes: int
    num_person: int
    num_joints: int
    stage_channels: tuple[int, ...]

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        num_person: int = 1,
        num_joints: int = NUM_JOINTS,
        channels: Sequence[int] | None = None,
        blocks: Sequence[int] | None = None,
        width_mult: float = 1.0,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        **flags: Any,
    ) -> None:
        super().__init__()
        f = self.Flags(**flags)
        channels = self.CHANNELS if channels is None else tuple(channels)
        blocks = self.BLOCKS if blocks is None else tuple(blocks)
        check_stages(channels, blocks)
        self.stage_channels = tuple(scale_width(c, width_mult) for c in channels)
        ib_dim = None if self.IB_DIM is None else scale_width(self.IB_DIM, width_mult)

        def head() -> None:
            self._init_io(num_classes, in_channels, num_person, num_joints, dropout, f.ib_head,
                          ib_dim)

        if self.HEAD_FIRST:
            head()
        self.stem = stem(in_channels, self.stage_channels[0])
        self.stages = self.make_stages(f, num_joints, blocks, drop_path_rate)
        if not self.HEAD_FIRST:
            head()

    def make_stages(self, flags: Any, num_joints: int, blocks: tuple[int, ...],
                     drop_path_rate: float) -> nn.ModuleList:
        """The family's stages (:func:`build_stages`), after ``stem`` exists; ``flags`` is the
        family's ``Flags``."""
        raise NotImplementedError

    def _init_io(
        self,
        num_classes: int,
        in_channels: int,
        num_person: int,
        num_joints: int,
        dropout: float,
        ib_head: bool,
        ib_dim: int | None = None,
    ) -> None:
        """``ib_dim``: width of the IB latent z that the classifier reads (None: C_last)."""
        self.num_classes, self.num_person, self.num_joints = num_classes, num_person, num_joints
        self.data_bn = nn.BatchNorm1d(num_person * num_joints * in_channels)
        c_last = self.stage_channels[-1]
        self.ib = IBHead(c_last, num_classes, latent_dim=ib_dim) if ib_head else None
        z_dim = self.ib.latent_dim if self.ib is not None else c_last
        self.head = GatedPoolHead(z_dim, num_classes, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """What the family adds to the stem's output before the stages (default: nothing)."""
        return x

    def backbone(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N*M, C, T, V) -> the 3 stage outputs (N*M, C_s, T_s, V)."""
        x = self.embed(self.stem(x))  # (N*M, C0, T, V)
        stages = []
        for stage in self.stages:
            x = stage(x)  # (N*M, C_s, T_s, V)
            stages.append(x)
        return stages

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
        stages = self.backbone(x)  # 3 x (N*M, C_s, T_s, V)
        pooled = self.head.pool(stages[-1], m)  # (N, C)
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

    def train_only_parameters(self) -> list[str]:
        """Parameters that only training reads (the IB head's variance branch): ``params``
        in metrics.json counts what inference uses, as the training plan's tables do."""
        if self.ib is None:
            return []
        return [f"ib.{name}" for name in self.ib.train_only_parameters()]

    def no_weight_decay(self) -> set[str]:
        """Names of parameters kept out of weight decay (:func:`no_weight_decay_names`)."""
        return no_weight_decay_names(self)


# The training recipe's structural parameters, free to move away from their initial value (no
# weight decay): the ReZero / subset-blend gates, LAST-v2's adaptive adjacency, the head's pool
# blend and the learnable edge weights (the prototype graph's included). See
# :func:`no_weight_decay_names`, the one rule of the weight-decay exclusions.
NO_DECAY_PARAMS = frozenset({"alpha", "A_learned", "pool_gate", "edge", "proto_edge"})
# Norm layers: weights and biases without weight decay (BatchNorm, InstanceNorm, LayerNorm, ...).
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def no_weight_decay_names(module: nn.Module) -> set[str]:
    """The training recipe's weight-decay exclusions, the one rule lastexp applies (to models,
    to a distillation projector, to MaskCLR's decoder and projector): every bias, the parameters
    of norm layers, the structural parameters of :data:`NO_DECAY_PARAMS`, and the parameters a
    layer names in its ``NO_DECAY`` class attribute (the zero-initialised ``gate`` weights of
    the frequency gates). Names as ``module.named_parameters()`` gives them."""
    names = set()
    for mod_name, sub in module.named_modules():
        for p_name, _ in sub.named_parameters(recurse=False):
            if (
                p_name == "bias"
                or p_name in NO_DECAY_PARAMS
                or isinstance(sub, NORM_TYPES)
                or p_name in getattr(sub, "NO_DECAY", ())
            ):
                names.add(f"{mod_name}.{p_name}" if mod_name else p_name)
    return names
