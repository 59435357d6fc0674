"""Bad commands, run as a user runs them: exit 2, one line naming the key or file and the fix,
no traceback, and nothing in the working directory created, changed or deleted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.test_ensemble import member


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def refused(r, *words: str) -> str:
    assert r.returncode == 2, (r.stdout[-500:], r.stderr[-1500:])
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def workdir(tmp_path):
    done = tmp_path / "runs" / "done_run"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text('{"status": "completed"}')
    (tmp_path / "train.py").write_text("print('my source')")
    return tmp_path


CASES = [
    (["optimizer.lr=-1"], ["optimizer.lr"]),
    (["training.batch_size=0"], ["training.batch_size"]),
    (["training.early_stopping_patience=-1"], ["training.early_stopping_patience"]),
    (["scheduler.restart_period=0"], ["scheduler.restart_period"]),
    (["seed=-1"], ["seed=-1"]),
    (["preprocessing.p_interval_train=[]"], ["preprocessing.p_interval_train"]),
    (["preprocessing.p_interval_test=[1.5]"], ["preprocessing.p_interval_test"]),
    (["optimizer=adamw", "optimizer.betas=[2,3]"], ["optimizer.betas"]),
    (["model.dropout=1.0"], ["model.dropout"]),
    (["training.label_smoothing=2"], ["training.label_smoothing"]),
    (["preprocessing.num_person=3"], ["preprocessing.num_person"]),
    (["dataset=ntu60_xsub", "dataset.split=xset"], ["dataset.split=xset"]),
    (["training.epochs=0"], ["training.epochs"]),
    (["training.device=tpu"], ["training.device=tpu", "cuda:N"]),
    (["training.amp=fp8"], ["training.amp=fp8", "bf16"]),
    (["distill.beta=0.5", "distill.teacher=B7"], ["distill.beta=0.5", "distill=from_base"]),
    (["training.compile_mode=fastest"], ["training.compile_mode", "max-autotune"]),
    (["paths.data=train.py"], ["paths.data=train.py", "is a file"]),
    (["run_name=.", "optimizer.lr=-1"], ["optimizer.lr"]),  # the value is refused first
    (["run_name=."], ["the runs root", "run_name="]),
    (["run_name=../victim"], ["outside", "run_name="]),
    (["hydra.run.dir=.", "optimizer.lr=-1"], ["optimizer.lr"]),
    (["hydra.run.dir=."], ["outside", "hydra.run.dir"]),
]


@pytest.mark.parametrize("args,words", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_training_command(workdir, args, words):
    before = snapshot(workdir)
    r = run_cli([*args, "logger=none", "debug=tiny"], workdir)
    refused(r, *words)
    assert snapshot(workdir) == before
    assert sorted(p.name for p in (workdir / "runs").iterdir()) == ["done_run"]


def npz(path: Path, **over) -> Path:
    x = np.zeros((4, 10, 150), dtype=np.float32)
    x[:, :, 3] = 1.0
    arrays = dict(x_train=x, y_train=np.eye(60)[[0, 1, 2, 3]], x_test=x,
                  y_test=np.eye(60)[[0, 1, 2, 3]])
    arrays.update(over)
    np.savez(path, **arrays)
    return path


NPZ_CASES = {
    "float_labels": (dict(y_train=np.array([0.0, 1.0, 2.0, 3.0])), ["y_train", "float labels"]),
    "negative_label": (dict(y_train=np.array([0, -1, 2, 3])), ["y_train", "negative label"]),
    "not_one_hot": (dict(y_test=np.full((4, 60), 0.5)), ["y_test", "not one-hot"]),
    "nan": (dict(x_train=np.full((4, 10, 150), np.nan, dtype=np.float32)), ["x_train", "NaN"]),
    "strings": (dict(x_test=np.full((4, 10, 150), "a")), ["x_test", "expected float32"]),
}


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_bad_npz_file(tmp_path, case):
    over, words = NPZ_CASES[case]
    f = npz(tmp_path / f"{case}.npz", **over)
    before = snapshot(tmp_path)
    r = run_cli(["dataset=ntu60_xview", f"dataset.npz={f}", f"paths.data={tmp_path / 'd'}"],
                tmp_path, module="lastexp.preprocess")
    refused(r, f"dataset.npz='{f}'", *words)
    assert snapshot(tmp_path) == before


def test_ensemble_out_never_names_an_existing_run(tmp_path):
    a = member(tmp_path, "a", "joint", [[1, 0, 0]] * 4)
    b = member(tmp_path, "b", "bone", [[0, 1, 0]] * 4)
    other = member(tmp_path, "other", "joint", [[0, 0, 1]] * 4)
    before = snapshot(tmp_path)
    for out in (a, other):
        r = run_cli([str(a), str(b), "--out", str(out)], tmp_path, module="lastexp.ensemble")
        refused(r, "--out", "name a new directory")
    assert snapshot(tmp_path) == before
    ok = run_cli([str(a), str(b), "--out", str(tmp_path / "ens")], tmp_path,
                 module="lastexp.ensemble")
    assert ok.returncode == 0, ok.stderr
    again = run_cli([str(a), str(b), "--out", str(tmp_path / "ens")], tmp_path,
                    module="lastexp.ensemble")
    assert again.returncode == 0, again.stderr  # the same ensemble again: a rerun


@pytest.mark.parametrize("flag", ["--out", "--runs"])
def test_results_paths_that_are_files(tmp_path, flag):
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    r = run_cli([flag, "afile"], tmp_path, module="lastexp.results")
    refused(r, flag, "is a file")
    assert snapshot(tmp_path) == before
