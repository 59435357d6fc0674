"""LAST-E: sizes, flags, weight-decay names, IB loss, and the registry's errors. Forward,
backward, features, every component on and ONNX export of every registered family are in
test_families.py."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from lastexp.models import (
    MODELS,
    available_models,
    build_model,
    count_flops,
    count_params,
)
from lastexp.models.__main__ import main as models_main
from lastexp.models.blocks import DropPath
from tests.conftest import compose

# The LAST-E family; LAST-Base / Lite / v2 are covered by test_zoo.py.
NAMES = [n for n in available_models() if n.startswith("last_e_")]
TARGET_PARAMS = {
    "last_e_nano": 83_000,
    "last_e_small": 345_000,
    "last_e_base": 720_000,
    "last_e_large": 1_080_000,
}
N, C, T, V, K = 2, 3, 16, 25, 10
# Every component on, at the smallest width: what a debug preset builds.
ALL_ON = dict(
    width_mult=0.25, use_st_att=(True, True, True), ib_head=True, drop_path_rate=0.2, dropout=0.3
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _x(m: int = 1, n: int = N, t: int = T) -> torch.Tensor:
    return torch.randn(n, C, t, V, m)


def _grads_ok(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("name", NAMES)
def test_tiny_width_every_component_on(name):
    model = build_model(name, num_classes=K, **ALL_ON).train()
    assert all(c >= 8 and c % 4 == 0 for c in model.stage_channels)
    assert count_params(model) < count_params(build_model(name, num_classes=K)) / 4
    logits, feats = model(_x(), return_features=True)
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    loss = loss + 0.01 * model.ib_loss(feats, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    _grads_ok(model)


@pytest.mark.parametrize("name", NAMES)
def test_param_count_near_target(name):
    params = count_params(build_model(name, num_classes=60, in_channels=3, num_person=1))
    target = TARGET_PARAMS[name]
    assert abs(params - target) / target < 0.05, f"{name}: {params} vs {target}"


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_st_att_flag_per_stage(stage):
    flags = [False, False, False]
    base = {n for n, _ in build_model(NAMES[0], num_classes=K, use_st_att=flags).named_parameters()}
    flags[stage] = True
    model = build_model(NAMES[0], num_classes=K, use_st_att=flags)
    added = {n for n, _ in model.named_parameters()} - base
    assert added and all(n.startswith(f"stages.{stage}.") for n in added)
    assert any(n.endswith("alpha") for n in added)


def test_ib_head_flag_changes_parameters_and_z():
    off = build_model(NAMES[0], num_classes=K)
    on = build_model(NAMES[0], num_classes=K, ib_head=True)
    new = {n for n, _ in on.named_parameters()} - {n for n, _ in off.named_parameters()}
    assert any(n.startswith("ib.") for n in new)
    with pytest.raises(RuntimeError, match="ib_head"):
        off.ib_loss({"z": torch.zeros(N, 8)}, torch.tensor([0, 1]))


def test_drop_path_ramps_and_acts_in_train_mode():
    model = build_model(NAMES[1], num_classes=K, drop_path_rate=0.5)
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.5)
    assert rates == sorted(rates)
    x = _x(n=8)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
    plain = build_model(NAMES[1], num_classes=K).train()
    assert torch.equal(plain(x), plain(x))  # train mode is deterministic without DropPath


def test_dropout_acts_in_train_mode_only():
    model = build_model(NAMES[0], num_classes=K, dropout=0.5)
    x = _x(n=4)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_no_weight_decay_names(name):
    model = build_model(name, num_classes=K, ib_head=True)
    skip = model.no_weight_decay()
    params = dict(model.named_parameters())
    assert skip <= set(params)
    for suffix in ("gcn.alpha", "gcn.edge", "head.pool_gate"):
        assert any(n.endswith(suffix) for n in skip), suffix
    assert any(n.endswith("alpha") and ".gcn." not in n for n in skip)  # the ST-att gate
    for mod_name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert f"{mod_name}.weight" not in skip
            if module.bias is not None:
                assert f"{mod_name}.bias" in skip
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert {f"{mod_name}.weight", f"{mod_name}.bias"} <= skip


def test_ib_loss_finite_and_differentiable():
    model = build_model(NAMES[0], num_classes=K, ib_head=True).train()
    y = torch.tensor([3, 7])
    _, feats = model(_x(), return_features=True)
    loss = model.ib_loss(feats, y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.ib.fc_mu.weight.grad.abs().sum() > 0
    assert model.stem[0].weight.grad.abs().sum() > 0
    prior = model.ib.z_prior  # fixed, seeded, orthogonal rows (K <= D)
    assert not prior.requires_grad
    gram = prior @ prior.T
    assert torch.allclose(gram, 9.0 * torch.eye(K), atol=1e-4)
    again = build_model(NAMES[0], num_classes=K, ib_head=True).ib.z_prior
    assert torch.equal(prior, again)


def test_registry_names_and_aliases():
    assert NAMES == ["last_e_nano", "last_e_small", "last_e_base", "last_e_large"]
    for alias, name in [
        ("nano_e_v3", "last_e_nano"),
        ("base_e_v3", "last_e_base"),
        ("small_e_v3", "last_e_small"),
        ("large_e_v3", "last_e_large"),
    ]:
        assert MODELS[alias] is MODELS[name]


def test_unknown_model_name():
    with pytest.raises(ValueError, match="last_e_nano"):
        build_model("resnet50", num_classes=K)


def test_component_flags():
    with pytest.raises(TypeError, match="model.prototype_graph is not a flag of last_e_nano"):
        build_model("last_e_nano", num_classes=K, prototype_graph=True)
    with pytest.raises(TypeError, match="model.not_a_flag is not a flag of last_e_nano"):
        build_model("last_e_nano", num_classes=K, not_a_flag=False)
    # the composed model=last_e_nano node (its family's flags only) builds the model
    cfg = OmegaConf.to_container(compose(["model=last_e_nano"]).model)
    assert cfg.pop("name") == "last_e_nano" and cfg["use_st_att"] == [False, False, True]
    assert build_model("last_e_nano", num_classes=K, **cfg)(_x()).shape == (N, K)


def test_person_count_mismatch_is_an_error():
    model = build_model("last_e_nano", num_classes=K, num_person=1)
    with pytest.raises(ValueError, match="num_person"):
        model(_x(2))


def test_count_flops_and_cli(capsys):
    model = build_model("last_e_nano", num_classes=60).train()
    flops = count_flops(model)
    assert flops > 0 and model.training
    assert count_flops(model, num_frames=32) < flops
    models_main(["--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == available_models()
    assert all(r["params"] > 0 and r["flops"] > 0 for r in rows)
