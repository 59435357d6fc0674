"""Every config option composes; bad keys, types and values fail before any work."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest
from omegaconf import OmegaConf

from lastexp.app import model_schemas
from lastexp.config import (
    AT_LEAST_ONE,
    BELOW_ONE,
    POSITIVE,
    Config,
    ModelConfig,
    Range,
    validate,
    weights_problem,
)
from lastexp.config.model import COUNT, family_schema
from lastexp.errors import ConfigError
from lastexp.runstore.key import run_dir_name, run_key
from tests.conftest import CONF, REPO, compose

GROUPS = ["model", "stream", "optimizer", "scheduler", "distill", "preprocessing", "dataset",
          "logger", "debug"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_validates(group, option):
    cfg = compose([f"{group}={option}"])
    validate(cfg)
    if group in ("model", "stream", "optimizer", "scheduler", "distill", "preprocessing"):
        assert cfg[group].name  # every option names itself for metrics.json


def test_spec_group_options_exist():
    want = {
        "model": {"last_e_nano", "last_e_small", "last_e_base", "last_e_large"},
        "stream": {"joint", "bone", "velocity", "bone_velocity", "joint_velocity"},
        "optimizer": {"sgd", "adamw"},
        "scheduler": {"cosine_warmup", "cosine_warmup_restart", "multistep_warmup", "cosine"},
        "distill": {"none", "from_existing", "from_base"},
        "preprocessing": {"t64_uniform", "t300_crop64", "t120_uniform", "t64_uniform_2body"},
        "dataset": {"synthetic", "ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset"},
        "logger": {"wandb", "none"},
        "debug": {"tiny"},
    }
    have = {}
    for g, o in OPTIONS:
        have.setdefault(g, set()).add(o)
    for g, opts in want.items():
        assert opts <= have[g], g


def test_aliases_resolve():
    assert compose(["stream=joint_velocity"]).stream.name == "velocity"
    assert compose(["model=base_e_v3"]).model.name == "last_e_base"


def test_seed000_defaults():
    cfg = compose()
    assert cfg.model.name == "last_e_base" and cfg.optimizer.name == "sgd"
    assert cfg.optimizer.nesterov and cfg.optimizer.momentum == 0.9
    assert cfg.optimizer.weight_decay == 0.0004 and cfg.scheduler.name == "cosine_warmup_restart"
    assert cfg.training.epochs == 90 and cfg.training.gradient_accumulation_steps == 2
    assert list(cfg.model.use_st_att) == [False, False, True]
    assert cfg.model.drop_path_rate == 0.15 and cfg.model.dropout == 0.3


def test_list_override_and_types():
    cfg = compose(["model.use_st_att=[true,false,true]", "training.epochs=3"])
    assert list(cfg.model.use_st_att) == [True, False, True] and cfg.training.epochs == 3


@pytest.mark.parametrize(
    "override",
    ["training.epohs=3", "training.epochs=abc", "model=nope", "optimizer.lr=fast",
     "model.use_st_att=7"],
)
def test_bad_overrides_fail_at_composition(override):
    with pytest.raises(Exception) as info:
        compose([override])
    key = override.split("=")[0]
    assert key.split(".")[-1] in str(info.value) or "nope" in str(info.value)


@pytest.mark.parametrize(
    ("override", "key"),
    [("optimizer.lr=-0.1", "optimizer.lr"), ("training.batch_size=0", "training.batch_size"),
     ("stream.name=depth", "stream.name"), ("training.label_smoothing=1.5",
                                            "training.label_smoothing"),
     ("preprocessing.num_person=3", "preprocessing.num_person"),
     ("model.use_st_att=[true]", "model.use_st_att")],
)
def test_validate_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose([override]))


def test_run_identity_ignores_volatile_keys():
    a = compose()
    b = compose(["paths.runs=elsewhere", "logger=none", "training.max_hours=2"])
    c = compose(["seed=2"])
    assert run_key(a) == run_key(b) != run_key(c)
    assert run_dir_name(a).startswith("last_e_base_joint_synthetic_s1_")


def test_run_dir_comes_from_config():
    cfg = compose(return_hydra=True)
    assert OmegaConf.select(cfg, "hydra.run.dir").startswith("runs/last_e_base_joint_synthetic")


def test_composition_does_not_import_torch():
    code = (
        "import sys; sys.argv=['lastexp','--cfg','job'];\n"
        "import lastexp.__main__ as m\n"
        "try:\n    m.main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported while composing'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "last_e_base" in out.stdout


# numbers whose rule is not a range: swa_start (a fraction or an epoch, check_training) and
# amp (a mode name or a flag)
NOT_A_RANGE = {"training.swa_start", "training.amp"}


def schema_numbers(schema: type = Config, prefix: str = "") -> tuple[set[str], set[str]]:
    """Every int or float key of the schema (Optional ones too) by its dotted name, and every
    key its groups' RANGES give a range."""
    numbers, ranged = set(), {f"{prefix}{k}" for k in getattr(schema, "RANGES", {})}
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            more, more_ranged = schema_numbers(hint, f"{prefix}{f.name}.")
            numbers, ranged = numbers | more, ranged | more_ranged
        elif typing.get_origin(hint) is not list and {int, float} & set(
                typing.get_args(hint) or (hint,)):
            numbers.add(f"{prefix}{f.name}")
    return numbers, ranged


