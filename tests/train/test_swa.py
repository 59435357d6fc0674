"""SWA: averaging from the start epoch, BN statistics recomputed through the train transform."""

from __future__ import annotations

import pytest
import torch

from lastexp.models import build_model
from lastexp.train.swa import SWATracker


def setup():
    torch.manual_seed(0)
    model = build_model("last_e_nano", num_classes=5, num_person=1, width_mult=0.25)
    x = torch.randn(12, 3, 16, 25, 1)
    y = torch.randint(0, 5, (12,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    return model, loader, x


def train_epoch(model, loader, opt):
    model.train()
    for xb, yb in loader:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()


def test_swa_averages_from_start_and_updates_bn():
    model, loader, x = setup()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    swa = SWATracker(model, start_epoch=1)
    for epoch in range(3):
        train_epoch(model, loader, opt)
        assert swa.update(epoch) == (epoch >= 1)
    assert swa.n_averaged == 2
    bn_before = swa.averaged.module.data_bn.running_mean.clone()
    calls = []

    def transform(xb):
        calls.append(xb.shape[0])
        return xb * 2.0

    averaged = swa.finalize(loader, transform, "cpu")
    assert calls == [4, 4, 4]  # update_bn went through the train transform
    assert not torch.equal(bn_before, averaged.data_bn.running_mean)
    # update_bn: cumulative average over the transformed inputs (N, M*V*C, T) per channel
    xt = (x * 2.0).permute(0, 4, 3, 1, 2).reshape(12, -1, 16)
    torch.testing.assert_close(averaged.data_bn.running_mean, xt.mean(dim=(0, 2)),
                               atol=1e-4, rtol=1e-4)
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(averaged(x), model(x))
    assert set(averaged.state_dict()) == set(model.state_dict())


def test_swa_state_round_trip_and_refusal():
    model, loader, _ = setup()
    swa = SWATracker(model, start_epoch=5)
    assert not swa.update(0)
    with pytest.raises(RuntimeError, match="swa_start"):
        swa.finalize(loader, None, "cpu")
    swa.start_epoch = 0
    swa.update(0)
    swa.update(1)
    again = SWATracker(model, start_epoch=3)
    again.load_state_dict(swa.state_dict())
    assert again.n_averaged == 2 and again.start_epoch == 0
