"""The trainer practices of the other guides: the gradient norm monitored (the teacher training
guide), loss, lr and norm every N steps with the global step (the vision guide), and one global
clip over the student and the distillation projector (the training recipe's gradient clip 1.0).

Expected norms are computed here with ``torch.linalg.vector_norm`` over the gradients the
optimizer is handed, not taken from the loop."""

import logging
import math

import pytest
import torch
from torch import nn

from lastexp.train import loop
from lastexp.train.loop import EpochProgress, StepContext, train_one_epoch
from lastexp.train.tracking import HISTORY_FIELDS, WandbLogger


class Recording(torch.optim.SGD):
    """SGD that records the global norm of the gradients it steps with (after any clip)."""

    def __init__(self, params, **kw):
        super().__init__(params, **kw)
        self.norms: list[float] = []

    def step(self, closure=None):
        grads = [p.grad.flatten() for g in self.param_groups for p in g["params"]
                 if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.cat(grads))))
        return super().step(closure)


def data(n=6):
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(4, 5, generator=g), torch.randint(0, 3, (4,), generator=g))
            for _ in range(n)]


def ce(model, x, y):
    logits = model(x)
    return nn.functional.cross_entropy(logits, y), logits


def setup(clip=0.0, extra=None, **kw):
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    groups = [{"params": list(model.parameters())}]
    if extra is not None:
        groups.append({"params": list(extra.parameters())})
    opt = Recording(groups, lr=0.1)
    ctx = StepContext(optimizer=opt, loss_fn=ce, transform=lambda x: x,
                      device=torch.device("cpu"), clip=clip, progress=False, **kw)
    return model, opt, ctx


def test_grad_norm_is_the_mean_pre_clip_norm_of_the_epochs_steps():
    model, opt, ctx = setup(clip=0.0, accumulation=2)
    out = train_one_epoch(model, data(6), ctx)
    assert len(opt.norms) == 3 and ctx.global_step == 3  # 6 batches, 2 per step
    assert out["grad_norm"] == pytest.approx(sum(opt.norms) / 3, rel=1e-6)
    assert out["progress"].grad_norm_steps == 3


def test_norm_is_taken_before_the_clip():
    model, opt, ctx = setup(clip=1e-3)
    out = train_one_epoch(model, data(4), ctx)
    assert all(n == pytest.approx(1e-3, rel=1e-4) for n in opt.norms)  # clipped steps
    assert out["grad_norm"] > 1e-2  # the norm before clipping


def test_projector_is_clipped_with_the_student():
    projector = nn.Linear(3, 3)  # stands for the distillation projector: its own group

    def with_projector(model, x, y):
        logits = model(x)
        return nn.functional.cross_entropy(projector(logits), y), logits

    model, opt, ctx = setup(clip=1e-3, extra=projector)
    ctx.loss_fn = with_projector
    train_one_epoch(model, data(4), ctx)
    # one global norm over both groups, clipped to 1e-3 (a student-only clip leaves the
    # projector's gradient whole and the joint norm above the clip)
    assert all(n == pytest.approx(1e-3, rel=1e-4) for n in opt.norms)


def test_records_every_n_steps_with_the_global_step():
    records = []
    model, opt, ctx = setup(log_every=2, on_log=records.append, global_step=10)
    train_one_epoch(model, data(6), ctx)
    assert [r["global_step"] for r in records] == [12, 14, 16]
    assert all(r["lr"] == 0.1 for r in records)
    # each record: the mean over its own 2 steps (the norms the optimizer saw, no clip here)
    for k, r in enumerate(records):
        assert r["grad_norm"] == pytest.approx(sum(opt.norms[2 * k:2 * k + 2]) / 2, rel=1e-6)
        assert math.isfinite(r["train_loss"]) and r["train_loss"] > 0


def test_resumed_epoch_keeps_the_norm_sums():
    model, opt, ctx = setup()
    start = EpochProgress(batches=2, loss_sum=3.0, correct=1, seen=8, grad_norm_sum=5.0,
                          grad_norm_steps=2)
    out = train_one_epoch(model, data(2), ctx, resume=start)
    assert out["progress"].grad_norm_steps == 4
    assert out["grad_norm"] == pytest.approx((5.0 + sum(opt.norms)) / 4, rel=1e-6)


