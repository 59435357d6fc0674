"""Every statistic of the ablation csv, recomputed here straight from the stored predictions and
metrics with SciPy and statsmodels: cell intervals, Welch's interval and p, exact McNemar pooled
over matched seeds, Holm per table and dataset, seeds for power, per-class accuracy; and the
cell rule (one config per cell, variants, debug runs, protocols)."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from lastexp.plan import power_lines
from lastexp.results import build_report, load_store
from lastexp.results.stats import seeds_for_power

N_SAMPLES, N_CLASSES = 60, 6
LABELS = np.arange(N_SAMPLES) % N_CLASSES
NAMES = np.array([f"S{i:03d}" for i in range(N_SAMPLES)])


def predictions(p_right: float, seed: int) -> np.ndarray:
    """Each sample right with probability ``p_right``, else a wrong class."""
    rng = np.random.default_rng(seed)
    right = rng.random(N_SAMPLES) < p_right
    return np.where(right, LABELS, (LABELS + 1 + rng.integers(0, N_CLASSES - 1, N_SAMPLES))
                    % N_CLASSES).astype(np.int64)  # fmt: skip


def write_run(root: Path, name: str, ablation: str, seed: int, p_right: float, *,
              lr: float = 0.1, overrides: tuple[str, ...] = (), with_preds: bool = True,
              debug: str | None = None, **metrics: object) -> Path:  # fmt: skip
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    cfg = {"seed": seed, "ablation": ablation, "dataset": {"name": "synthetic"},
           "optimizer": {"lr": lr}, "training": {"epochs": 2, "device": "cpu"},
           "paths": {"runs": str(root)}}  # fmt: skip
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
        [f"+ablation={ablation}", f"seed={seed}", *overrides]))
    best = predictions(p_right, 1000 * seed + zlib.crc32(name.encode()) % 997)
    final = predictions(p_right - 0.05, 7 + 1000 * seed + zlib.crc32(name.encode()) % 991)
    arrays = {"scores": np.zeros((N_SAMPLES, N_CLASSES), np.float32), "labels": LABELS,
              "names": NAMES}
    if with_preds:
        arrays.update(pred_best=best, pred_final=final)
    np.savez(run / "test_scores.npz", **arrays)
    record = {"status": "completed", "ablation": ablation, "model": "last_base",
              "stream": "joint", "dataset": "synthetic", "preprocessing": "t64_uniform",
              "seed": seed, "epochs": 2, "best_top1": 100.0 * float(np.mean(best == LABELS)),
              "best_epoch": 1, "final_top1": 100.0 * float(np.mean(final == LABELS)),
              "train_seconds": 36.0, "device": "cpu", "started_at": "2025-01-01T00:00:00",
              "finished_at": f"2025-01-01T00:{seed:02d}:00", "debug": debug, **metrics}
    (run / "metrics.json").write_text(json.dumps(record))
    return run


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stats") / "runs"
    for s in (1, 2, 3):
        write_run(root, f"b0_s{s}", "B0", s, 0.55)
    for s in (1, 2):
        write_run(root, f"b1_s{s}", "B1", s, 0.85)  # n = 2
    write_run(root, "b3_s1", "B3", 1, 0.75)  # n = 1: McNemar only
    write_run(root, "b4_s1", "B4", 1, 0.7, with_preds=False)  # written before predictions
    write_run(root, "b5_s1", "B5", 1, 0.7, selection="validation", best_val_top1=71.0)
    # another config of B1 (a learning rate), one with 2 processes, a debug=tiny run
    write_run(root, "b1_lr_s1", "B1", 1, 0.3, lr=0.5, overrides=("optimizer.lr=0.5",))
    write_run(root, "b1_ws_s1", "B1", 1, 0.3, world_size=2)
    write_run(root, "b1_dbg_s1", "B1", 1, 0.2, overrides=("debug=tiny",), debug="tiny")
    write_run(root, "l1_s1", "L1", 1, 0.6)  # its baseline L0 has no run
    return root


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def files(store: Path) -> dict[str, str]:
    df, problems = load_store(store, warn=False)
    return build_report(df, problems, provenance="commit test")


def metric(store: Path, name: str, key: str = "best_top1") -> float:
    return json.loads((store / name / "metrics.json").read_text())[key]


def npz(store: Path, name: str, key: str = "pred_best") -> np.ndarray:
    with np.load(store / name / "test_scores.npz") as z:
        return z[key]


def row(table: list[dict[str, str]], ident: str, variant: str = "") -> dict[str, str]:
    return next(r for r in table if r["id"] == ident and r["variant"] == variant)


def num(text: str) -> float | None:
    return float(text) if text else None


def mcnemar(store: Path, pairs: list[tuple[str, str]]) -> float:
    b = c = 0
    for mine, base in pairs:
        r, s = npz(store, mine) == LABELS, npz(store, base) == LABELS
        b += int(np.sum(r & ~s))
        c += int(np.sum(~r & s))
    return stats.binomtest(b, b + c, 0.5).pvalue


def test_cells_and_their_intervals(store: Path, files: dict[str, str]):
    base = read_csv(files["base.csv"])
    b0 = [metric(store, f"b0_s{s}") for s in (1, 2, 3)]
    b1 = [metric(store, f"b1_s{s}") for s in (1, 2)]
    for ident, values in (("B0", b0), ("B1", b1)):
        r = row(base, ident)
        assert int(r["n"]) == len(values)
        assert num(r["mean_top1"]) == pytest.approx(statistics.fmean(values), abs=5e-4)
        sem = stats.sem(values)
        low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sem)
        assert num(r["ci95_low"]) == pytest.approx(low, abs=5e-4)
        assert num(r["ci95_high"]) == pytest.approx(high, abs=5e-4)
    assert row(base, "B3")["ci95_low"] == ""  # n = 1: no interval


def test_welch_mcnemar_holm_and_power(store: Path, files: dict[str, str]):
    base = read_csv(files["base.csv"])
    b0 = [metric(store, f"b0_s{s}") for s in (1, 2, 3)]
    b1 = [metric(store, f"b1_s{s}") for s in (1, 2)]
    r = row(base, "B1")
    res = stats.ttest_ind(b1, b0, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert num(r["delta"]) == pytest.approx(np.mean(b1) - np.mean(b0), abs=5e-4)
    assert num(r["delta_ci95_low"]) == pytest.approx(ci.low, abs=5e-4)
    assert num(r["delta_ci95_high"]) == pytest.approx(ci.high, abs=5e-4)
    assert num(r["p_value"]) == pytest.approx(res.pvalue, rel=1e-3)
    # McNemar pooled over the seeds both sides ran (1 and 2; B0's seed 3 has no partner)
    p_b1 = mcnemar(store, [("b1_s1", "b0_s1"), ("b1_s2", "b0_s2")])
    p_b3 = mcnemar(store, [("b3_s1", "b0_s1")])  # from one seed per side
    assert num(r["p_mcnemar"]) == pytest.approx(p_b1, rel=1e-3)
    assert num(row(base, "B3")["p_mcnemar"]) == pytest.approx(p_b3, rel=1e-3)
    assert row(base, "B3")["p_value"] == "" and row(base, "B3")["delta_ci95_low"] == ""
    # B4 predates the predictions: no McNemar, no guess; B5 selected on validation: refused
    assert row(base, "B4")["delta"] != "" and row(base, "B4")["p_mcnemar"] == ""
    assert row(base, "B5")["delta"] == ""
    # Holm over the table's Δs on the dataset, each family on its own
    mc = multipletests([p_b1, p_b3], method="holm")[1]
    assert num(r["p_mcnemar_holm"]) == pytest.approx(mc[0], rel=1e-3)
    assert num(row(base, "B3")["p_mcnemar_holm"]) == pytest.approx(mc[1], rel=1e-3)
    assert row(base, "B4")["p_mcnemar_holm"] == ""
    assert num(r["p_value_holm"]) == pytest.approx(res.pvalue, rel=1e-3)  # its family of one
    # seeds for 80% power at α = 0.05, from the pooled seed std
    pooled = math.sqrt((np.var(b1, ddof=1) * 1 + np.var(b0, ddof=1) * 2) / 3)
    effect = abs(np.mean(b1) - np.mean(b0)) / pooled
    # the smallest n per side whose two-sided t-test has 80% power (statsmodels' power)
    want = next(n for n in range(2, 10_000)
                if TTestIndPower().power(effect, nobs1=n, alpha=0.05, ratio=1.0) >= 0.8)
    assert int(r["seeds_for_power"]) == want
    assert row(base, "B3")["seeds_for_power"] == ""


def test_markdown_marker_and_notes(files: dict[str, str]):
    base = read_csv(files["base.csv"])
    md = files["base.md"]
    lines = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| B")}
    b1, b3 = row(base, "B1"), row(base, "B3")
    assert ("*" in lines["B1"].split("|")[5]) == (num(b1["p_value_holm"]) < 0.05)
    assert ("*" in lines["B3"].split("|")[5]) == (num(b3["p_mcnemar_holm"]) < 0.05)
    assert "McNemar p=" in lines["B3"].split("|")[5] or "McNemar p<" in lines["B3"]
    assert "— (protocols differ)" in lines["B5"]
    assert "McNemar covers test-set sampling but not seed-to-seed variance" in md
    assert "B4 on synthetic (1 seed(s))" in md  # the pre-change run's footnote
    assert "Selection protocol differs between rows" in md and "B5: a validation split" in md
    assert "\\toprule" in files["base.tex"] and "\\bottomrule" in files["base.tex"]
    marked = any("*" in ln.split("|")[5] for ln in lines.values())  # the Δ column
    assert ("Holm-adjusted p $<$ 0.05" in files["base.tex"]) == marked  # the caption key
    assert "| CPU h |" in md.splitlines()[2]


def test_one_config_per_cell(files: dict[str, str]):
    base = read_csv(files["base.csv"])
    assert row(base, "B1")["n"] == "2"  # neither the other lr, world size nor debug run
    assert row(base, "B1", "optimizer.lr=0.5")["n"] == "1"
    assert row(base, "B1", "world_size=2")["n"] == "1"
    assert row(base, "B1", "optimizer.lr=0.5")["delta"] == ""  # Δs compare main configs
    assert not any("debug" in r["variant"] for r in base)
    other = files["other.md"]
    assert "debug=tiny" in other and "| B1 |" in other
    lite = read_csv(files["lite.csv"])
    assert row(lite, "L1")["delta"] == "" and row(lite, "L1")["n"] == "1"  # L0 missing


def test_per_class_accuracy(store: Path, files: dict[str, str]):
    per = read_csv(files["base_per_class.csv"])
    mine = [r for r in per if r["id"] == "B1" and r["variant"] == ""]
    assert len(mine) == N_CLASSES
    for r in mine:
        k = int(r["class"])
        want = np.mean([100 * np.mean(npz(store, f"b1_s{s}")[LABELS == k] == k) for s in (1, 2)])
        assert num(r["top1"]) == pytest.approx(want, abs=5e-4)
        assert r["action"] == f"class {k}" and r["n_seeds"] == "2"
    assert not [r for r in per if r["id"] == "B4"]  # no predictions, no per-class line
    assert "B4 on synthetic" in files["base.md"].split("Per-class accuracy")[1]


def test_include_debug_puts_debug_runs_in_as_variants(store: Path):
    df, problems = load_store(store, warn=False)
    files = build_report(df, problems, provenance="x", include_debug=True)
    base = read_csv(files["base.csv"])
    assert row(base, "B1", "debug=tiny")["n"] == "1"
    assert row(base, "B1")["n"] == "2"


def test_seeds_for_power_is_the_smallest_n_with_the_power():
    power = TTestIndPower()
    for a, b in (([80.0, 81.0, 82.5], [79.0, 80.5, 80.0]), ([70.0, 70.4], [70.3, 70.1, 69.9]),
                 ([90.0, 90.1], [80.0, 80.1])):  # the last: a huge effect, 2 seeds suffice
        pooled = math.sqrt(((len(a) - 1) * np.var(a, ddof=1) + (len(b) - 1) * np.var(b, ddof=1))
                           / (len(a) + len(b) - 2))
        effect = abs(np.mean(a) - np.mean(b)) / pooled
        want = next(n for n in range(2, 100_000)
                    if not power.power(effect, nobs1=n, alpha=0.05) < 0.8)  # NaN: d huge
        assert seeds_for_power(float(np.mean(a) - np.mean(b)), a, b) == want


def test_plan_prints_seeds_for_power(store: Path, files: dict[str, str]):
    base = read_csv(files["base.csv"])
    lines = power_lines(str(store), ["base"])
    assert lines[0].startswith("Seeds for 80% power at α = 0.05")
    b1 = next(ln for ln in lines if ln.strip().startswith("B1 vs B0 on synthetic"))
    assert b1.endswith(f"{row(base, 'B1')['seeds_for_power']} seeds per side")
    assert any(ln.strip().startswith("B3 vs B0") and "needs n >= 2" in ln for ln in lines)


def test_paper_rows_use_the_main_config_only(tmp_path: Path):
    root = tmp_path / "runs"
    main = write_run(root, "b7", "B7", 1, 0.8, dataset="ntu60_xsub")
    write_run(root, "b7_lr", "B7", 2, 0.3, lr=0.5, overrides=("optimizer.lr=0.5",),
              dataset="ntu60_xsub")
    write_run(root, "b7_dbg", "B7", 3, 0.2, overrides=("debug=tiny",), debug="tiny",
              dataset="ntu60_xsub")
    md = build_report(*load_store(root, warn=False), provenance="x")["paper.md"]
    line = next(ln for ln in md.splitlines() if ln.startswith("| **LAST-Base (1s)**"))
    assert line.split("|")[2].strip() == f"{metric(root, main.name):.1f} (n=1)"
