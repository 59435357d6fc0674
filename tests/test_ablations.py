"""The ablation catalog as configs: every ID composes, and each row differs from its
baseline in exactly the component the plan's "What changes" column names."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from lastexp import catalog
from lastexp.config import ModelConfig, swa_start_epoch, validate
from lastexp.models import available_models, family_flags
from tests.conftest import CONF, compose

IDS = catalog.ids()  # a new row is its YAML plus its catalog entry: no list here to extend
# every family's component switches, as the registry knows them (ib_head: counted as "ib");
# a row's model node holds its own family's only
FLAGS = tuple(sorted({flag for name in available_models()
                      for flag, default in family_flags(name).items()
                      if isinstance(default, bool)} - {"ib_head"}))


def components(cfg) -> set[str]:
    on = {f for f in FLAGS if cfg.model.get(f, False)}
    if cfg.model.ib_head or cfg.training.ib_loss_weight > 0:
        on.add("ib")
    if cfg.training.causal_prob > 0:
        on.add("causal")
    if cfg.training.swa_start is not None:
        on.add("swa")
    if cfg.distill.name != "none":
        on.add(f"distill:{cfg.distill.name}")
    if cfg.pretrain.enabled:
        on.add("maskclr")
    if cfg.ensemble.of:
        on.add(f"ensemble:{cfg.ensemble.of}")
    return on


def rest(cfg) -> dict:
    """Everything but the components and the ID: must equal the baseline's."""
    d = OmegaConf.to_container(cfg, resolve=True)
    d.pop("ablation")
    for f in (*FLAGS, "ib_head"):
        d["model"].pop(f, None)
    for k in ("ib_loss_weight", "causal_prob", "swa_start"):
        d["training"].pop(k)
    for k in ("distill", "pretrain", "ensemble"):
        d.pop(k)
    return d


@pytest.fixture(scope="module")
def cfgs():
    return {i: compose([f"ablation={i}"]) for i in IDS}


def test_every_catalog_row_has_its_yaml_and_every_yaml_its_row():
    assert sorted(p.stem for p in (CONF / "ablation").glob("*.yaml")) == sorted(IDS)


@pytest.mark.parametrize("ablation", IDS)
def test_composes_validates_and_names_itself(cfgs, ablation):
    cfg = cfgs[ablation]
    validate(cfg)
    assert cfg.ablation == ablation
    # its model node: the keys every family reads and exactly the flags its own family reads
    shared = {f.name for f in dataclasses.fields(ModelConfig)}
    assert set(cfg.model) == shared | set(family_flags(cfg.model.name))


ADD_ONE = {"B1": "cross_temporal", "B2": "prototype_graph", "B3": "freq_gate",
           "B4": "partitioned_attention", "B5": "hbra", "B6": "ib", "L1": "joint_embed",
           "L2": "frame_gate", "L3": "body_region_shift", "L4": "dct_gate"}
REMOVE_ONE = {"B8": "freq_gate", "B9": "prototype_graph", "B10": "hbra",
              "L6": "dct_gate", "L7": "joint_embed", "L8": "body_region_shift"}
PLUS_FULL = {"B12": {"causal"}, "B13": {"swa"}, "L9": {"causal"},
             "B14": {"ensemble:B7"}, "L10": {"distill:from_existing"},
             "L11": {"distill:from_base"}, "L12": {"maskclr", "distill:from_base"}}


@pytest.mark.parametrize("row", sorted(ADD_ONE))
def test_adds_exactly_one_component_to_baseline(cfgs, row):
    base = "B0" if row.startswith("B") else "L0"
    assert components(cfgs[row]) - components(cfgs[base]) == {ADD_ONE[row]}
    assert components(cfgs[base]) <= components(cfgs[row])
    assert rest(cfgs[row]) == rest(cfgs[base])


@pytest.mark.parametrize("row", sorted(REMOVE_ONE))
def test_removes_exactly_one_component_from_full(cfgs, row):
    full = "B7" if row.startswith("B") else "L5"
    assert components(cfgs[full]) - components(cfgs[row]) == {REMOVE_ONE[row]}
    assert components(cfgs[row]) <= components(cfgs[full])
    assert rest(cfgs[row]) == rest(cfgs[full])


