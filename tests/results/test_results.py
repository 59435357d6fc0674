"""Results tables from hand-made run stores: numbers, flags, footnotes, files, CLI."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.special import betainc

from lastexp import catalog
from lastexp.results import build_report, load_store, write_tables
from lastexp.results.stats import welch

B0 = [90.0, 91.0, 92.5]
B1 = [92.0, 93.0, 94.0]


def write_run(root: Path, name: str, *, ablation: str | None = "B0", seed: int = 0,
              best: float = 90.0, status: str = "completed", dataset: str = "synthetic",
              stream: str = "joint", model: str = "last_base", preprocessing: str = "t64_uniform",
              train_seconds: float = 1800.0, finished: str = "2025-01-02T10:00:00",
              **extra: object) -> Path:  # fmt: skip
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    metrics = {
        "status": status, "ablation": ablation, "model": model, "stream": stream,
        "dataset": dataset, "preprocessing": preprocessing, "seed": seed, "epochs": 2,
        "best_top1": best, "best_epoch": 1, "final_top1": best - 0.5, "params": 4_200_000,
        "flops": 1.2e9, "train_seconds": train_seconds, "device": "cpu", "n_train": 10,
        "n_test": 5, "started_at": "2025-01-01T09:00:00", "finished_at": finished, **extra,
    }  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "history.csv").write_text(
        "epoch,lr,train_loss,train_top1,val_loss,val_top1,seconds\n"
        f"0,0.1,2.0,40.0,2.1,38.0,1.0\n1,0.05,1.0,70.0,1.1,{best},1.0\n"
    )
    return run


def table_line(md: str, label: str) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in\n{md}")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for i, v in enumerate(B0):
        write_run(root, f"multirun/2025-01-01/b0_{i}", ablation="B0", seed=i, best=v)
    for i, v in enumerate(B1):
        write_run(root, f"multirun/2025-01-01/b1_{i}", ablation="B1", seed=i, best=v)
    write_run(root, "b3_ok", ablation="B3", seed=0, best=88.0)
    write_run(root, "b3_bad", ablation="B3", seed=1, best=float("nan"), status="failed",
              error="RuntimeError: CUDA out of memory")  # fmt: skip
    write_run(root, "b4_running", ablation="B4", seed=0, status="running")
    (root / "multirun" / "2025-01-01" / "multirun.yaml").write_text("hydra: {}\n")
    return root


def report(root: Path) -> dict[str, str]:
    df, problems = load_store(root, warn=False)
    return build_report(df, problems, provenance="commit test")


def test_store_finds_nested_runs_and_ignores_other_files(store: Path):
    df, problems = load_store(store, warn=False)
    assert problems == []
    assert len(df) == 9
    assert "multirun/2025-01-01/b0_0" in set(df["run_dir"])
    assert df["ablation"].tolist().count("B0") == 3
    assert df["best_top1"].dtype == "float64"


def test_rows_in_seed_order(store: Path):
    md = report(store)["base.md"]
    labels = [ln.split("|")[1].strip() for ln in md.splitlines() if ln.startswith("| B")]
    assert labels == catalog.ids("base")
    lite = report(store)["lite.md"]
    assert [ln.split("|")[1].strip() for ln in lite.splitlines() if ln.startswith("| L")] == \
        catalog.ids("lite")


def test_mean_std_delta_and_welch_by_hand(store: Path):
    md = report(store)["base.md"]
    mean, std = statistics.fmean(B0), statistics.stdev(B0)
    assert (f"{mean:.1f}", f"{std:.1f}") == ("91.2", "1.3")
    assert table_line(md, "B0")[3] == "91.2 ± 1.3 (n=3)"
    assert table_line(md, "B0")[4] == ""  # the baseline has no Δ
    # Welch by hand.
    va, vb = statistics.variance(B1) / 3, statistics.variance(B0) / 3
    t = (statistics.fmean(B1) - mean) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    p = betainc(dof / 2, 0.5, dof / (dof + t * t))
    assert welch(B1, B0) == pytest.approx((t, dof, p))
    assert 0.05 < p < 0.2
    row = table_line(md, "B1")
    assert row[2] == "B0"
    assert row[3] == "**93.0 ± 1.0 (n=3)**"  # best of the column
    assert row[4] == f"+1.8 (p={p:.3f})"
    csv_line = next(ln for ln in report(store)["base.csv"].splitlines() if ln.startswith("B1,"))
    assert ",synthetic,3,93.000,1.000," in csv_line and ",0,0,0,1.833," in csv_line


def test_welch_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for a, b in [(B1, B0), ([1.0, 2.0], [4.0, 7.0, 9.5, 3.0]), ([70.1, 70.3, 69.8], [70.0, 70.2])]:
        ref = stats.ttest_ind(a, b, equal_var=False)
        t, _, p = welch(a, b)
        assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, rel=1e-9)


def test_welch_undefined():
    assert welch([1.0], [2.0, 3.0]) is None and welch([1.0, 1.0], [2.0, 2.0]) is None


def test_missing_failed_and_running(store: Path):
    files = report(store)
    md = files["base.md"]
    assert table_line(md, "B2")[3:5] == ["—", "—"]
    assert table_line(md, "B3")[3] == "88.0 (n=1, 1 failed)"
    assert table_line(md, "B4")[3] == "— (1 running)"
    notes = md.split("**Notes**")[1]
    assert "`b3_bad`" in notes and "CUDA out of memory" in notes and "`b4_running`" in notes
    assert "Provenance: code commit test" in notes and "2025-01-01 to 2025-01-02" in notes
    # GPU hours count every run of the row, failed ones too: 2 × 1800 s.
    assert table_line(md, "B3")[-2:] == ["1.0", "10"]
    assert "CPU hours: 4.5 used of the plan's ~217 GPU h budget (its rows sum to 237 h)." in md


def test_truncated_metrics_reported_and_skipped(store: Path, capsys):
    bad = store / "broken"
    bad.mkdir()
    (bad / "metrics.json").write_text('{"status": "compl')
    df, problems = load_store(store)
    assert len(df) == 9 and [p.run_dir for p in problems] == ["broken"]
    assert "warning: skipping broken" in capsys.readouterr().err
    md = build_report(df, problems, "x")["base.md"]
    assert "Unreadable run dirs (1; skipped)" in md and "`broken`: corrupt or truncated" in md


def test_duplicate_seed_uses_newest(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root, "old", seed=0, best=50.0, finished="2025-01-01T00:00:00")
    write_run(root, "new", seed=0, best=90.0, finished="2025-01-03T00:00:00")
    write_run(root, "other_seed", seed=1, best=92.0)
    md = report(root)["base.md"]
    assert table_line(md, "B0")[3] == "**91.0 ± 1.4 (n=2)**"
    assert "Duplicate seeds (1;" in md and "kept `new`, ignored `old`" in md


def test_unknown_and_null_ablation_in_other(store: Path):
    write_run(store, "x9", ablation="X9", best=70.0, model="last_e_small")
    write_run(store, "adhoc", ablation=None, best=60.0, model="last_e_nano", stream="bone")
    files = report(store)
    other = files["other.md"]
    assert table_line(other, "X9 (unknown)")[1:6] == [
        "last_e_small", "joint", "t64_uniform", "", "**70.0 (n=1)**",
    ]  # fmt: skip
    assert table_line(other, "—")[1:6] == ["last_e_nano", "bone", "t64_uniform", "",
                                           "60.0 (n=1)"]
    assert "X9" not in files["base.md"].split("**Notes**")[0]
    assert "X9,last_e_small,joint,t64_uniform,,synthetic,1,70.000" in files["other.csv"]


def test_mixed_datasets_are_separate_columns(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root, "a", dataset="synthetic", best=50.0)
    write_run(root, "b", dataset="ntu60_xsub", best=85.0)
    write_run(root, "c", dataset="ntu60_xsub", best=87.0, seed=1)
    md = report(root)["base.md"]
    header = md.splitlines()[2]
    assert header.index("synthetic") < header.index("ntu60_xsub")
    assert table_line(md, "B0")[3:7] == ["**50.0 (n=1)**", "", "**86.0 ± 1.4 (n=2)**", ""]


def test_varying_stream_splits_rows(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root, "b7", ablation="B7", best=90.0)
    write_run(root, "b14j", ablation="B14", best=91.0)
    write_run(root, "b14b", ablation="B14", best=92.0, stream="bone")
    md = report(root)["base.md"]
    rows = [ln for ln in md.splitlines() if "4-stream ensemble" in ln]
    assert len(rows) == 2
    assert "4-stream ensemble (joint)" in rows[0] and "+1.0" in rows[0]
    assert "4-stream ensemble (bone)" in rows[1] and "+2.0" in rows[1]


PAPER_LITERATURE = """\
| EfficientGCN-B0 | 88.3 | — | — | — | 150K |
| CTR-GCN (4s) | 92.4 | 96.8 | 88.9 | 90.6 | 1.7M |
| InfoGCN (6s) | 93.0 | 97.1 | 89.8 | 91.2 | 1.5M |
| HD-GCN (6s) | 93.4 | — | 90.1 | — | ~3M |
| HI-GCN | 93.3 | — | 90.3 | — | ~3-4M |
| EfficientGCN-B0 | 88.3 | 150K | — | — |"""


def test_paper_tables(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root, "b7a", ablation="B7", dataset="ntu60_xsub", best=90.0)
    write_run(root, "b7b", ablation="B7", dataset="ntu60_xsub", best=91.0, seed=1)
    write_run(root, "b7bone", ablation="B7", dataset="ntu60_xsub", best=10.0, stream="bone")
    write_run(root, "b7v", ablation="B7", dataset="ntu60_xview", best=95.0)
    write_run(root, "nano", ablation="L5", dataset="ntu60_xsub", best=80.0,
              model="last_lite_nano", params=60_123, flops=1.5e8, int8_bytes=15_360)  # fmt: skip
    files = report(root)
    paper = files["paper.md"]
    for line in PAPER_LITERATURE.splitlines():
        assert line in paper
    assert "| **LAST-Base (1s)** | 90.5 ± 0.7 (n=2) | 95.0 (n=1) | — | — | 4.2M |" in paper
    assert "| **LAST-Base (4s)** | — | — | — | — | ~16.8M |" in paper
    assert "| LAST-Lite nano (standalone) | 80.0 (n=1) | 60K | 0.15G | 15KB |" in paper
    assert "| LAST-Lite small (standalone) | — | ~190K | — | ~48KB |" in paper
    assert "\\toprule" in files["paper.tex"] and "CTR-GCN (4s) & 92.4" in files["paper.tex"]
    assert "undecided" in paper


@pytest.mark.parametrize(("l10", "due"), [(85.0, True), (89.0, False)])
def test_maskclr_rule(tmp_path: Path, l10: float, due: bool):
    root = tmp_path / "runs"
    write_run(root, "l10", ablation="L10", dataset="ntu60_xsub", best=l10,
              model="last_lite_small")  # fmt: skip
    write_run(root, "l11", ablation="L11", dataset="ntu60_xsub", best=l10 - 1,
              model="last_lite_small")  # fmt: skip
    files = report(root)
    for name in ("paper.md", "lite.md"):
        assert ("MaskCLR (L12) is due" in files[name]) is due
        assert ("not needed" in files[name]) is (not due)


def test_tex_is_booktabs_with_bold(store: Path):
    tex = report(store)["base.tex"]
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\textbf{93.0 $\\pm$ 1.0 (n=3)}" in tex
    assert "$-$ FreqGate" in tex


def test_output_is_byte_stable(store: Path, tmp_path: Path):
    df, problems = load_store(store, warn=False)
    write_tables(df, tmp_path / "o1", problems)
    df2, problems2 = load_store(store, warn=False)
    write_tables(df2.sample(frac=1.0, random_state=0), tmp_path / "o2", problems2)
    names = sorted(p.name for p in (tmp_path / "o1").iterdir())
    assert len([n for n in names if not n.endswith(".png")]) == 17  # 14 + 3 per-class csv
    for name in names:
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes()


def test_cli_writes_files_without_torch(store: Path, tmp_path: Path):
    out = tmp_path / "results"
    code = (
        "import sys; from lastexp.results.__main__ import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules; sys.exit(rc)"  # (Welch's p is SciPy's)
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--runs", str(store), "--out", str(out)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = {f"{n}.{e}" for n in ("base", "lite", "preprocessing", "paper") for e in
                ("md", "csv", "tex")} | {"other.md", "other.csv"}  # fmt: skip
    expected |= {f"{n}_per_class.csv" for n in ("base", "lite", "preprocessing")}
    assert {p.name for p in out.iterdir() if p.suffix != ".png"} == expected
    assert "| B1 | + CrossTemporalGCN | B0 |" in proc.stdout
    assert "9 runs read" in proc.stdout


def test_cli_module_entry_point(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "lastexp.results", "--runs", str(tmp_path / "none"), "--out",
         str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "paper.md").exists()


def test_plots_drawn_and_linked(store: Path, tmp_path: Path):
    pytest.importorskip("matplotlib")
    df, problems = load_store(store, warn=False)
    files = write_tables(df, tmp_path / "out", problems, provenance="x")
    assert (tmp_path / "out" / "base_delta.png").read_bytes()[:4] == b"\x89PNG"
    assert "](base_delta.png)" in files["base.md"]
    assert "](base_curves.png)" in files["base.md"]
    no_plots = write_tables(df, tmp_path / "bare", problems, provenance="x", plots=False)
    assert "png" not in no_plots["base.md"]


def test_b13_reports_the_swa_model_and_b14_final_weights_against_b7_final(tmp_path: Path):
    # SPEC §5 / the training plan §7: B13's cell is the SWA model; a Δ compares like with like,
    # so B13 and B14 (which report the model training ends with) are measured against B7's
    # final weights, not against its best epoch.
    root = tmp_path / "runs"
    b7_best, b7_final = [91.0, 92.0], [90.0, 90.5]
    b13_best, b13_swa = [91.0, 92.0], [90.2, 91.1]  # best epochs equal B7's: same path
    for i in range(2):
        write_run(root, f"b7_{i}", ablation="B7", seed=i, best=b7_best[i],
                  final_top1=b7_final[i])
        write_run(root, f"b13_{i}", ablation="B13", seed=i, best=b13_best[i],
                  final_top1=b7_final[i], swa_top1=b13_swa[i])
        write_run(root, f"b14_{i}", ablation="B14", seed=i, best=93.0 + i, final_top1=93.0 + i)
    write_run(root, "b13_old", ablation="B13", seed=5, best=95.0)  # written before swa_top1
    report = build_report(*load_store(root), provenance="x")
    md = report["base.md"]
    b13 = table_line(md, "B13")
    assert b13[3] == f"{statistics.fmean(b13_swa):.1f} ± {statistics.stdev(b13_swa):.1f} " \
                     "(n=2, 1 without swa_top1)"
    assert b13[4].startswith(f"{statistics.fmean(b13_swa) - statistics.fmean(b7_final):+.1f} ")
    b14 = table_line(md, "B14")
    assert b14[4].startswith(f"{93.5 - statistics.fmean(b7_final):+.1f} ")
    b7 = table_line(md, "B7")
    assert b7[3].startswith(f"{statistics.fmean(b7_best):.1f}")  # B7 itself: best epoch
    assert "B13: SWA model" in md and "baseline's final weights" in md
    lite = report["lite.md"]
    assert "best epoch of the trained weights for every row" in lite


def test_b14_ensemble_is_compared_with_b7_on_the_joint_stream(tmp_path: Path):
    # B14 is an ensemble of B7 on the four streams (the training plan §9A "4 × B7"); its runs say
    # stream "ensemble", which none of B7's rows shares. The paper's table sets it beside B7 on
    # the joint stream (LAST-Base 1s vs 4s), so its Δ is taken against that row's final weights.
    root = tmp_path / "runs"
    finals = {"joint": [86.9, 86.6], "bone": [85.7, 85.9], "velocity": [84.1, 84.3],
              "bone_velocity": [83.7, 83.9]}
    for stream, values in finals.items():
        for i, final in enumerate(values):
            write_run(root, f"b7_{stream}_{i}", ablation="B7", seed=i, stream=stream,
                      best=final + 0.3, final_top1=final)
    b14 = [89.0, 88.8]
    for i, top1 in enumerate(b14):
        write_run(root, f"b14_{i}", ablation="B14", seed=i, stream="ensemble", best=top1,
                  final_top1=top1)
    md = build_report(*load_store(root), provenance="x")["base.md"]
    cells = table_line(md, "B14")
    assert cells[4].startswith(f"{statistics.fmean(b14) - statistics.fmean(finals['joint']):+.1f}")
    assert "B14 is compared with B7 on joint" in md


def test_lite_notes_say_which_teacher_l11_used(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root, "l11_single", ablation="L11", model="last_lite_small", teacher="runs/B7_a")
    plain = build_report(*load_store(root), provenance="x")["lite.md"]
    assert "L11 and L12 from the same-stream B7 run" in plain and "four-stream" not in plain
    write_run(root, "l11_ens", ablation="L11", model="last_lite_small", seed=1,
              teacher_members=["runs/B7_j", "runs/B7_b", "runs/B7_v", "runs/B7_bv"])
    ens = build_report(*load_store(root), provenance="x")["lite.md"]
    assert "L11 include runs distilled from the four-stream ensemble" in ens
