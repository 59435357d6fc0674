import numpy as np
import pytest
import torch

from lastexp.config import DatasetConfig, PreprocessingConfig, SyntheticConfig
from lastexp.data import DataError, load_data
from lastexp.data import arrays as prep_mod
from lastexp.data.arrays import SplitArrays, build_arrays
from lastexp.data.dataset import SkeletonDataset, uniform_indices, valid_crop_resize
from lastexp.data.synthetic import ensure_corpus
from lastexp.data.synthetic_motion import ACTIONS


def synth(**kw):
    return SyntheticConfig(samples_per_class=4, min_frames=20, max_frames=40, **kw)


def test_uniform_indices_train_vs_test():
    rng = np.random.default_rng(0)
    test = uniform_indices(100, 10, False, rng)
    assert test.tolist() == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    train = uniform_indices(100, 10, True, rng)
    assert ((train >= np.arange(10) * 10) & (train < np.arange(1, 11) * 10)).all()
    short = uniform_indices(3, 8, False, rng)
    assert sorted(set(short.tolist())) == [0, 1, 2] and len(short) == 8
    assert (np.diff(short) >= 0).all()


def test_crop_resize_shapes():
    data = np.arange(50, dtype=np.float32)[None, :, None, None] * np.ones((3, 50, 25, 1))
    out = valid_crop_resize(data, 40, [0.95], 16, False, np.random.default_rng(0))
    assert out.shape == (3, 16, 25, 1) and out.max() <= 39
    out = valid_crop_resize(data, 40, [0.5, 1.0], 64, True, np.random.default_rng(0))
    assert out.shape == (3, 64, 25, 1)
    np.testing.assert_allclose(np.diff(out[0, :, 0, 0]).min() >= 0, True)


def make_arrays(n=4, t=30):
    x = np.random.default_rng(0).normal(size=(n, 3, t, 25, 1)).astype(np.float32)
    return SplitArrays(x, np.arange(n), np.array([30, 20, 10, 5]), [f"s{i}" for i in range(n)])


@pytest.mark.parametrize("sampling", ["uniform", "crop_resize"])
def test_dataset_items_deterministic(sampling):
    ds = SkeletonDataset(make_arrays(), 16, sampling, True, [0.5, 1.0], seed=3)
    x, y = ds[1]
    x0 = ds[0][0]
    assert x.shape == (3, 16, 25, 1) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert int(y) == 1
    torch.testing.assert_close(ds[1][0], x)
    changed = False
    for epoch in range(1, 6):
        ds.set_epoch(epoch)
        changed |= not torch.equal(ds[0][0], ds.__class__.__getitem__(ds, 0)[0] * 0 + x0)
    assert changed
    test = SkeletonDataset(make_arrays(), 16, sampling, False, [0.95], seed=3)
    a = test[0][0]
    test.set_epoch(7)
    torch.testing.assert_close(test[0][0], a)


def dcfg(tmp_path, **kw):
    d = DatasetConfig(synthetic=synth())
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def test_load_data_end_to_end_with_corrupt_file(tmp_path, monkeypatch):
    raw = ensure_corpus(tmp_path / "gen", synth())
    import shutil

    mine = tmp_path / "raw"
    shutil.copytree(raw, mine)
    victim = sorted(mine.glob("*.skeleton"))[0]
    victim.write_bytes(victim.read_bytes()[:5000])
    (mine / "notes.skeleton").write_text("hello")
    ds = dcfg(tmp_path, raw_dir=str(mine))
    # temporal jitter keeps every frame, thinned to max_frames
    prep = PreprocessingConfig(window=32, max_frames=30, num_person=2, temporal_jitter=True)
    bundle = load_data(ds, prep, str(tmp_path / "data"), seed=0)
    s = bundle.summary
    assert s["skipped"][victim.name].startswith("truncated at frame")
    assert s["skipped"]["notes.skeleton"] == "not NTU naming"
    assert s["num_classes"] == bundle.num_classes == len(ACTIONS)
    assert s["n_train"] + s["n_test"] == 4 * len(ACTIONS) - 1
    assert s["n_train"] == len(bundle.train) and s["n_test"] == len(bundle.test)
    assert bundle.num_person == 2
    assert bundle.train.arrays.x.shape[2] == 30  # max_frames subsampling
    x, y = bundle.train[0]
    assert x.shape == (3, 32, 25, 2)
    # centred: joint 2 of the first frame is the origin
    first = bundle.test.arrays.x[0, :, 0, 1, 0]
    np.testing.assert_allclose(first, 0.0, atol=1e-6)
    assert set(s) >= {"n_train", "n_test", "num_classes", "skipped", "frames", "bodies"}
    assert not s["cached"]

    def boom(*a, **k):
        raise AssertionError("parsed a file on a cached load")

    monkeypatch.setattr(prep_mod, "parse_skeleton", boom)
    again = load_data(ds, prep, str(tmp_path / "data"), seed=0)
    assert again.summary["cached"]
    np.testing.assert_array_equal(again.train.arrays.x, bundle.train.arrays.x)
    assert again.train.arrays.names == bundle.train.arrays.names
    assert again.summary["skipped"] == s["skipped"]


