"""LAST-Base, LAST-Lite and LAST-v2: what each component flag adds, sizes, causal mode.

Full-width models are only counted; everything else runs at a small width to keep the file
fast on 2 CPU cores. Forward, backward, features, every component on, a full-width forward
and ONNX export of every registered family are in test_families.py.
"""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from lastexp.models import (
    MODELS,
    available_models,
    build_model,
    count_params,
    family_flags,
    set_causal,
)
from lastexp.models.blocks import TemporalConv2d
from lastexp.models.components import BodyRegionShift, dct_basis, region_index
from tests.conftest import compose

NEW = ["last_base", "last_lite_nano", "last_lite_small", "last_v2_base"]
SMALL = {"last_base": 0.25, "last_v2_base": 0.25, "last_lite_nano": 1.0, "last_lite_small": 1.0}


def switches(name: str) -> list[str]:
    """The family's on/off flags, as the registry knows them (its ``Flags``)."""
    return [flag for flag, default in family_flags(name).items() if isinstance(default, bool)]


BASE_FLAGS = switches("last_base")
FLAG_CASES = [(n, f) for n in ("last_base", "last_lite_small") for f in switches(n)]
ALL_ON = {
    **{name: dict.fromkeys(switches(name), True) for name in NEW},
    "last_e_nano": {**dict.fromkeys(switches("last_e_nano"), True),
                    "use_st_att": (True, True, True)},
}
TARGETS = {  # (low, high) parameter counts at 60 classes: target +-15%, Lite small a range
    "last_base": (0.85 * 4.2e6, 1.15 * 4.2e6),
    "last_lite_nano": (0.85 * 60e3, 1.15 * 60e3),
    "last_lite_small": (120e3, 190e3),
    "last_v2_base": (0.85 * 9.2e6, 1.15 * 9.2e6),
}
N, C, T, V, K = 2, 3, 16, 25, 10


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _x(m: int = 1, n: int = N, t: int = T) -> torch.Tensor:
    return torch.randn(n, C, t, V, m)


def _small(name: str, **kwargs) -> nn.Module:
    return build_model(name, num_classes=K, width_mult=SMALL.get(name, 1.0), **kwargs)


def _train_step(model: nn.Module, m: int = 1) -> dict:
    logits, feats = model(_x(m), return_features=True)
    assert logits.shape == (N, K) and torch.isfinite(logits).all()
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    if model.ib is not None:
        loss = loss + 0.01 * model.ib_loss(feats, torch.tensor([0, 1]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    return feats


@pytest.mark.parametrize("name, flag", FLAG_CASES)
def test_flag_changes_parameters_or_output(name, flag):
    x = _x()
    torch.manual_seed(0)
    off = _small(name).eval()
    torch.manual_seed(0)
    on = _small(name, **{flag: True}).eval()
    names_off = {n for n, _ in off.named_parameters()}
    names_on = {n for n, _ in on.named_parameters()}
    with torch.no_grad():
        same_output = torch.allclose(off(x), on(x))
    assert names_on != names_off or not same_output, f"{flag} changes nothing"
    _train_step(on.train())


@pytest.mark.parametrize("name", NEW)
def test_param_count_near_target(name):
    model = build_model(name, num_classes=60, in_channels=3, num_person=1)
    low, high = TARGETS[name]
    assert low <= count_params(model) <= high, f"{name}: {count_params(model)}"


# the training plan: "LAST-Base (1s) ~4.2M" is the full model; B0 must stay near it too
FULL_BASE = {
    "B0": {},
    "B7": dict.fromkeys([f for f in BASE_FLAGS if f != "factorized_att"], True),  # all six
    "B11": {**dict.fromkeys(BASE_FLAGS, True), "partitioned_attention": False},
}


@pytest.mark.parametrize("ablation", list(FULL_BASE))
def test_last_base_param_count_default_and_full(ablation):
    flags = FULL_BASE[ablation]
    model = build_model("last_base", num_classes=60, in_channels=3, num_person=1, **flags)
    low, high = TARGETS["last_base"]
    n = count_params(model)
    assert low <= n <= high, f"last_base {ablation}: {n:,} params, want 4.2M +-15%"


@pytest.mark.parametrize("name", ["last_e_nano", *NEW])
def test_causal_mode_hides_the_future(name):
    model = _small(name, **ALL_ON[name]).eval()  # eval: BN uses running stats (per frame)
    t0 = 7
    x = _x()
    x_future = x.clone()
    x_future[:, :, t0 + 1 :] = torch.randn_like(x_future[:, :, t0 + 1 :])

    def stages(inp):
        with torch.no_grad():
            return model(inp, return_features=True)[1]["stages"]

    assert set_causal(model, True, "all") > 0  # training.causal_scope=all: every layer
    for s, (a, b) in enumerate(zip(stages(x), stages(x_future), strict=True)):
        last = t0 // 2**s  # frame j of stage s has read input frames <= j * 2**s
        assert torch.allclose(a[:, :, : last + 1], b[:, :, : last + 1], atol=1e-5), f"stage {s}"
    set_causal(model, False)
    a, b = stages(x)[0], stages(x_future)[0]
    assert not torch.allclose(a[:, :, : t0 + 1], b[:, :, : t0 + 1], atol=1e-5)


@pytest.mark.parametrize("name", NEW)
def test_config_fields_and_foreign_flags(name):
    # the composed model=<name> node (the family's flags only) builds the model
    cfg = OmegaConf.to_container(compose([f"model={name}"]).model)
    assert cfg.pop("name") == name
    cfg["width_mult"] = SMALL[name]
    assert build_model(name, num_classes=K, **cfg)(_x()).shape == (N, K)
    foreign = next(flag for other in available_models() for flag in switches(other)
                   if flag not in family_flags(name))
    for flag in (foreign, "not_a_flag"):
        with pytest.raises(TypeError, match=f"model.{flag} is not a flag of {name}"):
            build_model(name, num_classes=K, **{flag: False})


@pytest.mark.parametrize("name", NEW)
def test_no_weight_decay_names(name):
    model = _small(name, **ALL_ON[name])
    skip = model.no_weight_decay()
    params = dict(model.named_parameters())
    assert skip <= set(params) and any(n.endswith("pool_gate") for n in skip)
    for mod_name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Conv1d, nn.Linear)):
            assert f"{mod_name}.weight" not in skip
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert {f"{mod_name}.weight", f"{mod_name}.bias"} <= skip
    if name == "last_v2_base":
        assert any(n.endswith("A_learned") for n in skip)
    if name == "last_base":
        assert any(n.endswith("proto_edge") for n in skip)
        assert any(n.endswith("gcn.alpha") for n in skip)


def test_registry_aliases():
    assert MODELS["shiftfuse_small"] is MODELS["last_lite_small"]
    assert MODELS["shiftfuse_nano"] is MODELS["last_lite_nano"]
    assert MODELS["base"] is MODELS["last_v2_base"]


def test_temporal_conv_matches_symmetric_conv():
    conv = TemporalConv2d(4, 6, kernel_size=5, stride=2, dilation=2)
    ref = nn.Conv2d(4, 6, (5, 1), (2, 1), (4, 0), (2, 1))
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 16, V)
    assert torch.allclose(conv(x), ref(x), atol=1e-6)


def test_dct_basis_is_orthonormal_and_region_shift_stays_in_region():
    d = dct_basis(16)
    assert torch.allclose(d @ d.T, torch.eye(16), atol=1e-5)
    shift = BodyRegionShift(12)
    region = region_index()
    assert (region[shift.index] == region[None, :]).all()
    assert not (shift.index == torch.arange(V)).all()
