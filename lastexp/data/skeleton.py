"""Fast parser for the raw NTU RGB+D ``.skeleton`` text format, and actor selection.

Format (whitespace separated, CRLF or LF)::

    <frame count>
    per frame:  <body count>
                per body: <10 body-info fields, the first a (long) integer body ID>
                          <joint count = 25>
                          25 x <x y z depthX depthY colorX colorY oW oX oY oZ trackingState>

The whole file is tokenised once and converted to float64 in a single numpy call; the
structure is then walked per frame/body with index arithmetic (no per-joint Python work).
numpy only: this module must not import torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUM_JOINTS = 25
BODY_INFO_FIELDS = 10
JOINT_FIELDS = 12

# CTR-GCN get_raw_denoised_data thresholds
NOISE_LEN_THRES = 11  # bodies tracked for fewer frames are noise
NOISE_SPR_THRES1 = 0.8  # x-spread > 0.8 * y-spread on a frame marks it noisy
NOISE_SPR_THRES2 = 0.69754  # ... and a body noisy on more than this ratio of frames is dropped


class SkeletonFormatError(ValueError):
    """A truncated, garbled or inconsistent ``.skeleton`` file; ``reason`` is short and human."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_NAME_RE = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")


@dataclass(frozen=True)
class NTUName:
    setup: int
    camera: int
    subject: int
    replication: int
    action: int  # 1-based, as in the file name

    @property
    def label(self) -> int:
        return self.action - 1

    @property
    def stem(self) -> str:
        return (
            f"S{self.setup:03d}C{self.camera:03d}P{self.subject:03d}"
            f"R{self.replication:03d}A{self.action:03d}"
        )


def parse_ntu_name(stem: str) -> NTUName:
    """``SsssCcccPpppRrrrAaaa`` (with or without ``.skeleton``) -> :class:`NTUName`."""
    stem = Path(stem).name
    if stem.endswith(".skeleton"):
        stem = stem[: -len(".skeleton")]
    m = _NAME_RE.match(stem)
    if not m:
        raise ValueError(f"{stem!r} is not an NTU name (SsssCcccPpppRrrrAaaa)")
    s, c, p, r, a = (int(g) for g in m.groups())
    return NTUName(setup=s, camera=c, subject=p, replication=r, action=a)


def _to_float(tokens: list[bytes]) -> np.ndarray:
    try:
        return np.array(tokens, dtype=np.float64)
    except (ValueError, TypeError):
        for i, tok in enumerate(tokens):
            try:
                float(tok)
            except ValueError:
                shown = tok[:20].decode("latin-1")
                raise SkeletonFormatError(
                    f"non-numeric token {shown!r} (token {i + 1})"
                ) from None
        raise SkeletonFormatError("non-numeric token") from None


def _as_count(value: float, what: str) -> int:
    if not np.isfinite(value) or value != int(value) or value < 0:
        raise SkeletonFormatError(f"bad {what} {value!r}")
    return int(value)


