import numpy as np

from lastexp.config import SyntheticConfig
from lastexp.data.denoise import reference_sequence
from lastexp.data.skeleton import parse_ntu_name, parse_skeleton
from lastexp.data.synthetic import ensure_corpus, generate_corpus
from lastexp.data.synthetic_motion import ACTIONS, TWO_PERSON


def small(**kw):
    return SyntheticConfig(**{"samples_per_class": 4, "min_frames": 20, "max_frames": 40, **kw})


def test_deterministic_bytes_and_names(tmp_path):
    a = generate_corpus(tmp_path / "a", small())
    b = generate_corpus(tmp_path / "b", small())
    assert [p.name for p in a] == [p.name for p in b]
    assert len(a) == 4 * len(ACTIONS) and len({p.name for p in a}) == len(a)
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes()
    c = generate_corpus(tmp_path / "c", small(seed=1))
    assert a[0].read_bytes() != c[0].read_bytes()


def test_files_parse_with_ntu_format(tmp_path):
    paths = generate_corpus(tmp_path, small(samples_per_class=6))
    assert len(ACTIONS) >= 12
    cameras, subjects = set(), set()
    for p in paths:
        name = parse_ntu_name(p.stem)
        cameras.add(name.camera)
        subjects.add(name.subject)
        data = p.read_bytes()
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
        lines = data.split(b"\r\n")
        first = next(i for i, ln in enumerate(lines) if len(ln.split()) == 10) + 1
        assert lines[first] == b"25"
        assert len(lines[first + 1].split()) == 12 and lines[first + 1].split()[-1] == b"2"
        parsed = parse_skeleton(p)
        assert 20 <= parsed["num_frames"] <= 40
        info = lines[first - 1].split()
        assert len(info) == 10 and int(info[0]) > 2**56
        out = reference_sequence(parsed)
        assert np.isfinite(out).all()
        if name.label in TWO_PERSON:
            assert out[:, 1].any()
        else:
            assert not out[:, 1].any()  # ghosts are removed by the denoiser
    assert cameras == {1, 2, 3} and subjects == set(range(1, 7))


def test_ghosts_and_empty_frames_present(tmp_path):
    paths = generate_corpus(tmp_path, small(samples_per_class=12))
    ghosts = empty = 0
    for p in paths:
        parsed = parse_skeleton(p)
        if parse_ntu_name(p.stem).label not in TWO_PERSON and len(parsed["bodies"]) > 1:
            ghosts += 1
        if min(f[0] for f, _ in parsed["bodies"].values()) > 0:
            empty += 1
    assert ghosts > 0 and empty > 0


def test_ensure_corpus_reuses(tmp_path):
    raw = ensure_corpus(tmp_path, small())
    assert raw.name == "raw" and len(list(raw.glob("*.skeleton"))) == 4 * len(ACTIONS)
    stamp = {p.name: p.stat().st_mtime_ns for p in raw.glob("*.skeleton")}
    assert ensure_corpus(tmp_path, small()) == raw
    assert stamp == {p.name: p.stat().st_mtime_ns for p in raw.glob("*.skeleton")}
    assert ensure_corpus(tmp_path, small(noise=0.02)) != raw
    assert not list(raw.parent.glob("raw.tmp-*"))
