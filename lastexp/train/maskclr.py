"""MaskCLR, the self-supervised objective of the training plan §4: masked reconstruction +
InfoNCE (the loop that trains with it: :mod:`lastexp.train.pretrain`).

Each batch gives two views of every sample: random rotation (+-15 deg) and scale (0.9-1.1),
then an independent body-region mask (zeroed joints, 60% on average). The encoder (any model of
the protocol) reads each masked view; its stage-3 features feed

* a linear decoder ``Linear(C_last, 3 * V)`` that reconstructs every frame's joints (features
  averaged over V, predicted at stage-3 frame rate, linearly upsampled to T); the MSE counts
  masked positions only, against the *original* sequence (before rotation and scale), as §4's
  ``MSE(decoder(encoder(masked_x)), original_x)`` says;
* a projector ``Linear(C_last, 128)`` on the pooled features; InfoNCE between the two views.

``L = L_recon + w * L_contrastive`` with ``w = pretrain.contrastive_weight`` (§4: 0.5;
L_recon averaged over both views).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lastexp.data.augment import random_rotate_scale
from lastexp.data.streams import to_stream
from lastexp.models.graph import BODY_REGIONS
from lastexp.train.optim import no_decay_names

STRATEGIES = ("body_region", "random")
LIMBS = ("left_arm", "right_arm", "left_leg", "right_leg")
CONTRASTIVE_WEIGHT = 0.5
PROJ_DIM = 128


def _region_matrix(num_joints: int, device: torch.device) -> torch.Tensor:
    """(R, V) membership of the body regions: the four limbs first, torso/head last."""
    names = [*LIMBS, *(r for r in BODY_REGIONS if r not in LIMBS)]
    mat = torch.zeros(len(names), num_joints, dtype=torch.bool, device=device)
    for i, name in enumerate(names):
        mat[i, list(BODY_REGIONS[name])] = True
    return mat


def region_mask(
    x: torch.Tensor,
    ratio: float,
    generator: torch.Generator | None = None,
    strategy: str = "body_region",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero a set of joints of each sample, the same joints in every frame and person.

    ``body_region``: whole regions, limbs (arms, legs) in random order and torso/head only
    when the limbs are not enough (ratio > 0.8 on NTU). Regions are taken while fewer than
    ``ratio * V`` joints are masked; the region that would cross that count is taken with the
    probability that makes the expected masked share exactly ``ratio`` (whole regions cannot
    hit 60% of 25 joints exactly: the count varies by sample, 15 on average). ``random``:
    ``ceil(ratio * V)`` random joints.
    x: (N, C, T, V, M) -> (masked x, mask (N, T, V) bool, True = masked).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"pretrain.mask_strategy={strategy!r} is not one of "
                         f"{', '.join(STRATEGIES)}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"pretrain.mask_ratio={ratio} must lie in [0, 1]")
    n, _, t, v, _ = x.shape
    dev = x.device
    target = ratio * v  # joints to mask, in expectation
    if strategy == "random":
        keys = torch.rand(n, v, generator=generator, device=dev)
        rank = keys.argsort(dim=1).argsort(dim=1)
        joints = rank < math.ceil(target - 1e-9)  # (N, V)
    else:
        regions = _region_matrix(v, dev)  # (R, V)
        r = regions.shape[0]
        keys = torch.rand(n, r, generator=generator, device=dev)
        keys[:, len(LIMBS):] += 1.0  # torso/head after every limb
        order = keys.argsort(dim=1)  # (N, R): regions in masking order
        sizes = regions.sum(1)[order]  # (N, R)
        before = sizes.cumsum(1) - sizes  # joints masked before taking each region
        # P(take) = (target - before) / size, clamped: 1 below the target, 0 beyond it, and for
        # the one region that crosses it the share that makes the expectation exact
        p_take = ((target - before) / sizes).clamp(0.0, 1.0)
        take_sorted = torch.rand(n, 1, generator=generator, device=dev) < p_take
        take = torch.zeros_like(take_sorted).scatter(1, order, take_sorted)  # (N, R)
        joints = (take.float() @ regions.float()) > 0  # (N, V)
    mask = joints[:, None, :].expand(n, t, v)  # (N, T, V)
    keep = (~mask).to(x.dtype)[:, None, :, :, None]  # (N, 1, T, V, 1)
    return x * keep, mask


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: sample i of view 1 must pick sample i of view 2 among the batch
    (cosine similarity / temperature), and vice versa; the two cross-entropies averaged."""
    a = F.normalize(z1.float(), dim=1)
    b = F.normalize(z2.float(), dim=1)
    logits = a @ b.t() / temperature  # (N, N)
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over masked positions only. pred/target (N, C, T, V, M); mask (N, T, V) bool."""
    w = mask[:, None, :, :, None].to(pred.dtype).expand_as(pred)
    denom = w.sum().clamp(min=1.0)
    return ((pred.float() - target.float()) ** 2 * w).sum() / denom


class MaskCLR(nn.Module):
    """Encoder + reconstruction decoder + contrastive projector (both heads are discarded)."""

    def __init__(
        self,
        encoder: nn.Module,
        *,
        in_channels: int = 3,
        num_joints: int = 25,
        mask_ratio: float = 0.6,
        temperature: float = 0.07,
        strategy: str = "body_region",
        contrastive_weight: float = CONTRASTIVE_WEIGHT,
        proj_dim: int = PROJ_DIM,
        max_deg: float = 15.0,
        scale: tuple[float, float] = (0.9, 1.1),
    ) -> None:
        super().__init__()
        c_last = int(encoder.stage_channels[-1])
        self.encoder = encoder
        self.decoder = nn.Linear(c_last, in_channels * num_joints)
        self.projector = nn.Linear(c_last, proj_dim)
        self.in_channels, self.num_joints = in_channels, num_joints
        self.mask_ratio, self.temperature, self.strategy = mask_ratio, temperature, strategy
        self.max_deg, self.scale = max_deg, scale
        self.contrastive_weight = contrastive_weight

    def no_weight_decay(self) -> set[str]:
        """The encoder's own exclusions (structural parameters), under this module's names."""
        return {f"encoder.{name}" for name in no_decay_names(self.encoder)}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, T, V, M) -> per-frame features (N*M, T3, C_last), pooled (N, C_last)."""
        m = x.shape[-1]
        _, feats = self.encoder(x, return_features=True)
        f = feats["stages"][-1]  # (N*M, C_last, T3, V)
        head = getattr(self.encoder, "head", None)
        if head is not None and hasattr(head, "pool"):
            pooled = head.pool(f, m)  # (N, C_last)
        else:
            pooled = f.mean(dim=(2, 3)).view(-1, m, f.shape[1]).mean(1)
        return f.mean(dim=3).transpose(1, 2), pooled

    def reconstruct(self, frames: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Per-frame features (N*M, T3, C) -> joints (N, C_in, T, V, M)."""
        n, c, t, v, m = shape
        out = self.decoder(frames)  # (N*M, T3, C_in*V)
        out = out.view(n * m, -1, c, v).permute(0, 2, 1, 3)  # (N*M, C_in, T3, V)
        out = F.interpolate(out, size=(t, v), mode="bilinear", align_corners=False)
        return out.view(n, m, c, t, v).permute(0, 2, 3, 4, 1)  # (N, C_in, T, V, M)

    def view_loss(self, view: torch.Tensor, original: torch.Tensor,
                  generator: torch.Generator | None):
        """Mask ``view`` (an augmented copy), encode it, and reconstruct ``original`` (the
        sequence before augmentation) at the masked positions."""
        masked, mask = region_mask(view, self.mask_ratio, generator, self.strategy)
        frames, pooled = self.encode(masked)
        recon = masked_mse(self.reconstruct(frames, view.shape), original, mask)
        return recon, self.projector(pooled)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, stream: str = "joint"
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss on a batch of joint coordinates x (N, C, T, V, M) and its parts."""
        gen = generator
        if gen is None:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(int(torch.randint(0, 2**62, (1,))))
        views = [
            to_stream(random_rotate_scale(x, gen, max_deg=self.max_deg, scale=self.scale), stream)
            for _ in range(2)
        ]
        original = to_stream(x, stream)
        (r1, z1), (r2, z2) = (self.view_loss(v, original, gen) for v in views)
        recon = 0.5 * (r1 + r2)
        contrast = info_nce(z1, z2, self.temperature)
        loss = recon + self.contrastive_weight * contrast
        return loss, {"recon": float(recon.detach()), "contrastive": float(contrast.detach())}



__all__ = [
    "CONTRASTIVE_WEIGHT",
    "MaskCLR",
    "info_nce",
    "masked_mse",
    "region_mask",
]
