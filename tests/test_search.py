"""hydra/sweeper=optuna +search=lr_dropout under debug=tiny: trials are ordinary runs of the
store, the study lives beside them and a relaunch continues it, skipping finished trials;
``python -m lastexp.results`` writes search.md and the study's plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONF, run_cli

optuna = pytest.importorskip("optuna")

# the teacher training guide's Phase 2 grid
LRS, DROPOUTS = (0.0001, 0.0003, 0.0005), (0.2, 0.3, 0.4)


def test_preset_searches_the_phase_2_grid():
    preset = yaml.safe_load((CONF / "search" / "lr_dropout.yaml").read_text())
    sweeper = preset["hydra"]["sweeper"]
    assert sweeper["direction"] == "maximize"
    assert sweeper["params"] == {"optimizer.lr": "choice(0.0001, 0.0003, 0.0005)",
                                 "model.dropout": "choice(0.2, 0.3, 0.4)"}
    assert {"override /hydra/sweeper": "optuna"} in preset["defaults"]
    assert {"override /optimizer": "adamw"} in preset["defaults"]  # the guide's optimizer


def test_every_trial_of_the_grid_is_a_valid_run():
    from lastexp.config import normalize_overrides, validate
    from tests.conftest import compose

    for extra in ([], ["+ablation=B7"], ["+ablation=L5"]):
        for lr in LRS:
            cfg = compose(normalize_overrides(["+search=lr_dropout", *extra,
                                               f"optimizer.lr={lr}", "model.dropout=0.4"]))
            validate(cfg)  # the warmup starts below every lr of the grid
            assert cfg.optimizer.name == "adamw" and cfg.optimizer.lr == lr


def load_trials(runs: Path) -> list:
    (db,) = sorted((runs / "search").glob("*.db"))
    url = f"sqlite:///{db}"
    (summary,) = optuna.get_all_study_summaries(storage=url)
    return optuna.load_study(study_name=summary.study_name, storage=url).trials


def run_dirs(runs: Path) -> dict[tuple[float, float], Path]:
    found = {}
    for metrics in runs.rglob("metrics.json"):
        cfg = yaml.safe_load((metrics.parent / ".hydra" / "config.yaml").read_text())
        found[(cfg["optimizer"]["lr"], cfg["model"]["dropout"])] = metrics.parent
    return found


def test_search_trials_are_runs_and_a_relaunch_continues_the_study(tmp_path, shared_data):
    runs = tmp_path / "runs"
    args = ["--multirun", "hydra/sweeper=optuna", "+search=lr_dropout", "debug=tiny",
            "model=last_e_nano", "logger=none", "hydra.sweeper.n_trials=2",
            f"paths.runs={runs}", f"paths.data={shared_data}"]
    first = run_cli(args, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    trials = load_trials(runs)
    assert [t.number for t in trials] == [0, 1]
    dirs = run_dirs(runs)
    assert 1 <= len(dirs) <= 2
    for t in trials:
        assert t.state.name == "COMPLETE"
        lr, dropout = t.params["optimizer.lr"], t.params["model.dropout"]
        assert lr in LRS and dropout in DROPOUTS
        run = dirs[(lr, dropout)]  # an ordinary run, named like any multirun job
        assert run.parent == runs and run.name.startswith("last_e_nano_joint_synthetic_s1_")
        m = json.loads((run / "metrics.json").read_text())
        assert m["status"] == "completed"
        assert t.value == pytest.approx(m["best_top1"])  # the value maximised

    # The same command again: the same study goes on (trials 2 and 3); the seeded sampler
    # asks the same parameters first, so the finished runs are skipped, not trained again.
    before = {run: (run / "metrics.json").read_bytes() for run in dirs.values()}
    again = run_cli(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already completed, skipping") == 2
    assert "epoch   1/" not in again.stdout
    trials = load_trials(runs)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.params for t in trials[2:]] == [t.params for t in trials[:2]]
    assert [t.value for t in trials[2:]] == [t.value for t in trials[:2]]
    assert {run: (run / "metrics.json").read_bytes() for run in dirs.values()} == before

    out = run_cli(["--runs", str(runs), "--out", str(tmp_path / "results")], tmp_path,
                  module="lastexp.results")
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "results" / "search.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| trial")]
    assert [r.split(" | ")[0] for r in rows] == ["| 0", "| 1", "| 2", "| 3"]
    assert "(= trial 0)" in rows[2]
    best = max(t.value for t in trials)
    assert f"**{best:.2f}**" in md
    (png,) = (tmp_path / "results").glob("search_lr_dropout_*.png")
    first_png = png.read_bytes()
    out = run_cli(["--runs", str(runs), "--out", str(tmp_path / "results")], tmp_path,
                  module="lastexp.results")
    assert (tmp_path / "results" / "search.md").read_text() == md and png.read_bytes() == first_png


def test_no_search_no_search_md(tmp_path):
    from lastexp.results.search import write_search

    assert write_search(tmp_path / "runs", tmp_path / "out") == {}
    assert not (tmp_path / "out" / "search.md").exists()
