"""The vectorised fast path (_parse_lines) against the token-based reference parser.

Contract: on a well-formed file the fast path returns a result, identical (bit for bit) to the
reference; on anything else it either returns None (the reference then decides) or the same
result as the reference. The one documented gap: a malformed number in a column lastexp does
not read (depth, colour, orientation) is not noticed.
"""

import numpy as np
import pytest

from lastexp.config import SyntheticConfig
from lastexp.data.skeleton import (
    SkeletonFormatError,
    _parse_lines,
    _parse_tokens,
    parse_skeleton_bytes,
)
from lastexp.data.synthetic import generate_corpus


def same(a: dict, b: dict) -> bool:
    if a["num_frames"] != b["num_frames"] or list(a["bodies"]) != list(b["bodies"]):
        return False
    for k, (f, xyz) in b["bodies"].items():
        g_f, g_xyz = a["bodies"][k]
        if g_f.dtype != f.dtype or g_xyz.dtype != xyz.dtype:
            return False
        if not (np.array_equal(g_f, f) and np.array_equal(g_xyz, xyz)):
            return False
    return True


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast")
    paths = generate_corpus(root / "raw", SyntheticConfig(samples_per_class=2, min_frames=14,
                                                          max_frames=30))
    return [p.read_bytes() for p in paths]


def test_well_formed_files_take_the_fast_path_and_match(files):
    for data in files:
        for variant in (data, data.replace(b"\r\n", b"\n"), data.rstrip(b"\r\n")):
            got = _parse_lines(variant)
            assert got is not None
            assert same(got, _parse_tokens(variant))


def test_decimal_conversion_is_bit_identical_to_float():
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.normal(0, 1, 3000), rng.normal(0, 1e3, 500),
                           rng.uniform(-1e-3, 1e-3, 500), [0.0, -0.0, 1.0, -1.0, 5.0, 0.5]])
    fmts = ["%.7G", "%.4f", "%.9f", "%.1f", "%.0f", "%.9g"]  # up to 15 characters
    lines = []
    for i, v in enumerate(vals):
        x = fmts[i % len(fmts)] % v
        y = fmts[(i + 1) % len(fmts)] % -v
        z = fmts[(i + 2) % len(fmts)] % (v * 3)
        lines.append(f"{x} {y} {z} 1 2 3 4 5 6 7 8 2")
    lines += ["5. -.5 .25 1 2 3 4 5 6 7 8 2"]  # forms float() takes
    lines += [lines[-1]] * (-len(lines) % 25)
    body = []
    for k in range(0, len(lines), 25):
        body += ["1", f"{7 + k // 25} 0 1 1 1 1 0 0 0 2", "25"] + lines[k: k + 25]
    data = ("\r\n".join([str(len(lines) // 25)] + body) + "\r\n").encode()
    got = _parse_lines(data)
    assert got is not None
    assert same(got, _parse_tokens(data))


MUTATIONS = [b"-", b".", b"E", b"e", b"+", b"0", b"9", b" ", b"  ", b"\r\n", b"\n", b"\t",
             b"x", b"/", b",", b"\x00", b"--", b"..", b"1e999", b"nan"]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    kind = rng.integers(0, 5)
    p = int(rng.integers(0, len(data)))
    tok = MUTATIONS[int(rng.integers(0, len(MUTATIONS)))]
    if kind == 0:  # replace one byte
        return data[:p] + tok + data[p + 1:]
    if kind == 1:  # insert
        return data[:p] + tok + data[p:]
    if kind == 2:  # delete a stretch
        return data[:p] + data[p + int(rng.integers(1, 40)):]
    if kind == 3:  # truncate
        return data[:p]
    lines = data.split(b"\r\n")  # drop or repeat a line
    k = int(rng.integers(0, len(lines)))
    lines = lines[:k] + ([lines[k]] * 2 if rng.integers(0, 2) else []) + lines[k + 1:]
    return b"\r\n".join(lines)


def unused_zeroed(data: bytes) -> bytes:
    """Every column lastexp does not read set to 0: all but the body ID of a body-info line
    (10 values), all but x, y, z of a joint line (12 values)."""
    out = []
    for line in data.split(b"\n"):
        cr = line.endswith(b"\r")
        vals = line.rstrip(b"\r").split(b" ")
        if len(vals) == 10:
            vals = vals[:1] + [b"0"] * 9
        elif len(vals) == 12:
            vals = vals[:3] + [b"0"] * 9
        out.append(b" ".join(vals) + (b"\r" if cr else b""))
    return b"\n".join(out)


def test_mutated_files_fall_back_or_match(files):
    rng = np.random.default_rng(1)
    fast = gap = 0
    for i in range(1500):
        data = mutate(files[i % len(files)], rng)
        got = _parse_lines(data)
        try:
            ref = _parse_tokens(data)
        except SkeletonFormatError as exc:
            ref = exc
        if got is None:
            continue  # the reference decides (parse_skeleton_bytes returns or raises ref)
        fast += 1
        if isinstance(ref, SkeletonFormatError):
            # the documented gap only: a bad number in a column lastexp does not read. With
            # those columns zeroed, the reference must accept the file and agree.
            assert ref.reason.startswith("non-numeric token"), (ref.reason, i)
            assert same(got, _parse_tokens(unused_zeroed(data))), i
            gap += 1
        else:
            assert same(got, ref), i
    assert fast > 100 and gap < fast  # many mutations keep a valid file (a digit for a digit)


@pytest.mark.parametrize("data", [b"", b"\r\n", b"1\r\n", b"0\r\n", b"1\r\n1\r\n", b"1\r\n0",
                                  b"2\r\n0\r\n0\r\n0\r\n", b"\x00" * 100, b"1\r\n1\r\n7 0 1 1"])
def test_odd_inputs_never_crash(data):
    got = _parse_lines(data)
    try:
        ref = parse_skeleton_bytes(data)
    except SkeletonFormatError:
        assert got is None
    else:
        assert got is None or same(got, ref)
