"""End to end through the CLI: the run directory of SPEC §5, skip, resume, and bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, run_cli

TINY = ["debug=tiny", "logger=none", "model=last_e_nano"]


def tiny_args(workdir: Path, data: Path, *extra: str) -> list[str]:
    return [*TINY, f"paths.runs={workdir / 'runs'}", f"paths.data={data}", *extra]


def run_dirs(workdir: Path) -> list[Path]:
    return sorted(p.parent for p in (workdir / "runs").rglob("metrics.json"))


def history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_run_directory_matches_spec(workdir, shared_data):
    out = run_cli(tiny_args(workdir, shared_data, "training.epochs=2"), workdir)
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = run_dirs(workdir)
    assert run.parent == workdir / "runs" and run.name.startswith("last_e_nano_joint_synthetic_s1_")
    m = json.loads((run / "metrics.json").read_text())
    for key in ("status", "ablation", "model", "stream", "dataset", "preprocessing", "seed",
                "epochs", "best_top1", "best_epoch", "final_top1", "params", "flops",
                "train_seconds", "device", "n_train", "n_test"):
        assert key in m, key
    assert m["status"] == "completed" and m["epochs"] == 2 and m["ablation"] is None
    assert 0 <= m["final_top1"] <= 100 and m["params"] > 0 and m["flops"] > 0
    assert m["world_size"] == 1 and m["selection"] == "test" and "best_val_top1" not in m
    with np.load(run / "test_scores.npz") as z:  # a prediction per sample for each rule
        assert {"scores", "labels", "names", "pred_best", "pred_final"} <= set(z.files)
        assert "pred_swa" not in z.files  # no SWA in this run
        assert 100 * (z["pred_final"] == z["labels"]).mean() == pytest.approx(m["final_top1"])
        assert 100 * (z["pred_best"] == z["labels"]).mean() == pytest.approx(m["best_top1"])
    rows = history(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1",
                             "seconds", "grad_norm"]
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "checkpoints/last.pt",
                 "checkpoints/best.pt", "test_scores.npz"):
        assert (run / name).exists(), name

    again = run_cli(tiny_args(workdir, shared_data, "training.epochs=2"), workdir)
    assert again.returncode == 0 and "already completed" in again.stdout
    assert "epoch   1/" not in again.stdout  # nothing trained the second time
    assert len(run_dirs(workdir)) == 1


def _final(run_dir: Path) -> tuple[list, float]:
    m = json.loads((run_dir / "metrics.json").read_text())
    rows = [(r["epoch"], r["train_loss"], r["val_top1"], r["val_loss"]) for r in history(run_dir)]
    return rows, m["final_top1"]


@pytest.mark.slow
@pytest.mark.resume  # pytest -m resume: the full SIGKILL and signal trials
def test_sigkill_mid_run_resumes_to_identical_metrics(tmp_path, shared_data):
    args = ["training.epochs=4", "dataset.limit=null"]
    ref_dir, kill_dir = tmp_path / "ref", tmp_path / "kill"
    ref_dir.mkdir()
    kill_dir.mkdir()
    ref = run_cli(tiny_args(ref_dir, shared_data, *args), ref_dir)
    assert ref.returncode == 0, ref.stderr[-2000:]

    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, "-m", "lastexp", *tiny_args(kill_dir, shared_data,
                             *args)], cwd=kill_dir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    hist = None
    while time.time() < deadline and proc.poll() is None:
        found = list((kill_dir / "runs").rglob("history.csv"))
        if found and len(history(found[0].parent)) >= 2:
            hist = found[0]
            break
        time.sleep(0.02)
    assert hist is not None, "the run never reached epoch 2"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = hist.parent
    assert json.loads((run / "metrics.json").read_text())["status"] == "running"

    resumed = run_cli(tiny_args(kill_dir, shared_data, *args), kill_dir)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout
    (ref_run,) = run_dirs(ref_dir)
    assert _final(run) == _final(ref_run)


@pytest.mark.slow
def test_incompatible_checkpoint_is_refused(workdir, shared_data):
    out = run_cli(tiny_args(workdir, shared_data, "run_name=shared"), workdir)
    assert out.returncode == 0, out.stderr[-2000:]
    ckpt = workdir / "runs" / "shared" / "checkpoints" / "last.pt"
    metrics = workdir / "runs" / "shared" / "metrics.json"
    metrics.unlink()  # make it look unfinished, so the next run would resume from last.pt
    before = ckpt.read_bytes()
    bad = run_cli(tiny_args(workdir, shared_data, "run_name=shared", "model=last_e_small"),
                  workdir)
    assert bad.returncode == 2
    assert "does not match 'last_e_small'" in bad.stderr and "fresh=true" in bad.stderr
    assert ckpt.read_bytes() == before  # nothing overwritten
    ok = run_cli(tiny_args(workdir, shared_data, "run_name=shared", "model=last_e_small",
                           "fresh=true"), workdir)
    assert ok.returncode == 0, ok.stderr[-2000:]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("model=no_such_model", "Could not find 'model/no_such_model'"),
        ("training.epohs=3", "training.epohs"),
        ("training.epochs=three", "training.epochs"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 must be > 0"),
        ("training.batch_size=0", "training.batch_size=0 must be > 0"),
    ],
)
def test_bad_config_fails_fast_and_leaves_nothing(workdir, shared_data, override, needle):
    out = run_cli(tiny_args(workdir, shared_data, override), workdir)
    assert out.returncode != 0
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not run_dirs(workdir)
    assert not list((workdir / "runs").glob("*")) if (workdir / "runs").exists() else True


def test_missing_raw_dir(workdir, shared_data):
    out = run_cli(tiny_args(workdir, shared_data, "dataset=ntu60_xsub"), workdir)
    assert out.returncode == 2 and "dataset.raw_dir" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unwritable_runs_directory(workdir, shared_data):
    if os.geteuid() == 0:
        blocker = workdir / "runs"
        blocker.write_text("a file where the runs directory should be")
    else:
        blocker = workdir / "runs"
        blocker.mkdir()
        blocker.chmod(0o500)
    out = run_cli(tiny_args(workdir, shared_data), workdir)
    assert out.returncode != 0
    assert "paths.runs" in out.stderr
    assert "Traceback" not in out.stderr


def test_plus_ablation_cli_and_debug_tiny_wins(workdir, shared_data):
    out = run_cli(tiny_args(workdir, shared_data, "+ablation=P3"), workdir)
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = run_dirs(workdir)
    m = json.loads((run / "metrics.json").read_text())
    assert m["ablation"] == "P3" and m["preprocessing"] == "t64_uniform_2body"
    assert m["epochs"] == 1  # debug=tiny shrinks the ablation's 90-epoch recipe
    assert run.name.startswith("P3_joint_synthetic_s1_")


def test_two_ablations_in_one_run_refused(workdir, shared_data):
    out = run_cli(tiny_args(workdir, shared_data, "+ablation=[B3,B4]"), workdir)
    assert out.returncode == 2 and "one run takes one ablation" in out.stderr
    bad = run_cli(tiny_args(workdir, shared_data, "+ablation=B99"), workdir)
    assert bad.returncode != 0 and "Could not find 'ablation/B99'" in bad.stderr
    assert "B13" in bad.stderr


def _raw_copy(shared_data: Path, dest: Path, keep) -> Path:
    """Copy some files of the tiny synthetic corpus (generated by earlier runs) into dest."""
    from lastexp.data.skeleton import parse_ntu_name

    src = sorted(shared_data.glob("synthetic/*/raw/*.skeleton"))
    if not src:
        from lastexp.data.synthetic import ensure_corpus
        from tests.conftest import compose

        cfg = compose(["debug=tiny"])
        ensure_corpus(shared_data, cfg.dataset.synthetic)
        src = sorted(shared_data.glob("synthetic/*/raw/*.skeleton"))
    dest.mkdir(parents=True)
    for f in src:
        if keep(parse_ntu_name(f.stem)):
            (dest / f.name).write_bytes(f.read_bytes())
    return dest


def test_corrupt_skeleton_among_good_ones_is_skipped_and_reported(workdir, shared_data):
    raw = _raw_copy(shared_data, workdir / "raw", lambda n: True)
    victim = sorted(raw.glob("*.skeleton"))[0]
    victim.write_text(victim.read_text()[:500])  # truncated mid-frame
    out = run_cli(tiny_args(workdir, workdir / "data", "dataset=ntu60_xsub",
                            f"dataset.raw_dir={raw}", "dataset.num_classes=0"), workdir)
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = run_dirs(workdir)
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["skipped_files"] >= 1
    assert victim.name in out.stdout + out.stderr  # reported by name


def test_empty_split_is_a_clear_error(workdir, shared_data):
    from lastexp.data.splits import is_train

    raw = _raw_copy(shared_data, workdir / "raw", lambda n: not is_train(n, "ntu60", "xsub"))
    out = run_cli(tiny_args(workdir, workdir / "data", "dataset=ntu60_xsub",
                            f"dataset.raw_dir={raw}", "dataset.num_classes=0"), workdir)
    assert out.returncode == 2
    assert "train" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not run_dirs(workdir)


@pytest.mark.slow
@pytest.mark.resume  # pytest -m resume: the full SIGKILL and signal trials
def test_preemption_signal_mid_epoch_resumes_to_identical_metrics(tmp_path, shared_data):
    """SIGUSR2 (what SLURM sends before preemption) stops after the current optimizer step,
    writes a mid-epoch checkpoint and exits; the rerun continues that epoch exactly."""
    args = ["training.epochs=3", "dataset.limit=null", "training.batch_size=4"]
    ref_dir, sig_dir = tmp_path / "ref", tmp_path / "sig"
    ref_dir.mkdir()
    sig_dir.mkdir()
    ref = run_cli(tiny_args(ref_dir, shared_data, *args), ref_dir)
    assert ref.returncode == 0, ref.stderr[-2000:]

    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, "-m", "lastexp", *tiny_args(sig_dir, shared_data,
                             *args)], cwd=sig_dir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        found = list((sig_dir / "runs").rglob("history.csv"))
        if found:
            time.sleep(0.3)  # well inside epoch 2
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGUSR2)
    out, _ = proc.communicate(timeout=300)
    assert "checkpoint saved" in out or "completed" in out, out[-2000:]
    (run,) = run_dirs(sig_dir)
    m = json.loads((run / "metrics.json").read_text())
    if m["status"] == "interrupted":  # the usual case: stopped mid-epoch
        assert "SIGUSR2" in m["reason"]
        resumed = run_cli(tiny_args(sig_dir, shared_data, *args), sig_dir)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert "resuming" in resumed.stdout
    (ref_run,) = run_dirs(ref_dir)
    assert _final(run) == _final(ref_run)