def parse_skeleton_bytes(data: bytes) -> dict:
    """Parse the content of a ``.skeleton`` file (see :func:`parse_skeleton`)."""
    tokens = data.split()
    if not tokens:
        raise SkeletonFormatError("empty file")
    vals = _to_float(tokens)
    n = len(vals)
    num_frames = _as_count(vals[0], "frame count")
    pos = 1
    body_frames: dict[str, list[int]] = {}
    body_starts: dict[str, list[int]] = {}
    body_len = BODY_INFO_FIELDS + 1 + NUM_JOINTS * JOINT_FIELDS
    for f in range(num_frames):
        if pos >= n:
            raise SkeletonFormatError(f"truncated at frame {f + 1} of {num_frames}")
        nb = _as_count(vals[pos], f"body count at frame {f + 1}")
        if nb > 16:
            raise SkeletonFormatError(f"implausible body count {nb} at frame {f + 1}")
        pos += 1
        for _ in range(nb):
            if pos + BODY_INFO_FIELDS >= n:
                raise SkeletonFormatError(f"truncated at frame {f + 1} of {num_frames}")
            nj = vals[pos + BODY_INFO_FIELDS]
            if nj != NUM_JOINTS:
                shown = int(nj) if np.isfinite(nj) and nj == int(nj) else nj
                raise SkeletonFormatError(
                    f"joint count {shown} != {NUM_JOINTS} at frame {f + 1}"
                )
            if pos + body_len > n:
                raise SkeletonFormatError(f"truncated at frame {f + 1} of {num_frames}")
            bid = tokens[pos].decode("latin-1")
            body_frames.setdefault(bid, []).append(f)
            body_starts.setdefault(bid, []).append(pos + BODY_INFO_FIELDS + 1)
            pos += body_len
    if pos != n:
        raise SkeletonFormatError(
            f"inconsistent: {n - pos} extra values after the {num_frames} declared frames"
        )
    offs = (np.arange(NUM_JOINTS) * JOINT_FIELDS)[:, None] + np.arange(3)[None, :]
    bodies = {}
    for bid, starts in body_starts.items():
        idx = np.asarray(starts)[:, None, None] + offs[None]
        xyz = vals[idx].astype(np.float32)
        if not np.isfinite(xyz).all():
            raise SkeletonFormatError(f"non-finite coordinate in body {bid}")
        bodies[bid] = (np.asarray(body_frames[bid], dtype=np.int64), xyz)
    return {"num_frames": num_frames, "bodies": bodies}


def parse_skeleton(path: str | Path) -> dict:
    """Parse one ``.skeleton`` file.

    Returns ``{"num_frames": declared frame count, "bodies": {body_id: (frames, xyz)}}``
    with ``frames`` an int64 array of frame indices and ``xyz`` float32 ``(F_b, 25, 3)``.
    Any malformation raises :class:`SkeletonFormatError`.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SkeletonFormatError(f"unreadable: {exc.strerror or exc}") from None
    return parse_skeleton_bytes(data)


def _is_spread_noise(xyz: np.ndarray) -> bool:
    """CTR-GCN denoising_by_spread: x-spread > 0.8 * y-spread on most frames."""
    xs = xyz[:, :, 0].max(1) - xyz[:, :, 0].min(1)
    ys = xyz[:, :, 1].max(1) - xyz[:, :, 1].min(1)
    noisy = xs > NOISE_SPR_THRES1 * ys
    return float(noisy.mean()) > NOISE_SPR_THRES2


def motion_energy(xyz: np.ndarray) -> float:
    """Sum over joints and coordinates of the variance over time (CTR-GCN's motion)."""
    return float(xyz.reshape(len(xyz), -1).astype(np.float64).var(axis=0).sum())


def denoise_bodies(parsed: dict) -> list[str]:
    """Body IDs surviving CTR-GCN-style denoising, ordered by motion energy (largest first)."""
    bodies = parsed["bodies"]
    keep = [
        bid
        for bid, (frames, xyz) in bodies.items()
        if len(frames) >= NOISE_LEN_THRES and not _is_spread_noise(xyz)
    ]
    if not keep and bodies:
        keep = [max(bodies, key=lambda b: len(bodies[b][0]))]
    return sorted(keep, key=lambda b: -motion_energy(bodies[b][1]))


def select_actors(parsed: dict, num_person: int) -> np.ndarray:
    """Denoise and keep the ``num_person`` most active bodies: float32 ``(T, M, 25, 3)``.

    ``T`` is the declared frame count; frames without the body stay zero.
    """
    if not parsed["bodies"]:
        raise SkeletonFormatError("no body in any frame")
    order = denoise_bodies(parsed)[:num_person]
    out = np.zeros((parsed["num_frames"], num_person, NUM_JOINTS, 3), dtype=np.float32)
    for m, bid in enumerate(order):
        frames, xyz = parsed["bodies"][bid]
        out[frames, m] = xyz
    return out
