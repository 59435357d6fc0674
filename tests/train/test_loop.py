"""The NaN guard: a non-finite input batch is skipped; a non-finite loss skips the step and
resets poisoned BatchNorm statistics; too many in a row abort the run."""

import pytest
import torch
from torch import nn

from lastexp.train.loop import NanGuard, NonFiniteError, StepContext, evaluate, train_one_epoch


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(),
                         nn.Linear(8, 3))


def ce_loss(model, x, y):
    logits = model(x)
    return nn.functional.cross_entropy(logits, y), logits


def batches(n=4, poison=None):
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        x = torch.randn(6, 3, 4, generator=g)
        if i == poison:
            x[0, 0, 0] = float("nan")
        out.append((x, torch.randint(0, 3, (6,), generator=g)))
    return out


def ctx_for(model, loss_fn=ce_loss, guard=None):
    return StepContext(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=loss_fn,
        transform=lambda x: x, device=torch.device("cpu"), guard=guard or NanGuard(),
    )


def test_nan_input_batch_is_skipped():
    model = make_model()
    ctx = ctx_for(model)
    out = train_one_epoch(model, batches(poison=2), ctx)
    assert ctx.guard.skipped_inputs == 1 and ctx.guard.skipped_losses == 0
    assert torch.isfinite(out["train_loss"] * torch.ones(1)).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_loss_skips_step_and_resets_bn():
    model = make_model()
    calls = {"n": 0}

    def flaky(m, x, y):
        loss, logits = ce_loss(m, x, y)
        calls["n"] += 1
        if calls["n"] == 2:  # poison the activations of this forward, as an overflow would
            bn = m[2]
            bn.running_mean.fill_(float("nan"))
            return loss * float("nan"), logits
        return loss, logits

    ctx = ctx_for(model, flaky)
    train_one_epoch(model, batches(), ctx)
    assert ctx.guard.skipped_losses == 1
    bn = model[2]
    assert torch.isfinite(bn.running_mean).all() and torch.isfinite(bn.running_var).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_consecutive_nan_losses_abort():
    model = make_model()

    def always_nan(m, x, y):
        loss, logits = ce_loss(m, x, y)
        return loss * float("nan"), logits

    ctx = ctx_for(model, always_nan, NanGuard(max_consecutive=3))
    with pytest.raises(NonFiniteError, match="max_nonfinite_steps"):
        train_one_epoch(model, batches(n=5), ctx)


def test_gradient_accumulation_equals_big_batch():
    data = batches(n=2)
    big = [(torch.cat([data[0][0], data[1][0]]), torch.cat([data[0][1], data[1][1]]))]

    def lin():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 3))

    a, b = lin(), lin()
    ca, cb = ctx_for(a), ctx_for(b)
    ca.accumulation = 2
    train_one_epoch(a, data, ca)
    train_one_epoch(b, big, cb)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_evaluate_top1():
    model = make_model()
    out = evaluate(model, batches(), device=torch.device("cpu"), transform=lambda x: x,
                   keep_scores=True)
    assert 0 <= out["val_top1"] <= 100 and out["scores"].shape == (24, 3)


def test_every_batch_nonfinite_fails_the_run_instead_of_finishing():
    guard = NanGuard(max_consecutive=3)
    bad = torch.full((2, 3), float("nan"))
    assert not guard.input_ok(bad) and not guard.input_ok(bad)
    with pytest.raises(NonFiniteError, match="3 batches in a row hold NaN or inf inputs"):
        guard.input_ok(bad)
    assert guard.skipped_inputs == 3


def test_a_finite_step_resets_the_count_of_skipped_inputs():
    guard = NanGuard(max_consecutive=2)
    model = torch.nn.Linear(3, 2)
    assert not guard.input_ok(torch.full((2, 3), float("inf")))
    assert guard.loss_ok(torch.tensor(1.0), model)
    assert not guard.input_ok(torch.full((2, 3), float("inf")))  # 1 in a row again: no raise
