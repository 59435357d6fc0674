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
and words the error.
numpy only: this module must not import torch.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
# numpy has no vectorised "parse these byte ranges as decimals", and converting through Python
# floats or numpy's string casts costs 50-80 ns a value, which alone would use up the budget.
# So the fast path works on 8-byte words (SWAR): every value is loaded right-aligned into two
# little-endian uint64 words, eight ASCII digits become an integer in three multiply-shift
# steps, and dots and signs are found with the zero-byte test. Hand-written because no
# maintained library parses this layout vectorised.
_U = np.uint64
_ONES = (1 << 64) - 1
_C2D = _U(0x2D2D2D2D2D2D2D2D)  # "-"
_C2E = _U(0x2E2E2E2E2E2E2E2E)  # "."
_C0F = _U(0x0F0F0F0F0F0F0F0F)
_C30 = _U(0x3030303030303030)
_C76 = _U(0x7676767676767676)
_C7F = _U(0x7F7F7F7F7F7F7F7F)
_C01 = _U(0x0101010101010101)
_C80 = _U(0x8080808080808080)
_M16 = _U(0x00FF00FF00FF00FF)
_M32 = _U(0x0000FFFF0000FFFF)
_M64 = _U(0xFFFFFFFF)
# a value of length k ends the 16-byte (hi, lo) pair: keep its top k bytes, zero the rest
_MASK_HI = np.array([(_ONES << (8 * (16 - k))) & _ONES if k > 8 else 0 for k in range(16)],
                    dtype=_U)
_MASK_LO = np.array([(_ONES << (8 * (8 - min(k, 8)))) & _ONES for k in range(16)], dtype=_U)
_P10U = np.array([10**k for k in range(16)], dtype=_U)
# divisor at 17 * negative + (digits after the dot + 1, or 0 without a dot): sign included
_DIV = np.array([1.0] + [10.0**k for k in range(1, 17)]
                + [-1.0] + [-(10.0**k) for k in range(1, 17)])
_MAX_ODD = 256  # values per file sent to float() before the token parser is cheaper
_WINDOW = 48  # bytes from a joint line's start that hold x, y and z (31 in NTU's files)
_SCRATCH = threading.local()


def _scratch(n: int) -> np.ndarray:
    """Three reusable (n,) bool buffers for the whole-file passes (fresh ones would cost a
    page-faulting allocation each)."""
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.shape[1] < n:
        buf = np.empty((3, max(n, 1 << 19)), dtype=bool)
        _SCRATCH.buf = buf
    return buf[:, :n]


def _digits8(w: np.ndarray) -> np.ndarray:
    """Eight ASCII digits per word (first in the lowest byte; 0x00 bytes read as 0) -> their
    decimal value, in place: pairs, then fours, then eights of digits."""
    w &= _C0F
    w *= _U(10 * 256 + 1)
    w >>= _U(8)
    w &= _M16
    w *= _U(100 * 65536 + 1)
    w >>= _U(16)
    w &= _M32
    w *= _U(10000 * (1 << 32) + 1)
    w >>= _U(32)
    return w


def _marks(w: np.ndarray, byte: np.uint64) -> np.ndarray:
    """0x80 in the bytes of ``w`` equal to ``byte`` (repeated in every byte), else 0. The
    short zero-byte test: a false mark needs a byte equal to ``byte ^ 1`` ('/' for '.', ','
    for '-') right above a true one, so it only ever adds a second dot (or sign) to a value
    that has one, and the form check rejects that value either way."""
    t = w ^ byte
    m = t - _C01
    np.invert(t, out=t)
    m &= t
    m &= _C80
    return m


