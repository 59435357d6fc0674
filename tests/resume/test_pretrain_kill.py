"""Bit-exact resume of MaskCLR pretraining (the training plan §4, L12's first phase): SIGTERM,
SIGUSR2 or a Ctrl-C during pretraining, or a SIGKILL in it or in the main phase after it, then
the same command again, ends with the encoder, metrics (the pretrain_* figures too), history,
test logits and best.pt of a run that was never interrupted."""

from __future__ import annotations

import csv
import json
import os
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
# three pretraining epochs of three batches each, then one epoch of the main phase
CONFIG = ["pretrain.enabled=true", "pretrain.epochs=3", "model=last_lite_nano", "debug=tiny",
          "logger=none"]
TIMING = {"started_at", "finished_at", "train_seconds", "resumed_from_epoch", "seconds",
          "cum_seconds", "git_commit", "pretrain_seconds"}


def harness(args: list[str], cwd: Path, kill: str, log: Path | None = None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "LASTEXP_KILL": kill, "WANDB_MODE": "offline"}
    if log is not None:
        env["LASTEXP_KILL_LOG"] = str(log)
    return subprocess.run([sys.executable, str(HARNESS), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)


def outcome(runs: Path) -> dict:
    """What a finished run delivers, minus wall-clock facts."""
    (metrics_path,) = runs.glob("*/metrics.json")
    run_dir = metrics_path.parent
    metrics = {k: v for k, v in json.loads((run_dir / "metrics.json").read_text()).items()
               if k not in TIMING}
    with open(run_dir / "history.csv") as f:
        history = [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]
    ckpt = run_dir / "checkpoints"
    encoder = torch.load(ckpt / "encoder.pt", weights_only=True)
    return {"metrics": metrics, "history": history,
            "scores": dict(np.load(run_dir / "test_scores.npz")),
            "best": torch.load(ckpt / "best.pt", weights_only=True)["model"],
            "encoder": encoder["encoder"], "pretrain_loss": encoder["history"]["loss"],
            "left": sorted(p.name for p in run_dir.rglob("*") if ".tmp" in p.name
                           or p.name == "pretrain_last.pt")}


def differences(a: dict, b: dict) -> list[str]:
    diffs = [k for k in ("metrics", "history", "pretrain_loss", "left") if a[k] != b[k]]
    for key in ("scores", "best", "encoder"):
        if a[key].keys() != b[key].keys() or any(
                not (np.array_equal(a[key][k], b[key][k]) if key == "scores"
                     else torch.equal(a[key][k], b[key][k])) for k in a[key]):
            diffs.append(key)
    return diffs


def test_signals_during_pretraining_resume_bit_for_bit(tmp_path, shared_data):
    args = [*CONFIG, f"paths.data={shared_data}"]
    # the corpus and its cache first, so the reference counts the renames of a trial's run
    warm = run_cli([*args, f"paths.runs={tmp_path / 'warm'}"], tmp_path)
    assert warm.returncode == 0, warm.stderr[-2000:]
    log = tmp_path / "renames.txt"
    counted = harness([*args, f"paths.runs={tmp_path / 'ref'}"], tmp_path, "count", log)
    assert counted.returncode == 0, counted.stderr[-3000:]
    reference = outcome(tmp_path / "ref")
    assert reference["metrics"]["status"] == "completed"
    assert reference["metrics"]["pretrain_epochs"] == 3
    assert reference["metrics"]["pretrain_final_loss"] == reference["pretrain_loss"][-1]
    names = log.read_text().split()
    # the n-th rename of each file (1-based positions among all renames)
    pre = [i for i, name in enumerate(names, 1) if name == "pretrain_last.pt"]
    encoder, last = names.index("encoder.pt") + 1, names.index("last.pt") + 1
    assert len(pre) == 3 and pre[-1] < encoder < last  # one state per pretraining epoch

    # a signal right after a pretraining epoch's state is saved: SIGTERM and SIGUSR2 stop after
    # the next step with a mid-epoch state (after the last epoch's: in the main phase); a
    # Ctrl-C ends it there (the epoch's state is kept)
    sent = [f"signal:{pre[0]}:TERM", f"signal:{pre[1]}:USR2", f"signal:{pre[0]}:INT",
            f"signal:{pre[1]}:INT", f"signal:{pre[2]}:TERM", f"signal:{encoder}:USR2"]
    killed = [f"replace:{pre[1]}:before", f"replace:{last}:after"]  # a resumed main phase
    results = {}
    for i, kill in enumerate(sent + killed):
        root = tmp_path / f"trial{i}"
        stopped = harness([*args, f"paths.runs={root}"], tmp_path, kill)
        assert "Traceback" not in stopped.stderr, (kill, stopped.stderr[-2000:])
        if kill in sent[:2]:  # stopped inside pretraining by lastexp's own handling
            name = kill.rsplit(":", 1)[1]
            assert stopped.returncode == -getattr(signal, f"SIG{name}"), (kill, stopped.stderr)
            (metrics,) = root.glob("*/metrics.json")
            record = json.loads(metrics.read_text())
            assert record["status"] == "interrupted", record
            assert f"SIG{name} in MaskCLR pretraining" in record["reason"], record
            assert list(root.glob("*/checkpoints/pretrain_last.pt")), kill
        resumed = run_cli([*args, f"paths.runs={root}"], tmp_path)
        assert resumed.returncode == 0, (kill, resumed.stderr[-2000:])
        results[kill] = differences(outcome(root), reference)
    differing = {k: v for k, v in results.items() if v}
    assert not differing, f"{len(differing)} of {len(results)} trials differ: {differing}"