def test_every_number_key_has_its_range():
    """A number key added to a group's schema needs an entry in that group's RANGES (the
    allowed values: lr > 0, momentum in [0, 1), restart_mult >= 1, ...)."""
    numbers, ranged = schema_numbers()
    assert ranged <= numbers, ranged - numbers  # a range names a key that exists
    assert numbers - NOT_A_RANGE <= ranged, numbers - NOT_A_RANGE - ranged
    for option, schema in model_schemas().items():  # and each model's own flags (its YAML's)
        numbers, ranged = schema_numbers(schema, "model.")
        assert numbers == ranged, (option, numbers ^ ranged)


def test_a_models_schema_is_its_yamls_keys_typed_by_their_values():
    node = {"name": "m", "dropout": 0.1, "gate": False, "num_bins": 17, "scale": 0.5,
            "per_stage": [False, True, True], "kind": "fft"}
    schema = family_schema("m", node, module=__name__)
    assert issubclass(schema, ModelConfig) and schema.__qualname__ == "ModelConfig[m]"
    hints = typing.get_type_hints(schema)
    assert [hints[k] for k in ("gate", "num_bins", "scale", "per_stage", "kind")] == [
        bool, int, float, list[bool], str]
    made = OmegaConf.structured(schema)
    assert made.dropout == 0.0 and made.num_bins == 17 and list(made.per_stage) == node[
        "per_stage"]  # a shared key keeps ModelConfig's default (the YAML sets its value)
    assert schema.RANGES == {**ModelConfig.RANGES, "num_bins": COUNT}  # an int flag counts
    with pytest.raises(ConfigError, match="model.odd="):
        family_schema("m", {"name": "m", "odd": {"a": 1}}, module=__name__)


@pytest.mark.parametrize(("text", "inside", "outside"), [
    ("be > 0", [1e-9, 5], [0, -1]),
    ("be >= 1", [1, 7], [0.5, 0]),
    ("lie in [0, 1)", [0, 0.99], [1, -0.1]),
    ("lie in (0, 8]", [8, 0.25], [0, 8.5]),
])
def test_range_text_says_what_it_holds(text, inside, outside):
    by_text = {r.text(): r for r in (POSITIVE, AT_LEAST_ONE, BELOW_ONE, Range(0, 8, low_open=True))}
    r = by_text[text]
    assert all(r.holds(v) for v in inside) and not any(r.holds(v) for v in outside)
    assert not r.holds(float("nan"))


@pytest.mark.parametrize(("override", "words"), [
    ("+trainng.epochs=3", ["Key 'trainng' not in 'Config'", "trainng.epochs=3"]),
    ("+training.epohs=3", ["Key 'epohs' not in 'TrainingConfig'", "training.epohs=3"]),
    ("training.swa_start=nan", ["training.swa_start=nan", "not a finite number"]),
    ("optimizer.betas=[0.9,inf]", ["optimizer.betas[1]=inf"]),
    ("scheduler.restart_mult=0", ["scheduler.restart_mult=0 must be >= 1"]),
])
def test_validate_refuses_added_keys_and_non_finite_numbers(override, words):
    with pytest.raises(ConfigError) as info:
        validate(compose([override]))
    for w in words:
        assert w in str(info.value)


def test_weights_problem_is_one_rule_for_config_and_command():
    assert weights_problem([0.6, 0.6, 0.4, 0.4], "--weights") is None
    assert weights_problem([1, 0], "--weights") is None
    for bad in ([0, 0], [-1, -1], [float("nan"), 1], [float("inf"), 1]):
        assert "--weights" in weights_problem(bad, "--weights")