def test_synthetic_default_raw_dir_and_limit(tmp_path):
    prep = PreprocessingConfig(window=16, max_frames=64)
    b = load_data(dcfg(tmp_path, limit=5), prep, str(tmp_path), seed=0)
    assert len(b.train) == 5 and len(b.test) == 5
    assert b.train.arrays.x.shape[-1] == 1


def test_build_arrays_pool_matches_serial(tmp_path):
    raw = ensure_corpus(tmp_path, synth())
    prep = PreprocessingConfig(max_frames=40)
    a, at, _ = build_arrays(raw, "synthetic", "xview", prep, workers=1)
    b, bt, _ = build_arrays(raw, "synthetic", "xview", prep, workers=2)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(at.y, bt.y)


def test_data_errors(tmp_path):
    prep = PreprocessingConfig()
    with pytest.raises(DataError, match="dataset.raw_dir"):
        load_data(DatasetConfig(benchmark="ntu60"), prep, str(tmp_path), 0)
    with pytest.raises(DataError, match="dataset.npz"):
        load_data(DatasetConfig(benchmark="ntu60", npz="x.npz"), prep, str(tmp_path), 0)
    with pytest.raises(DataError, match="dataset.raw_dir"):
        load_data(DatasetConfig(benchmark="ntu60", raw_dir=str(tmp_path / "nope")), prep,
                  str(tmp_path), 0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="dataset.raw_dir"):
        load_data(DatasetConfig(benchmark="ntu60", raw_dir=str(tmp_path / "empty")), prep,
                  str(tmp_path), 0)
    # only training subjects present -> the test split is empty
    raw = ensure_corpus(tmp_path / "g", SyntheticConfig(samples_per_class=2, min_frames=20,
                                                        max_frames=30))
    with pytest.raises(DataError, match="test split"):
        load_data(DatasetConfig(benchmark="ntu60", raw_dir=str(raw)), prep, str(tmp_path), 0)
    assert issubclass(DataError, ValueError)


def frame_ramp(t_store: int, m: int = 1) -> np.ndarray:
    """(3, T, 25, M) data whose every value is its frame index: sampled values name frames."""
    return np.arange(t_store, dtype=np.float32)[None, :, None, None] * np.ones((3, t_store, 25, m),
                                                                                np.float32)


def ramp_dataset(prep, train: bool, lengths=(300, 200, 90, 40)) -> SkeletonDataset:
    n = len(lengths)
    x = np.stack([frame_ramp(300, int(prep.num_person)) for _ in range(n)])
    for i, length in enumerate(lengths):
        x[i, :, length:] = 0.0  # padding past the valid frames, as in the caches
    arrays = SplitArrays(x, np.arange(n), np.asarray(lengths), [f"s{i}" for i in range(n)])
    p = prep.p_interval_train if train else prep.p_interval_test
    return SkeletonDataset(arrays, prep.window, prep.sampling, train, list(p), seed=0)


