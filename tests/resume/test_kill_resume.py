"""Bit-exact resume (the run store issue): a run SIGKILLed anywhere, inside any atomic write,
in an epoch or in the final SWA/evaluation phase, then run again with the same command, ends
with the metrics, history, test logits and best.pt of a run that was never interrupted."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.resume

HARNESS = Path(__file__).with_name("kill_harness.py")
# Causal training, SWA over the last two of three epochs and distillation, all at once.
CONFIG = ["+ablation=L11", "training.causal_prob=0.5", "training.swa_start=0.34",
          "training.epochs=3", "debug=tiny", "logger=none"]
TIMING = {"started_at", "finished_at", "train_seconds", "resumed_from_epoch", "seconds",
          "cum_seconds", "run_dir", "teacher", "git_commit"}


def harness(args: list[str], cwd: Path, kill: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LASTEXP_KILL": kill, "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, str(HARNESS), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)


def outcome(runs: Path) -> dict:
    """What a finished run delivers, minus wall-clock facts."""
    (metrics_path,) = runs.glob("L11_*/metrics.json")
    run_dir = metrics_path.parent
    metrics = {k: v for k, v in json.loads(metrics_path.read_text()).items() if k not in TIMING}
    with open(run_dir / "history.csv") as f:
        history = [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]
    scores = dict(np.load(run_dir / "test_scores.npz"))
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    temps = sorted(p.name for p in run_dir.rglob("*.tmp"))
    return {"metrics": metrics, "history": history, "scores": scores,
            "best_epoch": best["best_epoch"], "best_model": best["model"], "temps": temps,
            "name": run_dir.name}


def same(a: dict, b: dict) -> list[str]:
    diffs = [k for k in ("metrics", "history", "best_epoch", "temps", "name") if a[k] != b[k]]
    if a["scores"].keys() != b["scores"].keys() or any(
        not np.array_equal(a["scores"][k], b["scores"][k]) for k in a["scores"]
    ):
        diffs.append("scores")
    if a["best_model"].keys() != b["best_model"].keys() or any(
        not torch.equal(a["best_model"][k], b["best_model"][k]) for k in a["best_model"]
    ):
        diffs.append("best_model")
    return diffs


def test_sigkill_anywhere_resumes_bit_for_bit(tmp_path, shared_data):
    teacher_root = tmp_path / "teacher"
    out = run_cli(["+ablation=B7", "debug=tiny", "logger=none", f"paths.runs={teacher_root}",
                   f"paths.data={shared_data}"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (teacher,) = teacher_root.glob("B7_*")
    args = [*CONFIG, f"distill.teacher={teacher}", f"paths.data={shared_data}"]

    ref_root = tmp_path / "ref"
    counted = harness([*args, f"paths.runs={ref_root}"], tmp_path, "count")
    assert counted.returncode == 0, counted.stderr[-3000:]
    n_replace, n_eval, n_bn = map(int, counted.stdout.split("KILL-COUNTS")[1].split())
    reference = outcome(ref_root)
    # 3 epochs + final weights + SWA model, + best.pt unless the last epoch is the best
    assert n_bn == 1 and n_eval == 5 + (reference["best_epoch"] != 3)
    assert {"pred_best", "pred_final", "pred_swa"} <= set(reference["scores"])
    assert reference["metrics"]["status"] == "completed" and "swa_top1" in reference["metrics"]

    # every atomic write, before and after its rename, at 14 points spread over the run (the
    # last ones are the final phase's swa.pt, test_scores.npz and metrics.json), plus each
    # evaluation and the BN recomputation of the final phase
    rng = random.Random(0)
    points = sorted(rng.sample(range(1, n_replace + 1), min(14, n_replace)))
    points = sorted(set(points) | {n_replace - 2, n_replace - 1, n_replace})
    kills = [f"replace:{n}:{'before' if i % 2 == 0 else 'after'}" for i, n in enumerate(points)]
    kills += [f"evaluate:{n}" for n in range(2, n_eval + 1)] + ["update_bn:1"]
    assert len(kills) >= 20
    results = {}
    for i, kill in enumerate(kills):
        root = tmp_path / f"trial{i}"
        killed = harness([*args, f"paths.runs={root}"], tmp_path, kill)
        assert killed.returncode == -signal.SIGKILL, (kill, killed.stderr[-2000:])
        resumed = run_cli([*args, f"paths.runs={root}"], tmp_path)
        assert resumed.returncode == 0, (kill, resumed.stderr[-2000:])
        results[kill] = same(outcome(root), reference)
    # the signals a user or a cluster sends (scancel's SIGTERM, SLURM's pre-emption warning
    # SIGUSR2, a Ctrl-C), each once mid-run and once in the final phase: lastexp's own handling
    # ends the run (a mid-epoch checkpoint, or a KeyboardInterrupt anywhere), then the rerun
    signals = [f"signal:{n}:{name}" for name in ("TERM", "USR2", "INT")
               for n in (points[len(points) // 2], n_replace - 1)]
    for i, sent in enumerate(signals):
        root = tmp_path / f"signal{i}"
        stopped = harness([*args, f"paths.runs={root}"], tmp_path, sent)
        assert "Traceback" not in stopped.stderr, (sent, stopped.stderr[-2000:])
        resumed = run_cli([*args, f"paths.runs={root}"], tmp_path)
        assert resumed.returncode == 0, (sent, resumed.stderr[-2000:])
        results[sent] = same(outcome(root), reference)
    differing = {k: v for k, v in results.items() if v}
    tried = len(kills) + len(signals)
    assert not differing, f"{len(differing)} of {tried} kill/signal trials differ: {differing}"
