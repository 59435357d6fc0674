"""hydra/sweeper=optuna +search=lr_dropout under debug=tiny: trials are ordinary runs of the
store, the study lives beside them and a relaunch continues it, skipping finished trials;
``python -m lastexp.results`` writes search.md and the study's plot."""

from __future__ import annotations

import json
import shutil
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
    from lastexp.aliases import normalize_overrides
    from lastexp.config import validate
    from tests.conftest import compose

    for extra in (["dataset.val_fraction=0.1"], ["+ablation=B7", "dataset.val_subjects=3"],
                  ["+ablation=L5", "search.on_test=true"]):
        for lr in LRS:
            cfg = compose(normalize_overrides(["+search=lr_dropout", *extra,
                                               f"optimizer.lr={lr}", "model.dropout=0.4"]))
            validate(cfg)  # the warmup starts below every lr of the grid
            assert cfg.optimizer.name == "adamw" and cfg.optimizer.lr == lr


@pytest.mark.parametrize("extra", [[], ["+ablation=B7"], ["dataset=ntu60_xview"]])
def test_a_search_without_a_validation_split_is_refused(extra):
    """The search never tunes on the test split by default: one line naming both keys and
    search.on_test; with a validation split or search.on_test=true it is a valid run."""
    from lastexp.aliases import normalize_overrides
    from lastexp.config import validate
    from lastexp.errors import ConfigError
    from tests.conftest import compose

    with pytest.raises(ConfigError) as refused:
        validate(compose(normalize_overrides(["+search=lr_dropout", *extra])))
    for word in ("dataset.val_subjects", "dataset.val_fraction", "search.on_test=true"):
        assert word in str(refused.value)
    split = "dataset.val_fraction=0.1" if extra == ["dataset=ntu60_xview"] else \
        "dataset.val_subjects=2"
    for allowed in (split, "search.on_test=true"):
        validate(compose(normalize_overrides(["+search=lr_dropout", *extra, allowed])))
    validate(compose(normalize_overrides(extra)))  # no search: no validation split needed


def test_search_keys_leave_the_run_identity_alone():
    """A trial is an ordinary run: +search= and search.on_test do not rename it, so a search
    skips runs trained without it (and the runs stored before the keys existed)."""
    from lastexp.aliases import normalize_overrides
    from lastexp.runstore.key import run_key
    from tests.conftest import compose

    plain = run_key(compose(["optimizer=adamw", "dataset.val_fraction=0.1"]))
    assert run_key(compose(normalize_overrides(["+search=lr_dropout",
                                                "dataset.val_fraction=0.1"]))) == plain
    assert run_key(compose(["optimizer=adamw"])) == run_key(
        compose(normalize_overrides(["+search=lr_dropout", "search.on_test=true"])))


def test_the_objective_follows_the_selection(tmp_path):
    """A validation-selected trial reports best_val_top1, a test-selected one best_top1 (also a
    run stored before `selection` existed); the study's protocol file says which."""
    from lastexp.optuna_study import objective, protocol_path, record_protocol

    assert objective({"selection": "validation"}) == "best_val_top1"
    assert objective({"selection": "test"}) == objective({}) == "best_top1"
    path = protocol_path(f"sqlite:///{tmp_path}/search/s.db")
    assert path == tmp_path / "search" / "s.json"
    path.parent.mkdir()
    record_protocol(path, "s", {})
    assert json.loads(path.read_text()) == {"study": "s", "selection": "test",
                                            "objective": "best_top1"}
    stamp = path.stat().st_mtime_ns
    record_protocol(path, "s", {"selection": "test"})
    assert path.stat().st_mtime_ns == stamp  # unchanged: not rewritten


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
            "dataset.val_fraction=0.25",  # tuned on validation, never on the test split
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
        assert m["status"] == "completed" and m["selection"] == "validation"
        assert t.value == pytest.approx(m["best_val_top1"])  # the value maximised
        assert 0 <= m["best_top1"] <= 100  # the test top-1 of that epoch, reported apart
        carved = json.loads((run / "data_summary.json").read_text())["validation"]
        assert carved["rule"] == "fraction" and carved["n_val"] == m["n_val"] > 0
    (protocol,) = (runs / "search").glob("*.json")
    assert json.loads(protocol.read_text()) == {
        "study": protocol.stem, "selection": "validation", "objective": "best_val_top1"}

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
    from lastexp.results.search_table import write_search

    assert write_search(tmp_path / "runs", tmp_path / "out") == {}
    assert not (tmp_path / "out" / "search.md").exists()