def test_p1_crop_bounds_and_resize_match_ctrgcn():
    """P1 (t300_crop64): test crops the centre 95% of the valid frames; train crops a random
    window of floor(p * valid) frames, p ~ U[0.5, 1], at least 64 and at most valid; both are
    resized to 64 as CTR-GCN does (torch bilinear interpolate, align_corners=False)."""
    from tests.conftest import compose

    prep = compose(["ablation=P1"]).preprocessing
    assert (prep.name, prep.window, prep.max_frames, prep.sampling) == (
        "t300_crop64", 64, 300, "crop_resize")
    assert list(prep.p_interval_train) == [0.5, 1.0] and list(prep.p_interval_test) == [0.95]
    test = ramp_dataset(prep, train=False)
    for i, valid in enumerate((300, 200, 90, 40)):
        bias = int((1 - 0.95) * valid / 2)
        crop = torch.arange(bias, valid - bias, dtype=torch.float32)[None, None, None, :]
        ref = torch.nn.functional.interpolate(crop, size=(1, 64), mode="bilinear",
                                              align_corners=False)[0, 0, 0]
        torch.testing.assert_close(test[i][0][0, :, 0, 0], ref)
    train = ramp_dataset(prep, train=True)
    for i, valid in enumerate((300, 200, 90)):
        sizes, starts = [], []
        for epoch in range(300):
            train.set_epoch(epoch)
            out = train[i][0][0, :, 0, 0].numpy().astype(np.float64)
            # a crop [b, b + size) resized to 64: out[k] = b + (k + 0.5) * size / 64 - 0.5
            size = (out[-1] - out[0]) * 64 / 63
            b = out[0] - (0.5 * size / 64 - 0.5)
            assert abs(size - round(size)) < 1e-3 and abs(b - round(b)) < 1e-3
            sizes.append(round(size))
            starts.append(round(b))
        lo = min(max(int(np.floor(valid * 0.5)), 64), valid)
        assert min(sizes) >= lo and max(sizes) <= valid
        assert min(sizes) <= lo + 0.1 * valid and max(sizes) >= valid - 0.1 * valid  # spans it
        assert all(0 <= b and b + s <= valid for b, s in zip(starts, sizes))
    train.set_epoch(0)
    short = train[3][0][0, :, 0, 0]  # 40 valid frames: the whole clip, stretched to 64
    ref = torch.nn.functional.interpolate(torch.arange(40.0)[None, None, None, :], size=(1, 64),
                                          mode="bilinear", align_corners=False)[0, 0, 0]
    torch.testing.assert_close(short, ref)


def test_p2_t120_uniform_sampling_with_temporal_jitter():
    """P2 (t120_uniform) with preprocessing.temporal_jitter=true, whose cache keeps every
    frame: 120 frames, one per equal segment of the valid frames: a random frame of each
    segment in training, its centre in testing; short clips repeat frames. (Without the
    option, the default, the cache stores the centres: tests/data/test_stored_frames.py.)"""
    from tests.conftest import compose

    cfg = compose(["ablation=P2"])
    prep = cfg.preprocessing
    assert (prep.name, prep.window, prep.sampling, prep.num_person) == (
        "t120_uniform", 120, "uniform", 1)
    assert prep.temporal_jitter is False  # the notes' P2 stores its 120 frames
    assert cfg.model.name == "last_e_base"
    test = ramp_dataset(prep, train=False)
    train = ramp_dataset(prep, train=True)
    for i, valid in enumerate((300, 200, 90, 40)):
        edges = np.linspace(0.0, valid, 121)
        got = test[i][0][0, :, 0, 0].numpy()
        assert test[i][0].shape == (3, 120, 25, 1)
        np.testing.assert_array_equal(got, np.floor((np.arange(120) + 0.5) * valid / 120))
        seen = set()
        for epoch in range(20):
            train.set_epoch(epoch)
            idx = train[i][0][0, :, 0, 0].numpy()
            assert (idx >= np.floor(edges[:-1])).all() and (idx < np.ceil(edges[1:])).all()
            assert (np.diff(idx) >= 0).all() and idx.max() < valid
            seen.update(idx.tolist())
        if valid >= 120:
            assert len(seen) > 120  # different frames in different epochs
        else:
            assert seen == set(range(valid))  # every frame is used, some twice