def _decimals(words: np.ndarray, e: np.ndarray, length: np.ndarray, neg: np.ndarray):
    """Values ``data[e - length: e]`` of the form -?digits[.digits] (length <= 15) as float64,
    bit-identical to ``float()``, and whether each one has that form (a sign only first, one
    dot at most, a digit).

    With the dot read as a 0 digit, the 16 bytes give ``full = int * 10**(f+1) + frac``; the
    mantissa is ``(full + 9 * frac) / 10``, an exact integer below 2**53, and one division by
    an exact power of ten rounds it correctly, as ``float()`` does."""
    pair = words[e - 16].view(_U).reshape(-1, 2)  # (hi, lo): the 16 bytes that end at e
    pair[:, 0] &= _MASK_HI[length]
    pair[:, 1] &= _MASK_LO[length]
    dots = _marks(pair, _C2E)
    minus = _marks(pair, _C2D)
    cd = np.bitwise_count(dots)
    cm = np.bitwise_count(minus)
    ndots = cd[:, 0] + cd[:, 1]
    nminus = cm[:, 0] + cm[:, 1]
    x = pair ^ _C30  # digits become 0..9
    nondigit = x & _C7F
    nondigit += _C76
    nondigit |= x
    nondigit &= _C80  # 0x80 in every byte that is not a digit (padding, '.', '-', others)
    cn = np.bitwise_count(nondigit)
    other = cn[:, 0] + cn[:, 1] + length
    other -= ndots + nminus + np.uint8(16)  # neither digit, dot, sign nor padding
    neg8 = neg.view(np.uint8)
    ok = (ndots <= 1) & (nminus == neg8) & (length > ndots + nminus) & (other == 0)
    above = np.bitwise_count(~(dots | (dots - _U(1)))) >> np.uint8(3)  # bytes after the dot
    f = above[:, 0] + above[:, 1]  # digits after the dot (uint8 throughout: mixed-type
    f += np.minimum(cd[:, 0], 1) << np.uint8(3)  # arithmetic costs numpy a cast per operand)
    np.minimum(f, 15, out=f)  # (only malformed values, rejected below, have more)
    dots |= minus  # read '.' and '-' as 0
    dots >>= _U(7)
    dots *= _U(255)
    pair &= ~dots
    d = _digits8(pair)
    full = d[:, 0] * _U(100_000_000)
    full += d[:, 1]
    num = full % _P10U[f]
    num *= _U(9)
    num += full
    vals = num.astype(np.float64)
    k = f + np.uint8(1)
    k *= np.minimum(ndots, 1)
    k += neg8 * np.uint8(17)
    vals /= _DIV[k]
    return vals, ok


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
    n = len(data)
    if n < 2:
        return None
    b = np.frombuffer(data, dtype=np.uint8)
    if b[0] <= 32 or b[0] == 45 or b[-1] == 32:
        return None
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
    bc = np.flatnonzero(is_count)  # one body-count line per frame
    try:
        num_frames = int(data[: ends[0]])
    except ValueError:
        return None
    if num_frames != len(bc):
        return None
    # body counts: one digit (or '-' / '.': garbage) almost always; int() for the rest
    nbodies = b[starts[bc]].astype(np.intp) - 48
    wide = np.flatnonzero((ends[bc] - starts[bc] != 1) | (nbodies < 0))
    for i in wide.tolist():
        try:
            nbodies[i] = int(data[starts[bc[i]]: ends[bc[i]]])
        except ValueError:
            return None
    if len(nbodies) and (nbodies.min() < 0 or nbodies.max() > 16):
        return None
    if len(info) and (not len(bc) or info[0] < bc[0]):
        return None
    first = np.searchsorted(info, bc)
    if not np.array_equal(np.diff(first, append=len(info)), nbodies):
        return None
    bodies: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if len(info):
        xyz = _xyz_values(data, starts[joint_lines])
        if xyz is None:
            return None
        xyz = xyz.reshape(len(info), NUM_JOINTS, 3)
        frames = np.searchsorted(bc, info) - 1
        groups: dict[bytes, list[int]] = {}
        for r, s in enumerate(starts[info].tolist()):
            groups.setdefault(data[s: data.index(b" ", s)], []).append(r)
        for bid, rows in groups.items():
            if not bid.isdigit():
                return None  # NTU's body IDs are integers; anything else: the token parser
            bodies[bid.decode("latin-1")] = (frames[rows].astype(np.int64), xyz[rows])
    return {"num_frames": num_frames, "bodies": bodies}


def _xyz_values(data: bytes, line_starts: np.ndarray) -> np.ndarray | None:
    """The first three values of each joint line as float32 (L*3,), or None."""
    n = len(data)
    if len(line_starts) == 0 or line_starts[0] < 16 or n < 2 * _WINDOW:
        return None
    # 16 bytes from every offset: one gather fetches a value's (hi, lo) words (a 16-byte void
    # item copies as fast as one unaligned uint64)
    words = np.ndarray((n - 15,), dtype="V16", buffer=data, strides=(1,))
    windows = np.ndarray((n - _WINDOW + 1,), dtype=f"V{_WINDOW}", buffer=data, strides=(1,))
    # the last lines' windows run past the end: those few come from a zero-padded copy
    late = int(np.searchsorted(line_starts, n - _WINDOW, side="right"))
    win = np.empty(len(line_starts), dtype=f"V{_WINDOW}")
    win[:late] = windows[line_starts[:late]]
    if late < len(line_starts):
        t0 = n - 2 * _WINDOW
        tail = data[t0:] + bytes(_WINDOW)
        win[late:] = np.ndarray((2 * _WINDOW + 1,), dtype=f"V{_WINDOW}", buffer=tail,
                                strides=(1,))[line_starts[late:] - t0]
    # x, y and z end at the first three separators of the line: a bit mask of the separators
    # in its first 48 bytes, and the lowest set bit three times
    seps = win.view(np.uint8).reshape(-1, _WINDOW) <= 32
    bits = np.zeros((len(line_starts), 8), dtype=np.uint8)
    bits[:, : _WINDOW // 8] = np.packbits(seps, axis=1, bitorder="little")
    mask = bits.view(_U).ravel()
    se = np.empty((len(line_starts), 4), dtype=np.intp)  # x, y, z start at 0..2, end at 1..3
    se[:, 0] = line_starts
    for k in range(1, 4):
        at = np.bitwise_count((mask - _U(1)) & ~mask)  # the lowest set bit; 64 where none
        if at.max() >= _WINDOW:
            return None  # longer values than NTU's: the token parser reads them
        np.add(line_starts, at.astype(np.intp) + 1, out=se[:, k])
        mask &= mask - _U(1)
    s = se[:, :3].ravel()
    e = se[:, 1:].ravel() - 1
    length = e - s
    if length.min() < 1 or length.max() > 15:
        return None  # an empty value, or one of 16 characters or more (the token parser reads it)
    length = length.astype(np.uint8)
    neg = np.frombuffer(data, dtype=np.uint8)[s] == 45
    vals, ok = _decimals(words, e, length, neg)
    odd = np.flatnonzero(~ok)  # exponents ('1.234567E-05') and anything unusual: float()
    if len(odd) > _MAX_ODD:
        return None
    for i in odd.tolist():
        try:
            vals[i] = float(data[s[i]: e[i]])
        except ValueError:
            return None  # not a number: the token parser words it
    with np.errstate(over="ignore"):
        out = vals.astype(np.float32)
    if len(odd) and not np.isfinite(out[odd]).all():
        return None  # beyond float32: the token parser words it
    return out


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
