"""Selection on a validation split against selection on the test split, through the real
Trainer, with a scripted model whose predictions per epoch are fixed in advance: validation is
best after epoch 1, the test split after epoch 3. Selecting on the test split reports epoch 3
(today's rule); selecting on validation reports epoch 1, and its best_top1 is the test top-1 of
epoch 1's weights (best.pt), with that epoch's predictions in test_scores.npz."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from torch import nn

from lastexp.runstore.layout import RunDir
from lastexp.runstore.scores import read_predictions
from lastexp.train.distributed import DistInfo
from lastexp.train.early_stopping import EarlyStopping
from lastexp.train.loop import StepContext
from lastexp.train.sampler import EpochSampler
from lastexp.train.signals import StopFlag
from lastexp.train.state import Progress, RunFacts, Trainables, resume
from lastexp.train.trainer import Outputs, Schedule, Trainer

NUM_CLASSES, EPOCHS = 3, 4
# Which samples the weights after each epoch classify right (epoch 1..4), per split: the
# validation split peaks after epoch 1, the test split after epoch 3.
VAL_RIGHT = {1: [0, 1, 2, 3], 2: [0, 1], 3: [0], 4: [0, 1]}
TEST_RIGHT = {1: [0], 2: [0, 1], 3: [0, 1, 2, 3, 4], 4: [0, 1, 2]}
N = 6  # samples per split


class Split(torch.utils.data.Dataset):
    """Sample i is x = [offset + i] with label i % NUM_CLASSES."""

    def __init__(self, offset: int, prefix: str) -> None:
        self.offset = offset
        self.labels = np.arange(N) % NUM_CLASSES
        self.names = [f"{prefix}{i}" for i in range(N)]

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int):
        return torch.tensor([float(self.offset + i)]), torch.tensor(int(self.labels[i]))


def table(right: dict) -> torch.Tensor:
    """Predicted class per (epoch, sample): the label where scripted right, else label + 1."""
    t = torch.zeros(EPOCHS + 1, N, dtype=torch.long)
    for e in range(1, EPOCHS + 1):
        for i in range(N):
            label = i % NUM_CLASSES
            t[e, i] = label if i in right[e] else (label + 1) % NUM_CLASSES
    return t


class Scripted(nn.Module):
    """Its buffer ``epoch`` counts training passes (one batch per epoch), so the weights saved
    after epoch e (best.pt, last.pt) predict what the table says for e."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))
        self.register_buffer("table", torch.cat([table(VAL_RIGHT), table(TEST_RIGHT)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.epoch += 1
            return self.w.expand(len(x), NUM_CLASSES)
        col = x[:, 0].long()  # validation samples 0..5, test samples 6..11
        pred = self.table[int(self.epoch), col]
        return nn.functional.one_hot(pred, NUM_CLASSES).float() + 0 * self.w


def loss_fn(model, x, y):
    logits = model(x)
    return (logits.sum() * 0 + model.w.square().sum()), logits


def run(tmp_path, *, validation: bool, patience: int | None = None, stop_after: int = 0
        ) -> tuple[dict, dict, Progress]:
    """Train the scripted model for EPOCHS epochs and finish; ``stop_after=k`` first trains k
    epochs in a trainer of its own (a run killed after epoch k), then resumes from last.pt."""
    if stop_after:
        first = make_trainer(tmp_path, validation=validation, patience=patience,
                             epochs=stop_after)
        first.train(Progress(), None)
    trainer = make_trainer(tmp_path, validation=validation, patience=patience, epochs=EPOCHS)
    progress = Progress()
    if stop_after:
        progress, _ = resume(trainer.out.run.last, trainer.parts, "scripted")
        trainer.stopper.replay(progress.history)
    status, reason = trainer.train(progress, None)
    trainer.finish(progress, status, reason)
    run_dir = trainer.out.run
    assert json.loads(run_dir.metrics.read_text())["status"] == "completed"
    return trainer.metrics, read_predictions(run_dir.scores), progress


def make_trainer(tmp_path, *, validation: bool, patience: int | None, epochs: int) -> Trainer:
    torch.manual_seed(0)
    model = Scripted()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    parts = Trainables(model, opt, sched)
    train, test, val = Split(0, "train"), Split(N, "test"), Split(0, "val")
    sampler = EpochSampler(N, seed=1)
    loader = lambda ds, **kw: torch.utils.data.DataLoader(ds, batch_size=N, **kw)  # noqa: E731
    run_dir = RunDir(tmp_path / ("val" if validation else "test"))
    run_dir.path.mkdir(parents=True, exist_ok=True)
    ctx = StepContext(optimizer=opt, loss_fn=loss_fn, transform=lambda x: x,
                      device=torch.device("cpu"), progress=False)
    metrics: dict = {}
    return Trainer(
        parts=parts, facts=RunFacts("scripted", {}, NUM_CLASSES, "joint"),
        schedule=Schedule(epochs=epochs, seed=1, batch_size=N, save_interval=0),
        out=Outputs(run_dir), ctx=ctx, train_set=train, sampler=sampler,
        train_loader=loader(train, sampler=sampler), test_loader=loader(test), test_set=test,
        train_model=model, eval_model=model, test_tf=lambda x: x,
        aug_gen=torch.Generator(), dinfo=DistInfo(), logger=None, stop=StopFlag(),
        stopper=EarlyStopping(patience), metrics=metrics, t_start=time.time(),
        val_loader=loader(val) if validation else None)


def top1(right: list) -> float:
    return 100.0 * len(right) / N


def test_selection_on_test_reports_the_test_best_epoch(tmp_path):
    metrics, preds, progress = run(tmp_path, validation=False)
    assert metrics["best_epoch"] == 3 and metrics["best_top1"] == top1(TEST_RIGHT[3])
    assert "best_val_top1" not in metrics
    assert [r["val_top1"] for r in progress.history] == [top1(TEST_RIGHT[e]) for e in
                                                         range(1, EPOCHS + 1)]
    labels = preds["labels"]
    assert np.array_equal(preds["pred_best"] == labels, np.isin(np.arange(N), TEST_RIGHT[3]))
    assert np.array_equal(preds["pred_final"] == labels, np.isin(np.arange(N), TEST_RIGHT[4]))
    assert "pred_swa" not in preds
    assert 100.0 * (preds["pred_best"] == labels).mean() == pytest.approx(metrics["best_top1"])


def test_selection_on_validation_picks_another_epoch_and_scores_it_on_test(tmp_path):
    metrics, preds, progress = run(tmp_path, validation=True)
    # history, best epoch and best_val_top1 read validation
    assert [r["val_top1"] for r in progress.history] == [top1(VAL_RIGHT[e]) for e in
                                                         range(1, EPOCHS + 1)]
    assert metrics["best_epoch"] == 1 and metrics["best_val_top1"] == top1(VAL_RIGHT[1])
    # best_top1 and final_top1 are test numbers: epoch 1's weights (best.pt) and the last
    assert metrics["best_top1"] == top1(TEST_RIGHT[1])
    assert metrics["final_top1"] == top1(TEST_RIGHT[4])
    labels = preds["labels"]
    assert np.array_equal(preds["pred_best"] == labels, np.isin(np.arange(N), TEST_RIGHT[1]))
    assert np.array_equal(preds["pred_final"] == labels, np.isin(np.arange(N), TEST_RIGHT[4]))
    assert list(preds["names"]) == [f"test{i}" for i in range(N)]


def test_early_stopping_reads_validation(tmp_path):
    """Patience 2 on validation: no gain after epoch 1, so epochs 2 and 3 run and the run
    stops before epoch 4 (on the test split it would have gained at epochs 2 and 3)."""
    metrics, _, progress = run(tmp_path, validation=True, patience=2)
    assert metrics["stopped_early_at"] == 3 and len(progress.history) == 3
    assert metrics["best_epoch"] == 1 and metrics["best_top1"] == top1(TEST_RIGHT[1])
    assert metrics["final_top1"] == top1(TEST_RIGHT[3])  # the weights it stopped with
    tested, _, _ = run(tmp_path / "t", validation=False, patience=2)
    assert "stopped_early_at" not in tested and tested["best_epoch"] == 3


@pytest.mark.parametrize("validation", [False, True], ids=["test", "validation"])
def test_a_resumed_run_reports_the_same_selection(tmp_path, validation):
    """Stopped after epoch 2 and resumed from last.pt, a run ends with the numbers and the
    per-sample predictions of an uninterrupted one (best.pt, written before the stop, is what
    the finish scores)."""
    whole, whole_preds, _ = run(tmp_path / "whole", validation=validation)
    resumed, resumed_preds, _ = run(tmp_path / "resumed", validation=validation, stop_after=2)
    keys = ("best_top1", "best_val_top1", "best_epoch", "final_top1")
    assert {k: resumed.get(k) for k in keys} == {k: whole.get(k) for k in keys}
    assert sorted(resumed_preds) == sorted(whole_preds)
    for key, value in whole_preds.items():
        assert np.array_equal(resumed_preds[key], value), key
