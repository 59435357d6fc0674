"""The cache key's text is fixed: existing caches are found by it. The expected keys are the
SHA-1 of identity blobs written out here, not values taken from lastexp.data. The key holds
what defines the data: the source (a raw folder's resolved path, each file's size and mtime,
the missing list; an npz's path, size and mtime) and the frames stored."""

import hashlib

from omegaconf import OmegaConf

import lastexp.data as data
from lastexp.config import DatasetConfig, PreprocessingConfig, SyntheticConfig
from lastexp.data import dataset_config, preprocessing_config


def sha16(blob: str) -> str:
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


SYNTHETIC_DEFAULT = sha16(
    '{"benchmark": "synthetic", "copy_single_body": 0, "files": [], "limit": null, '
    '"num_person": 1, "split": "xsub", "stored_frames": {"uniform": 64}, '
    '"synthetic": {"max_frames": 110, "min_frames": 48, "noise": 0.01, '
    '"samples_per_class": 100, "seed": 0, "subjects": 40}, '
    f'"v": {data.CACHE_VERSION}}}'
)
NPZ = sha16(
    '{"benchmark": "ntu60", "copy_single_body": 0, "files": ["/d/x.npz", 10, 20], '
    '"limit": null, "num_person": 2, "split": "xsub", "stored_frames": {"all": 300}, '
    '"synthetic": null, '
    f'"v": {data.CACHE_VERSION}}}'
)


def test_synthetic_default_key_from_a_dataclass_a_node_and_a_dict():
    prep = PreprocessingConfig()
    assert data.cache_key(DatasetConfig(), prep, []) == SYNTHETIC_DEFAULT
    node = OmegaConf.structured(DatasetConfig())
    assert data.cache_key(dataset_config(node), preprocessing_config(
        OmegaConf.structured(prep)), []) == SYNTHETIC_DEFAULT
    plain = OmegaConf.to_container(node)
    plain["retired_key"] = 1  # a checkpoint's config may hold a key the schema dropped
    assert data.cache_key(dataset_config(plain), preprocessing_config({}), []) == SYNTHETIC_DEFAULT


def test_npz_key():
    ds = {"name": "ntu60_xsub", "benchmark": "ntu60", "split": "xsub", "num_classes": 60,
          "npz": "/d/x.npz"}  # no synthetic entry: a generated corpus is not hashed for an npz
    prep = {"num_person": 2, "window": 120, "sampling": "crop_resize"}  # draw-time fields
    assert data.cache_key(dataset_config(ds), preprocessing_config(prep),
                          ["/d/x.npz", 10, 20]) == NPZ


def test_dataset_config_converts_its_synthetic_node():
    node = OmegaConf.create({"benchmark": "synthetic", "synthetic": {"seed": 3}})
    ds = dataset_config(node)
    assert isinstance(ds, DatasetConfig) and ds.synthetic == SyntheticConfig(seed=3)
    same = DatasetConfig()
    assert dataset_config(same) is same


def test_stored_frames_part_of_the_key():
    ds = DatasetConfig()
    p0, p2 = PreprocessingConfig(), PreprocessingConfig(name="t120_uniform", window=120)
    p1 = PreprocessingConfig(name="t300_crop64", sampling="crop_resize")
    jitter = PreprocessingConfig(temporal_jitter=True)
    assert data.stored_frames_key(p0) == {"uniform": 64}
    assert data.stored_frames_key(p2) == {"uniform": 120}
    assert data.stored_frames_key(p1) == data.stored_frames_key(jitter) == {"all": 300}
    keys = {data.cache_key(ds, p, []) for p in (p0, p2, p1)}
    assert len(keys) == 3
    # the crop window acts when items are drawn: the cache keeping every frame is shared
    assert data.cache_key(ds, p1, []) == data.cache_key(
        ds, PreprocessingConfig(sampling="crop_resize", window=32), [])


def _capture(path, t0=0.0):
    from tests.data.test_denoise import person, write

    return write(path, [[("1", person(t, x0=t0 + 0.001 * t, sway=0.2))] for t in range(20)])


def test_a_same_size_edit_of_a_capture_rebuilds_the_cache(tmp_path):
    import os
    import shutil

    import numpy as np

    raw = tmp_path / "raw"
    raw.mkdir()
    train = _capture(raw / "S001C001P001R001A001.skeleton")
    _capture(raw / "S001C001P003R001A002.skeleton", t0=0.3)
    ds = DatasetConfig(name="ntu60_xsub", benchmark="ntu60", split="xsub", raw_dir=str(raw))
    prep = PreprocessingConfig()
    tr, _, s = data.load_arrays(ds, prep, tmp_path / "d")
    listing = s["cache_key"]
    # edit one digit of a coordinate: same size, a later mtime
    text = train.read_bytes()
    lines = text.split(b"\r\n")
    joint = lines[4]  # frame 1, body 1, joint 1: "x y z ..."
    x = joint.split(b" ")[0]
    new_x = x[:-1] + (b"7" if x[-1:] != b"7" else b"3")
    lines[4] = new_x + joint[len(x):]
    st = train.stat()
    train.write_bytes(b"\r\n".join(lines))
    assert train.stat().st_size == st.st_size
    os.utime(train, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    tr2, _, s2 = data.load_arrays(ds, prep, tmp_path / "d")
    assert not s2["cached"] and s2["cache_key"] != listing
    assert not np.array_equal(np.asarray(tr.x), np.asarray(tr2.x))  # the edited value is read
    # the same captures (names, sizes, mtimes) under another folder: another cache
    other = tmp_path / "copy"
    shutil.copytree(raw, other, copy_function=shutil.copy2)
    ds_other = DatasetConfig(name="ntu60_xsub", benchmark="ntu60", split="xsub",
                             raw_dir=str(other))
    _, _, s3 = data.load_arrays(ds_other, prep, tmp_path / "d")
    assert not s3["cached"] and s3["cache_key"] != s2["cache_key"]
    # unchanged: reused
    _, _, s4 = data.load_arrays(ds, prep, tmp_path / "d")
    assert s4["cached"] and s4["cache"] == s2["cache"]


def test_raw_listing_is_stat_only(tmp_path, monkeypatch):
    from pathlib import Path

    (tmp_path / "a.skeleton").write_text("1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.skeleton").write_text("22")

    def no_reading(*a, **k):
        raise AssertionError("the key read a file")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    monkeypatch.setattr(Path, "open", no_reading)
    files = sorted(tmp_path.rglob("*.skeleton"))
    got = data.raw_listing(tmp_path, files, {"S001C001P001R001A001"})
    assert got["raw_dir"] == str(tmp_path.resolve())
    assert got["missing_list"] == ["S001C001P001R001A001"]
    assert [f[:2] for f in got["files"]] == [["a.skeleton", 1], ["sub/b.skeleton", 2]]
    assert [f[2] for f in got["files"]] == [p.stat().st_mtime_ns for p in files]
