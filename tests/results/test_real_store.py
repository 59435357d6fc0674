"""The results command over a run store made by real tiny runs (2 ablations x 2 seeds)."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats
from statsmodels.stats.multitest import multipletests

from lastexp.results import build_report, load_store
from lastexp.results.cell_config import ConfigReader, catalog_recipe
from lastexp.runstore.key import identity
from tests.conftest import run_cli


def tables(runs) -> dict[str, str]:
    """The results files of a store, in-process, debug=tiny runs included."""
    return build_report(*load_store(runs, warn=False), provenance="test", include_debug=True)


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("real_store")
    out = run_cli(["--multirun", "debug=tiny", "logger=none", "ablation=L0,L1", "seed=1,2",
                   f"paths.runs={root / 'runs'}", f"paths.data={shared_data}"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    return root


def test_lite_table_from_real_runs(real_store, tmp_path):
    # debug=tiny runs stay out of the ablation tables unless --include-debug
    out = run_cli(["--runs", str(real_store / "runs"), "--out", str(tmp_path / "a"),
                   "--include-debug"], real_store, module="lastexp.results")
    assert out.returncode == 0, out.stderr[-2000:]
    lite = (tmp_path / "a" / "lite.md").read_text()
    l0 = next(line for line in lite.splitlines() if line.startswith("| L0"))
    l1 = next(line for line in lite.splitlines() if line.startswith("| L1"))
    assert "n=2" in l0 and "n=2" in l1 and "±" in l1
    assert "+" in l1.split("|")[5] or "-" in l1.split("|")[5]  # a Δ against L0
    assert "| L2" in lite and "—" in lite  # rows without runs are shown as missing
    for name in ("base", "lite", "preprocessing", "paper"):
        for ext in ("md", "csv", "tex"):
            assert (tmp_path / "a" / f"{name}.{ext}").exists(), f"{name}.{ext}"

    again = run_cli(["--runs", str(real_store / "runs"), "--out", str(tmp_path / "b"),
                     "--include-debug"], real_store, module="lastexp.results")
    assert again.returncode == 0
    for f in sorted((tmp_path / "a").glob("*.md")) + sorted((tmp_path / "a").glob("*.csv")):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_statistics_of_real_runs_match_scipy(real_store, tmp_path):
    """The Δ statistics of the lite table, recomputed from the real runs' stored predictions.

    The trainer stores pred_best and pred_final; the tiny runs train one epoch, so both are
    the argmax of the stored scores (checked here). L1 seed 2 loses its predictions, as a run
    written before they were stored; a second store drops L0 (a missing baseline)."""
    runs = tmp_path / "runs"
    shutil.copytree(real_store / "runs", runs)
    dirs = {}
    for path in sorted(runs.glob("*/test_scores.npz")):
        m = json.loads((path.parent / "metrics.json").read_text())
        dirs[(m["ablation"], m["seed"])] = path.parent
        with np.load(path) as z:
            arrays = dict(z)
        argmax = arrays["scores"].argmax(axis=1)
        assert np.array_equal(arrays["pred_best"], argmax)
        assert np.array_equal(arrays["pred_final"], argmax)
        if (m["ablation"], m["seed"]) == ("L1", 2):
            del arrays["pred_best"], arrays["pred_final"]
            np.savez(path, **arrays)
    files = tables(runs)
    lite = list(csv.DictReader(io.StringIO(files["lite.csv"])))
    l1 = next(r for r in lite if r["id"] == "L1" and r["variant"] == "")

    def top1(ab: str) -> list[float]:
        return [json.loads((dirs[(ab, s)] / "metrics.json").read_text())["best_top1"]
                for s in (1, 2)]

    a, b = top1("L1"), top1("L0")
    assert float(l1["delta"]) == pytest.approx(np.mean(a) - np.mean(b), abs=5e-4)
    if np.var(a) + np.var(b) > 0:
        res = stats.ttest_ind(a, b, equal_var=False)
        assert float(l1["p_value"]) == pytest.approx(res.pvalue, rel=1e-3)
        assert float(l1["delta_ci95_low"]) == pytest.approx(res.confidence_interval().low,
                                                            abs=5e-4)
    assert l1["p_mcnemar"] == ""  # L1 seed 2 has no predictions: no pooled test, no guess
    assert "L1 on synthetic (1 seed(s))" in files["lite.md"]

    # without L1 seed 2, the only matched seed is 1: McNemar from one seed per side
    shutil.rmtree(dirs[("L1", 2)])
    files = tables(runs)
    lite = list(csv.DictReader(io.StringIO(files["lite.csv"])))
    l1 = next(r for r in lite if r["id"] == "L1" and r["variant"] == "")
    with np.load(dirs[("L1", 1)] / "test_scores.npz") as z1, \
            np.load(dirs[("L0", 1)] / "test_scores.npz") as z0:
        assert list(z1["names"]) == list(z0["names"])
        r, s = z1["pred_best"] == z1["labels"], z0["pred_best"] == z0["labels"]
    bb, cc = int(np.sum(r & ~s)), int(np.sum(~r & s))
    want = stats.binomtest(bb, bb + cc, 0.5).pvalue if bb + cc else 1.0
    assert l1["n"] == "1" and float(l1["p_mcnemar"]) == pytest.approx(want, rel=1e-3)
    assert float(l1["p_mcnemar_holm"]) == pytest.approx(
        multipletests([want], method="holm")[1][0], rel=1e-3)
    per = list(csv.DictReader(io.StringIO(files["lite_per_class.csv"])))
    l0 = [p for p in per if p["id"] == "L0"]
    assert l0 and all(p["n_seeds"] == "2" for p in l0)

    # a row whose baseline is missing: no Δ, nothing computed
    for s in (1, 2):
        shutil.rmtree(dirs[("L0", s)])
    files = tables(runs)
    lite = list(csv.DictReader(io.StringIO(files["lite.csv"])))
    l1 = next(r for r in lite if r["id"] == "L1" and r["variant"] == "")
    assert l1["delta"] == l1["p_mcnemar"] == l1["seeds_for_power"] == ""


def test_cell_identity_is_the_run_identity_without_the_seed(real_store):
    """The key a cell groups by is lastexp.runstore.key.identity of the saved config, seed left out:
    the two seeds of a row share it, the two rows do not."""
    reader = ConfigReader()
    keys = {}
    for run in sorted((real_store / "runs").glob("*/metrics.json")):
        m = json.loads(run.read_text())
        cid = reader.read(run.parent)
        want = identity(OmegaConf.load(run.parent / ".hydra" / "config.yaml"))
        want.pop("seed")
        assert dict(cid.items) == {k: v for k, v in _flat(want)}
        # debug=tiny on the command line: not the catalog recipe
        assert catalog_recipe(run.parent) is False
        keys.setdefault(m["ablation"], set()).add(cid.key)
    assert all(len(v) == 1 for v in keys.values()) and keys["L0"] != keys["L1"]


def _flat(node, prefix=""):
    if isinstance(node, dict) and node:
        for k in sorted(node):
            yield from _flat(node[k], f"{prefix}{k}.")
    else:
        yield prefix[:-1], json.dumps(node, sort_keys=True, separators=(",", ":"))
