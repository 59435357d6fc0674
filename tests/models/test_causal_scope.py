"""Causal training's scope (the training plan §8): by default (``training.causal_scope=tcn``)
only the TCN layers pad on the left, so a TCN's output frame t no longer reads later frames while
the attention, graph refinement and gate outputs still do; ``all`` makes those causal too.

Each layer is checked inside its model: a forward pass records what every layer received, then
the layer runs again on that input with the frames after t0 replaced, and its outputs up to t0
are compared (eval mode: BN uses running statistics, per frame)."""

import pytest
import torch
from torch import nn

from lastexp.config import validate
from lastexp.models import build_model, set_causal
from lastexp.models.blocks import MultiScaleTCN, STJointAtt
from lastexp.models.components import (
    ActionPrototypeGraph,
    CrossTemporalGCN,
    EpSepTCN,
    FreqTemporalGate,
    FrozenDCTGate,
    PartitionedAttention,
)
from lastexp.models.last_v2 import CTRGraphConv
from lastexp.runstore.key import identity, run_key
from tests.conftest import compose

TCN = (MultiScaleTCN, EpSepTCN)
# layers that mix frames besides the TCN: the notes' §8 leaves them as they are
WIDE = (STJointAtt, PartitionedAttention, CrossTemporalGCN, ActionPrototypeGraph,
        FreqTemporalGate, FrozenDCTGate, CTRGraphConv)
FAMILIES = {
    "last_e_nano": {"use_st_att": (True, True, True)},
    "last_base": dict(cross_temporal=True, prototype_graph=True, freq_gate=True,
                      partitioned_attention=True, hbra=True, factorized_att=True,
                      width_mult=0.125, blocks=(1, 1, 1)),
    "last_lite_nano": dict(joint_embed=True, frame_gate=True, body_region_shift=True,
                           dct_gate=True),
    "last_v2_base": dict(width_mult=0.125, blocks=(1, 1, 1)),
}
T = 16


def model_for(family: str) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(family, num_classes=5, **FAMILIES[family]).eval()
    with torch.no_grad():  # open the zero-initialised gates, so that each layer acts at all
        for name, p in model.named_parameters():
            if name.endswith(("alpha", ".gate")):
                p.uniform_(0.5, 1.5)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
    return model


def recorded_inputs(model: nn.Module, kinds: tuple) -> list[tuple[nn.Module, tuple]]:
    seen = []
    hooks = [m.register_forward_hook(lambda mod, args, out: seen.append((mod, args)))
             for m in model.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        model(torch.randn(2, 3, T, 25, 1))
    for h in hooks:
        h.remove()
    return seen


def sees_the_future(module: nn.Module, args: tuple) -> bool:
    """Whether the module's outputs at frames <= t0 change when its input frames > t0 do."""
    t_in = args[0].shape[2]
    t0 = t_in // 2 - 1
    later = tuple(a.clone() for a in args)
    for a in later:
        a[:, :, t0 + 1:] = torch.randn_like(a[:, :, t0 + 1:])
    with torch.no_grad():
        before, after = module(*args), module(*later)
    stride = t_in // before.shape[2]
    keep = t0 // stride + 1  # output frame j reads input frames <= j * stride when causal
    return not torch.allclose(before[:, :, :keep], after[:, :, :keep], atol=1e-6)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tcn_scope_makes_only_the_tcn_causal(family):
    model = model_for(family)
    assert set_causal(model, True, "tcn") > 0
    tcns = recorded_inputs(model, TCN)
    wide = recorded_inputs(model, WIDE)
    assert len(tcns) >= 3 and wide
    for module, args in tcns:
        assert not sees_the_future(module, args), type(module).__name__
    for module, args in wide:  # attention, refinement and gates still read later frames
        assert sees_the_future(module, args), type(module).__name__
    set_causal(model, False)
    assert all(sees_the_future(m, a) for m, a in tcns)  # symmetric padding again


@pytest.mark.parametrize("family", list(FAMILIES))
def test_all_scope_makes_every_frame_mixing_layer_causal(family):
    model = model_for(family)
    set_causal(model, True, "all")
    for module, args in recorded_inputs(model, TCN + WIDE):
        assert not sees_the_future(module, args), type(module).__name__


def test_tcn_scope_end_to_end_without_attention():
    # LAST-E without ST-JointAtt: graph convs work within a frame, so with the TCN causal every
    # stage's frame j reads input frames <= j * 2**s only
    torch.manual_seed(0)
    model = build_model("last_e_nano", num_classes=5, use_st_att=(False, False, False)).eval()
    set_causal(model, True, "tcn")
    x = torch.randn(2, 3, T, 25, 1)
    x2 = x.clone()
    x2[:, :, 8:] = torch.randn_like(x2[:, :, 8:])
    with torch.no_grad():
        a, b = (model(v, return_features=True)[1]["stages"] for v in (x, x2))
    for s, (sa, sb) in enumerate(zip(a, b, strict=True)):
        keep = 7 // 2**s + 1
        assert torch.allclose(sa[:, :, :keep], sb[:, :, :keep], atol=1e-6), s


def test_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="training.causal_scope"):
        set_causal(nn.Sequential(), True, "attention")


def test_scope_is_identity_only_when_causal_training_is_on():
    plain = run_key(compose(["debug=tiny"]))
    assert "causal_scope" not in identity(compose(["debug=tiny"]))["training"]
    assert run_key(compose(["debug=tiny", "training.causal_scope=all"])) == plain
    b12 = compose(["ablation=B12", "debug=tiny"])
    assert b12.training.causal_prob > 0 and b12.training.causal_scope == "tcn"
    assert (run_key(b12) !=
            run_key(compose(["ablation=B12", "debug=tiny", "training.causal_scope=all"])))
    with pytest.raises(ValueError, match="training.causal_scope"):
        validate(compose(["training.causal_scope=attention"]))
