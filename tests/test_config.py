"""Every config option composes; bad keys, types and values fail before any work."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from lastexp.config import ConfigError, run_dir_name, run_key, validate
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
