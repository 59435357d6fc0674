"""The reference NTU pipeline's rules, each pinned with files written here.

Expected arrays are worked out in the tests from the values written into the files (read back
as the reference reader reads them: the printed decimal as float32) and the rules of CTR-GCN's
get_raw_skes_data.py / get_raw_denoised_data.py / seq_transformation.py, never by calling the
code under test for the expectation.
"""

import numpy as np
import pytest

from lastexp.data.arrays import sequence_from_file
from lastexp.data.denoise import (
    denoise,
    denoised_sequence,
    raw_bodies,
    reference_sequence,
    translate,
)
from lastexp.data.skeleton import SkeletonFormatError, parse_skeleton


def body_lines(body_id, xyz):
    lines = [f"{body_id} 0 1 1 1 1 0 0.01 -0.02 2", "25"]
    for x, y, z in xyz:
        lines.append(f"{x:.6f} {y:.6f} {z:.6f} 250.1 200.2 900.3 500.4 0.9 0.1 0.2 0.3 2")
    return lines


def write(path, frames):
    """frames: per frame, a list of (body_id, xyz (25, 3))."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for bid, xyz in bodies:
            lines.extend(body_lines(bid, xyz))
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def read_back(xyz):
    """What a reader gets from the printed values: float32 of the 6-decimal text."""
    return np.array([[float(f"{v:.6f}") for v in joint] for joint in xyz], dtype=np.float32)


def person(t, x0=0.0, y_half=0.8, x_half=0.2, sway=0.0, z=3.0):
    """An upright body (x-spread 2*x_half < 0.8 * y-spread 2*y_half) swaying by ``sway``."""
    xyz = np.zeros((25, 3))
    xyz[:, 0] = np.linspace(-x_half, x_half, 25) + x0 + sway * np.sin(0.7 * t)
    xyz[:, 1] = np.linspace(-y_half, y_half, 25)
    xyz[:, 2] = z + 0.01 * np.cos(t)
    return xyz


def lying(t, x0=0.0):
    """A body whose x-spread exceeds 0.8 x its y-spread on every frame (spread noise)."""
    xyz = person(t, x0)
    xyz[:, 0] = np.linspace(-1.0, 1.0, 25) + x0 + 0.3 * np.sin(t)
    xyz[:, 1] = np.linspace(-0.1, 0.1, 25)
    return xyz


def stack(bodies):
    """Per-frame (25, 3) arrays of one body -> the float32 rows a reader keeps."""
    return np.stack([read_back(b) for b in bodies])


def centred(actor1, actor2=None):
    """Expected translated (T, 2, 25, 3): subtract actor 1's joint 2 in its first present
    frame; absent frames (all zero) stay zero."""
    t = len(actor1)
    out = np.zeros((t, 2, 25, 3), dtype=np.float32)
    out[:, 0] = actor1
    if actor2 is not None:
        out[:, 1] = actor2
    present = out.reshape(t, 2, -1).any(axis=2)
    first = np.flatnonzero(present[:, 0])[0]
    origin = out[first, 0, 1].copy()
    out = np.where(present[:, :, None, None], out - origin, np.float32(0))
    return out.astype(np.float32)


NAME = "S001C001P001R001A050.skeleton"


def test_motion_is_the_ntu_authors_definition(tmp_path):
    """A stands still but spans 1.6 m (large variance over all joints); B is small and sways
    0.5 m. Summing each coordinate's variance over time ranks B first; the reference's motion
    (variance over all joints and frames, per x/y/z) ranks A first, so A is actor 1."""
    T = 30
    a = [person(t) for t in range(T)]
    b = [person(t, x0=1.5, y_half=0.3, x_half=0.1, sway=0.5) for t in range(T)]
    p = write(tmp_path / NAME, [[("20", b[t]), ("10", a[t])] for t in range(T)])
    ra, rb = stack(a), stack(b)
    over_time = lambda j: j.reshape(T, -1).var(axis=0).sum()  # noqa: E731 (lastexp's old rule)
    over_all = lambda j: j.reshape(-1, 3).var(axis=0).sum()  # noqa: E731
    assert over_time(rb) > over_time(ra) and over_all(ra) > over_all(rb)
    got = reference_sequence(parse_skeleton(p))
    np.testing.assert_array_equal(got, centred(ra, rb))
    seq, n_raw, n_kept, _ = sequence_from_file(p, 1, 300)
    np.testing.assert_array_equal(seq, centred(ra, rb)[:, :1])
    assert (n_raw, n_kept) == (2, 1)


@pytest.mark.parametrize("ghost_len,kept", [(11, False), (12, True)])
def test_ghost_bodies_of_11_and_12_frames(tmp_path, ghost_len, kept):
    """A body tracked for 11 frames or fewer is dropped; one of 12 frames is kept (as actor 2
    in its frames, zero elsewhere)."""
    T = 30
    main = [person(t, sway=0.3) for t in range(T)]
    ghost = {t: person(t, x0=2.0, sway=0.05) for t in range(5, 5 + ghost_len)}
    frames = [[("1", main[t])] + ([("2", ghost[t])] if t in ghost else []) for t in range(T)]
    got = reference_sequence(parse_skeleton(write(tmp_path / NAME, frames)))
    a2 = np.zeros((T, 25, 3), dtype=np.float32)
    if kept:
        a2[5: 5 + ghost_len] = stack(list(ghost.values()))
    np.testing.assert_array_equal(got, centred(stack(main), a2))


def test_id_switch_in_a_one_person_clip(tmp_path):
    """The same person re-tracked under a new ID: the later body does not overlap actor 1 in
    time, so it joins actor 1's slot; with M=1 the clip keeps every frame."""
    T = 40
    a = [person(t, sway=0.3) for t in range(T)]
    frames = [[("111", a[t])] if t < 20 else [("222", a[t])] for t in range(T)]
    p = write(tmp_path / "S001C001P001R001A010.skeleton", frames)
    got = reference_sequence(parse_skeleton(p))
    np.testing.assert_array_equal(got, centred(stack(a)))
    seq, _, _, _ = sequence_from_file(p, 1, 300)
    assert len(seq) == T
    np.testing.assert_array_equal(seq[:, 0], centred(stack(a))[:, 0])