def test_progress_line_without_a_terminal(caplog, monkeypatch):
    model, opt, ctx = setup(log_every=3)
    ctx.progress = None  # a bar on a terminal only: pytest's stderr is not one
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    with caplog.at_level(logging.INFO, logger="lastexp.train"):
        train_one_epoch(model, data(6), ctx, desc="epoch 1/1")
    lines = [r.getMessage() for r in caplog.records if r.name == "lastexp.train"]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/1 batch 3/6 step 3: loss ")
    caplog.clear()
    monkeypatch.setattr(loop, "LINE_SECONDS", 0.0)  # every 30 s: here every step
    ctx.log_every = 0
    with caplog.at_level(logging.INFO, logger="lastexp.train"):
        train_one_epoch(model, data(6), ctx, desc="epoch 2/2")
    assert len([r for r in caplog.records if r.name == "lastexp.train"]) == 6


class FakeRun:
    """Records what a wandb run is told (W&B drops a log whose step is below the last one)."""

    def __init__(self):
        self.logs, self.axes = [], {}

    def log(self, data, step):
        self.logs.append((step, data))

    def define_metric(self, name, step_metric=None):
        self.axes[name] = step_metric


def test_wandb_steps_rise_and_epochs_and_steps_have_their_own_axes():
    logger = object.__new__(WandbLogger)  # the run wandb.init would return, faked
    logger.run = FakeRun()
    logger._define_axes()
    for step in (50, 100):
        logger.log_step({"global_step": step, "train_loss": 1.0, "lr": 0.1, "grad_norm": 2.0})
    logger.log_epoch({"epoch": 1, "lr": 0.1, "train_loss": 1.0, "grad_norm": 2.0,
                      "global_step": 120})
    logger.log_step({"global_step": 150, "train_loss": 1.0, "lr": 0.1, "grad_norm": 2.0})
    steps = [s for s, _ in logger.run.logs]
    assert steps == [50, 100, 120, 150]  # the global step, never going back
    assert logger.run.logs[0][1] == {"global_step": 50, "step/train_loss": 1.0,
                                     "step/lr": 0.1, "step/grad_norm": 2.0}
    assert logger.run.logs[2][1]["epoch"] == 1 and "global_step" not in logger.run.logs[2][1]
    assert logger.run.axes["step/*"] == "global_step"
    assert all(logger.run.axes[k] == "epoch" for k in HISTORY_FIELDS[1:])


def test_a_stop_mid_window_resumes_to_the_same_records():
    """Records every 3 steps; the epoch stopped after step 2 and resumed gives the record at
    step 3 the uninterrupted run gave (its mean over steps 1-3)."""
    whole = []
    model, _, ctx = setup(log_every=3, on_log=whole.append)
    train_one_epoch(model, data(6), ctx)

    parts = []
    model, _, ctx = setup(log_every=3, on_log=parts.append)
    stops = iter([False, True])
    ctx.should_stop = lambda: next(stops, False)
    first = train_one_epoch(model, data(6), ctx)
    assert first["stopped"] and first["progress"].batches == 2
    ctx.should_stop = None
    restored = EpochProgress(**first["progress"].to_dict())
    train_one_epoch(model, data(6)[2:], ctx, resume=restored)
    assert [r["global_step"] for r in parts] == [3, 6]
    assert parts == whole


def test_fp16_scaler_norm_is_of_the_unscaled_gradients():
    """With GradScaler the loss is scaled by 2**16 before backward; the recorded norm is the
    norm of the true gradients (as without a scaler)."""
    plain_model, plain_opt, plain = setup()
    ref = train_one_epoch(plain_model, data(3), plain)
    model, opt, ctx = setup(scaler=torch.amp.GradScaler("cpu", init_scale=2.0**16))
    out = train_one_epoch(model, data(3), ctx)
    assert out["grad_norm"] == pytest.approx(ref["grad_norm"], rel=1e-5)
    assert opt.norms == pytest.approx(plain_opt.norms, rel=1e-5)
