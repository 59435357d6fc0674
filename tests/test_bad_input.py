"""Bad commands, run as a user runs them: exit 2, one line naming the key or file and the fix,
no traceback, and nothing in the working directory created, changed or deleted."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lastexp.io import folder_lock
from tests.conftest import run_cli
from tests.results.test_results import write_run
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
    # an unknown option, a typo'd key, a wrong type: Hydra's report as one line
    (["model=last_e_huge"], ["model/last_e_huge", "last_e_base"]),
    (["model.foo=1"], ["model.foo", "ModelConfig"]),  # an unknown model option
    (["optimizer.lrr=0.1"], ["optimizer.lrr", "not in 'OptimizerConfig'"]),
    (["trainig.epochs=3"], ["trainig.epochs", "not in 'Config'"]),
    (["optimizer.lr=abc"], ["optimizer.lr=abc", "Float"]),
    (["training.batch_size=1.5"], ["training.batch_size=1.5", "Integer"]),
    (["seed=abc"], ["seed=abc", "Integer"]),
    (["training.augment=maybe"], ["training.augment=maybe", "valid bool"]),
    (["ablation=Z99"], ["ablation/Z99", "B7"]),
    (["+ablation=b7"], ["ablation/b7", "B7"]),
    (["ablation=[B1,B2]"], ["ablation=[B1,B2]", "--multirun ablation=B1,B2"]),
    (["dataset=kinetics"], ["dataset/kinetics", "ntu60_xsub"]),
    (["stream=hand"], ["stream/hand", "bone"]),
    (["optimizer=adam"], ["optimizer/adam", "adamw"]),
    (["scheduler=linear"], ["scheduler/linear", "cosine"]),
    (["logger=mlflow"], ["logger/mlflow", "tensorboard"]),
    (["env=aws"], ["env/aws", "kaggle"]),
    (["preprocessing=t32"], ["preprocessing/t32", "t64_uniform"]),
    # values a type cannot refuse
    (["optimizer.momentum=-0.5"], ["optimizer.momentum", "[0, 1)"]),
    (["optimizer.weight_decay=-1e-4"], ["optimizer.weight_decay", ">= 0"]),
    (["training.gradient_clip=-1"], ["training.gradient_clip", ">= 0"]),
    (["training.eval_batch_size=0"], ["training.eval_batch_size", "> 0"]),
    (["training.gradient_accumulation_steps=0"], ["training.gradient_accumulation_steps"]),
    (["training.max_hours=0"], ["training.max_hours", "> 0"]),
    (["training.num_workers=-2"], ["training.num_workers", ">= 0"]),
    (["preprocessing.window=0"], ["preprocessing.window", "> 0"]),
    (["preprocessing.sampling=random"], ["preprocessing.sampling", "crop_resize"]),
    (["training.early_stopping_monitor=val_acc"], ["training.early_stopping_monitor", "val_loss"]),
    (["training.epochs=10", "scheduler.warmup_epochs=20"], ["scheduler.warmup_epochs=20"]),
    (["training.swa_start=2.5"], ["training.swa_start=2.5"]),
    (["training.causal_prob=1.5"], ["training.causal_prob", "[0, 1]"]),
    (["training.causal_scope=attention"], ["training.causal_scope", "tcn, all"]),
    (["logger.log_every_n_steps=-1"], ["logger.log_every_n_steps", ">= 0"]),
    (["scheduler.warmup_epochs=1", "scheduler.warmup_start_lr=1", "training.epochs=10"],
     ["scheduler.warmup_start_lr", "lower"]),
    (["training.scale_range=[1.2,0.8]"], ["training.scale_range", "0 < low <= high"]),
    (["model.use_st_att=[true]"], ["model.use_st_att", "[false,false,true]"]),
    (["ensemble.weights=[1]"], ["ensemble.weights", "one weight per entry"]),
    (["ensemble.streams=[joint,hand]", "ensemble.weights=[1,1]"], ["ensemble.streams", "hand"]),
    (["distill=from_base", "distill.teacher_streams=[joint,hand]"],
     ["distill.teacher_streams", "hand"]),
    (["distill=from_base", "distill.teacher_streams=[bone,velocity]"],
     ["distill.teacher_streams", "student's stream"]),
    (["scheduler.warmup_epochs=5", "scheduler.warmup_start_lr=1", "training.epochs=10"],
     ["scheduler.warmup_start_lr", "lower"]),
    (["pretrain.mask_ratio=2"], ["pretrain.mask_ratio", "[0, 1)"]),
    (["paths.runs=train.py"], ["paths.runs=train.py", "choose a writable paths.runs"]),
    # an impossible value inside a sweep: refused before any job runs
    (["--multirun", "optimizer.lr=0.1,-1"], ["optimizer.lr", "sweep job optimizer.lr=-1"]),
    (["--multirun", "seed=1,-1", "stream=joint,bone"], ["seed=-1", "sweep job"]),
    (["-m", "training.device=cpu,tpu"], ["training.device=tpu", "sweep job"]),
    (["--multirun", "stream=joint,hand"], ["stream/hand", "sweep job stream=hand"]),
    (["--multirun", "+ablation=B1,Z9"], ["ablation/Z9", "sweep job"]),
    # a checkpoint to start from that is not there: refused before the data is loaded
    (["init_from=missing.pt"], ["init_from=missing.pt", "does not exist", "leave init_from out"]),
    (["init_from=runs"], ["init_from=runs", "is a folder", "checkpoints/best.pt"]),
    (["--multirun", "seed=1,2", "init_from=missing.pt"],
     ["init_from=missing.pt", "does not exist", "sweep job seed=1"]),
    # a run store that would be written outside itself, or into an internal folder or a run
    (["paths.runs="], ["paths.runs is empty", "paths.runs=runs"]),
    (["paths.runs=/"], ["paths.runs=/", "root of the file system"]),
    (["run_name=.locks"], ["runs/.locks", "keeps for itself", "run_name=my_run"]),
    (["run_name=.sweeps"], ["runs/.sweeps", "keeps for itself"]),
    (["run_name=search"], ["runs/search", "keeps for itself"]),
    (["run_name=done_run/inner"], ["inside the run runs/done_run", "run_name=my_run"]),
    # every number finite and in its real range (each a traceback, or a run "completed" at
    # chance, before); a key added with + is checked against the schema like any other
    (["scheduler.restart_mult=0"], ["scheduler.restart_mult=0", ">= 1"]),
    (["model.width_mult=inf"], ["model.width_mult=inf", "not a finite number"]),
    (["model.width_mult=9"], ["model.width_mult", "(0, 8]"]),
    (["model=last_base", "model.num_prototypes=-3"], ["model.num_prototypes=-3", ">= 1"]),
    (["training.scale_range=[0.9]"], ["training.scale_range=[0.9]", "two numbers"]),
    (["training.swa_start=nan"], ["training.swa_start=nan", "not a finite number"]),
    (["optimizer.weight_decay=nan"], ["optimizer.weight_decay=nan", "not a finite number"]),
    (["optimizer.momentum=nan"], ["optimizer.momentum=nan", "not a finite number"]),
    (["scheduler.min_lr=nan"], ["scheduler.min_lr=nan", "not a finite number"]),
    (["training.gradient_clip=nan"], ["training.gradient_clip=nan", "not a finite number"]),
    (["optimizer.lr=inf"], ["optimizer.lr=inf", "not a finite number"]),
    (["optimizer.momentum=5"], ["optimizer.momentum", "[0, 1)"]),
    (["scheduler.gamma=-1"], ["scheduler.gamma", "> 0"]),
    (["pretrain.temperature=inf"], ["pretrain.temperature=inf", "not a finite number"]),
    (["pretrain.temperature=0"], ["pretrain.temperature", "> 0"]),
    (["training.max_hours=inf"], ["training.max_hours=inf", "not a finite number"]),
    (["optimizer=adamw", "optimizer.betas=[nan,0.9]"], ["optimizer.betas[0]=nan"]),
    (["optimizer.momentum=0"], ["optimizer.momentum=0", "optimizer.nesterov=false"]),
    (["scheduler.milestones=[-5]"], ["scheduler.milestones", ">= 0"]),
    (["training.rotation_deg=-1"], ["training.rotation_deg", "[0, 180]"]),
    (["dataset.synthetic.subjects=0"], ["dataset.synthetic.subjects=0", ">= 1"]),
    (["dataset.synthetic.min_frames=50", "dataset.synthetic.max_frames=20"],
     ["dataset.synthetic.min_frames=50", "max_frames=20"]),
    (["dataset.limit=0"], ["dataset.limit=0", ">= 1"]),
    (["seed=99999999999999999999"], ["seed=99999999999999999999", "[0, "]),
    (["ensemble.weights=[0,0,0,0]"], ["ensemble.weights", "not all 0"]),
    (["ensemble.weights=[nan,1,1,1]"], ["ensemble.weights[0]=nan"]),
    (["+trainng.epochs=3"], ["trainng.epochs=3", "not in 'Config'"]),
    (["+model.foo=2"], ["model.foo=2", "not in 'ModelConfig[last_e_base]'"]),
    # a model node holds its own family's flags only: another family's is refused as a typo'd
    # key is, with or without +; a flag's value has the flag's type
    (["model=last_lite_nano", "model.freq_gate=true"],
     ["model.freq_gate", "not in 'ModelConfig[last_lite_nano]'"]),
    (["model=last_lite_nano", "+model.freq_gate=true"],
     ["model.freq_gate=True", "not in 'ModelConfig[last_lite_nano]'"]),
    (["model=last_base", "model.freq_gate=maybe"], ["model.freq_gate=maybe", "not a valid bool"]),
    (["+dataset.synthetic.sizes=3"], ["dataset.synthetic.sizes=3", "'SyntheticConfig'"]),
]


# These run as real commands (a subprocess each); every case of CASES is also checked in this
# process through the same checks the command makes before Hydra starts (command_problem).
CLI = {"scheduler.restart_period=0", "seed=-1", "preprocessing.p_interval_train=[]",
       "optimizer=adamw optimizer.betas=[2,3]", "training.device=tpu", "paths.data=train.py",
       "run_name=.", "run_name=../victim", "hydra.run.dir=.", "model=last_e_huge",
       "optimizer.lrr=0.1", "optimizer.lr=abc", "ablation=Z99", "dataset=kinetics",
       "stream=hand", "model.foo=1", "--multirun optimizer.lr=0.1,-1",
       "paths.runs=train.py", "init_from=missing.pt",
       "--multirun seed=1,2 init_from=missing.pt",
       "paths.runs=", "paths.runs=/", "run_name=.locks", "run_name=done_run/inner",
       "scheduler.restart_mult=0", "training.swa_start=nan", "+trainng.epochs=3",
       "model=last_lite_nano model.freq_gate=true"}
CLI_CASES = [c for c in CASES if " ".join(c[0]) in CLI]
assert len(CLI_CASES) == len(CLI)


def with_defaults(args: list[str]) -> list[str]:
    logger = [] if any(a.startswith("logger=") for a in args) else ["logger=none"]
    return [*args, *logger, "debug=tiny"]


def refused_before_hydra(workdir, monkeypatch, args, words):
    """The checks the command makes before Hydra starts refuse ``args`` in one line naming
    ``words``, touching nothing."""
    from lastexp.__main__ import command_problem
    from lastexp.aliases import normalize_overrides
    from lastexp.environment import with_env

    monkeypatch.chdir(workdir)
    before = snapshot(workdir)
    problem = command_problem(with_env(normalize_overrides(with_defaults(args))))
    assert problem and "\n" not in problem and "Traceback" not in problem, problem
    for w in words:
        assert w in problem, problem
    assert snapshot(workdir) == before


@pytest.mark.parametrize("args,words", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_config_refused_before_hydra(workdir, monkeypatch, args, words):
    refused_before_hydra(workdir, monkeypatch, args, words)


@pytest.mark.parametrize("state", ["checkpoints/last.pt", "metrics.json"])
def test_init_from_gone_does_not_stop_a_resume_or_a_skip(workdir, monkeypatch, state):
    """A run that resumes from its last.pt, or is complete, never reads init_from: a source
    checkpoint deleted since is no reason to refuse the command."""
    from lastexp.__main__ import command_problem

    (workdir / "runs" / "tuned" / state).parent.mkdir(parents=True, exist_ok=True)
    (workdir / "runs" / "tuned" / state).write_text('{"status": "completed"}')
    monkeypatch.chdir(workdir)
    args = ["run_name=tuned", "init_from=gone.pt", "logger=none", "debug=tiny"]
    assert command_problem(args) is None
    (workdir / "runs" / "tuned" / state).unlink()
    assert "init_from=gone.pt does not exist" in command_problem(args)


@pytest.mark.parametrize("args,words", CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_bad_training_command(workdir, args, words):
    before = snapshot(workdir)
    r = run_cli(with_defaults(args), workdir)
    refused(r, *words)
    assert snapshot(workdir) == before
    assert sorted(p.name for p in (workdir / "runs").iterdir()) == ["done_run"]


def npz(path: Path, **over) -> Path:
    x = np.zeros((4, 10, 150), dtype=np.float32)
    x[:, :, 3] = 1.0
    arrays = dict(x_train=x, y_train=np.eye(60)[[0, 1, 2, 3]], x_test=x,
                  y_test=np.eye(60)[[0, 1, 2, 3]])
    arrays.update(over)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.fixture
def store(workdir):
    """The working directory of the job-time cases: a run dir whose metrics.json is a JSON
    list, one whose checkpoints/last.pt is a list, a bad npz, an empty raw folder."""
    (workdir / "runs" / "foreign").mkdir()
    (workdir / "runs" / "foreign" / "metrics.json").write_text("[1, 2, 3]")
    (workdir / "runs" / "listckpt" / "checkpoints").mkdir(parents=True)
    torch.save([1, 2], workdir / "runs" / "listckpt" / "checkpoints" / "last.pt")
    npz(workdir / "float.npz", y_train=np.array([0.0, 1.0, 2.0, 3.0]))
    (workdir / "empty_raw").mkdir()
    (workdir / "empty_raw" / "keep.txt").write_text("x")
    (workdir / "binary.txt").write_bytes(b"S001C001P001R001A001\n\xff\xfe\x00\x81")
    # a last.pt without the optimizer's state
    (workdir / "runs" / "nooptim" / "checkpoints").mkdir(parents=True)
    torch.save({"model": {}, "scheduler": {}, "epoch": 1, "best_top1": 5.0, "best_epoch": 1},
               workdir / "runs" / "nooptim" / "checkpoints" / "last.pt")
    return workdir


# Refused by the job, after Hydra starts: the run directory, its lock file and Hydra's log are
# removed again. The data lives outside the working directory (paths.data, one shared cache).
JOB_CASES = [
    (["run_name=foreign"], ["runs/foreign/metrics.json", "JSON list", "move that file away"]),
    (["run_name=listckpt"], ["listckpt/checkpoints/last.pt", "holds a list",
                             "pass fresh=true to start the run listckpt over"]),
    (["dataset.npz=missing.npz"], ["dataset.npz='missing.npz'", "give the path"]),
    (["dataset=ntu60_xview", "dataset.npz=float.npz"], ["y_train", "float labels"]),
    (["dataset=ntu60_xsub"], ["dataset.raw_dir is not set", "dataset.raw_dir=/path"]),
    (["dataset=ntu60_xsub", "dataset.raw_dir=nowhere"], ["dataset.raw_dir='nowhere'",
                                                          "point dataset.raw_dir"]),
    (["dataset=ntu60_xsub", "dataset.raw_dir=empty_raw"], ["no .skeleton files",
                                                            "point dataset.raw_dir"]),
    (["dataset.missing_list=missing.txt"], ["dataset.missing_list='missing.txt'", "or null"]),
    (["distill=from_base"], ["teacher B7", "run_dependencies=true"]),
    (["dataset.missing_list=binary.txt"], ["dataset.missing_list='binary.txt'",
                                           "not a text file", "or null"]),
    (["dataset.synthetic.samples_per_class=0"],
     ["dataset.synthetic.samples_per_class=0", ">= 1"]),
    (["dataset.synthetic.min_frames=50", "dataset.synthetic.max_frames=40"],
     ["dataset.synthetic.min_frames=50", "max_frames=40"]),
    (["run_name=nooptim"], ["nooptim/checkpoints/last.pt", "lacks optimizer",
                            "pass fresh=true to start the run nooptim over"]),
    (["training.max_hours=1e-9"], ["training.max_hours=1e-09", "no room for one epoch",
                                   "raise training.max_hours"]),
]


@pytest.mark.parametrize("args,words", JOB_CASES, ids=[" ".join(a) for a, _ in JOB_CASES])
def test_bad_training_job(store, shared_data, args, words):
    before = snapshot(store)
    r = run_cli([*args, f"paths.data={shared_data}", "logger=none", "debug=tiny"], store)
    refused(r, *words)
    assert snapshot(store) == before
    assert sorted(p.name for p in (store / "runs").iterdir()) == ["done_run", "foreign",
                                                                 "listckpt", "nooptim"]


NPZ_CASES = {
    "float_labels": (dict(y_train=np.array([0.0, 1.0, 2.0, 3.0])), ["y_train", "float labels"]),
    "negative_label": (dict(y_train=np.array([0, -1, 2, 3])), ["y_train", "negative label"]),
    "not_one_hot": (dict(y_test=np.full((4, 60), 0.5)), ["y_test", "not one-hot"]),
    "nan": (dict(x_train=np.full((4, 10, 150), np.nan, dtype=np.float32)), ["x_train", "NaN"]),
    "strings": (dict(x_test=np.full((4, 10, 150), "a")), ["x_test", "expected float32"]),
    "inf": (dict(x_test=np.full((4, 10, 150), np.inf, dtype=np.float32)), ["x_test", "inf"]),
    "label_out_of_range": (dict(y_train=np.array([0, 1, 2, 75])),
                           ["y_train", "label 75", "dataset.num_classes=60"]),
    "one_hot_too_wide": (dict(y_test=np.eye(120)[[0, 1, 2, 100]]), ["y_test", "label 100"]),
    "zero_frames": (dict(x_train=np.zeros((4, 0, 150), dtype=np.float32)),
                    ["x_train", "zero frames"]),
    "all_zero": (dict(x_train=np.zeros((4, 10, 150), dtype=np.float32)),
                 ["train split", "holding skeletons"]),
    "objects": (dict(y_train=np.array([0, 1, "a", None], dtype=object)),
                ["y_train", "cannot be read", "numpy.savez"]),
    "bool_coords": (dict(x_train=np.ones((4, 10, 150), dtype=bool)), ["x_train", "bool"]),
    "complex_coords": (dict(x_train=np.ones((4, 10, 150), dtype=np.complex64)),
                       ["x_train", "complex64"]),
    "one_body_layout": (dict(x_train=np.ones((4, 10, 75), dtype=np.float32)),
                        ["x_train", "(N, T, 150)"]),
    "missing_key": (dict(y_test=None), ["missing key", "y_test"]),
    "label_count": (dict(y_train=np.eye(60)[[0, 1, 2]]), ["y_train has 3 labels", "4 samples"]),
    "labels_3d": (dict(y_train=np.zeros((4, 60, 1))), ["y_train", "(N, num_classes)"]),
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


def _truncated(f: Path) -> None:
    npz(f)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


NPZ_FILES = {  # dataset.npz names something that is no npz
    "truncated": (_truncated, ["not a readable npz", "copy it again"]),
    "tail_cut": (lambda f: (npz(f), f.write_bytes(f.read_bytes()[:-20])),
                 ["not a readable npz", "copy it again"]),
    "text": (lambda f: f.write_text("x_train,y_train\n"), ["not a readable npz"]),
    "folder": (lambda f: f.mkdir(), ["is not a file", "give the path"]),
    "absent": (lambda f: None, ["is not a file", "give the path"]),
}


@pytest.mark.parametrize("case", sorted(NPZ_FILES))
def test_npz_that_is_no_npz(tmp_path, case):
    make, words = NPZ_FILES[case]
    f = tmp_path / f"{case}.npz"
    make(f)
    before = snapshot(tmp_path)
    r = run_cli(["dataset=ntu60_xview", f"dataset.npz={f}", f"paths.data={tmp_path / 'd'}"],
                tmp_path, module="lastexp.preprocess")
    refused(r, f"dataset.npz='{f}'", *words)
    assert snapshot(tmp_path) == before


PREPROCESS_CASES = [
    (["optimizer.lrr=1"], ["optimizer.lrr", "OptimizerConfig"]),
    (["dataset=kinetics"], ["dataset/kinetics", "ntu60_xsub"]),
    (["dataset=ntu60_xsub"], ["dataset.raw_dir is not set", "dataset.npz=FILE"]),
    (["--export-npz", "."], ["--export-npz", "must name a file"]),
    (["--export-npz", "exists.npz"], ["--export-npz 'exists.npz' exists", "--force"]),
    (["preprocessing.max_frames=-1"], ["preprocessing.max_frames=-1", "> 0"]),
    (["dataset.synthetic.samples_per_class=0"],
     ["dataset.synthetic.samples_per_class=0", ">= 1"]),
    (["dataset.synthetic.subjects=0"], ["dataset.synthetic.subjects=0", ">= 1"]),
    (["dataset.synthetic.min_frames=50", "dataset.synthetic.max_frames=40"],
     ["dataset.synthetic.min_frames=50", "max_frames=40"]),
    (["dataset.missing_list=binary.txt"], ["dataset.missing_list='binary.txt'",
                                           "not a text file", "or null"]),
]


@pytest.mark.parametrize("args,words", PREPROCESS_CASES,
                         ids=[" ".join(a) for a, _ in PREPROCESS_CASES])
def test_bad_preprocess_command(tmp_path, args, words):
    (tmp_path / "exists.npz").write_bytes(b"a file of mine")  # never replaced without --force
    (tmp_path / "binary.txt").write_bytes(b"S001C001P001R001A001\n\xff\xfe\x00\x81")
    before = snapshot(tmp_path)
    r = run_cli([*args, f"paths.data={tmp_path / 'd'}"], tmp_path, module="lastexp.preprocess")
    refused(r, *words)
    assert snapshot(tmp_path) == before


def test_bad_ensemble_members(tmp_path):
    a = member(tmp_path, "a", "joint", [[1, 0, 0]] * 4)
    b = member(tmp_path, "b", "bone", [[0, 1, 0]] * 4)
    xview = member(tmp_path, "xview", "bone", [[0, 1, 0]] * 4, split="xview")
    (tmp_path / "listed").mkdir()
    (tmp_path / "listed" / "metrics.json").write_text("[1]")
    before = snapshot(tmp_path)
    for args, words in (
        ([a, tmp_path / "listed"], ["listed/metrics.json", "JSON list"]),
        ([a, tmp_path / "nowhere"], ["nowhere", "does not exist"]),
        ([a], ["is no ensemble", "two or more"]),
        ([a, b, "--weights", "1"], ["1 weights for 2 runs", "one --weights value per run"]),
        ([a, xview], ["differ in split"]),
        ([a, b, "--weights", "nan", "nan"], ["--weights nan nan", "finite number >= 0"]),
        ([a, b, "--weights", "0", "0"], ["--weights 0 0", "not all 0"]),
        ([a, b, "--weights", "-1", "-1"], ["--weights -1 -1", ">= 0"]),
        ([a, b, "--weights", "inf", "1"], ["--weights inf 1", "finite"]),
    ):
        r = run_cli([str(x) for x in args] + ["--out", str(tmp_path / "ens")], tmp_path,
                    module="lastexp.ensemble")
        refused(r, *words)
    assert snapshot(tmp_path) == before


def test_results_skip_a_metrics_json_list_in_one_line(tmp_path):
    """The results command reads a store of thousands of runs: a foreign metrics.json (a JSON
    list) is one warning line naming it, the run is skipped and nothing in the store changes."""
    write_run(tmp_path / "runs", "good", ablation="B0", seed=0, best=90.0)
    (tmp_path / "runs" / "foreign").mkdir()
    (tmp_path / "runs" / "foreign" / "metrics.json").write_text(json.dumps([{"best_top1": 99}]))
    before = snapshot(tmp_path / "runs")
    r = run_cli(["--runs", "runs", "--out", "out", "--quiet"], tmp_path, module="lastexp.results")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [
        "warning: skipping foreign: metrics.json is not a JSON object"]
    assert snapshot(tmp_path / "runs") == before
    md = (tmp_path / "out" / "base.md").read_text()
    assert "`foreign`: metrics.json is not a JSON object" in md


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


def test_rerunning_a_completed_run_leaves_the_store_as_it_was(workdir):
    """The same command again skips the finished run: no lock file, no Hydra log, no byte
    changed (a careless rerun is harmless)."""
    before = snapshot(workdir)
    r = run_cli(["run_name=done_run", "logger=none", "debug=tiny"], workdir)
    assert r.returncode == 0 and "already completed, skipping" in r.stdout, r.stderr[-1500:]
    assert snapshot(workdir) == before
    assert sorted(p.name for p in (workdir / "runs").rglob("*")) == ["done_run", "metrics.json"]


# A mistake on a plain command's command line: argparse's usage block is left out, the line
# says where the usage is.
ARGPARSE_CASES = [
    ("lastexp.ensemble", ["a", "b", "--weights", "x"],
     ["lastexp.ensemble: error: argument --weights: invalid float value: 'x'"]),
    ("lastexp.results", ["--bogus"], ["lastexp.results: error: unrecognized arguments: --bogus"]),
    ("lastexp.plan", ["--bogus"], ["lastexp.plan: error: unrecognized arguments: --bogus"]),
    ("lastexp.export", ["run", "--exporter", "onnx"], ["argument --exporter", "'onnx'"]),
    ("lastexp.models", ["--frames", "q"], ["argument --frames", "invalid int value: 'q'"]),
    ("tools.local_slurm", ["begin"], ["invalid choice: 'begin'", "'start'"]),
]


@pytest.mark.parametrize("module,args,words", ARGPARSE_CASES,
                         ids=[f"{m} {' '.join(a)}" for m, a, _ in ARGPARSE_CASES])
def test_bad_command_line_of_a_plain_command(tmp_path, module, args, words):
    before = snapshot(tmp_path)
    r = run_cli(args, tmp_path, module=module)
    line = refused(r, *words)
    assert line.endswith(f"; see python -m {module} --help"), line
    assert "usage:" not in r.stderr + r.stdout
    assert snapshot(tmp_path) == before


# python -m lastexp.runs: a bad filter, a missing run, and rm of anything but a run below the
# runs root that it may remove (the root itself, outside it, an internal folder, no terminal to
# confirm on): one line, exit 2, the store as it was.
RUNS_CASES = [
    (["list", "--where", "trainig.epochs=2"], ["--where trainig.epochs", "no run has this key"]),
    (["list", "--where", "epochs"], ["'epochs' is not key=value"]),
    (["list", "--runs", "train.py"], ["--runs 'train.py' is a file"]),
    (["list", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["diff", "runs/nope", "runs/done_run"], ["runs/nope: no such run directory"]),
    (["diff", "runs/done_run", "runs/done_run"], ["runs/done_run has no readable .hydra"]),
    (["rm", "runs", "--yes"], ["runs is the runs root itself"]),
    (["rm", "runs/..", "--yes"], ["is outside --runs runs"]),
    (["rm", "train.py", "--yes"], ["train.py is outside --runs runs"]),
    (["rm", "runs/.locks", "--yes"], ["internal folder .locks"]),
    (["rm", "runs/done_run"], ["stdin is not a terminal", "--yes"]),
]


@pytest.mark.parametrize("args,words", RUNS_CASES, ids=[" ".join(a) for a, _ in RUNS_CASES])
def test_bad_runs_command(workdir, args, words):
    (workdir / "runs" / ".locks").mkdir()
    before = snapshot(workdir)
    r = run_cli(args, workdir, module="lastexp.runs")
    refused(r, *words)
    assert snapshot(workdir) == before
    assert (workdir / "runs" / "done_run" / "metrics.json").is_file()


def test_an_empty_runs_root_leaves_nothing_at_the_file_system_root(workdir):
    """paths.runs= (empty) is refused before Hydra creates its run directory: no
    /<run>/__main__.log appears at /."""
    before = sorted(os.listdir("/"))
    r = run_cli(with_defaults(["paths.runs="]), workdir)
    refused(r, "paths.runs is empty")
    assert sorted(os.listdir("/")) == before


def _chattr(path: Path, flag: str) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


# What lies in the run store where lastexp keeps its own files: a link, a file for a folder, a
# folder for a file. Each is refused before Hydra starts, touching nothing (a planted link's
# target least of all); the run's .hydra files stay as they were.
STORE_CASES = {
    "lock_link": (lambda r: ((r / ".locks").mkdir(), (r / ".locks" / "newrun.lock").symlink_to(
        r.parent / "train.py")), "newrun", ["runs/.locks/newrun.lock is a link", "remove it"]),
    "locks_file": (lambda r: (r / ".locks").write_text("x"), "newrun",
                   ["runs/.locks is not a folder", "remove it"]),
    "lock_folder": (lambda r: (r / ".locks" / "newrun.lock").mkdir(parents=True), "newrun",
                    ["runs/.locks/newrun.lock is not a file"]),
    "run_dir_file": (lambda r: (r / "filerun").write_text("x"), "filerun",
                     ["run directory runs/filerun is not a folder"]),
    "run_dir_link": (lambda r: (r / "linked").symlink_to(r / "old"), "linked",
                     ["run directory runs/linked is a link"]),
    "metrics_folder": (lambda r: (r / "old" / "metrics.json").mkdir(parents=True), "old",
                       ["runs/old/metrics.json is not a file", "move it away"]),
    "checkpoints_file": (lambda r: (r / "old" / "checkpoints").write_text("x"), "old",
                         ["runs/old/checkpoints is not a folder"]),
    "checkpoints_link": (lambda r: (r / "old" / "checkpoints").symlink_to(r.parent), "old",
                         ["runs/old/checkpoints is a link"]),
    "export_link": (lambda r: (r / "old" / "export").symlink_to(r.parent), "old",
                    ["runs/old/export is a link"]),
}


@pytest.mark.parametrize("case", sorted(STORE_CASES))
def test_run_store_of_the_wrong_shape(workdir, case):
    make, name, words = STORE_CASES[case]
    runs = workdir / "runs"
    (runs / "old" / ".hydra").mkdir(parents=True)
    (runs / "old" / ".hydra" / "config.yaml").write_text("seed: 1\n")
    make(runs)
    before = snapshot(workdir)
    r = run_cli(with_defaults([f"run_name={name}"]), workdir)
    refused(r, *words)
    assert snapshot(workdir) == before
    assert (workdir / "train.py").read_text() == "print('my source')"


def test_immutable_checkpoints_are_refused_before_anything_is_written(workdir):
    ckpt = workdir / "runs" / "old" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "last.pt").write_bytes(b"weights")
    (workdir / "runs" / "old" / ".hydra").mkdir()
    (workdir / "runs" / "old" / ".hydra" / "config.yaml").write_text("seed: 1\n")
    if not _chattr(ckpt, "+i"):
        pytest.skip("chattr +i is not available here (needs root and ext4/xfs/tmpfs)")
    try:
        before = snapshot(workdir)
        r = run_cli(with_defaults(["run_name=old"]), workdir)
        refused(r, "cannot write in runs/old/checkpoints", "chattr -i")
        assert snapshot(workdir) == before
    finally:
        _chattr(ckpt, "-i")


def _finished_run(root: Path, name: str = "done") -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.pt").write_bytes(b"weights")
    (run / "metrics.json").write_text('{"status": "completed"}')
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("seed: 1\n")
    return run


EXPORT_CASES = {
    "export_link": (lambda run: (run / "export").symlink_to(run.parent / "elsewhere"), [],
                    ["export is a link", "move it away"]),
    "checkpoints_link": (lambda run: ((run.parent / "ck").mkdir(), (run.parent / "ck" / "best.pt")
                                      .write_bytes(b"w"), __import__("shutil").rmtree(
                                          run / "checkpoints"), (run / "checkpoints").symlink_to(
                                          run.parent / "ck")), [], ["checkpoints is a link"]),
    "data_root_absent": (lambda run: None, ["--data-root", "/nonexistent/lastexp_data"],
                         ["--data-root /nonexistent/lastexp_data is not a folder"]),
    "opset_999": (lambda run: None, ["export.opset=999"], ["export.opset=999", "above"]),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_export_refuses_what_would_write_elsewhere(tmp_path, case):
    make, args, words = EXPORT_CASES[case]
    (tmp_path / "elsewhere").mkdir()
    run = _finished_run(tmp_path)
    make(run)
    before = snapshot(tmp_path)
    r = run_cli([str(run), *args], tmp_path, module="lastexp.export")
    refused(r, *words)
    assert snapshot(tmp_path) == before
    assert not Path("/nonexistent").exists()
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize(("out", "words"), [
    ("", ["--out is empty"]),
    ("/", ["--out / is the root of the file system"]),
    ("runs", ["--out runs is the runs folder itself"]),
    ("runs/done_run", ["--out runs/done_run is a run directory"]),
    ("runs/done_run/tables", ["inside the run", "done_run"]),
    ("runs/.locks", ["keeps for itself"]),
    ("train.py/tables", ["train.py is not a folder"]),
])
def test_results_out_that_is_not_its_own(workdir, out, words):
    before = snapshot(workdir)
    r = run_cli(["--runs", "runs", "--out", out], workdir, module="lastexp.results")
    refused(r, *words)
    assert snapshot(workdir) == before
    assert sorted(p.name for p in workdir.iterdir()) == ["runs", "train.py"]


def test_results_out_in_a_place_that_cannot_be_written(workdir):
    (workdir / "ro").mkdir()
    if not _chattr(workdir / "ro", "+i"):
        pytest.skip("chattr +i is not available here (needs root and ext4/xfs/tmpfs)")
    try:
        r = run_cli(["--runs", "runs", "--out", "ro/tables"], workdir, module="lastexp.results")
        refused(r, "cannot write the tables into ro/tables", "choose a writable --out")
        assert list((workdir / "ro").iterdir()) == []
    finally:
        _chattr(workdir / "ro", "-i")


def _truncated_member(path: Path) -> None:
    """test_scores.npz whose scores.npy member stops halfway (a copy cut short)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    buf = io.BytesIO()
    np.save(buf, arrays["scores"])
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("scores.npy", buf.getvalue()[: len(buf.getvalue()) // 2])
        for k in ("labels", "names"):
            one = io.BytesIO()
            np.save(one, arrays[k])
            zf.writestr(f"{k}.npy", one.getvalue())


def test_ensemble_refusals_of_this_issue(tmp_path):
    a = member(tmp_path / "runs", "a", "joint", [[1, 0, 0]] * 4)
    b = member(tmp_path / "runs", "b", "bone", [[0, 1, 0]] * 4)
    cut = member(tmp_path / "runs", "cut", "bone", [[0, 1, 0]] * 4)
    _truncated_member(cut / "test_scores.npz")
    before = snapshot(tmp_path)
    for args, words in (
        ([a, b, "--out", ""], ["--out is empty"]),
        ([a, b, "--out", tmp_path / "runs"], ["holds run directories"]),
        ([a, b, "--out", a / "ens"], ["inside the run", "runs/a"]),
        ([a, b, "--out", "/"], ["root of the file system"]),
        ([a, cut, "--out", tmp_path / "ens"], ["cut/test_scores.npz cannot be read",
                                              "fresh=true"]),
    ):
        r = run_cli([str(x) for x in args], tmp_path, module="lastexp.ensemble")
        refused(r, *words)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_models_frames_zero(tmp_path):
    r = run_cli(["--frames", "0"], tmp_path, module="lastexp.models")
    refused(r, "argument --frames", "0 is not a positive count")


def test_a_second_export_of_the_same_run_waits_for_none(tmp_path):
    """Two exports of one run at once: the second is refused in one line (the run directory is
    locked while the first works), and touches nothing."""
    run = _finished_run(tmp_path)
    before = snapshot(tmp_path)
    with folder_lock(run):  # as a running export holds it
        r = run_cli([str(run)], tmp_path, module="lastexp.export")
    refused(r, "is in use by another export of this run", "wait for it")
    assert snapshot(tmp_path) == before

# Honest selection: the validation split's keys, and a search that would tune on the test split
# (refused unless search.on_test=true), refused before Hydra starts.
SELECTION_CASES = [
    (["+search=lr_dropout"], ["+search=lr_dropout", "dataset.val_subjects",
                              "dataset.val_fraction", "search.on_test=true"]),
    (["--multirun", "+search=lr_dropout", "seed=1,2"], ["+search=lr_dropout", "search.on_test"]),
    (["dataset.val_fraction=1.5"], ["dataset.val_fraction=1.5", "(0, 1)"]),
    (["dataset.val_subjects=0"], ["dataset.val_subjects=0", "[1,8]"]),
    (["dataset.val_subjects=[a]"], ["dataset.val_subjects", "list of subject IDs"]),
    (["dataset=ntu60_xview", "dataset.val_subjects=2"], ["dataset.val_subjects",
                                                         "dataset.val_fraction=0.1"]),
    (["dataset=ntu60_xsub", "dataset.val_fraction=0.1"], ["dataset.val_fraction",
                                                          "dataset.val_subjects=3"]),
    (["dataset.val_fraction=0.1", "dataset.val_subjects=2"], ["set one of them"]),
]


@pytest.mark.parametrize("args,words", SELECTION_CASES,
                         ids=[" ".join(a) for a, _ in SELECTION_CASES])
def test_bad_selection_refused_before_hydra(workdir, monkeypatch, args, words):
    refused_before_hydra(workdir, monkeypatch, args, words)


def test_search_on_the_test_split_refused_by_the_command(workdir):
    before = snapshot(workdir)
    r = run_cli(with_defaults(["--multirun", "+search=lr_dropout"]), workdir)
    refused(r, "+search=lr_dropout", "dataset.val_subjects", "dataset.val_fraction",
            "search.on_test=true")
    assert snapshot(workdir) == before
    assert sorted(p.name for p in (workdir / "runs").iterdir()) == ["done_run"]


@pytest.mark.parametrize("args,words", [
    (["dataset.val_subjects=[3,99]"], ["dataset.val_subjects", "3, 99", "not in the training"]),
    (["dataset.val_subjects=40"], ["dataset.val_subjects=40", "every training subject"]),
], ids=["not training subjects", "every subject"])
def test_validation_subjects_the_data_lacks(store, shared_data, args, words):
    """What only the data can tell (which subjects train) is refused when the split is carved:
    one line, the run directory removed again."""
    before, runs = snapshot(store), sorted(p.name for p in (store / "runs").iterdir())
    r = run_cli([*args, f"paths.data={shared_data}", "logger=none", "debug=tiny"], store)
    refused(r, *words)
    assert snapshot(store) == before
    assert sorted(p.name for p in (store / "runs").iterdir()) == runs


# A search trial the job refuses (data it cannot read, a searched value out of range): one
# line, exit 2, instead of the Optuna sweeper's traceback; the trial is failed in the study,
# the search stops there (tests/test_search.py: the same command continues it).
SEARCH_TRIAL_CASES = [
    (["dataset.npz=missing.npz"], ["search trial 0 (", "dataset.npz='missing.npz' is not a file",
                                   "run the same command again"]),
    (["model.dropout=interval(1.0,1.5)"], ["search trial 0 (model.dropout=", "[0, 1)"]),
]


@pytest.mark.parametrize("args,words", SEARCH_TRIAL_CASES,
                         ids=[" ".join(a) for a, _ in SEARCH_TRIAL_CASES])
def test_bad_search_trial(workdir, shared_data, args, words):
    from tests.test_search import load_trials

    before = snapshot(workdir)
    r = run_cli(["--multirun", "+search=lr_dropout", "dataset.val_fraction=0.25",
                 "hydra.sweeper.n_trials=3", *args, f"paths.data={shared_data}", "logger=none",
                 "debug=tiny"], workdir)
    refused(r, *words)
    after = snapshot(workdir)
    assert {k: after.get(k) for k in before} == before  # what was there is untouched
    assert [t.state.name for t in load_trials(workdir / "runs")] == ["FAIL"]  # none running


def test_results_report_a_top1_outside_0_100_as_a_problem(tmp_path):
    """best_top1: 150 in a metrics.json is a corrupt file: reported (one warning line naming
    the run, and in the tables' notes), never bolded as the best of its table."""
    write_run(tmp_path / "runs", "good", ablation="B0", seed=0, best=90.0)
    write_run(tmp_path / "runs", "corrupt", ablation="B1", seed=0, best=150.0)
    before = snapshot(tmp_path / "runs")
    r = run_cli(["--runs", "runs", "--out", "out", "--quiet"], tmp_path, module="lastexp.results")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [
        "warning: skipping corrupt: metrics.json holds best_top1=150.0, not a top-1 in [0, 100]"]
    assert snapshot(tmp_path / "runs") == before
    md = (tmp_path / "out" / "base.md").read_text()
    assert "`corrupt`: metrics.json holds best_top1=150.0" in md
    assert "150" not in md.replace("best_top1=150.0", "")


def test_a_last_pt_copied_from_another_run_is_refused(workdir, shared_data):
    """A last.pt copied from another run of the same architecture (here: another seed) would
    resume silently into this run: refused in one line naming fresh=true, nothing changed."""
    args = [f"paths.data={shared_data}", "logger=none", "debug=tiny"]
    done = run_cli(["run_name=donor", "seed=1", *args], workdir)
    assert done.returncode == 0, done.stderr[-2000:]
    (workdir / "runs" / "copy" / "checkpoints").mkdir(parents=True)
    (workdir / "runs" / "copy" / "checkpoints" / "last.pt").write_bytes(
        (workdir / "runs" / "donor" / "checkpoints" / "last.pt").read_bytes())
    before = snapshot(workdir)
    r = run_cli(["run_name=copy", "seed=2", *args], workdir)
    refused(r, "copy/checkpoints/last.pt", "belongs to another run",
            "pass fresh=true to start the run copy over")
    assert snapshot(workdir) == before