def test_id_switch_in_a_two_person_clip(tmp_path):
    """Actor 2 is re-tracked at frame 20 under a new ID: both halves land in actor 2's slot
    (actor 1 moves most, then the first half of actor 2, then its second half)."""
    T = 40
    a = [person(t, sway=0.6) for t in range(T)]
    b = [person(t, x0=1.5, sway=0.3 if t < 20 else 0.05) for t in range(T)]
    frames = [[("1", a[t]), ("2" if t < 20 else "3", b[t])] for t in range(T)]
    got = reference_sequence(parse_skeleton(write(tmp_path / NAME, frames)))
    np.testing.assert_array_equal(got, centred(stack(a), stack(b)))


def test_touching_intervals_count_as_no_overlap(tmp_path):
    """The reference's overlap test is min(ends) - max(starts) > 0: a body starting on actor
    1's last frame joins actor 1 and overwrites that frame."""
    a = [person(t, sway=0.5) for t in range(20)]
    c = [person(t, x0=0.3, sway=0.1) for t in range(19, 35)]
    frames = [[("1", a[t])] if t < 19 else [] for t in range(19)]
    frames += [[("1", a[19]), ("2", c[0])]] + [[("2", c[t - 19])] for t in range(20, 35)]
    got = reference_sequence(parse_skeleton(write(tmp_path / NAME, frames)))
    expect = np.concatenate([stack(a)[:19], stack(c)])
    np.testing.assert_array_equal(got, centred(expect, np.zeros_like(expect)))


def test_empty_frames_at_start_middle_and_end_are_dropped(tmp_path):
    """Frames with no body (start, middle, end) are dropped by the reader; a frame where only a
    dropped ghost is present is removed after actor assignment."""
    a = [person(t, sway=0.3) for t in range(20)]
    b = [person(t, x0=1.4, sway=0.1) for t in range(20)]
    frames = [[], []] + [[("1", a[t]), ("2", b[t])] for t in range(8)] + [[], [], []]
    frames += [[("9", person(0, x0=3.0))]]  # a 1-frame ghost alone in its frame
    frames += [[("1", a[t]), ("2", b[t])] for t in range(8, 20)] + [[], []]
    got = reference_sequence(parse_skeleton(write(tmp_path / NAME, frames)))
    np.testing.assert_array_equal(got, centred(stack(a), stack(b)))


def test_single_body_file_drops_empty_frames(tmp_path):
    a = [person(t, sway=0.3) for t in range(15)]
    frames = [[]] + [[("5", a[t])] for t in range(7)] + [[]] * 2 + [[("5", a[t])]
                                                                     for t in range(7, 15)] + [[]]
    got = reference_sequence(parse_skeleton(write(tmp_path / "S001C001P001R001A001.skeleton",
                                                  frames)))
    np.testing.assert_array_equal(got, centred(stack(a)))