@pytest.mark.resume
def test_a_trial_that_fails_for_its_data_stops_the_search_and_the_study_goes_on(tmp_path,
                                                                               shared_data):
    """The data of a search goes missing between two launches: the trial that meets it ends
    the search in one line (exit 2, no sweeper traceback) and is failed in the study, whose
    finished trial and run stay as they were; with the data back, the same command continues
    the study."""
    from lastexp.data.synthetic import ensure_corpus
    from tests.conftest import compose

    raw = tmp_path / "raw"  # the captures of the search, a folder of the user's
    shutil.copytree(ensure_corpus(shared_data, compose(["debug=tiny"]).dataset.synthetic), raw)
    runs = tmp_path / "runs"
    args = ["--multirun", "+search=lr_dropout", "debug=tiny", "dataset.val_fraction=0.25",
            f"dataset.raw_dir={raw}", "model=last_e_nano", "logger=none",
            f"paths.runs={runs}", f"paths.data={tmp_path / 'data'}"]
    first = run_cli([*args, "hydra.sweeper.n_trials=1"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    (done,) = run_dirs(runs).values()
    kept = (done / "metrics.json").read_bytes()

    # The search goes on with a second trial (the seeded sampler asks trial 0's parameters
    # first: that run is skipped), but the captures are gone: an unmounted disk, a moved folder
    args.append("hydra.sweeper.n_trials=2")
    raw.rename(tmp_path / "raw_away")
    second = run_cli(args, tmp_path)
    assert second.returncode == 2, second.stderr[-3000:]
    for noise in ("Traceback", "Error executing job", "Failed experiment"):
        assert noise not in second.stderr, second.stderr[-3000:]
    (line,) = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert line.startswith("lastexp: error: search trial 2 (") and \
        f"dataset.raw_dir={str(raw)!r} is not a directory" in line, line
    trials = load_trials(runs)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert (done / "metrics.json").read_bytes() == kept

    (tmp_path / "raw_away").rename(raw)
    third = run_cli(args, tmp_path)  # the same command: the study goes on
    assert third.returncode == 0, third.stderr[-3000:]
    again = load_trials(runs)
    assert [t.state.name for t in again] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE",
                                             "COMPLETE"]
    assert again[4].params == trials[2].params and again[4].value is not None  # trained now
    assert (done / "metrics.json").read_bytes() == kept


@pytest.mark.parametrize("ending", ["lastexp error", "exit after its line", "bug",
                                    "Ctrl-C"])
def test_a_trial_that_ends_the_command_is_failed_in_its_study(tmp_path, monkeypatch, capsys,
                                                            ending):
    """trial_guard around a search trial's job: a lastexp error becomes the one line (exit 2),
    an exit after the job's own line (a full disk, a locked run) passes as it is; both fail
    this job's trial in the study, the finished one kept. A bug is left to the sweeper."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from lastexp.errors import DataError
    from lastexp.optuna_study import trial_guard

    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    def lr(value: float) -> dict:
        return {"optimizer.lr": optuna.distributions.UniformDistribution(value, value)}

    study.tell(study.ask(lr(0.1)), 50.0)
    study.ask(lr(0.2))  # this job's trial, running
    hc = {"mode": RunMode.MULTIRUN, "overrides": {"task": ["optimizer.lr=0.2", "debug=tiny"]},
          "sweeper": {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper."
                                  "OptunaSweeper", "study_name": "s", "storage": storage}}
    monkeypatch.setattr(HydraConfig.instance(), "cfg", OmegaConf.create({"hydra": hc}))
    error = {"lastexp error": DataError("dataset.raw_dir='x' is not a directory"),
             "exit after its line": SystemExit(2), "bug": KeyError("bug"),
             "Ctrl-C": KeyboardInterrupt()}[ending]
    with pytest.raises((SystemExit, KeyError, KeyboardInterrupt)) as ended, trial_guard():
        raise error
    states = [t.state.name for t in optuna.load_study(study_name="s", storage=storage).trials]
    if ending == "bug":
        assert isinstance(ended.value, KeyError) and states == ["COMPLETE", "RUNNING"]
        return
    if ending == "Ctrl-C":  # the command reports it (exit 130); the trial is not left running
        assert isinstance(ended.value, KeyboardInterrupt) and states == ["COMPLETE", "FAIL"]
        return
    assert ended.value.code == 2 and states == ["COMPLETE", "FAIL"]
    err = capsys.readouterr().err
    if ending == "lastexp error":
        assert err == ("lastexp: error: search trial 1 (optimizer.lr=0.2): dataset.raw_dir='x' "
                       "is not a directory; the search stopped there, its finished trials "
                       "kept in the study: fix that, then run the same command again to "
                       "continue it\n")
    else:
        assert err == ""  # the job printed its line before it exited
