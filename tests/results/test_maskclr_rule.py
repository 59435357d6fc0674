"""The MaskCLR decision of the training plan, in one function that the results tables and
``python -m lastexp.plan`` both state.

The plan's words (the training plan, the file ``seeds/001``):
- §4 "When to Activate" (line 187): "If Phase 2 distillation gives LAST-Lite small < 88% (below
  EfficientGCN-B0), add MaskCLR pretraining before distillation."
- §1 (line 28): "Phase 3: MaskCLR Pretraining (conditional — only if Phase 2 < 88%)".
- §11 (line 424): "L12: MaskCLR + distill (if L10/L11 < 88%)".
- §10 (line 394): EfficientGCN-B0's 88.3 sits in the LAST-Lite table's NTU-60 xsub column,
  whose cells are means over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lastexp import catalog
from lastexp.plan import maskclr_due_note
from lastexp.results import build_report, load_store
from tests.results.test_results import write_run


def run(ablation: str = "L11", best: float = 87.0, *, seed: int = 1,
        model: str = "last_lite_small", dataset: str = "ntu60_xsub",
        status: str = "completed", **extra: object) -> dict:
    return {"ablation": ablation, "model": model, "dataset": dataset, "stream": "joint",
            "seed": seed, "status": status, "best_top1": best, **extra}  # fmt: skip


def test_the_rule_reads_the_notes_numbers():
    assert (catalog.MASKCLR_ROWS, catalog.MASKCLR_MODEL, catalog.MASKCLR_DATASET) == (
        ("L10", "L11"), "last_lite_small", "ntu60_xsub")  # fmt: skip
    assert catalog.MASKCLR_THRESHOLD == 88.0  # "< 88%", below EfficientGCN-B0's 88.3


def test_mean_over_seeds_not_the_best_seed():
    # Seeds 87.4 and 88.3: the table's cell is 87.85 < 88, so L12 is due, though one seed passed.
    assert catalog.maskclr_decision([run(best=87.4), run(best=88.3, seed=2)]) == (
        True, "L11", pytest.approx(87.85))  # fmt: skip


@pytest.mark.parametrize(("values", "due"), [([88.0], False), ([87.99], True), ([88.2, 88.0],
                                                                                False)])
def test_below_88_is_due_88_is_not(values: list[float], due: bool):
    runs = [run(best=v, seed=i) for i, v in enumerate(values)]
    assert catalog.maskclr_decision(runs)[0] is due


def test_either_phase_2_distillation_reaching_88_is_enough():
    # L10 (from the existing model) at 87.0, L11 (from Base) at 88.5: Phase 2 gives 88.5.
    assert catalog.maskclr_decision([run("L10", 87.0), run("L11", 88.5)]) == (False, "L11", 88.5)
    assert catalog.maskclr_decision([run("L10", 86.0), run("L11", 85.0)]) == (True, "L10", 86.0)
    assert catalog.maskclr_decision([run("L10", 86.0), run("L11", 86.0)])[1] == "L10"  # a tie


def test_only_lite_small_on_ntu60_xsub_counts():
    nano = run("L10", 90.0, model="last_lite_nano")
    xview = run("L11", 92.0, dataset="ntu60_xview")
    assert catalog.maskclr_decision([nano, xview, run("L10", 85.0)]) == (True, "L10", 85.0)
    assert catalog.maskclr_decision([nano, xview]) is None


def test_other_rows_incomplete_runs_and_non_numbers_do_not_count():
    others = [run("L12", 80.0), run("L5", 80.0), run(status="failed", best=10.0),
              run(status="running", best=10.0), run(best=float("nan")), run(best=None),
              run(best=True)]  # fmt: skip
    assert catalog.maskclr_decision(others) is None
    assert catalog.maskclr_decision([*others, run(best=89.0)]) == (False, "L11", 89.0)


def test_the_rows_selection_rule_gives_the_number():
    # L10/L11 report the best epoch (the training plan §7): final_top1 does not decide.
    assert catalog.maskclr_decision([run(best=88.5, final_top1=80.0)]) == (False, "L11", 88.5)


@pytest.mark.parametrize(("seeds", "due"), [((87.4, 88.3), True), ((88.1, 88.3), False),
                                            ((86.0, 87.5), True)])
def test_tables_and_plan_state_the_same_decision(tmp_path: Path, seeds: tuple[float, float],
                                                 due: bool):
    root = tmp_path / "runs"
    for i, best in enumerate(seeds):
        write_run(root, f"l11_{i}", ablation="L11", seed=i, best=best, dataset="ntu60_xsub",
                  model="last_lite_small")  # fmt: skip
    write_run(root, "l10_nano", ablation="L10", best=91.0, dataset="ntu60_xsub",
              model="last_lite_nano")  # fmt: skip
    files = build_report(*load_store(root, warn=False), provenance="x")
    mean = f"{sum(seeds) / 2:.1f}%"
    for name in ("lite.md", "paper.md"):
        assert ("**MaskCLR (L12) is due**" in files[name]) is due
        assert f"the best distilled Lite result is L11 at {mean} on ntu60_xsub" in files[name]
    note = maskclr_due_note(str(root))
    assert (note is not None) is due
    if due:
        assert "L11 (last_lite_small, mean over seeds), is " + mean + " < 88%; run L12" in note


def test_plan_says_nothing_before_a_result(tmp_path: Path):
    root = tmp_path / "runs"
    (root / "l11").mkdir(parents=True)
    (root / "l11" / "metrics.json").write_text(json.dumps(run(status="running", best=50.0)))
    assert maskclr_due_note(str(root)) is None
    assert catalog.maskclr_decision([run(status="running", best=50.0)]) is None


def test_tables_undecided_on_nano_runs_alone(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root, "l10_nano", ablation="L10", best=91.0, dataset="ntu60_xsub",
              model="last_lite_nano")  # fmt: skip
    lite = build_report(*load_store(root, warn=False), provenance="x")["lite.md"]
    assert ("undecided — no completed L10/L11 run of last_lite_small on ntu60_xsub yet."
            in lite)
    assert maskclr_due_note(str(root)) is None


def test_plan_and_tables_resolve_a_duplicated_seed_alike(tmp_path: Path):
    # Seed 1 of L11 trained twice (a rerun in a SLURM job dir): the tables keep the newest run
    # (88.6), so Phase 2 gives mean(88.6, 88.2) = 88.4 and MaskCLR is not due. Counting the old
    # 85.0 too, the planner would have said 87.3 < 88 and asked for L12.
    root = tmp_path / "runs"
    write_run(root, "slurm/17/0", ablation="L11", seed=1, best=85.0, dataset="ntu60_xsub",
              model="last_lite_small", finished="2025-01-02T10:00:00")  # fmt: skip
    write_run(root, "l11_s1", ablation="L11", seed=1, best=88.6, dataset="ntu60_xsub",
              model="last_lite_small", finished="2025-01-05T10:00:00")  # fmt: skip
    write_run(root, "l11_s2", ablation="L11", seed=2, best=88.2, dataset="ntu60_xsub",
              model="last_lite_small")  # fmt: skip
    lite = build_report(*load_store(root, warn=False), provenance="x")["lite.md"]
    assert "**MaskCLR (L12) is due**" not in lite
    assert "the best distilled Lite result is L11 at 88.4% on ntu60_xsub" in lite
    assert "kept `l11_s1`, ignored `slurm/17/0`" in lite
    assert maskclr_due_note(str(root)) is None
