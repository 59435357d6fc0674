"""Fast parser for the raw NTU RGB+D ``.skeleton`` text format (denoising: ``denoise.py``).

Format (whitespace separated, CRLF or LF)::

    <frame count>
    per frame:  <body count>
                per body: <10 body-info fields, the first a (long) integer body ID>
                          <joint count = 25>
                          25 x <x y z depthX depthY colorX colorY oW oX oY oZ trackingState>

Well-formed files take a vectorised path (:func:`_parse_lines`): the frame/body structure is
checked from the separators on each line, and only x, y, z are converted, eight digits at a
time in uint64 words, in a handful of numpy passes over the bytes. Anything unusual goes to
the token-based reference parser (:func:`_parse_tokens`), which accepts any whitespace layout
and words the error. The digits are read by :mod:`lastexp.data.fast_decimals`.
numpy only: this module must not import torch.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fast_decimals import line_xyz

NUM_JOINTS = 25
BODY_INFO_FIELDS = 10
JOINT_FIELDS = 12

MISSING_SKELETON = "missing skeleton (no body in any frame)"

# A joint's camera-space x, y or z (metres) beyond this is no capture: the Kinect v2 measures
# depth to 8 m at most (4.5 m reliably) and NTU's coordinates lie within a few metres of the
# camera. 1000 m is over 100x that range, so no real file comes near it, while every value
# below it keeps the pipeline's sums and squares (motion variances, translation) far from
# float32 overflow: a value such as 3e38 is a valid float32 and would become inf there.
MAX_ABS_COORD = 1e3


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
        with np.errstate(over="ignore"):
            xyz = vals[idx].astype(np.float32)
        if not np.isfinite(xyz).all():
            raise SkeletonFormatError(f"non-finite coordinate in body {bid}")
        bodies[bid] = (np.asarray(body_frames[bid], dtype=np.int64), xyz)
    return {"num_frames": num_frames, "bodies": bodies}


# --- fast path ----------------------------------------------------------------------------
# The file's structure is checked from the separators of each line in a handful of whole-file
# numpy passes; x, y and z are read by :func:`lastexp.data.fast_decimals.line_xyz`.
_SCRATCH = threading.local()


def _scratch(n: int) -> np.ndarray:
    """Three reusable (n,) bool buffers for the whole-file passes (fresh ones would cost a
    page-faulting allocation each)."""
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.shape[1] < n:
        buf = np.empty((3, max(n, 1 << 19)), dtype=bool)
        _SCRATCH.buf = buf
    return buf[:, :n]


def _parse_lines(data: bytes) -> dict | None:
    """Vectorised parser for well-formed, line-structured files (the NTU layout: one record per
    line, single spaces, LF or CRLF).

    Returns None whenever anything is unusual, so that the token-based parser decides (and
    words the error). The file's grammar is checked in full from the number of separators on
    each line (0 spaces on count lines, 9 on body-info lines, 11 on joint lines) and the counts
    themselves; x, y and z are checked for their form (values with an exponent or other
    characters go through ``float()``), body IDs for being integers. When this returns a result
    it equals :func:`_parse_tokens`'s, except that a malformed value in a column lastexp never
    reads (depth, colour, orientation: e.g. '1.2.3' or 'x') is not noticed.
    """
    if len(data) < 2:
        return None
    b = np.frombuffer(data, dtype=np.uint8)
    if b[0] <= 32 or b[0] == 45 or b[-1] == 32:
        return None
    lines = _line_spaces(b)
    blocks = None if lines is None else _body_blocks(b, *lines)
    if blocks is None:
        return None
    starts, ends, _ = lines
    info, joint_lines, bc = blocks
    try:
        num_frames = int(data[: ends[0]])
    except ValueError:
        return None
    if num_frames != len(bc):
        return None
    nbodies = _body_counts(data, b, starts[bc], ends[bc])
    if nbodies is None or (len(info) and (not len(bc) or info[0] < bc[0])):
        return None
    first = np.searchsorted(info, bc)
    if not np.array_equal(np.diff(first, append=len(info)), nbodies):
        return None
    bodies = _bodies(data, starts, info, joint_lines, bc) if len(info) else {}
    if bodies is None:
        return None
    return {"num_frames": num_frames, "bodies": bodies}


def _line_spaces(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Each line's start, end (before its line break) and count of spaces, or None unless
    values are separated by single spaces, lines end alike (all LF or all CRLF) and the first
    line holds no space."""
    n = len(b)
    sep, is_nl, tmp = _scratch(n)
    # separators: space, CR, LF (a tab or a lone CR splits values as in the token parser)
    n_sep = np.count_nonzero(np.less_equal(b, 32, out=sep))
    # the only neighbouring separators are CR+LF pairs: single spaces between values, and no
    # space at a line's start or end
    n_pairs = np.count_nonzero(np.logical_and(sep[:-1], sep[1:], out=tmp[:-1]))
    nl = np.flatnonzero(np.equal(b, 10, out=is_nl))
    crlf = b[nl - 1] == 13
    cr = 1 if n_pairs else 0
    if n_pairs != (len(nl) if cr else 0) or (cr and not crlf.all()):
        return None
    if b[-1] == 10:
        starts = np.concatenate(([0], nl[:-1] + 1))
        ends = nl - cr
    else:
        starts = np.concatenate(([0], nl + 1))
        ends = np.concatenate((nl - cr, [n]))
    # spaces per line (its separators less the line break); uint8 sums wrap above 255, which
    # the total then exposes
    spaces = np.add.reduceat(sep.view(np.uint8), starts, dtype=np.uint8)
    if int(spaces.sum(dtype=np.int64)) != n_sep:
        return None
    spaces[: len(nl)] -= np.uint8(1 + cr)
    if spaces[0]:
        return None
    return starts, ends, spaces


