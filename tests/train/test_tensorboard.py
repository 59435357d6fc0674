"""logger=tensorboard: event files in the run directory, read back with TensorBoard's own reader,
equal to the run's history; the per-step series every logger.log_every_n_steps optimizer steps
over the global step, which a resumed run continues; a resumed run does not repeat steps; the
logger is not identity."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from torch.optim.lr_scheduler import LinearLR

from tests.conftest import compose, run_cli

pytest.importorskip("tensorboard")

FIELDS = ("lr", "train_loss", "train_top1", "val_loss", "val_top1", "seconds", "grad_norm")
STEP_TAGS = ("step/train_loss", "step/lr", "step/grad_norm")


def read_events(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def walltimes(run_dir: Path) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.wall_time for e in acc.Scalars("val_top1")]


def history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def assert_series_equal_history(run_dir: Path) -> None:
    series, rows = read_events(run_dir), history(run_dir)
    assert set(series) - set(STEP_TAGS) == set(FIELDS)
    for key in FIELDS:
        steps = [s for s, _ in series[key]]
        assert steps == [int(r["epoch"]) for r in rows], key  # each epoch once, in order
        values = [v for _, v in series[key]]
        # history.csv keeps 6 significant digits, the event files float32
        assert values == pytest.approx([float(r[key]) for r in rows], rel=1e-5, abs=1e-9), key


def test_logger_choice_is_not_run_identity():
    from lastexp.runstore.key import run_key

    keys = {run_key(compose(["debug=tiny", f"logger={name}"]))
            for name in ("none", "wandb", "tensorboard", "wandb_tensorboard")}
    assert len(keys) == 1


def test_tensorboard_series_equal_history_and_resume_does_not_repeat(tmp_path, shared_data):
    args = ["debug=tiny", "model=last_e_nano", "logger=tensorboard", "training.epochs=3",
            "training.save_interval=1", "scheduler.warmup_epochs=2",
            "logger.log_every_n_steps=2", f"paths.runs={tmp_path / 'runs'}",
            f"paths.data={shared_data}"]
    out = run_cli(args, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = [p.parent for p in (tmp_path / "runs").rglob("metrics.json")]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert not (run / "wandb").exists()
    assert_series_equal_history(run)
    first = read_events(run)
    # history's lr: the recipe's warmup as torch's LinearLR(0.01 -> 0.1 over 2 epochs) gives
    # it, the peak in the epoch after the warmup (0.01, 0.055, 0.1)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    linear, want = LinearLR(opt, start_factor=0.1, total_iters=2), []
    for _ in range(3):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        linear.step()
    assert [float(r["lr"]) for r in history(run)] == pytest.approx(want, rel=1e-6)
    assert all(float(r["grad_norm"]) > 0 for r in history(run))
    # the per-step series: every 2 optimizer steps, the global step as x-axis; the checkpoint
    # keeps the count
    ckpt = run / "checkpoints"
    per_epoch = [torch.load(ckpt / f"epoch_{e:04d}.pt", weights_only=True)["global_step"]
                 for e in (1, 2, 3)]
    total = per_epoch[2]
    assert per_epoch == [total // 3, 2 * total // 3, total] and total >= 6
    for tag in STEP_TAGS:
        assert [s for s, _ in first[tag]] == list(range(2, total + 1, 2)), tag
    assert [v for _, v in first["step/lr"]] == pytest.approx(
        [want[(s - 1) // (total // 3)] for s in range(2, total + 1, 2)])
    walltimes_first = walltimes(run)

    # Back to the checkpoint of epoch 2, as if the job had died in epoch 3: the resumed run
    # trains epoch 3 again and its event files still hold each step once.
    ckpt = run / "checkpoints"
    shutil.copy(ckpt / "epoch_0002.pt", ckpt / "last.pt")
    (run / "metrics.json").unlink()
    again = run_cli(args, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stdout
    # one event file: the earlier one's epochs rewritten into it (no reader sees a step twice)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert_series_equal_history(run)
    assert [s for s, _ in read_events(run)["val_top1"]] == [s for s, _ in first["val_top1"]]
    # the resumed run went on from epoch 2's global step: each step once, the same values
    # (a resumed run computes what the first attempt did)
    again_events = read_events(run)
    for tag in STEP_TAGS:
        assert again_events[tag] == pytest.approx(first[tag]), tag
    assert torch.load(ckpt / "last.pt", weights_only=True)["global_step"] == total
    assert walltimes(run)[:2] == walltimes_first[:2]  # epochs 1-2 keep their wall times
    assert walltimes(run)[2] > walltimes_first[2]  # epoch 3 trained again
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"


def test_logger_list_means_both():
    from lastexp.aliases import normalize_overrides

    assert normalize_overrides(["logger=[wandb,tensorboard]", "logger=[tensorboard, wandb]",
                                "logger=[tensorboard]"]) == [
        "logger=wandb_tensorboard", "logger=wandb_tensorboard", "logger=tensorboard"]


@pytest.mark.slow
def test_wandb_and_tensorboard_at_once(tmp_path, shared_data):
    args = ["debug=tiny", "model=last_e_nano", "logger=[wandb,tensorboard]",
            f"paths.runs={tmp_path / 'runs'}", f"paths.data={shared_data}"]
    out = run_cli(args, tmp_path, env={"WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = [p.parent for p in (tmp_path / "runs").rglob("metrics.json")]
    assert list(run.rglob("run-*.wandb"))
    assert_series_equal_history(run)
