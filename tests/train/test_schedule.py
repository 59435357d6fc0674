"""The training recipe's learning-rate schedules, checked at the epochs the seed names."""

import math

import pytest
import torch

from lastexp.train.schedule import build_scheduler

EPOCHS = (0, 4, 5, 35, 65, 89)


def lrs(name: str, epochs: int = 90, **kw) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler(
        opt, name=name, epochs=epochs, lr=0.1, warmup_epochs=5, warmup_start_lr=0.01,
        min_lr=1e-4, **kw,
    )
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def cos(t: float, period: float, hi: float = 0.1, lo: float = 1e-4) -> float:
    return lo + (hi - lo) * (1 + math.cos(math.pi * t / period)) / 2


def test_cosine_warmup_matches_seed():
    got = lrs("cosine_warmup")
    # 0.01 -> 0.1 over epochs 0-4, then cosine 0.1 -> 1e-4 over epochs 5-89.
    want = {0: 0.01, 4: 0.1, 5: 0.1, 35: cos(30, 84), 65: cos(60, 84), 89: 1e-4}
    for e in EPOCHS:
        assert got[e] == pytest.approx(want[e], rel=1e-6, abs=1e-9), e
    assert got[2] == pytest.approx(0.01 + (0.1 - 0.01) * 2 / 4)


def test_sgdr_restarts_every_30_epochs():
    got = lrs("cosine_warmup_restart", restart_period=30, restart_mult=1)
    want = {0: 0.01, 4: 0.1, 5: 0.1, 35: 0.1, 65: 0.1, 89: cos(24, 30)}
    for e in EPOCHS:
        assert got[e] == pytest.approx(want[e], rel=1e-6), e
    assert got[34] == pytest.approx(cos(29, 30), rel=1e-6)  # end of cycle 1, near eta_min
    assert got[34] < 0.001


def test_multistep_cliffs_at_absolute_epochs():
    got = lrs("multistep_warmup", milestones=[50, 65], gamma=0.1)
    want = {0: 0.01, 4: 0.1, 5: 0.1, 35: 0.1, 65: 0.001, 89: 0.001}
    for e in EPOCHS:
        assert got[e] == pytest.approx(want[e], rel=1e-6), e
    assert got[49] == pytest.approx(0.1) and got[50] == pytest.approx(0.01)


def test_plain_cosine_has_no_warmup():
    got = lrs("cosine")
    assert got[0] == pytest.approx(0.1)
    assert got[45] == pytest.approx(cos(45, 90), rel=1e-6)


def test_unknown_scheduler():
    with pytest.raises(ValueError, match="scheduler.name"):
        lrs("linear")
