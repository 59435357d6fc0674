import numpy as np
import pytest
import torch

from lastexp.config import DatasetConfig, PreprocessingConfig, SyntheticConfig
from lastexp.data import DataError, load_data
from lastexp.data import preprocess as prep_mod
from lastexp.data.dataset import SkeletonDataset, uniform_indices, valid_crop_resize
from lastexp.data.preprocess import SplitArrays, build_arrays
from lastexp.data.synthetic import ACTIONS, ensure_corpus


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
    prep = PreprocessingConfig(window=32, max_frames=30, num_person=2)
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
