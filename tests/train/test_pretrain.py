"""MaskCLR: region masks, masked-only reconstruction, InfoNCE, the encoder hand-over."""

from __future__ import annotations

import math

import pytest
import torch

from lastexp.models import build_model
from lastexp.models.graph import BODY_REGIONS
from lastexp.train.maskclr import MaskCLR, info_nce, masked_mse, region_mask
from lastexp.train.pretrain import PretrainHooks, PretrainStopped, pretrain
from lastexp.train.pretrained_encoder import encoder_state, load_encoder_into, save_encoder
from lastexp.train.sampler import EpochSampler


def tiny(seed: int = 0, k: int = 5):
    torch.manual_seed(seed)
    return build_model("last_e_nano", num_classes=k, num_person=1, width_mult=0.25)


@pytest.mark.parametrize("ratio", [0.2, 0.6, 0.8, 0.9])
def test_region_masks_cover_whole_regions_and_reach_the_ratio(ratio):
    x = torch.randn(32, 3, 6, 25, 2) + 5.0  # no coordinate is 0 by chance
    masked, mask = region_mask(x, ratio, torch.Generator().manual_seed(0))
    assert mask.shape == (32, 6, 25) and mask.dtype == torch.bool
    assert torch.equal(mask, mask[:, :1].expand_as(mask))  # the same joints in every frame
    joints = mask[:, 0]
    # the training plan §4: mask ratio 0.6 (of the joints, on average over samples)
    big = region_mask(torch.ones(4000, 3, 1, 25, 1), ratio, torch.Generator().manual_seed(1))[1]
    assert big[:, 0].float().mean().item() == pytest.approx(ratio, abs=0.02)
    for region in BODY_REGIONS.values():  # a region is masked entirely or not at all
        part = joints[:, list(region)]
        assert (part.all(1) | (~part).all(1)).all()
    if ratio <= 0.8:  # limbs suffice: torso/head stays visible
        assert not joints[:, list(BODY_REGIONS["torso_head"])].any()
    zero = masked == 0
    assert torch.equal(zero, mask[:, None, :, :, None].expand_as(x))
    assert torch.equal(masked[~zero], x[~zero])


def test_random_strategy_masks_exact_count():
    x = torch.ones(8, 3, 4, 25, 1)
    _, mask = region_mask(x, 0.3, torch.Generator().manual_seed(1), strategy="random")
    assert (mask[:, 0].sum(1) == 8).all()
    with pytest.raises(ValueError, match="mask_strategy"):
        region_mask(x, 0.3, None, strategy="nope")


def test_masked_mse_counts_masked_positions_only():
    pred = torch.zeros(1, 2, 1, 3, 1)
    target = torch.tensor([1.0, 2.0, 100.0, 3.0, 4.0, 100.0]).view(1, 2, 1, 3, 1)
    mask = torch.tensor([[[True, True, False]]])  # (N=1, T=1, V=3)
    # masked entries: 1, 2 (channel 0) and 3, 4 (channel 1) -> (1 + 4 + 9 + 16) / 4
    assert masked_mse(pred, target, mask).item() == pytest.approx(7.5)


def test_info_nce_matches_a_manual_loop():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z2 = torch.tensor([[2.0, 0.5], [0.5, 1.0], [-1.0, 1.0]])
    temp = 0.5

    def unit(v):
        n = math.sqrt(sum(a * a for a in v))
        return [a / n for a in v]

    a, b = [unit(v.tolist()) for v in z1], [unit(v.tolist()) for v in z2]
    sim = [[sum(p * q for p, q in zip(ai, bj)) / temp for bj in b] for ai in a]
    n = len(a)
    row = sum(-sim[i][i] + math.log(sum(math.exp(sim[i][j]) for j in range(n)))
              for i in range(n)) / n
    col = sum(-sim[i][i] + math.log(sum(math.exp(sim[j][i]) for j in range(n)))
              for i in range(n)) / n
    assert info_nce(z1, z2, temp).item() == pytest.approx(0.5 * (row + col), rel=1e-5)


def test_maskclr_forward_and_encoder_handover(tmp_path):
    enc = tiny()
    m = MaskCLR(enc)
    assert m.decoder.out_features == 3 * 25 and m.projector.out_features == 128
    x = torch.randn(4, 3, 16, 25, 1)
    loss, parts = m(x, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and set(parts) == {"recon", "contrastive"}
    assert loss.item() == pytest.approx(parts["recon"] + 0.5 * parts["contrastive"], rel=1e-4)

    state = encoder_state(m)
    assert not any(k.startswith(("decoder", "projector")) for k in state)
    fresh = tiny(seed=9)
    result = fresh.load_state_dict(state, strict=False)
    assert sorted(result.missing_keys) == ["head.fc.bias", "head.fc.weight"]
    assert not result.unexpected_keys
    path = tmp_path / "encoder.pt"
    save_encoder(path, m, model_name="last_e_nano")
    other = tiny(seed=10, k=7)  # a different number of classes still takes the encoder
    assert load_encoder_into(other, path) == ["head.fc.bias", "head.fc.weight"]
    torch.testing.assert_close(other.stem[0].weight, enc.stem[0].weight)
    wider = build_model("last_e_nano", num_classes=5, num_person=1, width_mult=0.5)
    with pytest.raises(ValueError, match="does not fit"):
        load_encoder_into(wider, path)


def test_pretrain_runs_and_records_history():
    enc = tiny()
    x = torch.randn(8, 3, 16, 25, 1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, torch.zeros(8, dtype=torch.long)), batch_size=4
    )
    before = enc.stem[0].weight.detach().clone()
    hist = pretrain(enc, loader, epochs=2, lr=1e-3, mask_ratio=0.6, temperature=0.07,
                    strategy="body_region", seed=0)
    assert len(hist["loss"]) == 2 and all(math.isfinite(v) for v in hist["loss"])
    assert not torch.equal(before, enc.stem[0].weight)  # trained in place


