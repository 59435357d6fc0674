"""Captures no sensor makes are skipped with a stated reason, never stored and never fatal:
coordinates that are not finite or lie beyond MAX_ABS_COORD metres (3e38 is a valid float32
that would become inf in the pipeline), and a body ID repeated inside one frame (CTR-GCN's
get_raw_skes_data.py would append the repeat as the body's next frame, shifting its later
frames, and its get_raw_denoised_data.py then fails on the too-long body)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lastexp.config import DatasetConfig, PreprocessingConfig, SyntheticConfig
from lastexp.data import DataError, load_arrays
from lastexp.data.locks import cache_lock_path, held
from lastexp.data.skeleton import MAX_ABS_COORD
from lastexp.data.synthetic import corpus_hash, ensure_corpus
from tests.data.test_denoise import person, write

GOOD = ["S001C001P001R001A001", "S001C001P003R001A002"]


def frames(n=20, **kw):
    return [[("1", person(t, **kw))] for t in range(n)]


@pytest.fixture
def raw(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    for name in GOOD:
        write(d / f"{name}.skeleton", frames())
    return d


def load(raw, root):
    ds = DatasetConfig(name="ntu60_xsub", benchmark="ntu60", split="xsub", raw_dir=str(raw))
    return load_arrays(ds, PreprocessingConfig(), root)


def test_the_bound_is_far_beyond_any_capture():
    assert MAX_ABS_COORD == 1e3  # Kinect v2: depth to 8 m; float32 squares stay finite
    assert np.isfinite(np.float32(MAX_ABS_COORD) ** 2 * 25 * 300)


@pytest.mark.parametrize("value,words", [("3e+38", "implausible coordinate 3e+38"),
                                         ("-1500.5", "implausible coordinate -1500.5"),
                                         ("inf", "non-finite coordinate")])
def test_an_impossible_coordinate_skips_the_file(raw, tmp_path, value, words):
    bad = raw / "S001C002P001R001A003.skeleton"
    write(bad, frames())
    lines = bad.read_bytes().split(b"\r\n")
    fields = lines[5].split(b" ")  # frame 1, body 1, joint 2
    fields[1] = value.encode()
    lines[5] = b" ".join(fields)
    bad.write_bytes(b"\r\n".join(lines))
    tr, te, s = load(raw, tmp_path / "d")
    assert words in s["skipped"][bad.name]
    assert bad.stem not in tr.names + te.names
    assert np.isfinite(np.asarray(tr.x)).all() and np.abs(np.asarray(tr.x)).max() < 10
    assert sorted(tr.names + te.names) == GOOD


def test_a_body_id_repeated_within_a_frame_skips_the_file(raw, tmp_path):
    fr = frames(30)
    fr[7] = [("1", person(7)), ("1", person(7, x0=0.5))]
    bad = write(raw / "S001C002P001R001A004.skeleton", fr)
    tr, te, s = load(raw, tmp_path / "d")
    assert s["skipped"][bad.name] == "body ID 1 appears twice in frame 8"
    assert sorted(tr.names + te.names) == GOOD
    summary = json.loads((Path(s["cache"]) / "summary.json").read_text())
    assert summary["skipped"][bad.name] == "body ID 1 appears twice in frame 8"


def test_npz_coordinates_beyond_the_bound_are_refused(tmp_path):
    x = np.zeros((2, 10, 150), dtype=np.float32)
    x[:, :, 3] = 1.0
    x[1, 4, 7] = 3e38
    f = tmp_path / "far.npz"
    np.savez(f, x_train=x, y_train=np.eye(60)[[0, 1]], x_test=x[:1], y_test=np.eye(60)[[2]])
    ds = DatasetConfig(name="ntu60_xsub", benchmark="ntu60", npz=str(f))
    with pytest.raises(DataError, match=r"x_train holds coordinates beyond 1000 m in 1 "
                                        r"sample\(s\) \(the first at index 1\)"):
        load_arrays(ds, PreprocessingConfig(), tmp_path / "d")


def test_leftovers_of_killed_builds_are_removed_under_the_lock(raw, tmp_path):
    root = tmp_path / "d"
    _, _, s = load(raw, root)
    cache = Path(s["cache"])
    mine = cache.parent / f".tmp-{cache.name}-abcd1234"  # a killed rebuild of this cache
    other = cache.parent / ".tmp-synthetic-xsub-t64_uniform-0123456789abcdef-zz_9x8y7"
    busy = cache.parent / ".tmp-ntu60_xsub-xsub-t300_crop64-fedcba9876543210-q1w2e3r4"
    for d in (mine, other, busy):
        d.mkdir()
        (d / "train_x.npy").write_bytes(b"half")
    keep = cache.parent / "notes.tmp-1"  # not a name a build writes
    keep.write_text("mine")
    with held(cache_lock_path(cache.parent / busy.name[5:-9])):  # being built right now
        _, _, again = load(raw, root)
    assert again["cached"]
    assert not mine.exists() and not other.exists()
    assert busy.exists() and keep.read_text() == "mine"
    _, _, third = load(raw, root)
    assert not busy.exists()


def test_corpus_leftovers_are_removed_under_its_lock(tmp_path):
    cfg = SyntheticConfig(samples_per_class=1, min_frames=12, max_frames=14)
    base = tmp_path / "synthetic" / corpus_hash(cfg)
    left = base / f"raw.tmp-{os.getpid() + 1}"
    left.mkdir(parents=True)
    (left / "S001C001P001R001A001.skeleton").write_text("half")
    raw = ensure_corpus(tmp_path, cfg)
    assert raw == base / "raw" and raw.is_dir() and not left.exists()
    left.mkdir()
    assert ensure_corpus(tmp_path, cfg) == raw and not left.exists()


@pytest.mark.parametrize("field,value,words", [
    ("samples_per_class", 0, "dataset.synthetic.samples_per_class=0 must be >= 1"),
    ("subjects", 0, "dataset.synthetic.subjects=0 must be >= 1"),
    ("min_frames", 0, "dataset.synthetic.min_frames=0 must be >= 1"),
    ("min_frames", 200, "dataset.synthetic.min_frames=200 is above dataset.synthetic."
                        "max_frames=110"),
    ("noise", float("nan"), "dataset.synthetic.noise=nan must be a finite value >= 0"),
])
def test_a_corpus_that_cannot_be_made_is_refused_before_writing(tmp_path, field, value, words):
    cfg = SyntheticConfig(**{field: value})
    with pytest.raises(DataError, match=words.replace(".", r"\.").replace("(", r"\(")):
        ensure_corpus(tmp_path / "d", cfg)
    assert not (tmp_path / "d").exists()


def test_a_linked_lock_file_is_refused_and_its_target_untouched(raw, tmp_path):
    root = tmp_path / "d"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    _, _, s = load(raw, root)
    lock = cache_lock_path(Path(s["cache"]))
    lock.unlink()
    lock.symlink_to(victim)
    with pytest.raises(DataError, match="is a symbolic link, which lastexp never follows"):
        load(raw, root)
    assert victim.read_text() == "precious"


def test_two_commands_building_one_cache_build_it_once(raw, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    cmd = [sys.executable, "-m", "lastexp.preprocess", "dataset=ntu60_xsub",
           f"dataset.raw_dir={raw}", f"paths.data={tmp_path / 'd'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    states = sorted("built" if "cache built" in o else "reused" for o, _ in outs)
    assert states == ["built", "reused"]
    assert [p.name for p in (tmp_path / "d" / "cache").iterdir() if ".tmp-" in p.name] == []


def test_a_dangling_link_is_skipped(raw, tmp_path):
    link = raw / "S001C002P001R001A005.skeleton"
    link.symlink_to(tmp_path / "nowhere")
    tr, te, s = load(raw, tmp_path / "d")
    assert s["skipped"][link.name] == "a symbolic link to nothing"
    assert sorted(tr.names + te.names) == GOOD
