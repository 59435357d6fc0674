"""Vectorised reading of decimal text: the first three values of many lines at once (the x, y
and z of a ``.skeleton`` file's joint lines), bit-identical to ``float()``.

Used by the fast path of :mod:`lastexp.data.skeleton`; returns None for anything it does not
read exactly, so that the token-based parser decides.
numpy only: this module must not import torch.
"""

from __future__ import annotations

import numpy as np

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


def line_xyz(data: bytes, line_starts: np.ndarray) -> np.ndarray | None:
    """The first three values of each line that starts at ``line_starts`` (at least 16 bytes
    into ``data``) as float32 (L*3,), or None."""
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
