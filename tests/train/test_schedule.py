"""The training recipe's learning-rate schedules, checked at the epochs the seed names and
against torch's own ``SequentialLR(LinearLR, main)``, which the recipe names."""

import math

import pytest
import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    LinearLR,
    MultiStepLR,
    SequentialLR,
)

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


# LinearLR(start_factor=0.1, total_iters=5): epoch e of the warmup at 0.01 + 0.09 * e / 5, the
# peak first in epoch 5 (the numbers).
WARMUP = [0.01, 0.028, 0.046, 0.064, 0.082]


def test_cosine_warmup_matches_seed():
    got = lrs("cosine_warmup")
    # 0.01 -> 0.1 over epochs 0-4, then cosine 0.1 -> 1e-4 over epochs 5-89.
    want = {0: 0.01, 4: 0.082, 5: 0.1, 35: cos(30, 84), 65: cos(60, 84), 89: 1e-4}
    for e in EPOCHS:
        assert got[e] == pytest.approx(want[e], rel=1e-6, abs=1e-9), e
    assert got[:6] == pytest.approx([*WARMUP, 0.1], rel=1e-12)


def test_sgdr_restarts_every_30_epochs():
    got = lrs("cosine_warmup_restart", restart_period=30, restart_mult=1)
    want = {0: 0.01, 4: 0.082, 5: 0.1, 35: 0.1, 65: 0.1, 89: cos(24, 30)}
    for e in EPOCHS:
        assert got[e] == pytest.approx(want[e], rel=1e-6), e
    assert got[34] == pytest.approx(cos(29, 30), rel=1e-6)  # end of cycle 1, near eta_min
    assert got[34] < 0.001


def test_multistep_cliffs_at_absolute_epochs():
    got = lrs("multistep_warmup", milestones=[50, 65], gamma=0.1)
    want = {0: 0.01, 4: 0.082, 5: 0.1, 35: 0.1, 65: 0.001, 89: 0.001}
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


def torch_reference(name: str, *, epochs: int, lr: float, warmup: int, start: float,
                    min_lr: float) -> list[float]:
    """The recipe's schedule built from torch's schedulers alone, as the training recipe writes
    it: SequentialLR(LinearLR(start/lr -> 1 over ``warmup`` epochs), main, [warmup])."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    linear = LinearLR(opt, start_factor=start / lr, end_factor=1.0, total_iters=warmup)
    if name == "cosine_warmup":  # epochs warmup .. epochs-1 from lr down to min_lr
        main = CosineAnnealingLR(opt, T_max=epochs - warmup - 1, eta_min=min_lr)
    elif name == "cosine_warmup_restart":
        main = CosineAnnealingWarmRestarts(opt, T_0=30, T_mult=1, eta_min=min_lr)
    else:  # milestones 50 and 65 in absolute epochs: counted from the hand-over
        main = MultiStepLR(opt, milestones=[50 - warmup, 65 - warmup], gamma=0.1)
    sched = SequentialLR(opt, [linear, main], milestones=[warmup])
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


# (schedule, epochs, peak lr, warmup epochs, warmup start, min lr): the training recipe's
# options 1-3 (SGD 0.1, 5 warmup epochs from 0.01, 90 epochs) and the training plan §2's
# LAST-Base recipe (AdamW 1e-3, cosine_warmup over 200 epochs, 10 warmup epochs from 1e-5).
RECIPES = [
    ("cosine_warmup", 90, 0.1, 5, 0.01, 1e-4),
    ("cosine_warmup", 200, 1e-3, 10, 1e-5, 1e-6),
    ("cosine_warmup_restart", 90, 0.1, 5, 0.01, 1e-4),
    ("multistep_warmup", 90, 0.1, 5, 0.01, 1e-4),
]


@pytest.mark.parametrize(("name", "epochs", "lr", "warmup", "start", "min_lr"), RECIPES)
def test_every_epoch_equals_torch_sequential_linear(name, epochs, lr, warmup, start, min_lr):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build_scheduler(opt, name=name, epochs=epochs, lr=lr, warmup_epochs=warmup,
                            warmup_start_lr=start, min_lr=min_lr, restart_period=30,
                            restart_mult=1, milestones=[50, 65], gamma=0.1)
    got = []
    for _ in range(epochs):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    want = torch_reference(name, epochs=epochs, lr=lr, warmup=warmup, start=start, min_lr=min_lr)
    assert len(got) == len(want) == epochs
    for e, (g, w) in enumerate(zip(got, want, strict=True)):
        assert abs(g - w) <= 1e-12, (e, g, w)
    assert got[warmup - 1] < lr and got[warmup] == pytest.approx(lr, rel=1e-15)


def test_warmup_from_zero_is_the_vision_guides_formula():
    # the vision guide: lr = peak * epoch / warmup_epochs during the warmup (LinearLR cannot
    # start from 0; the same rule with start 0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler(opt, name="cosine_warmup", epochs=20, lr=0.1, warmup_epochs=5,
                            warmup_start_lr=0.0, min_lr=0.0)
    got = []
    for _ in range(6):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert got == pytest.approx([0.1 * e / 5 for e in range(5)] + [0.1], abs=1e-15)


def test_schedule_state_resumes_exactly():
    """A scheduler rebuilt from a checkpoint's state dict continues with the same rates."""
    def make():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, build_scheduler(opt, name="cosine_warmup_restart", epochs=40, lr=0.1)

    opt, sched = make()
    for _ in range(3):
        opt.step()
        sched.step()
    state, opt_state = sched.state_dict(), opt.state_dict()
    opt2, sched2 = make()
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(state)
    a, b = [], []
    for o, s, out in ((opt, sched, a), (opt2, sched2, b)):
        for _ in range(10):
            out.append(o.param_groups[0]["lr"])
            o.step()
            s.step()
    assert a == b and a[:3] == pytest.approx([0.064, 0.082, 0.1], rel=1e-12)
