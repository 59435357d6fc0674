"""An epoch whose every batch is skipped as non-finite trained nothing: the run must fail with
one line, not go on to complete (fewer batches than training.max_nonfinite_steps)."""

import pytest
import torch

from lastexp.train.loop import NanGuard, NonFiniteError, train_one_epoch
from tests.train.test_loop import batches, ctx_for, make_model


def test_an_epoch_of_only_nonfinite_batches_fails():
    model = make_model()
    bad = [(torch.full_like(x, float("inf")), y) for x, y in batches(n=3)]
    ctx = ctx_for(model, guard=NanGuard(max_consecutive=20))
    with pytest.raises(NonFiniteError, match="all 3 training batches") as info:
        train_one_epoch(model, bad, ctx)
    assert "\n" not in str(info.value) and "dataset.npz" in str(info.value)


def test_one_finite_batch_is_enough():
    model = make_model()
    data = batches(n=3)
    data[0] = (torch.full_like(data[0][0], float("nan")), data[0][1])
    out = train_one_epoch(model, data, ctx_for(model))
    assert out["progress"].seen == 12
