import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lastexp.config import DatasetConfig, PreprocessingConfig, SyntheticConfig
from lastexp.data import DataError, load_arrays, load_data
from lastexp.data import arrays as prep_mod
from lastexp.data.npz import to_ctrgcn, write_ctrgcn_npz
from lastexp.data.skeleton import MISSING_SKELETON, _parse_lines, _parse_tokens
from lastexp.data.synthetic import ensure_corpus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ingest")
    raw = ensure_corpus(root / "gen", SyntheticConfig(samples_per_class=20, min_frames=12,
                                                      max_frames=24))
    mine = root / "raw"
    shutil.copytree(raw, mine)
    files = sorted(mine.glob("*.skeleton"))
    trunc = files[3]
    trunc.write_bytes(trunc.read_bytes()[:3000])
    (mine / "S001C001P003R001A002.skeleton").write_text("3\r\n0\r\n0\r\n0\r\n")
    shutil.copy(files[10], mine / "S002C002P002R001A120.skeleton")
    (mine / "readme.skeleton").write_text("x")
    return mine, trunc.name


def test_fast_parser_matches_reference(corpus):
    raw, _ = corpus
    for p in sorted(raw.glob("S*.skeleton"))[:40]:
        data = p.read_bytes()
        ref = _parse_tokens(data) if len(data) > 3000 or b"0\r\n0" in data else None
        got = _parse_lines(data)
        if ref is None or got is None:
            continue
        assert got["bodies"].keys() == ref["bodies"].keys()
        for k, (f, xyz) in ref["bodies"].items():
            np.testing.assert_array_equal(got["bodies"][k][0], f)
            np.testing.assert_array_equal(got["bodies"][k][1], xyz)


@pytest.mark.parametrize("bench,split", [("ntu60", "xsub"), ("ntu60", "xview"),
                                         ("ntu120", "xsub"), ("ntu120", "xset")])
@pytest.mark.parametrize("prep", ["t64_uniform", "t300_crop64", "t120_uniform",
                                  "t64_uniform_2body"])
def test_splits_and_variants(corpus, tmp_path, bench, split, prep):
    raw, trunc = corpus
    m = 2 if prep.endswith("2body") else 1
    window = 120 if prep == "t120_uniform" else 64
    p = PreprocessingConfig(name=prep, num_person=m, max_frames=300, window=window,
                            sampling="crop_resize" if "crop" in prep else "uniform")
    ds = DatasetConfig(name=f"{bench}_{split}", benchmark=bench, split=split, raw_dir=str(raw))
    b = load_data(ds, p, str(tmp_path), seed=0)
    s = b.summary
    assert s["skipped"][trunc].startswith("truncated at frame")
    assert s["skipped"]["S001C001P003R001A002.skeleton"] == MISSING_SKELETON
    assert s["skipped"]["readme.skeleton"] == "not NTU naming"
    assert s["num_classes"] == (60 if bench == "ntu60" else 120)
    assert isinstance(b.train.arrays.x, np.memmap)
    assert b.train.arrays.x.shape[1::2] == (3, 25) and b.train.arrays.x.shape[-1] == m
    names = b.train.names + b.test.names
    labels = np.concatenate([b.train.labels, b.test.labels])
    assert ("S002C002P002R001A120" in names) == (bench == "ntu120")
    for n, y in zip(names, labels):
        assert y == int(n[-3:]) - 1
    x, _ = b.train[0]
    assert tuple(x.shape) == (3, window, 25, m)
    assert json.loads((Path(s["cache"]) / "summary.json").read_text())["n_train"] == len(b.train)


def test_cache_reused_and_failed_build_leaves_nothing(corpus, tmp_path, monkeypatch):
    raw, _ = corpus
    ds = DatasetConfig(name="ntu120_xsub", benchmark="ntu120", raw_dir=str(raw))
    prep = PreprocessingConfig()
    real_save = np.save
    calls = {"n": 0}

    def flaky(path, arr, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_save(path, arr, *a, **k)

    monkeypatch.setattr(np, "save", flaky)
    with pytest.raises(OSError, match="disk full"):
        load_arrays(ds, prep, tmp_path)
    # nothing: not even the lock file the failed build created
    assert not (tmp_path / "cache").exists()
    monkeypatch.setattr(np, "save", real_save)
    _, _, s = load_arrays(ds, prep, tmp_path)
    assert not s["cached"]

    def boom(*a, **k):
        raise AssertionError("parsed on a cached load")

    monkeypatch.setattr(prep_mod, "parse_skeleton", boom)
    _, _, s2 = load_arrays(ds, prep, tmp_path)
    assert s2["cached"] and s2["cache"] == s["cache"]


@pytest.mark.parametrize("m", [1, 2])
def test_npz_round_trip(corpus, tmp_path, m):
    raw, _ = corpus
    prep = PreprocessingConfig(num_person=m)
    ds = DatasetConfig(name="ntu120_xsub", benchmark="ntu120", raw_dir=str(raw))
    tr, te, s = load_arrays(ds, prep, tmp_path)
    assert to_ctrgcn(np.asarray(tr.x)).shape == (len(tr), tr.x.shape[2], 150)
    npz = tmp_path / "NTU120_CSub.npz"
    write_ctrgcn_npz(npz, tr, te, 120)
    nds = DatasetConfig(name="ntu120_xsub", benchmark="ntu120", npz=str(npz))
    tr2, te2, s2 = load_arrays(nds, prep, tmp_path)
    assert s2["source"] == "npz" and s2["num_classes"] == 120
    for a, b in ((tr, tr2), (te, te2)):
        np.testing.assert_array_equal(np.asarray(a.x), np.asarray(b.x))
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.lengths, b.lengths)


