"""Switchable layers of LAST-Base and LAST-Lite (the training plan §9).

Each component sits behind one flag of its family (the family's ``Flags``). Layers that mix
frames have a ``causal`` attribute (Idea E): when True, output frame t depends on frames <= t
only. Parameters named ``alpha`` / ``edge`` / ``proto_edge`` and the parameters a layer lists in
its ``NO_DECAY`` (the zero-initialised ``gate`` of the frequency gates) stay out of weight decay
(:func:`lastexp.models.backbone.no_weight_decay_names`).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (
    TemporalConv2d,
    _bn,
    _conv_init,
    _time_pad,
    time_cummean,
)
from .graph import BODY_REGIONS, NUM_JOINTS


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) [+ mask]) v. torch's fused kernel in training and inference;
    the same product written out while exporting, since ONNX has no operator for the fused
    one (torch.onnx would refuse the model)."""
    if not (torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool \
            else scores + mask
    return torch.softmax(scores, dim=-1) @ v


def region_index(num_joints: int = NUM_JOINTS) -> torch.Tensor:
    """(V,) body-region id of every joint (graph.BODY_REGIONS order)."""
    idx = torch.full((num_joints,), -1, dtype=torch.long)
    for r, joints in enumerate(BODY_REGIONS.values()):
        idx[list(joints)] = r
    if (idx < 0).any():
        raise ValueError("BODY_REGIONS must cover every joint")
    return idx


def window_mean(x: torch.Tensor, window: int, causal: bool) -> torch.Tensor:
    """Mean over a window of frames (centred, or frames t-w+1..t when causal); edges renormed."""
    if window <= 1:
        return x
    ones = torch.ones_like(x[:1, :1])  # (1, 1, T, V)
    total = F.avg_pool2d(_time_pad(x, window - 1, causal), (window, 1), stride=1)
    count = F.avg_pool2d(_time_pad(ones, window - 1, causal), (window, 1), stride=1)
    return total / count  # (N, C, T, V)


def _heads(channels: int, head_dim: int) -> int:
    heads = max(1, channels // head_dim)
    while channels % heads:
        heads -= 1
    return heads


# --------------------------------------------------------------------------- LAST-Base


class CrossTemporalGCN(nn.Module):
    """HI-GCN's cross-temporal graph: neighbouring frames' context refines the adjacency.

    Window-mean context -> q, k per head (a narrow ``rel_channels`` each: the relation only
    needs a few dimensions) -> a (N, H, T, V, V) adjacency per sample and frame, scaled by a
    zero-init gate, that aggregates the graph conv's value features.
    """

    def __init__(
        self, in_channels: int, num_heads: int = 4, rel_channels: int = 4, window: int = 3
    ) -> None:
        super().__init__()
        self.num_heads, self.rel, self.window = num_heads, rel_channels, window
        self.q = nn.Conv2d(in_channels, num_heads * rel_channels, 1)
        self.k = nn.Conv2d(in_channels, num_heads * rel_channels, 1)
        self.alpha = nn.Parameter(torch.zeros(num_heads))  # refinement off at init (= B0)
        self.causal = False
        _conv_init(self)

    def adjacency(self, x: torch.Tensor) -> torch.Tensor:
        ctx = window_mean(x, self.window, self.causal)  # (N, C_in, T, V)
        n, _, t, v = ctx.shape
        q = self.q(ctx).view(n, self.num_heads, self.rel, t, v)  # (N, H, R, T, V)
        k = self.k(ctx).view(n, self.num_heads, self.rel, t, v)
        a = torch.tanh(torch.einsum("nhrtw,nhrtv->nhtwv", q, k) / math.sqrt(self.rel))
        return a * self.alpha.view(1, -1, 1, 1, 1)  # (N, H, T, V, V)

    def forward(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        a = self.adjacency(x)  # (N, H, T, V, V)
        n, c, t, v = value.shape  # (N, C_out, T, V)
        y = torch.einsum("nhctv,nhtwv->nhctw", value.view(n, self.num_heads, -1, t, v), a)
        return y.reshape(n, c, t, v)  # (N, C_out, T, V)


class ActionPrototypeGraph(nn.Module):
    """Idea B: K learned prototype adjacencies, blended per sample by a softmax over K.

    The weights come from the global descriptor (a running mean over frames when causal).
    """

    def __init__(self, in_channels: int, A: torch.Tensor, num_prototypes: int = 15) -> None:
        super().__init__()
        base = A.float().mean(dim=0)  # (V, V)
        noise = 0.01 * torch.randn(num_prototypes, *base.shape)
        self.proto_edge = nn.Parameter(base.expand(num_prototypes, -1, -1) + noise)  # (K, V, V)
        self.score = nn.Linear(in_channels, num_prototypes)
        self.alpha = nn.Parameter(torch.zeros(1))  # off at init (= B0)
        self.causal = False

    def forward(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        if self.causal:
            desc = time_cummean(x.mean(dim=3)).transpose(1, 2)  # (N, T, C_in)
            w = torch.softmax(self.score(desc), dim=-1)  # (N, T, K)
            a = torch.einsum("ntk,kwv->ntwv", w, self.proto_edge)  # (N, T, V, V)
            return self.alpha * torch.einsum("nctv,ntwv->nctw", value, a)  # (N, C, T, V)
        w = torch.softmax(self.score(x.mean(dim=(2, 3))), dim=-1)  # (N, K)
        a = torch.einsum("nk,kwv->nwv", w, self.proto_edge)  # (N, V, V)
        return self.alpha * torch.einsum("nctv,nwv->nctw", value, a)  # (N, C, T, V)


class FreqTemporalGate(nn.Module):
    """Idea A: rFFT over time, a learned per-channel sigmoid gate per frequency, irFFT back.

    The gate is stored at ``num_bins`` normalised frequencies and resampled to T//2+1; it is
    the identity at init. Causal mode bypasses it (an FFT sees the whole clip).
    """

    NO_DECAY: ClassVar[tuple[str, ...]] = ("gate",)  # zero-init: structural, as alpha is

    def __init__(self, channels: int, num_bins: int = 17) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(channels, num_bins))  # 2*sigmoid(0) = 1
        self.causal = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.causal:
            return x
        t = x.shape[2]  # (N, C, T, V)
        spec = torch.fft.rfft(x.float(), dim=2)  # (N, C, T//2+1, V) complex
        g = 2 * torch.sigmoid(self.gate.float())[None]  # (1, C, B)
        g = F.interpolate(g, size=spec.shape[2], mode="linear", align_corners=True)[0]  # (C, F)
        y = torch.fft.irfft(spec * g[None, :, :, None], n=t, dim=2)  # (N, C, T, V)
        return y.to(x.dtype)


class PartitionedAttention(nn.Module):
    """SkateFormer's partition attention: 4 partition types on a quarter of the inner width each.

    {same body part, other parts} x {near frames (window), far frames (stride T/window)}; MHSA
    inside every partition, concat, 1x1 proj, residual. The qkv / proj inner width is C/4
    (C/16 per type) to keep LAST-Base near its size. Causal mode masks out later frames.
    """

    KINDS = (("near", 0), ("near", 1), ("far", 0), ("far", 1))  # (time, spatial mask index)

    def __init__(
        self, channels: int, num_joints: int = NUM_JOINTS, window: int = 4, head_dim: int = 8
    ) -> None:
        super().__init__()
        self.part = max(channels // 16, 2)  # channels per partition type; inner = C/4
        self.heads = _heads(self.part, head_dim)
        self.window = window
        self.qkv = nn.Conv2d(channels, 3 * 4 * self.part, 1)
        self.proj = nn.Conv2d(4 * self.part, channels, 1)
        self.bn = _bn(channels, init=1e-6)  # branch starts near zero
        region = region_index(num_joints)
        same = region[:, None] == region[None, :]  # (V, V) joints of the same limb
        other = ~same | torch.eye(num_joints, dtype=torch.bool)  # distal joints (+ self)
        self.register_buffer("spatial_masks", torch.stack([same, other]), persistent=False)
        self.causal = False
        _conv_init(self)

    def _group(self, z: torch.Tensor, w: int, far: bool) -> torch.Tensor:
        n, _, tp, v = z.shape  # (N, P, Tp, V)
        h, g = self.heads, tp // w
        if far:  # frames r, r+g, r+2g, ... (t = i*g + r)
            z = z.view(n, h, -1, w, g, v).permute(0, 4, 1, 3, 5, 2)  # (N, G, H, W, V, d)
        else:  # frames of window j: j*w .. j*w + w - 1
            z = z.view(n, h, -1, g, w, v).permute(0, 3, 1, 4, 5, 2)  # (N, G, H, W, V, d)
        return z.reshape(n * g, h, w * v, -1)  # (N*G, H, W*V, d)

    def _ungroup(self, z: torch.Tensor, n: int, w: int, v: int, far: bool) -> torch.Tensor:
        g, h, _, d = z.shape[0] // n, z.shape[1], z.shape[2], z.shape[3]
        z = z.view(n, g, h, w, v, d)
        if far:
            return z.permute(0, 2, 5, 3, 1, 4).reshape(n, h * d, w * g, v)  # (N, P, Tp, V)
        return z.permute(0, 2, 5, 1, 3, 4).reshape(n, h * d, g * w, v)  # (N, P, Tp, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape  # (N, C, T, V)
        w = min(self.window, t)
        tp = -(-t // w) * w
        qkv = self.qkv(x)  # (N, 3*4*P, T, V)
        if tp != t:
            qkv = F.pad(qkv, (0, 0, 0, tp - t))  # (N, 3*4*P, Tp, V)
        qkv = qkv.view(n, 3, 4, self.part, tp, v)
        time_ok = torch.ones(w, w, dtype=torch.bool, device=x.device)
        if self.causal:  # tokens are time-ordered inside every group (near and far)
            time_ok = torch.tril(time_ok)
        outs = []
        for i, (kind, s) in enumerate(self.KINDS):
            far = kind == "far"
            mask = time_ok[:, None, :, None] & self.spatial_masks[s][None, :, None, :]
            mask = mask.reshape(w * v, w * v)  # (W*V, W*V): query (i, v) may read key (j, u)
            q, k, val = (self._group(qkv[:, j, i], w, far) for j in range(3))
            o = attention(q, k, val, mask)  # (N*G, H, W*V, d)
            outs.append(self._ungroup(o, n, w, v, far))
        y = torch.cat(outs, dim=1)[:, :, :t]  # (N, 4P, T, V)
        return x + self.bn(self.proj(y))  # (N, C, T, V)


class HBRA(nn.Module):
    """Idea D, hierarchical body-region attention: joints pooled to the 5 body regions.

    Per frame, MHSA among region tokens (inner width C/8: 5 tokens need few dimensions); the
    result, broadcast back to each region's joints, gates the joint features:
    y = x + alpha * x * sigmoid(proj(att)).
    """

    def __init__(self, channels: int, num_joints: int = NUM_JOINTS, head_dim: int = 16) -> None:
        super().__init__()
        region = region_index(num_joints)
        r = int(region.max()) + 1
        member = F.one_hot(region, r).float()  # (V, R)
        self.register_buffer("member", member, persistent=False)
        self.register_buffer("pool", (member / member.sum(0)).T.contiguous(), persistent=False)
        self.inner = max(4, channels // 8)
        self.heads = _heads(self.inner, head_dim)
        self.region_embed = nn.Parameter(torch.zeros(1, channels, 1, r))
        nn.init.trunc_normal_(self.region_embed, std=0.02)
        self.qkv = nn.Conv2d(channels, 3 * self.inner, 1)
        self.proj = nn.Conv2d(self.inner, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(1))  # ReZero: identity at init
        _conv_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape  # (N, C, T, V)
        reg = torch.einsum("nctv,rv->nctr", x, self.pool) + self.region_embed  # (N, C, T, R)
        r = reg.shape[3]
        qkv = self.qkv(reg).view(n, 3, self.heads, -1, t, r).permute(1, 0, 4, 2, 5, 3)
        o = attention(qkv[0], qkv[1], qkv[2])  # (N, T, H, R, d)
        o = o.permute(0, 2, 4, 1, 3).reshape(n, self.inner, t, r)  # (N, inner, T, R)
        g = torch.sigmoid(self.proj(o))  # (N, C, T, R)
        g = torch.einsum("nctr,vr->nctv", g, self.member)  # (N, C, T, V)
        return x + self.alpha * x * g


# --------------------------------------------------------------------------- LAST-Lite


class RandomJointShift(nn.Module):
    """Shift-GCN's non-local spatial shift: channel c of joint v reads joint (v + s_c) mod V.

    The offsets s_c are fixed, random and seeded (no parameters, no multiply-adds).
    """

    def __init__(self, channels: int, num_joints: int = NUM_JOINTS, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        offsets = torch.randint(0, num_joints, (channels, 1), generator=gen)
        index = (torch.arange(num_joints)[None, :] + offsets) % num_joints  # (C, V)
        self.register_buffer("index", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape  # (N, C, T, V)
        return torch.gather(x, 3, self.index[None, :, None, :].expand(n, c, t, v))


class BodyRegionShift(RandomJointShift):
    """Idea F: a shift that moves channels among the joints of the same body region only.

    Channel c of joint v reads the joint (pos(v) + c) mod |region| places along v's region.
    """

    def __init__(self, channels: int, num_joints: int = NUM_JOINTS, seed: int = 0) -> None:
        nn.Module.__init__(self)
        region = region_index(num_joints)
        index = torch.empty(channels, num_joints, dtype=torch.long)
        for joints in BODY_REGIONS.values():
            members = torch.tensor(joints)
            pos = torch.arange(len(joints))
            for c in range(channels):
                index[c, members] = members[(pos + c) % len(joints)]
        assert (region[index] == region[None, :]).all()
        self.register_buffer("index", index, persistent=False)


class JointEmbed(nn.Module):
    """SGN's joint semantics: a learned embedding of the one-hot joint id, added to features."""

    def __init__(self, channels: int, num_joints: int = NUM_JOINTS) -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.zeros(1, channels, 1, num_joints))
        nn.init.trunc_normal_(self.embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embed  # (N, C, T, V)


def _sinusoid(t: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    pos = torch.arange(t, device=device, dtype=torch.float32)[None]  # (1, T)
    freq = torch.exp(-math.log(100.0) * torch.arange(dim // 2, device=device) / (dim // 2))
    ang = freq[:, None].float() * pos  # (dim/2, T)
    return torch.cat([ang.sin(), ang.cos()]).to(dtype)  # (dim, T)


class FrameGate(nn.Module):
    """SGN's frame dynamics: a per-frame, per-channel gate from the frame-index code and the
    motion x_t - x_{t-1}; causal by construction (reads frames t and t-1 only)."""

    def __init__(self, channels: int, code_dim: int = 8, reduction: int = 4) -> None:
        super().__init__()
        inner = max(channels // reduction, 4)
        self.code_dim = code_dim
        self.fc1 = nn.Conv1d(channels + code_dim, inner, 1)
        self.fc2 = nn.Conv1d(inner, channels, 1)
        nn.init.zeros_(self.fc2.weight)  # 2*sigmoid(0) = 1: identity at init
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, _ = x.shape  # (N, C, T, V)
        pooled = x.mean(dim=3)  # (N, C, T)
        motion = F.pad(pooled[:, :, 1:] - pooled[:, :, :-1], (1, 0))  # (N, C, T), 0 at t=0
        code = _sinusoid(t, self.code_dim, x.device, x.dtype).expand(n, -1, -1)  # (N, D, T)
        h = F.relu(self.fc1(torch.cat([motion, code], dim=1)))  # (N, C', T)
        g = 2 * torch.sigmoid(self.fc2(h))  # (N, C, T)
        return x * g[..., None]  # (N, C, T, V)


def dct_basis(num_frames: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (T, T): coefficients = D @ x, and x = D.T @ coefficients."""
    n = torch.arange(num_frames, dtype=torch.float64)
    d = torch.cos(math.pi / num_frames * (n[None, :] + 0.5) * n[:, None])
    d[0] *= 1 / math.sqrt(2)
    return (d * math.sqrt(2 / num_frames)).float()


class FrozenDCTGate(nn.Module):
    """Idea G: project time onto a frozen DCT-II basis, gate each channel's frequency bands
    (learned sigmoid, identity at init), inverse DCT. Causal mode bypasses it."""

    NO_DECAY: ClassVar[tuple[str, ...]] = ("gate",)  # zero-init: structural, as alpha is

    def __init__(self, channels: int, num_bands: int = 4, num_frames: int = 64) -> None:
        super().__init__()
        self.num_bands = num_bands
        self.register_buffer("basis", dct_basis(num_frames), persistent=False)  # (T, T)
        self.gate = nn.Parameter(torch.zeros(channels, num_bands))
        self.causal = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.causal:
            return x
        t = x.shape[2]  # (N, C, T, V)
        if self.basis.shape[0] != t:  # another clip length: rebuild the frozen basis once
            self.basis = dct_basis(t).to(self.basis.device)
        d = self.basis.to(x.dtype)
        coef = torch.einsum("kt,nctv->nckv", d, x)  # (N, C, K=T, V)
        band = torch.arange(t, device=x.device) * self.num_bands // t  # (K,) band of each freq
        g = 2 * torch.sigmoid(self.gate)[:, band]  # (C, K)
        return torch.einsum("kt,nckv->nctv", d, coef * g[None, :, :, None])  # (N, C, T, V)


class EpSepTCN(nn.Module):
    """EfficientGCN's expanded separable temporal conv: expand 1x1 -> depthwise temporal conv
    (stride, causal-capable) -> pointwise 1x1, BN after each; the caller adds the residual."""

    def __init__(self, channels: int, stride: int = 1, kernel_size: int = 5, expand: int = 2):
        super().__init__()
        inner = channels * expand
        self.net = nn.Sequential(
            nn.Conv2d(channels, inner, 1),
            _bn(inner),
            nn.ReLU(inplace=True),
            TemporalConv2d(inner, inner, kernel_size, stride, groups=inner),
            _bn(inner),
            nn.ReLU(inplace=True),
            nn.Conv2d(inner, channels, 1),
            _bn(channels),
        )
        _conv_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (N, C, T, V) -> (N, C, T/stride, V)
