"""Building blocks shared by the GCN families: graph conv, multi-scale TCN, attention, heads.

Tensors inside a network are laid out ``(N, C, T, V)`` with the persons folded into ``N``
(``N*M`` samples); only the head sees ``M`` again. Parameters that the trainer keeps out of
weight decay are named ``alpha``, ``edge`` or ``pool_gate`` (the rule:
``lastexp.models.backbone.no_weight_decay_names``).

Causal mode (the training plan §8, Idea E): every layer that mixes frames has a ``causal`` attribute
(default False) that the trainer flips per batch (``set_causal``); when True, output frame t
reads input frames <= t only (left padding, cumulative means). By default
(``training.causal_scope=tcn``) only the TCN layers' temporal convolutions and max-pools switch,
as the plan says; ``all`` switches every such layer. Eval-mode BN is per frame; in
train mode BN's batch statistics still pool over time, as in any BN network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _bn(channels: int, init: float = 1.0) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    nn.init.constant_(bn.weight, init)
    nn.init.zeros_(bn.bias)
    return bn


def _conv_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv1d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# What causal training (``training.causal_scope``) makes causal: ``tcn``, the training plan §8's
# "left-only padding in all TCN layers" (their temporal convolutions and max-pools), or ``all``,
# every layer that mixes frames (attention, pooled means, the prototype graph, LAST-v2's
# refinement and the frequency gates too: an option of lastexp).
CAUSAL_SCOPES = ("tcn", "all")


def set_causal(model: nn.Module, causal: bool, scope: str = "tcn") -> int:
    """Switch causal mode on (within ``scope``) or off (everywhere) on every submodule that has a
    ``causal`` attribute; returns how many are now causal (off: how many were switched off)."""
    if scope not in CAUSAL_SCOPES:
        raise ValueError(f"training.causal_scope={scope!r} is not one of "
                         f"{', '.join(CAUSAL_SCOPES)}")
    count = 0
    for m in model.modules():
        if hasattr(m, "causal"):
            m.causal = causal and (scope == "all" or isinstance(m, TCN_LAYERS))
            count += m.causal == causal
    return count


def time_cummean(x: torch.Tensor) -> torch.Tensor:
    """Running mean over dim 2 (time): frame t holds the mean of frames 0..t."""
    t = x.shape[2]
    counts = torch.arange(1, t + 1, device=x.device, dtype=x.dtype)
    return x.cumsum(dim=2) / counts.view(1, 1, t, *([1] * (x.ndim - 3)))


def _time_pad(x: torch.Tensor, total: int, causal: bool, value: float = 0.0) -> torch.Tensor:
    left = total if causal else total // 2
    return F.pad(x, (0, 0, left, total - left), value=value)  # (N, C, T + total, V)


class TemporalConv2d(nn.Conv2d):
    """A (k, 1) convolution over time, padded symmetrically, or on the left only when causal.

    Same parameters either way; in causal mode output frame t reads input frames <= t*stride.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, (kernel_size, 1), (stride, 1), 0, (dilation, 1), groups, bias
        )
        self.causal = False
        self.pad_total = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _time_pad(x, self.pad_total, self.causal)  # (N, C_in, T + pad, V)
        return self._conv_forward(x, self.weight, self.bias)  # (N, C_out, T/stride, V)