def test_bad_npz(tmp_path):
    prep = PreprocessingConfig()
    x = np.zeros((2, 10, 150), np.float32)
    x[:, :3] = 1
    y = np.eye(3)[[0, 1]]
    cases = {"keys": dict(x_train=x, y_train=y, x_test=x),
             "shape": dict(x_train=x[:, :, :75], y_train=y, x_test=x, y_test=y),
             "count": dict(x_train=x, y_train=y[:1], x_test=x, y_test=y)}
    for what, arrays in cases.items():
        path = tmp_path / f"{what}.npz"
        np.savez(path, **arrays)
        ds = DatasetConfig(name="ntu60_xsub", benchmark="ntu60", npz=str(path))
        with pytest.raises(DataError, match=f"{what}.npz.*(y_test|x_train|y_train)"):
            load_arrays(ds, prep, tmp_path)


def test_empty_raw_dir(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "a.txt").write_text("x")
    ds = DatasetConfig(name="ntu60_xsub", benchmark="ntu60", raw_dir=str(tmp_path / "r"))
    with pytest.raises(DataError, match="no .skeleton files"):
        load_arrays(ds, PreprocessingConfig(), tmp_path)


def test_cli_end_to_end(corpus, tmp_path):
    raw, trunc = corpus
    cmd = [sys.executable, "-m", "lastexp.preprocess", "dataset=ntu60_xsub",
           f"dataset.raw_dir={raw}", f"paths.data={tmp_path / 'data'}"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cache built" in out.stdout and trunc in out.stdout
    (cache,) = (p for p in (tmp_path / "data" / "cache").iterdir() if p.name != ".locks")
    s = json.loads((cache / "summary.json").read_text())
    assert s["num_classes"] == 60 and s["n_train"] > 0 and s["n_test"] > 0
    assert set(s) >= {"frames", "bodies", "skipped"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no run dirs or logs
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert "cache reused" in again.stdout
    bad = subprocess.run(cmd[:3] + [f"dataset.raw_dir={tmp_path / 'nope'}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert bad.returncode == 2 and "dataset.raw_dir" in bad.stderr


def test_missing_skeleton_list_excludes_and_reports(corpus, tmp_path):
    raw, trunc = corpus
    base = DatasetConfig(name="ntu60_xsub", benchmark="ntu60", raw_dir=str(raw))
    ptr, pte, plain = load_arrays(base, PreprocessingConfig(), tmp_path)
    listed = [ptr.names[0], pte.names[3], "S017C003P020R002A060"]  # the last: not in the folder
    lst = tmp_path / "NTU_RGBD_samples_with_missing_skeletons.txt"
    lst.write_text("# NTU's list\n" + "\n".join(listed[:2]) + "\n\n" + listed[2] + ".skeleton\n")
    ds = DatasetConfig(name="ntu60_xsub", benchmark="ntu60", raw_dir=str(raw),
                       missing_list=str(lst))
    tr, te, s = load_arrays(ds, PreprocessingConfig(), tmp_path)
    assert s["cache"] != plain["cache"]  # the list is part of the cache key
    names = set(tr.names) | set(te.names)
    for stem in listed[:2]:
        assert stem not in names
        assert s["skipped"][f"{stem}.skeleton"] == prep_mod.MISSING_LISTED
    assert len(tr) + len(te) == plain["n_train"] + plain["n_test"] - 2
    assert s["skipped"][trunc].startswith("truncated")  # still found by the parser

    for text, match in (("S001C001P001R001A001\nnot-a-name\n", "line 2: 'not-a-name'"),
                        (None, "cannot be read")):
        bad = tmp_path / f"bad{len(match)}.txt"
        if text is not None:
            bad.write_text(text)
        ds.missing_list = str(bad)
        with pytest.raises(DataError, match=f"dataset.missing_list=.*{match}"):
            load_arrays(ds, PreprocessingConfig(), tmp_path)
