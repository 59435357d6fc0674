"""Fast parser for the raw NTU RGB+D ``.skeleton`` text format, and actor selection.

Format (whitespace separated, CRLF or LF)::

    <frame count>
    per frame:  <body count>
                per body: <10 body-info fields, the first a (long) integer body ID>
                          <joint count = 25>
                          25 x <x y z depthX depthY colorX colorY oW oX oY oZ trackingState>

Well-formed files take a vectorised path (:func:`_parse_lines`: the frame/body structure is
walked over line offsets, only x, y, z are converted, from integer mantissas, in a handful of
numpy passes over the bytes); anything unusual goes to the token-based reference parser
(:func:`_parse_tokens`), which accepts any whitespace layout and words the error.
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


MISSING_SKELETON = "missing skeleton (no body in any frame)"


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


def _parse_tokens(data: bytes) -> dict:
    """Token-based reference parser: any whitespace layout, precise error messages."""
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


_P10 = 10.0 ** np.arange(23)
_DIGIT_VALUE = np.zeros(256)
_DIGIT_VALUE[48:58] = np.arange(10)
_DIGIT_OR_SIGN = np.zeros(256, dtype=np.uint8)
_DIGIT_OR_SIGN[list(b"0123456789.-")] = 1


def _parse_lines(data: bytes) -> dict | None:
    """Vectorised parser for well-formed, line-structured files (the NTU layout: one record per
    line, single spaces, LF or CRLF). Returns None whenever anything is unusual, so that the
    token-based parser decides (and words the error); when it returns a result, it is exactly
    what :func:`_parse_tokens` returns. Only x, y, z of the joint lines are converted (exactly,
    via integer mantissas); every other value is checked for its characters and counts."""
    b = np.frombuffer(data, dtype=np.uint8)
    n = len(b)
    if n < 2:
        return None
    n_sp = np.count_nonzero(b == 32)
    nlmask = b == 10
    n_nl = np.count_nonzero(nlmask)
    n_cr = np.count_nonzero(b == 13)
    n_minus = np.count_nonzero(b == 45)
    n_low = np.count_nonzero(b < 48)  # separators, '.', '-', '+' and anything else below '0'
    n_high = np.count_nonzero(b > 57)  # above '9': only E and e may appear
    n_plus = 0
    base = n_sp + n_nl + n_cr + n_minus + np.count_nonzero(b == 46)
    if n_low != base:
        n_plus = np.count_nonzero(b == 43)
        if n_low != base + n_plus:
            return None  # other characters: garbage (or a layout for the token parser)
    if n_high and n_high != np.count_nonzero((b == 69) | (b == 101)):
        return None
    n_exp = n_high + n_plus
    nl = np.flatnonzero(nlmask)
    if n_cr and (n_cr != n_nl or not (b[nl - 1] == 13).all()):
        return None
    sp = np.flatnonzero(b == 32)
    if len(sp):
        if sp[0] == 0 or sp[-1] == n - 1:
            return None
        # no leading, trailing or double spaces: a line with k spaces holds k + 1 values
        if ((b[sp - 1] <= 32) | (b[sp + 1] <= 32)).any():
            return None
    if n_minus:
        mp = np.flatnonzero(b == 45)
        if mp[0] == 0 or mp[-1] == n - 1:
            return None
        prev, nxt = b[mp - 1], b[mp + 1]
        ok = ((prev == 32) | (prev == 10)) & (((nxt - 48) < 10) | (nxt == 46))
        if n_exp:
            ok |= (prev == 69) | (prev == 101)
        if not ok.all():
            return None
    cr = 1 if n_cr else 0
    starts = [0] + (nl + 1).tolist()
    ends = (nl - cr).tolist() + [n]
    nlines = len(starts)

    def line(k: int) -> bytes:
        return data[starts[k]: ends[k]]

    try:
        num_frames = int(line(0))
        li = 1
        info_lines: list[int] = []
        body_ids: list[bytes] = []
        body_frame: list[int] = []
        for f in range(num_frames):
            if li >= nlines:
                return None
            nb = int(line(li))
            if nb < 0 or nb > 16 or li + 1 + 27 * nb > nlines:
                return None
            li += 1
            for _ in range(nb):
                if int(line(li + 1)) != NUM_JOINTS:
                    return None
                info_lines.append(li)
                body_ids.append(line(li).split(b" ", 1)[0])
                body_frame.append(f)
                li += 2 + NUM_JOINTS
    except ValueError:
        return None
    if num_frames < 0:
        return None
    if li < nlines and (b[starts[li]:] > 32).any():
        return None  # values after the declared frames
    # spaces per line: 0 on count lines, 9 on body-info lines, 11 on joint lines
    edges = np.searchsorted(sp, np.asarray(starts[: li + 1] if li < nlines else starts + [n]))
    if edges[-1] != len(sp):
        return None
    counts = np.diff(edges)
    expect = np.zeros(li, dtype=np.int64)
    info = np.asarray(info_lines, dtype=np.int64)
    joint_lines = (info[:, None] + 2 + np.arange(NUM_JOINTS)[None, :]).ravel()
    expect[info] = BODY_INFO_FIELDS - 1
    expect[joint_lines] = JOINT_FIELDS - 1
    if not np.array_equal(counts, expect):
        return None
    if n_exp:  # validate every value holding an exponent character with float()
        seps = np.flatnonzero(b <= 32)
        for p in np.flatnonzero((b == 69) | (b == 101) | (b == 43)).tolist():
            k = int(np.searchsorted(seps, p))
            lo = int(seps[k - 1]) + 1 if k else 0
            hi = int(seps[k]) if k < len(seps) else n
            try:
                float(data[lo:hi])
            except ValueError:
                return None
    bodies: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if info_lines:
        xyz = _xyz_values(data, b, sp, np.asarray(starts)[joint_lines], n_exp > 0)
        if xyz is None:
            return None
        xyz = xyz.reshape(len(info_lines), NUM_JOINTS, 3)
        groups: dict[bytes, list[int]] = {}
        for r, bid in enumerate(body_ids):
            groups.setdefault(bid, []).append(r)
        frames = np.asarray(body_frame, dtype=np.int64)
        for bid, rows in groups.items():
            bodies[bid.decode("latin-1")] = (frames[rows], xyz[rows])
    return {"num_frames": num_frames, "bodies": bodies}


def _xyz_values(data: bytes, b: np.ndarray, sp: np.ndarray, line_starts: np.ndarray,
                exp: bool):
    """The first three values of each joint line as float32 (L*3,), or None.

    Each value is gathered right-aligned into a (N, width) byte matrix, so that a column is a
    decimal place; the digits form an exact integer mantissa (< 10**15) through one matrix
    product, and dividing it by an exact power of ten rounds correctly, as float() does."""
    k = np.searchsorted(sp, line_starts)
    s = np.stack([line_starts, sp[k] + 1, sp[k + 1] + 1], axis=1).ravel()
    e = np.stack([sp[k], sp[k + 1], sp[k + 2]], axis=1).ravel()
    lens = e - s
    width = 16  # two unaligned 8-byte loads per value, right-aligned at its end
    if int(lens.max()) > 15 or lens.min() < 1 or int(e.min()) < width:
        return None
    words = np.ndarray((len(b) - 7,), dtype="<u8", buffer=data, strides=(1,))
    pair = np.empty((len(e), 2), dtype=np.uint64)
    pair[:, 0] = words[e - width]
    pair[:, 1] = words[e - 8]
    ch = pair.view(np.uint8)  # (N, 16): column = decimal place
    col = np.arange(width)
    np.copyto(ch, 48, where=col[None, :] < (width - lens)[:, None])  # left padding: zeros
    rows = np.arange(len(ch))
    neg = ch[rows, width - lens] == 45
    isdot = ch == 46
    dotcol = isdot.argmax(axis=1)
    has_dot = isdot[rows, dotcol]
    if np.count_nonzero(isdot) != np.count_nonzero(has_dot):
        return None  # two dots in a value
    odd = None
    if exp:  # exponent notation: those values go through float()
        odd = np.flatnonzero((_DIGIT_OR_SIGN[ch] == 0).any(axis=1))
    digits = ch - np.uint8(48)
    np.copyto(digits, 0, where=digits > 9)  # '.' and '-' count as 0 digits
    full = digits.astype(np.float64) @ _P10[width - 1 - col]  # exact integers (< 2**53)
    frac = np.where(has_dot, width - 1 - dotcol, 0)
    scale = np.where(has_dot, _P10[frac + 1], 1.0)
    whole = np.floor_divide(full, scale)
    mant = np.where(has_dot, whole * _P10[frac] + (full - whole * scale), full)
    vals = mant / _P10[frac]
    vals[neg] *= -1.0
    if odd is not None and len(odd):
        for i in odd.tolist():
            try:
                vals[i] = float(data[s[i]: e[i]])
            except ValueError:
                return None
        if not np.isfinite(vals).all():
            return None
    return vals.astype(np.float32)


def parse_skeleton_bytes(data: bytes) -> dict:
    """Parse the content of a ``.skeleton`` file (see :func:`parse_skeleton`)."""
    parsed = _parse_lines(data)
    if parsed is None:
        parsed = _parse_tokens(data)
    return parsed


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
        raise SkeletonFormatError(MISSING_SKELETON)
    order = denoise_bodies(parsed)[:num_person]
    out = np.zeros((parsed["num_frames"], num_person, NUM_JOINTS, 3), dtype=np.float32)
    for m, bid in enumerate(order):
        frames, xyz = parsed["bodies"][bid]
        out[frames, m] = xyz
    return out
