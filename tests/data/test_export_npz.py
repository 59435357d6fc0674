"""`python -m lastexp.preprocess ... --export-npz FILE` and the npz source's split check.

Expected arrays come from the values written into the files and the reference's rules
(origin at actor 1's joint 2 in its first frame, samples ordered by subject ID for xsub,
T the longest sequence, one-hot labels), worked out here.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from lastexp.config import DatasetConfig, PreprocessingConfig
from lastexp.data import DataError, load_arrays
from tests.conftest import run_cli
from tests.data.test_denoise import person, read_back, write

# (name, frames, two persons?)
SAMPLES = [
    ("S001C001P003R001A001", 14, False),
    ("S001C002P001R001A002", 16, False),
    ("S001C001P002R001A050", 13, True),
    ("S001C003P006R001A003", 18, False),
    ("S001C002P004R002A051", 15, True),
    ("S001C001P005R001A004", 12, False),
]


def expected(frames, two):
    a = np.stack([read_back(person(t, sway=0.4)) for t in range(frames)])
    out = np.zeros((frames, 2, 25, 3), dtype=np.float32)
    out[:, 0] = a - a[0, 1]
    if two:  # an absent second body stays zero
        out[:, 1] = np.stack([read_back(person(t, x0=1.3, sway=0.1)) for t in range(frames)])
        out[:, 1] -= a[0, 1]
    return out.reshape(frames, 150)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    d = tmp_path_factory.mktemp("raw")
    for name, frames, two in SAMPLES:
        fr = [[("1", person(t, sway=0.4))] + ([("2", person(t, x0=1.3, sway=0.1))] if two else [])
              for t in range(frames)]
        write(d / f"{name}.skeleton", fr)
    return d


def export(raw, tmp_path, dataset, name, *extra):
    """``python -m lastexp.preprocess dataset=<dataset> ... --export-npz <name>``; its path."""
    out = tmp_path / name
    r = run_cli([f"dataset={dataset}", f"dataset.raw_dir={raw}", f"paths.data={tmp_path}",
                 *extra, "--export-npz", str(out)], tmp_path, module="lastexp.preprocess")
    assert r.returncode == 0, r.stderr
    return out


def centres(length, window):
    """The uniform subsample: frame floor((i + 0.5) * L / window), i = 0 .. window - 1."""
    return np.floor((np.arange(window) + 0.5) * length / window).astype(np.int64)


@pytest.mark.parametrize("prep,window", [("t64_uniform", 64), ("t120_uniform", 120),
                                         ("t64_uniform_2body", 64)])
def test_export_npz_of_a_uniform_preprocessing_holds_its_window(raw, tmp_path, prep, window):
    """P0 / P2 / P3 store exactly `window` frames: the reference arrays subsampled."""
    out = export(raw, tmp_path, "ntu60_xsub", "NTU60_CS.npz", f"preprocessing={prep}")
    with np.load(out, allow_pickle=False) as z:
        info = {n: (f, two) for n, f, two in SAMPLES}
        for side in ("train", "test"):
            x = z[f"x_{side}"]
            assert x.dtype == np.float32 and x.shape == (len(z[f"{side}_names"]), window, 150)
            for i, name in enumerate(z[f"{side}_names"].tolist()):
                frames, two = info[name]
                np.testing.assert_array_equal(x[i], expected(frames, two)[centres(frames,
                                                                                  window)])


def test_export_npz_never_replaces_a_file_without_force(raw, tmp_path):
    out = tmp_path / "NTU60_CS.npz"
    out.write_bytes(b"my own file")
    args = ["dataset=ntu60_xsub", f"dataset.raw_dir={raw}", f"paths.data={tmp_path / 'd'}",
            "--export-npz", str(out)]
    r = run_cli(args, tmp_path, module="lastexp.preprocess")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "--force" in r.stderr
    assert out.read_bytes() == b"my own file" and not (tmp_path / "d").exists()
    r = run_cli([*args, "--force"], tmp_path, module="lastexp.preprocess")
    assert r.returncode == 0, r.stderr
    with np.load(out, allow_pickle=False) as z:
        assert z["x_train"].shape[1:] == (64, 150)


def test_export_npz_is_ctrgcn_layout_in_reference_order(raw, tmp_path):
    """P1 (t300_crop64) keeps every frame, padded to the longest clip: the reference arrays."""
    with np.load(export(raw, tmp_path, "ntu60_xsub", "NTU60_CS.npz",
                        "preprocessing=t300_crop64"), allow_pickle=False) as z:
        assert set(z.files) == {"x_train", "y_train", "x_test", "y_test", "train_names",
                                "test_names"}
        # xsub: train subjects 1, 2, 4, 5 (in that order), test 3, 6
        assert z["train_names"].tolist() == ["S001C002P001R001A002", "S001C001P002R001A050",
                                             "S001C002P004R002A051", "S001C001P005R001A004"]
        assert z["test_names"].tolist() == ["S001C001P003R001A001", "S001C003P006R001A003"]
        assert z["train_names"].dtype.kind == "U"
        t = max(f for _, f, _ in SAMPLES)
        info = {n: (f, two) for n, f, two in SAMPLES}
        for side in ("train", "test"):
            x, y = z[f"x_{side}"], z[f"y_{side}"]
            assert x.dtype == np.float32 and x.shape == (len(z[f"{side}_names"]), t, 150)
            assert y.shape == (len(x), 60) and (y.sum(axis=1) == 1).all()
            for i, name in enumerate(z[f"{side}_names"].tolist()):
                frames, two = info[name]
                assert y[i].argmax() == int(name[-3:]) - 1
                np.testing.assert_array_equal(x[i, :frames], expected(frames, two))
                assert not x[i, frames:].any()


def test_export_npz_xview_order_is_by_camera(raw, tmp_path):
    with np.load(export(raw, tmp_path, "ntu60_xview", "NTU60_CV.npz"), allow_pickle=False) as z:
        # xview: train cameras 2 then 3 (file order within a camera), test camera 1
        assert z["train_names"].tolist() == ["S001C002P001R001A002", "S001C002P004R002A051",
                                             "S001C003P006R001A003"]
        assert z["test_names"].tolist() == ["S001C001P002R001A050", "S001C001P003R001A001",
                                            "S001C001P005R001A004"]


def test_cache_of_the_old_rules_is_not_reused(monkeypatch):
    import lastexp.data as data

    assert data.CACHE_VERSION >= 4  # 2: the old denoising rules; 3: every frame stored
    ds, prep = DatasetConfig(), PreprocessingConfig()
    now = data.cache_key(ds, prep, [])
    monkeypatch.setattr(data, "CACHE_VERSION", 2)
    assert data.cache_key(ds, prep, []) != now


def test_npz_of_another_split_is_refused(raw, tmp_path):
    out = tmp_path / "export.npz"
    r = run_cli(["dataset=ntu60_xsub", f"dataset.raw_dir={raw}", f"paths.data={tmp_path}",
                 f"--export-npz={out}"], tmp_path, module="lastexp.preprocess")
    assert r.returncode == 0, r.stderr
    r = run_cli(["dataset=ntu60_xview", f"dataset.npz={out}", f"paths.data={tmp_path}"],
                tmp_path, module="lastexp.preprocess")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "xsub" in line and "dataset.split=xview" in line
    # the same file under its own split loads, with its sample names
    ds = DatasetConfig(name="ntu60_xsub", benchmark="ntu60", split="xsub", npz=str(out))
    tr, te, s = load_arrays(ds, PreprocessingConfig(num_person=2), tmp_path / "c")
    assert s["sample_names"] == "present" and s["split_checked_by"] == "sample names"
    assert "S001C001P003R001A001" in te.names


def test_ctrgcn_npz_without_names(tmp_path):
    x = np.zeros((2, 10, 150), dtype=np.float32)
    x[:, :, 3] = 1.0
    arrays = dict(x_train=x, y_train=np.eye(60)[[0, 1]], x_test=x, y_test=np.eye(60)[[2, 3]])
    named = tmp_path / "NTU60_CS.npz"
    np.savez(named, **arrays)
    ds = DatasetConfig(name="ntu60_xview", benchmark="ntu60", split="xview", npz=str(named))
    with pytest.raises(DataError, match="named for ntu60 xsub but the dataset option is ntu60 "
                                        "xview"):
        load_arrays(ds, PreprocessingConfig(), tmp_path / "c")
    plain = tmp_path / "mine.npz"
    np.savez(plain, **arrays)
    ds = DatasetConfig(name="ntu60_xview", benchmark="ntu60", split="xview", npz=str(plain))
    _, _, s = load_arrays(ds, PreprocessingConfig(), tmp_path / "c")
    summary = json.loads((Path(s["cache"]) / "summary.json").read_text())
    assert summary["sample_names"].startswith("absent")
    assert summary["split_checked_by"].startswith("not checked")


def test_export_npz_bad_target(raw, tmp_path):
    r = run_cli(["dataset=ntu60_xsub", f"dataset.raw_dir={raw}", f"paths.data={tmp_path}",
                 "--export-npz", str(tmp_path / "no" / "such" / "x.npz")], tmp_path,
                module="lastexp.preprocess")
    assert r.returncode == 2 and "--export-npz" in r.stderr and "Traceback" not in r.stderr


def test_ntu_without_missing_list_says_so_in_one_line(raw, tmp_path):
    args = ["dataset=ntu60_xsub", f"dataset.raw_dir={raw}", f"paths.data={tmp_path}"]
    r = run_cli(args, tmp_path, module="lastexp.preprocess")
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stdout.splitlines() if "dataset.missing_list" in ln]
    assert len(notes) == 1
    assert "known bad" in notes[0] and "dataset.missing_list=FILE" in notes[0]
    assert "NTU_RGBD_samples_with_missing_skeletons.txt" in notes[0]
    listed = tmp_path / "missing.txt"
    listed.write_text("S017C003P020R002A060\n")
    r = run_cli([*args, f"dataset.missing_list={listed}"], tmp_path,
                module="lastexp.preprocess")
    assert r.returncode == 0 and "known bad" not in r.stdout, r.stderr
