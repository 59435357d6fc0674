import numpy as np
import pytest

from lastexp.data.denoise import reference_sequence
from lastexp.data.skeleton import (
    SkeletonFormatError,
    parse_ntu_name,
    parse_skeleton,
)


def body_lines(body_id, xyz, joints=25):
    lines = [f"{body_id} 0 1 1 1 1 0 0.01 -0.02 2", str(joints)]
    for j in range(joints):
        x, y, z = xyz[j]
        lines.append(f"{x:.6f} {y:.6f} {z:.6f} 250.1 200.2 900.3 500.4 0.9 0.1 0.2 0.3 2")
    return lines


def human(t, shift=0.0, move=0.02):
    """A plausible upright body (y-spread >> x-spread), moving a bit over time."""
    xyz = np.zeros((25, 3))
    xyz[:, 0] = np.linspace(-0.2, 0.2, 25) + shift + move * np.sin(t)
    xyz[:, 1] = np.linspace(-0.8, 0.8, 25)
    xyz[:, 2] = 3.0
    return xyz


def write(path, frames, eol="\r\n"):
    """frames: list of lists of (body_id, xyz)."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for bid, xyz in bodies:
            lines.extend(body_lines(bid, xyz))
    path.write_bytes((eol.join(lines) + eol).encode())
    return path


MAIN = "72057594037931101"


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_parse_crlf_lf_and_zero_body_frame(tmp_path, eol):
    frames = [[]] + [[(MAIN, human(t))] for t in range(14)]
    p = write(tmp_path / "S001C001P001R001A001.skeleton", frames, eol)
    parsed = parse_skeleton(p)
    assert parsed["num_frames"] == 15
    frames_idx, xyz = parsed["bodies"][MAIN]  # the long body ID is kept exactly
    assert frames_idx.tolist() == list(range(1, 15))
    assert xyz.shape == (14, 25, 3) and xyz.dtype == np.float32
    np.testing.assert_allclose(xyz[0], human(0), atol=1e-6)
    out = reference_sequence(parsed)  # the frame without a body is dropped
    assert out.shape == (14, 2, 25, 3) and not out[:, 1].any()
    np.testing.assert_array_equal(out[:, 0], xyz - xyz[0, 1])


def test_no_body_in_any_frame(tmp_path):
    parsed = parse_skeleton(write(tmp_path / "d.skeleton", [[], [], []]))
    with pytest.raises(SkeletonFormatError, match="no body in any frame"):
        reference_sequence(parsed)


def test_truncated(tmp_path):
    p = write(tmp_path / "e.skeleton", [[(MAIN, human(t))] for t in range(10)])
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(SkeletonFormatError, match="truncated at frame 6 of 10"):
        parse_skeleton(p)
    p.write_bytes(b"80\r\n")
    with pytest.raises(SkeletonFormatError, match="truncated at frame 1 of 80"):
        parse_skeleton(p)


@pytest.mark.parametrize("garbled", [b"-0.2#0000", b"-0.2.0000", b"-0.2-0000", b"--0.20000",
                                     b"-0.2\xb50000"])
def test_garbled_coordinate(tmp_path, garbled):
    p = write(tmp_path / "f.skeleton", [[(MAIN, human(t))] for t in range(3)])
    data = p.read_bytes()
    assert data.startswith(b"3\r\n1\r\n") and b"\r\n25\r\n-0.200000 " in data  # x, joint 1
    p.write_bytes(data.replace(b"-0.200000 ", garbled + b" ", 1))
    with pytest.raises(SkeletonFormatError, match="non-numeric token"):
        parse_skeleton(p)


def test_garbled_body_id(tmp_path):
    p = write(tmp_path / "f.skeleton", [[(MAIN, human(t))] for t in range(3)])
    p.write_bytes(p.read_bytes().replace(MAIN.encode(), b"7205759403793110#", 1))
    with pytest.raises(SkeletonFormatError, match="non-numeric token"):
        parse_skeleton(p)


def test_wrong_joint_count(tmp_path):
    lines = ["1", "1"] + body_lines(MAIN, human(0), joints=24)
    p = tmp_path / "g.skeleton"
    p.write_text("\r\n".join(lines))
    with pytest.raises(SkeletonFormatError, match="joint count 24 != 25"):
        parse_skeleton(p)


@pytest.mark.parametrize("content", [b"", b"abc", b"2\r\n1\r\n", b"1\r\n0\r\n7\r\n", b"-3\r\n"])
def test_other_garbage_raises_format_error_only(tmp_path, content):
    p = tmp_path / "h.skeleton"
    p.write_bytes(content)
    with pytest.raises(SkeletonFormatError):
        parse_skeleton(p)


def test_missing_file_is_format_error(tmp_path):
    with pytest.raises(SkeletonFormatError):
        parse_skeleton(tmp_path / "missing.skeleton")


def test_parse_ntu_name():
    n = parse_ntu_name("S017C003P020R002A060")
    assert (n.setup, n.camera, n.subject, n.replication, n.action) == (17, 3, 20, 2, 60)
    assert n.label == 59
    assert parse_ntu_name("S001C001P001R001A001.skeleton").label == 0
    assert n.stem == "S017C003P020R002A060"
    for bad in ("S17C003P020R002A060", "foo", "S017C003P020R002A060x", "s017c003p020r002a060"):
        with pytest.raises(ValueError):
            parse_ntu_name(bad)