def test_b11_swaps_partitioned_for_factorized(cfgs):
    assert components(cfgs["B7"]) - components(cfgs["B11"]) == {"partitioned_attention"}
    assert components(cfgs["B11"]) - components(cfgs["B7"]) == {"factorized_att"}
    assert rest(cfgs["B11"]) == rest(cfgs["B7"])


@pytest.mark.parametrize("row", sorted(PLUS_FULL))
def test_training_additions_on_full(cfgs, row):
    full = "B7" if row.startswith("B") else "L5"
    assert components(cfgs[row]) - components(cfgs[full]) == PLUS_FULL[row]
    assert components(cfgs[full]) <= components(cfgs[row])
    assert rest(cfgs[row]) == rest(cfgs[full])


def test_full_models_have_everything(cfgs):
    assert components(cfgs["B7"]) == set(ADD_ONE[f"B{i}"] for i in range(1, 7))
    assert components(cfgs["L5"]) == {ADD_ONE[f"L{i}"] for i in range(1, 5)}


def test_recipes_follow_the_seed(cfgs):
    b = cfgs["B0"]
    assert (b.optimizer.name, b.optimizer.lr, b.optimizer.weight_decay) == ("adamw", 1e-3, 0.05)
    assert (b.scheduler.name, b.scheduler.warmup_epochs, b.scheduler.warmup_start_lr,
            b.scheduler.min_lr) == ("cosine_warmup", 10, 1e-5, 1e-6)
    assert (b.training.epochs, b.training.batch_size, b.training.gradient_accumulation_steps,
            b.training.gradient_clip, b.training.label_smoothing) == (200, 32, 4, 1.0, 0.1)
    assert (b.model.drop_path_rate, b.model.dropout) == (0.2, 0.3)
    assert cfgs["B7"].training.ib_loss_weight == 0.01
    # the training plan §7: swa_start = int(0.75 * total_epochs), "start at epoch 150" of 200
    assert swa_start_epoch(cfgs["B13"].training.swa_start, cfgs["B13"].training.epochs) == 150
    lite = cfgs["L0"]
    assert (lite.optimizer.name, lite.optimizer.lr, lite.training.epochs,
            lite.training.batch_size, lite.training.label_smoothing) == ("sgd", 0.1, 120, 64, 0.0)
    for p, prep in zip(("P0", "P1", "P2", "P3"), ("t64_uniform", "t300_crop64", "t120_uniform",
                                                   "t64_uniform_2body")):
        assert cfgs[p].preprocessing.name == prep and cfgs[p].model.name == "last_e_base"
        assert rest(cfgs[p])["optimizer"] == rest(compose())["optimizer"]


def test_distillation_and_ensemble_rows(cfgs):
    assert cfgs["L10"].distill.teacher == "P0" and cfgs["L11"].distill.teacher == "B7"
    small = cfgs["L11"].distill
    assert (small.alpha, small.beta, small.gamma, small.tau) == (0.5, 0.5, 0.1, 4.0)
    pre = cfgs["L12"].pretrain
    assert (pre.epochs, pre.lr, pre.batch_size, pre.mask_ratio, pre.temperature) == (
        100, 0.001, 128, 0.6, 0.07)
    ens = cfgs["B14"].ensemble
    assert list(ens.streams) == ["joint", "bone", "velocity", "bone_velocity"]
    assert list(ens.weights) == [0.6, 0.6, 0.4, 0.4]


def test_ids_match_the_catalog():
    yaml_ids = [p.stem for p in (CONF / "ablation").glob("*.yaml")]
    assert list(catalog.ABLATIONS) == sorted(yaml_ids,
                                             key=lambda i: ("BLP".index(i[0]), int(i[1:])))


def test_unknown_ablation_lists_valid_ids():
    with pytest.raises(Exception) as info:
        compose(["ablation=B99"])
    assert "Could not find 'ablation/B99'" in str(info.value) and "B7" in str(info.value)