class TemporalMaxPool2d(nn.MaxPool2d):
    """A (k, 1) max-pool over time with -inf padding, symmetric or left-only when causal."""

    def __init__(self, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__((kernel_size, 1), (stride, 1))
        self.causal = False
        self.pad_total = kernel_size - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _time_pad(x, self.pad_total, self.causal, value=float("-inf"))  # (N, C, T+pad, V)
        return super().forward(x)  # (N, C, T/stride, V)


# the TCN layers' frame-mixing parts: what ``training.causal_scope=tcn`` makes causal
TCN_LAYERS = (TemporalConv2d, TemporalMaxPool2d)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016, as in timm): drop a residual branch per sample.

    In training, zeroes the branch for a random subset of samples and rescales the rest by 1/keep.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob={drop_prob} must lie in [0, 1)")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # (N, 1, 1, 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class SpatialGCN(nn.Module):
    """ST-GCN spatial-partition graph conv with learnable subset blend and edge importance.

    y = BN(sum_k w_k (A_k * edge_k) x W_k) + res(x), w = K*softmax(alpha); then ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor) -> None:
        super().__init__()
        if A.ndim != 3 or A.shape[1] != A.shape[2]:
            raise ValueError(f"A must be (K, V, V), got {tuple(A.shape)}")
        k, v, _ = A.shape
        self.num_subsets, self.out_channels = k, out_channels
        self.register_buffer("A", A.clone().float())
        self.alpha = nn.Parameter(torch.zeros(k))  # softmax(0)*K = 1: plain sum at init
        self.edge = nn.Parameter(torch.ones(k, v, v))  # multiplies A: starts as the bones
        self.conv = nn.Conv2d(in_channels, out_channels * k, kernel_size=1)  # K 1x1 convs in one
        self.bn = _bn(out_channels, init=1e-6)  # CTR-GCN: GCN branch starts near zero
        if in_channels == out_channels:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), _bn(out_channels)
            )
        _conv_init(self)

    def adjacency(self) -> torch.Tensor:
        """The effective (K, V, V) adjacency, blend weights folded in."""
        w = torch.softmax(self.alpha, dim=0) * self.num_subsets  # (K,)
        return self.A * self.edge * w[:, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C_in, T, V) -> K stacked 1x1 convs (N, K*C, T, V) -> graph product (N, C, T, V)
        y = aggregate(self.conv(x), self.adjacency(), channels_last=_inductor_cpu(x))
        return F.relu(self.bn(y) + self.residual(x))  # (N, C, T, V)


def _inductor_cpu(x: torch.Tensor) -> bool:
    """Whether ``x`` is traced for Inductor on CPU, which keeps convolution outputs channels-last
    (its layout optimisation with mkldnn); exported graphs keep the plain einsum."""
    return (x.device.type == "cpu" and torch.compiler.is_compiling()
            and not torch.compiler.is_exporting())


def aggregate(y: torch.Tensor, a: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """The graph product sum_k y_k A_k^T of the K stacked 1x1-conv outputs: (N, K*C, T, V) and
    (K, W, V) -> (N, C, T, W), i.e. ``einsum("nkctv,kwv->nctw")``.

    ``channels_last``: ``y`` lies in memory as (N, T, V, K, C) (Inductor's layout on CPU); then
    the product is one batched matmul over the N*T frames that reads ``y`` in place, instead of
    einsum's copy to (N, C, T, K, V) (the same sum, reassociated within float rounding).
    """
    n, kc, t, v = y.shape
    k = a.shape[0]
    c = kc // k
    if channels_last:
        z = y.permute(0, 2, 3, 1).reshape(n * t, v * k, c)  # (N*T, V*K, C), a view
        aw = a.permute(1, 2, 0).reshape(1, a.shape[1], v * k)  # (1, W, V*K)
        out = torch.bmm(aw.expand(n * t, -1, -1), z)  # (N*T, W, C); matmul would copy z
        return out.view(n, t, -1, c).permute(0, 3, 1, 2)  # (N, C, T, W)
    return torch.einsum("nkctv,kwv->nctw", y.view(n, k, c, t, v), a)  # (N, C, T, W)


def _reduce(in_channels: int, channels: int) -> list[nn.Module]:
    """The start of a multi-scale TCN branch: 1x1 conv to the branch width, BN, ReLU."""
    return [nn.Conv2d(in_channels, channels, 1), _bn(channels), nn.ReLU(inplace=True)]


class MultiScaleTCN(nn.Module):
    """CTR-GCN's multi-scale temporal conv: dilated temporal convs, a max-pool and a 1x1 branch.

    Each branch maps C_in -> C_out/B channels (stride in time); the outputs are concatenated.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilations: tuple[int, ...] = (1, 2),
    ) -> None:
        super().__init__()
        num_branches = len(dilations) + 2
        if out_channels % num_branches:
            raise ValueError(f"out_channels={out_channels} must be divisible by {num_branches}")
        bc = out_channels // num_branches
        self.branches = nn.ModuleList()
        for d in dilations:
            self.branches.append(nn.Sequential(
                *_reduce(in_channels, bc), TemporalConv2d(bc, bc, kernel_size, stride, d), _bn(bc)))
        self.branches.append(nn.Sequential(*_reduce(in_channels, bc), TemporalMaxPool2d(3, stride),
                                           _bn(bc)))
        self.branches.append(
            nn.Sequential(nn.Conv2d(in_channels, bc, 1, stride=(stride, 1)), _bn(bc))
        )
        _conv_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C_in, T, V) -> (N, C_out, T/stride, V)
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class STJointAtt(nn.Module):
    """EfficientGCN's factorized spatio-temporal joint attention, behind a ReZero-style gate.

    Pools over V and over T, a shared 1x1 conv, two sigmoid gates; y = x + alpha * x*g_t*g_v.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        inner = max(channels // reduction, 4)
        self.fcn = nn.Sequential(nn.Conv2d(channels, inner, 1), _bn(inner), nn.Hardswish())
        self.conv_t = nn.Conv2d(inner, channels, 1)
        self.conv_v = nn.Conv2d(inner, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(1))  # identity at init; learns how much to gate
        self.causal = False  # joint gate from frames <= t (running mean) instead of all frames
        _conv_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, t, v = x.shape  # (N, C, T, V)
        x_t = x.mean(dim=3, keepdim=True)  # (N, C, T, 1)
        if self.causal:
            g_t = torch.sigmoid(self.conv_t(self.fcn(x_t)))  # (N, C, T, 1)
            g_v = torch.sigmoid(self.conv_v(self.fcn(time_cummean(x))))  # (N, C, T, V)
            return x + self.alpha * (x * g_t * g_v)  # (N, C, T, V)
        x_v = x.mean(dim=2, keepdim=True).transpose(2, 3)  # (N, C, V, 1)
        h = self.fcn(torch.cat([x_t, x_v], dim=2))  # (N, C', T+V, 1)
        h_t, h_v = torch.split(h, [t, v], dim=2)
        g_t = torch.sigmoid(self.conv_t(h_t))  # (N, C, T, 1)
        g_v = torch.sigmoid(self.conv_v(h_v.transpose(2, 3)))  # (N, C, 1, V)
        return x + self.alpha * (x * g_t * g_v)  # (N, C, T, V)


class GatedPoolHead(nn.Module):
    """Gated global pooling head: sigmoid(pool_gate) blends average and max pooling.

    Pools (N*M, C, T, V) to (N, C), averaging the M persons, then dropout and a Linear.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool_gate = nn.Parameter(torch.zeros(1))  # sigmoid(0) = 0.5: equal blend
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.02)  # initial loss ~ ln(num_classes)
        nn.init.zeros_(self.fc.bias)

    def pool(self, x: torch.Tensor, num_person: int) -> torch.Tensor:
        nm, c = x.shape[:2]  # (N*M, C, T, V)
        g = torch.sigmoid(self.pool_gate)
        flat = x.flatten(2)  # (N*M, C, T*V)
        pooled = g * flat.mean(dim=2) + (1 - g) * flat.amax(dim=2)  # (N*M, C)
        return pooled.view(nm // num_person, num_person, c).mean(dim=1)  # (N, C)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(z))  # (N, num_classes)

    def forward(self, x: torch.Tensor, num_person: int = 1) -> torch.Tensor:
        return self.classify(self.pool(x, num_person))  # (N, num_classes)


class IBHead(nn.Module):
    """InfoGCN's information-bottleneck latent: z ~ N(mu, exp(logvar)), pulled to class priors.

    Maps the pooled feature (C) to (mu, logvar) of a ``latent_dim``-wide z (default C; InfoGCN
    uses 256), samples z in training (mu in eval); the loss is the L2 between z and the fixed
    orthogonal prior mean of its class plus a small KL term. The classifier reads z.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        prior_gain: float = 3.0,
        seed: int = 0,
        latent_dim: int | None = None,
    ):
        super().__init__()
        self.latent_dim = latent = channels if latent_dim is None else latent_dim
        self.fc_mu = nn.Linear(channels, latent)
        self.fc_logvar = nn.Linear(channels, latent)
        nn.init.zeros_(self.fc_logvar.weight)
        nn.init.constant_(self.fc_logvar.bias, -4.0)  # start nearly deterministic
        gen = torch.Generator().manual_seed(seed)
        rows, cols = num_classes, latent
        q, _ = torch.linalg.qr(torch.randn(max(rows, cols), min(rows, cols), generator=gen))
        prior = q if rows >= cols else q.T  # (num_classes, D), orthonormal rows or columns
        self.register_buffer("z_prior", prior_gain * prior.contiguous())

    def forward(
        self, pooled: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """-> (z, mu, logvar) in training; (mu, mu, None) in eval: inference reads mu only,
        so ``fc_logvar`` is a training-only layer (see :meth:`train_only_parameters`)."""
        mu = self.fc_mu(pooled)  # (N, D)
        if not self.training:
            return mu, mu, None
        logvar = self.fc_logvar(pooled).clamp(-10.0, 10.0)
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar), mu, logvar

    def train_only_parameters(self) -> list[str]:
        return [f"fc_logvar.{name}" for name, _ in self.fc_logvar.named_parameters()]

    def loss(
        self, z: torch.Tensor, logvar: torch.Tensor, y: torch.Tensor, kl_weight: float = 1e-3
    ) -> torch.Tensor:
        l2 = F.mse_loss(z, self.z_prior[y])  # mean over samples and dims
        kl = 0.5 * (logvar.exp() - logvar - 1.0).mean()  # variance term of KL(q || N(prior, I))
        return l2 + kl_weight * kl