def _body_blocks(b: np.ndarray, starts: np.ndarray, ends: np.ndarray, spaces: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The body-info lines, the joint lines of their blocks and the body-count lines (one per
    frame), or None unless every line is one of those or the frame count, and every body block
    is a body-info line, a joint-count line of exactly "25" and 25 joint lines."""
    n_lines = len(starts)
    info = np.flatnonzero(spaces == BODY_INFO_FIELDS - 1)
    is_count = spaces == 0
    if n_lines - len(info) - np.count_nonzero(is_count) != NUM_JOINTS * len(info):
        return None  # lines that are neither counts, body infos nor in a body's joint block
    joint_lines = np.empty(0, dtype=np.intp)
    if len(info):
        if info[-1] + 1 + NUM_JOINTS >= n_lines:
            return None
        joint_lines = (info[:, None] + np.arange(2, NUM_JOINTS + 2)[None, :]).ravel()
        if (spaces[joint_lines] != JOINT_FIELDS - 1).any():
            return None
        jc = info + 1  # the joint-count lines: exactly "25"
        jcs = starts[jc]
        if (not is_count[jc].all() or ((ends[jc] - jcs) != 2).any() or (b[jcs] != 50).any()
                or (b[jcs + 1] != 53).any()):
            return None
        is_count[jc] = False
    is_count[0] = False
    return info, joint_lines, np.flatnonzero(is_count)


def _body_counts(data: bytes, b: np.ndarray, starts: np.ndarray,
                 ends: np.ndarray) -> np.ndarray | None:
    """The body count of each body-count line (``starts``/``ends``), or None unless each is
    an integer in 0..16."""
    # one digit (or '-' / '.': garbage) almost always; int() for the rest
    nbodies = b[starts].astype(np.intp) - 48
    wide = np.flatnonzero((ends - starts != 1) | (nbodies < 0))
    for i in wide.tolist():
        try:
            nbodies[i] = int(data[starts[i]: ends[i]])
        except ValueError:
            return None
    if len(nbodies) and (nbodies.min() < 0 or nbodies.max() > 16):
        return None
    return nbodies


def _bodies(data: bytes, starts: np.ndarray, info: np.ndarray, joint_lines: np.ndarray,
            bc: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Each body's frames and x, y, z (as :func:`_parse_tokens` gives them), from its
    body-info lines ``info`` and their ``joint_lines``; ``bc``: the body-count lines. None when
    a value is not read exactly here or a body ID is no integer."""
    xyz = line_xyz(data, starts[joint_lines])
    if xyz is None:
        return None
    xyz = xyz.reshape(len(info), NUM_JOINTS, 3)
    frames = np.searchsorted(bc, info) - 1
    groups: dict[bytes, list[int]] = {}
    for r, s in enumerate(starts[info].tolist()):
        groups.setdefault(data[s: data.index(b" ", s)], []).append(r)
    bodies: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for bid, rows in groups.items():
        if not bid.isdigit():
            return None  # NTU's body IDs are integers; anything else: the token parser
        bodies[bid.decode("latin-1")] = (frames[rows].astype(np.int64), xyz[rows])
    return bodies


def parse_skeleton_bytes(data: bytes) -> dict:
    """Parse the content of a ``.skeleton`` file (see :func:`parse_skeleton`)."""
    parsed = _parse_lines(data)
    if parsed is None:
        parsed = _parse_tokens(data)
    return parsed


def implausible_coordinates(parsed: dict) -> str | None:
    """Why the x, y, z of a parsed file cannot be a capture (a non-finite value, or one beyond
    :data:`MAX_ABS_COORD` metres), or None when they all can."""
    for bid, (_frames, xyz) in parsed["bodies"].items():
        bad = ~np.isfinite(xyz) | (np.abs(xyz) > MAX_ABS_COORD)
        if bad.any():
            value = float(xyz[np.unravel_index(int(np.argmax(bad)), xyz.shape)])
            return (f"implausible coordinate {value:g} in body {bid} (a capture lies within "
                    f"{MAX_ABS_COORD:g} m of the camera)")
    return None


def parse_skeleton(path: str | Path) -> dict:
    """Parse one ``.skeleton`` file.

    Returns ``{"num_frames": declared frame count, "bodies": {body_id: (frames, xyz)}}``
    with ``frames`` an int64 array of frame indices and ``xyz`` float32 ``(F_b, 25, 3)``.
    Any malformation raises :class:`SkeletonFormatError`.
    """
    try:
        with open(path, "rb") as fh:  # (Path.read_bytes costs ~40 us more per file)
            data = fh.read()
    except OSError as exc:
        raise SkeletonFormatError(f"unreadable: {exc.strerror or exc}") from None
    return parse_skeleton_bytes(data)
