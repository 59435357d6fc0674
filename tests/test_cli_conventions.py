"""The command as a tool: its name and --help, shell completion of the console script, the torch
thread count, ``<run>/lastexp.log``, ``logger=null`` / ``~logger``, the launcher presets without
Hydra's deprecation warning, SLURM job names, and the preflight's one line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from hydra_plugins.lastexp_launcher.slurm_launcher import job_name, rename_this_job
from lastexp import app
from lastexp.aliases import normalize_overrides
from lastexp.environment import default_threads, with_env
from lastexp.launch.preflight import NodeShape, requested_resources, resource_problem
from lastexp.logs import RunLogHandler, capture_prints
from lastexp.runstore.key import identity, run_key
from tests.conftest import REPO, compose, run_cli

# every option name of SPEC §3's groups (the contract), and the aliases --help leaves out
GROUPS = {
    "model": ["last_e_nano", "last_e_small", "last_e_base", "last_e_large", "last_v2_base",
              "last_base", "last_lite_nano", "last_lite_small"],
    "stream": ["joint", "bone", "velocity", "bone_velocity"],
    "optimizer": ["sgd", "adamw"],
    "scheduler": ["cosine_warmup", "cosine_warmup_restart", "multistep_warmup", "cosine"],
    "distill": ["none", "from_existing", "from_base"],
    "preprocessing": ["t64_uniform", "t300_crop64", "t120_uniform", "t64_uniform_2body"],
    "dataset": ["synthetic", "ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset"],
    "logger": ["wandb", "tensorboard", "none"],
    "env": ["local", "kaggle", "slurm"],
    "debug": ["tiny"],
}
ALIASES = ["base_e_v3", "shiftfuse_small", "nano_e_v3", "joint_velocity"]


def test_help_lists_the_user_facing_groups_in_under_60_lines(tmp_path):
    proc = run_cli(["--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert len(text.splitlines()) < 60, text
    assert "__main__" not in text and "powered by Hydra" not in text
    assert text.startswith("lastexp: ")
    groups: dict[str, str] = {}  # "model" -> its options, continuation lines included
    section = text.split("== Config groups", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    for line in section:
        head, sep, rest = line.partition(":")
        if sep and not head.startswith("   "):
            current = head.strip()
            groups[current] = rest
        else:
            groups[current] += " " + line
    for group, options in GROUPS.items():
        assert set(options) <= {o.strip() for o in groups[group].split(",")}, (group, text)
    for hidden in ("distill_recipe", "distill_student", *ALIASES):
        assert hidden not in text, hidden
    assert groups["+ablation"].strip() == "B0-B14, L0-L12, P0-P3"
    lines = groups
    assert all(s in lines["+sweep"] for s in ("base", "lite", "preprocessing", "streams", "demo"))


def test_the_hydra_job_is_lastexp():
    cfg = compose(["debug=tiny"], return_hydra=True)
    assert cfg.hydra.job.name == "lastexp"
    handler = OmegaConf.to_container(cfg.hydra.job_logging.handlers.file, resolve=False)
    assert handler["filename"] == "${hydra.runtime.output_dir}/lastexp.log"
    assert handler["class"] == "lastexp.logs.RunLogHandler"
    launcher = OmegaConf.load(REPO / "conf/hydra/launcher/submitit_slurm.yaml")
    assert OmegaConf.to_container(launcher)["name"] == "${hydra.job.name}"


def test_shell_completion_of_the_console_script(tmp_path):
    """As bash calls it: ``<app> -sc query=bash`` with COMP_LINE / COMP_POINT set, where
    ``<app>`` is the console script (Hydra strips the first word of the line)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COMP_LINE": "lastexp mod",
           "COMP_POINT": "11"}
    query = [sys.executable, "-c", "import sys; sys.argv[0] = 'lastexp'; "
             "from lastexp.__main__ import cli; cli()", "-sc", "query=bash"]
    proc = subprocess.run(query, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "model=" in proc.stdout.split()
    env["COMP_LINE"], env["COMP_POINT"] = "lastexp model=last_lite", "22"
    proc = subprocess.run(query, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert set(proc.stdout.split()) >= {"model=last_lite_nano", "model=last_lite_small"}
    install = [*query[:-1], "install=bash"]
    proc = subprocess.run(install, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("-F hydra_bash_completion lastexp"), proc.stdout


def test_num_threads_default_and_identity(monkeypatch):
    assert default_threads(0, {}, cpus=8) == 8
    assert default_threads(3, {}, cpus=8) == 5  # the loader workers' CPUs left to them
    assert default_threads(9, {}, cpus=8) == 1
    slurm = {"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "6"}
    assert default_threads(5, slurm, cpus=64) == 6  # the CPUs the job was given
    assert default_threads(0, {"SLURM_CPUS_PER_TASK": "6"}, cpus=4) == 4  # no job: affinity
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    cfg = compose(["debug=tiny"])
    assert cfg.training.num_threads == len(os.sched_getaffinity(0))
    pinned = compose(["debug=tiny", "training.num_threads=1"])
    assert pinned.training.num_threads == 1
    assert "num_threads" not in identity(pinned)["training"]
    assert run_key(pinned) == run_key(cfg)  # speed only: the same run


def test_no_logger_spellings():
    for spelling in (["logger=null"], ["~logger"], ["~logger=wandb"], ["logger=none"]):
        assert normalize_overrides(spelling) == ["logger=none"], spelling
        assert compose(normalize_overrides(spelling)).logger.name == "none"
    # with_env keeps ~logger among the overrides (argparse takes them as one run)
    assert with_env(["~logger", "--cfg", "job"], {})[:2] == ["env=local", "~logger"]


def test_launcher_presets_print_no_deprecation_warning(tmp_path):
    for launcher in ("submitit_slurm", "submitit_local"):
        proc = run_cli([f"hydra/launcher={launcher}", "--cfg", "hydra"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "deprecated" not in proc.stderr, proc.stderr
        hydra = OmegaConf.create(proc.stdout).hydra
        assert hydra.launcher.cpus_per_task == (8 if launcher == "submitit_slurm" else 2)
    # the plugin's schema still types the preset's keys
    bad = run_cli(["hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=many", "--cfg",
                   "hydra"], tmp_path)
    assert bad.returncode != 0 and "cpus_per_task" in bad.stderr


def test_slurm_job_names_say_row_and_seed(tmp_path):
    def never(_):
        raise AssertionError("composed although the overrides say row and seed")

    assert job_name("lastexp", ["+ablation=B3", "seed=1"], never) == "lastexp-B3-s1"
    assert job_name("lastexp", ["model=last_lite_nano", "seed=2"], never) == \
        "lastexp-last_lite_nano-s2"
    assert job_name("lastexp", ["debug=tiny"], lambda ov: compose(ov)) == "lastexp-last_e_base-s1"
    calls = tmp_path / "calls"
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    scontrol.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_JOB_ID": "42",
           "SLURM_ARRAY_JOB_ID": "40"}
    old = os.environ["PATH"]
    os.environ["PATH"] = env["PATH"]
    try:
        assert rename_this_job("lastexp-B3-s1", env)
        assert not rename_this_job("lastexp-B3-s1", {"SLURM_JOB_ID": "42"})  # no array: named
    finally:
        os.environ["PATH"] = old
    assert calls.read_text().split() == ["update", "JobId=42", "JobName=lastexp-B3-s1"]


def test_preflight_reports_every_unmet_resource_in_one_line():
    preset = requested_resources([])
    small = [NodeShape(cpus=4, mem_mb=16 * 1024, gpus=0)]
    line = resource_problem("cpu", preset, small)
    assert "\n" not in line
    for part in ("hydra.launcher.gpus_per_node=1", "hydra.launcher.cpus_per_task=8",
                 "hydra.launcher.mem_gb=48", "hydra.launcher.gpus_per_node=0 (a CPU partition)",
                 "hydra.launcher.cpus_per_task=4 or fewer", "hydra.launcher.mem_gb=16 or less"):
        assert part in line, line
    assert resource_problem("cpu", {"gpus_per_node": 0, "cpus_per_task": 2, "mem_gb": 8},
                            small) is None


def test_run_log_holds_back_until_the_run_trains(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    handler = RunLogHandler(str(run / "lastexp.log"))
    handler.setFormatter(logging.Formatter("[%(name)s][%(levelname)s] - %(message)s"))  # Hydra's
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with capture_prints():
            print("loading data")
            print("\r[bar 10%]\r[bar 90%]\r", end="", file=sys.stderr)
            print("done", file=sys.stderr)
        assert not (run / "lastexp.log").exists()  # nothing trained: nothing written
        (run / ".hydra").mkdir()
        (run / ".hydra" / "config.yaml").write_text("seed: 1\n")  # the run trains now
        with capture_prints():
            print("epoch 1/1")
    finally:
        root.removeHandler(handler)
        handler.close()
    lines = (run / "lastexp.log").read_text().splitlines()
    assert [ln.split(" - ", 1)[1] for ln in lines] == ["loading data", "done", "epoch 1/1"]
    assert "[WARNING]" in lines[1]


def test_a_tiny_run_writes_lastexp_log(tmp_path, shared_data):
    args = ["debug=tiny", "logger=none", f"paths.data={shared_data}", "paths.runs=runs",
            "training.num_threads=1"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp_path / "runs").glob("last_e_base_*")
    text = (run / "lastexp.log").read_text()
    assert "torch threads: 1 (training.num_threads)" in text
    assert "num_threads: 1\n" in (run / ".hydra" / "config.yaml").read_text()
    for line in proc.stdout.splitlines():  # everything it printed
        assert line.strip() in text, line
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert not list(run.glob("__main__.log"))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    again = run_cli(args, tmp_path)  # skipped: the run byte-identical, its log too
    assert again.returncode == 0 and "skipping" in again.stdout
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_help_options_are_the_groups_own(group):
    assert set(GROUPS[group]) <= set(app.group_options(group))
    assert not set(ALIASES) & set(app.group_options(group))


def test_under_ddp_only_rank_0_writes_the_log(tmp_path, monkeypatch):
    (tmp_path / ".hydra").mkdir()
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        handler = RunLogHandler(str(tmp_path / "lastexp.log"))
        (tmp_path / ".hydra" / "config.yaml").write_text("seed: 1\n")  # trains now
        handler.handle(logging.LogRecord("lastexp", logging.INFO, "", 0, f"rank {rank}", None,
                                         None))
        handler.close()
    assert (tmp_path / "lastexp.log").read_text().splitlines() == ["rank 0"]