def test_body_failing_the_spread_test_is_dropped(tmp_path):
    """A lying body (x-spread > 0.8 y-spread on every frame) is dropped although it moves most;
    the upright one is the only actor left (a 75-wide sequence: body 2 zero, as data/ntu's
    align_frames writes it, or a copy of body 1 as data/ntu120's does)."""
    T = 20
    up = [person(t, sway=0.05) for t in range(T)]
    down = [lying(t, x0=1.0) for t in range(T)]
    p = write(tmp_path / NAME, [[("1", down[t]), ("2", up[t])] for t in range(T)])
    parsed = parse_skeleton(p)
    np.testing.assert_array_equal(reference_sequence(parsed), centred(stack(up)))
    exp120 = centred(stack(up))
    exp120[:, 1] = exp120[:, 0]
    np.testing.assert_array_equal(reference_sequence(parsed, copy_single=True), exp120)


@pytest.mark.parametrize("noisy,dropped", [(29, False), (30, True)])
def test_spread_ratio_threshold(tmp_path, noisy, dropped):
    """43 frames: 30 noisy (0.698 >= 0.69754) drops the body, 29 (0.674) keeps it."""
    T = 43
    main = [person(t, sway=0.4) for t in range(T)]
    other = [lying(t, x0=1.0) if t < noisy else person(t, x0=1.0, sway=0.02) for t in range(T)]
    p = write(tmp_path / NAME, [[("1", main[t]), ("2", other[t])] for t in range(T)])
    ids = {b.body_id for b in denoise(raw_bodies(parse_skeleton(p))[1])}
    assert ids == ({"1"} if dropped else {"1", "2"})


def test_partly_noisy_body_has_its_motion_lowered(tmp_path):
    """B is noisy on 5 of 20 frames (wild x-spread there), so its whole-clip motion is the
    largest; the reference lowers it to the motion over its 15 clean frames, which ranks it
    below A, so A is actor 1."""
    T = 20
    a = [person(t, sway=0.3) for t in range(T)]
    b = [person(t, x0=1.2, x_half=2.5) if t < 5 else person(t, x0=1.2, sway=0.02)
         for t in range(T)]
    p = write(tmp_path / NAME, [[("2", b[t]), ("1", a[t])] for t in range(T)])
    ra, rb = stack(a), stack(b)
    mot = lambda j: j.reshape(-1, 3).var(axis=0).sum()  # noqa: E731
    assert mot(rb) > mot(ra) > mot(rb[5:])
    got = reference_sequence(parse_skeleton(p))
    np.testing.assert_array_equal(got, centred(ra, rb))


def test_raw_bodies_number_frames_contiguously_from_first_appearance(tmp_path):
    """The reference reader numbers a body's frames first, first+1, ... even when it vanishes
    in between; frames with no body do not count."""
    a = [person(t) for t in range(16)]
    g = [person(t, x0=2.0) for t in range(3)]
    frames = [[]] + [[("1", a[t])] for t in range(6)] + [[("7", g[t])] for t in range(3)]
    frames += [[("1", a[t])] for t in range(6, 16)]
    num_frames, bodies = raw_bodies(parse_skeleton(write(tmp_path / NAME, frames)))
    assert num_frames == 19
    assert [(b.body_id, b.start, b.end) for b in bodies] == [("1", 0, 15), ("7", 6, 8)]
    np.testing.assert_array_equal(bodies[0].joints, stack(a))
    seq = denoised_sequence(parse_skeleton(write(tmp_path / NAME, frames)))
    assert seq.shape == (16, 75)  # ghost dropped, its 3 frames removed


def test_translation_origin_is_actor1_first_present_frame():
    seq = np.zeros((4, 150), dtype=np.float32)
    seq[0, 75:] = 5.0  # actor 2 alone in frame 0
    seq[1:, :75] = np.arange(75, dtype=np.float32) + 1.0
    seq[1:3, 75:] = 2.0
    got = translate(seq)
    origin = np.float32([4.0, 5.0, 6.0])  # joint 2 of actor 1 in frame 1
    expect = seq.reshape(4, 50, 3) - origin
    expect[0, :25] = 0  # actor 1 missing in frame 0 stays zero
    expect[3, 25:] = 0  # actor 2 missing in frame 3 stays zero
    np.testing.assert_array_equal(got, expect.reshape(4, 150))


def test_no_survivor_is_skipped_not_crashed(tmp_path):
    frames = [[("1", person(t)), ("2", person(t, x0=1.0))] for t in range(8)]
    with pytest.raises(SkeletonFormatError, match="no body survives denoising"):
        reference_sequence(parse_skeleton(write(tmp_path / NAME, frames)))