def test_reconstruction_targets_the_original_sequence(monkeypatch):
    """§4: L_recon = MSE(decoder(encoder(masked_x)), original_x): the target is the sequence
    before rotation and scale, not the augmented view."""
    import lastexp.train.maskclr as pt

    targets = []
    real = pt.masked_mse
    monkeypatch.setattr(pt, "masked_mse", lambda p, t, m: targets.append(t) or real(p, t, m))
    m = MaskCLR(tiny(), max_deg=0.0, scale=(2.0, 2.0))  # every view is exactly 2x
    x = torch.randn(4, 3, 16, 25, 1)
    m(x, torch.Generator().manual_seed(0))
    assert len(targets) == 2 and all(torch.equal(t, x) for t in targets)


def test_contrastive_weight_enters_the_loss():
    x = torch.randn(4, 3, 16, 25, 1)
    losses = {}
    for w in (0.0, 2.0):
        torch.manual_seed(0)
        m = MaskCLR(tiny(), contrastive_weight=w)
        losses[w], parts = m(x, torch.Generator().manual_seed(0))
    assert (losses[2.0] - losses[0.0]).item() == pytest.approx(2.0 * parts["contrastive"],
                                                                rel=1e-4)


def test_pretraining_optimizer_and_schedule():
    from lastexp.train.optim import no_decay_names

    m = MaskCLR(tiny())
    skip = no_decay_names(m)
    assert {"decoder.bias", "projector.bias", "encoder.data_bn.weight"} <= skip
    assert {f"encoder.{n}" for n in tiny().no_weight_decay()} <= skip
    assert "decoder.weight" not in skip
    x = torch.randn(8, 3, 16, 25, 1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, torch.zeros(8, dtype=torch.long)), batch_size=4)
    hist = pretrain(tiny(), loader, epochs=8, lr=1e-3, warmup_epochs=3, warmup_start_lr=1e-5,
                    min_lr=1e-6)
    lr = hist["lr"]  # cosine_warmup: LinearLR over 3 epochs, 1e-3 in epoch 3, then to min_lr
    assert lr[:4] == pytest.approx([1e-5 + (1e-3 - 1e-5) * e / 3 for e in range(3)] + [1e-3])
    assert all(a >= b for a, b in zip(lr[3:], lr[4:])) and lr[-1] == pytest.approx(1e-6)


def _loader(seed: int = 0):
    x = torch.randn(12, 3, 16, 25, 1, generator=torch.Generator().manual_seed(3))
    data = torch.utils.data.TensorDataset(x, torch.zeros(12, dtype=torch.long))
    return torch.utils.data.DataLoader(data, batch_size=4, sampler=EpochSampler(12, seed=seed),
                                       generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("stop_after", [1, 4, 6])  # steps: mid epoch 1, mid epoch 2, epoch end
def test_a_stopped_pretraining_continues_bit_for_bit(stop_after):
    """A stop request saves the state after the current step (PretrainStopped); pretraining
    continued from it ends with the weights and history of a run never stopped."""
    kw = dict(epochs=3, lr=1e-3, seed=0, warmup_epochs=1)
    ref_enc, saved = tiny(), []
    ref = pretrain(ref_enc, _loader(), **kw, hooks=PretrainHooks(save=saved.append))
    assert [s["epoch"] for s in saved] == [1, 2, 3] and all(s["mid_epoch"] is None for s in saved)

    steps = iter(range(1, 100))
    stopped, states = tiny(), []
    with pytest.raises(PretrainStopped):
        pretrain(stopped, _loader(), **kw, hooks=PretrainHooks(
            save=states.append, should_stop=lambda: next(steps) == stop_after))
    assert states[-1]["mid_epoch"]["batches"] == (stop_after - 1) % 3 + 1
    again = tiny(seed=5)  # other initial weights: all of it comes from the saved state
    hist = pretrain(again, _loader(), **kw, hooks=PretrainHooks(state=states[-1]))
    assert {k: v for k, v in hist.items() if k != "seconds"} == \
        {k: v for k, v in ref.items() if k != "seconds"}
    for (name, a), b in zip(ref_enc.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_pretraining_visits_a_new_order_each_epoch():
    seen = []
    loader = _loader()
    real_iter = type(loader).__iter__

    def spy(self):
        seen.append(list(self.sampler))
        return real_iter(self)

    type(loader).__iter__ = spy
    try:
        pretrain(tiny(), loader, epochs=2, lr=1e-3, seed=0)
    finally:
        type(loader).__iter__ = real_iter
    assert len(seen) == 2 and seen[0] != seen[1] and sorted(seen[0]) == sorted(seen[1])
