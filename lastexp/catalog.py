"""The ablation catalog of the training plan §9: the one place its IDs, texts, baselines and
budgets live.

The results tables, the sweep planner and the configs all read this module, so a renamed row
or a changed budget is edited here and nowhere else. No torch: importing it is cheap.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lastexp.runstore.metrics import is_completed

TableName = Literal["base", "lite", "preprocessing"]
Selection = Literal["best", "final", "swa"]

# Which weights a cell reports, the metrics.json key holding it, and how the notes name it.
SELECTION_KEY: dict[str, str] = {"best": "best_top1", "final": "final_top1", "swa": "swa_top1"}
SELECTION_TEXT: dict[str, str] = {
    "best": "best epoch of the trained weights",
    "final": "final weights (of an ensemble: its members' final-weight logits averaged)",
    "swa": "SWA model (averaged weights, BN statistics recomputed)",
}


def compared_rule(rule: Selection) -> Selection:
    """The rule a Δ reads its baseline under: a best-epoch row against the baseline's best
    epoch; a row reporting the model training ends with (final weights, SWA model, an ensemble
    of final weights) against the baseline's final weights, so no side picks an epoch on the
    test split the other does not."""
    return "best" if rule == "best" else "final"


@dataclass(frozen=True)
class Ablation:
    """One row of an ablation table; ``baseline`` is the row its Δ is measured against."""

    id: str
    table: TableName
    title: str  # the plan's "Experiment" column
    changes: str  # the plan's "What changes" column
    purpose: str
    gpu_hours: float  # the plan's budget for this row
    baseline: str | None
    selection: Selection = "best"  # which weights its cells report (SELECTION_KEY)


@dataclass(frozen=True)
class Table:
    """One ablation table: its heading and the plan's stated GPU budget for the whole table.

    ``budget_hours`` is the plan's own total ("~217h"); it need not equal the sum of the rows
    (for the Base table the rows add up to 237 h), see :func:`rows_budget`.
    """

    name: TableName
    title: str
    section: str
    budget_hours: float


TABLES: dict[str, Table] = {
    "base": Table("base", "LAST-Base ablations", "9A", 217.0),
    "lite": Table("lite", "LAST-Lite (ShiftFuse-GCN) ablations", "9B", 46.0),
    "preprocessing": Table("preprocessing", "Preprocessing ablations", "9C", 26.0),
}

_TABLE_OF_PREFIX: dict[str, TableName] = {"B": "base", "L": "lite", "P": "preprocessing"}


def _baseline(ablation_id: str) -> str | None:
    """Δ reference of the training plan §9: additions vs the bare baseline, removals vs the
    full model."""
    prefix, num = ablation_id[0], int(ablation_id[1:])
    if num == 0:
        return None
    if prefix == "B":
        return "B0" if num <= 7 else "B7"
    if prefix == "L":
        return "L0" if num <= 5 else "L5"
    return "P0"


def _a(ablation_id: str, title: str, changes: str, purpose: str, hours: float,
       selection: Selection = "best") -> Ablation:
    return Ablation(
        id=ablation_id,
        table=_TABLE_OF_PREFIX[ablation_id[0]],
        title=title,
        changes=changes,
        purpose=purpose,
        gpu_hours=float(hours),
        baseline=_baseline(ablation_id),
        selection=selection,
    )


# fmt: off
_ROWS = [
    _a("B0", "Baseline", "Standard GCN (SpatialGCN + TCN + residual, no novel modules)", "Pure conv baseline", 8),  # noqa: E501
    _a("B1", "+ CrossTemporalGCN", "Add temporal context to adjacency", "Measure HI-GCN contribution", 10),  # noqa: E501
    _a("B2", "+ ActionPrototypeGraph", "Add K=15 class-conditioned graphs (Idea B)", "Measure Idea B gain", 10),  # noqa: E501
    _a("B3", "+ FreqTemporalGate", "Add frequency-domain gating (Idea A)", "Measure frequency contribution", 10),  # noqa: E501
    _a("B4", "+ PartitionedAttention", "Add SkateFormer 4-type attention", "Measure partition attention gain", 12),  # noqa: E501
    _a("B5", "+ HBRA", "Add hierarchical body-region (Idea D)", "Measure body region gain", 12),
    _a("B6", "+ IB loss", "Add information bottleneck loss", "Measure IB contribution", 10),
    _a("B7", "Full LAST-Base", "All components", "Full model", 15),
    _a("B8", "− FreqGate", "Full minus Idea A", "Ablate frequency", 15),
    _a("B9", "− PrototypeGraph", "Full minus Idea B", "Ablate prototypes", 15),
    _a("B10", "− HBRA", "Full minus Idea D", "Ablate body regions", 15),
    _a("B11", "− PartitionedAttn (use factorized S+T)", "Replace SkateFormer with ST_JointAtt", "Partition vs factorized", 15),  # noqa: E501
    _a("B12", "+ CausalTraining", "Full + Idea E", "Measure causal training", 15),
    _a("B13", "+ SWA", "Full + weight averaging", "Measure SWA gain", 15, "swa"),
    _a("B14", "4-stream ensemble", "4 × B7", "Final ensemble accuracy", 60, "final"),
    _a("L0", "Baseline", "Random shift + EpSepTCN only", "Shift-GCN + EfficientGCN baseline", 3),
    _a("L1", "+ JointEmbed", "Add joint semantic embedding (SGN)", "Measure embedding gain", 3),
    _a("L2", "+ FrameGate", "Add frame dynamics gate (SGN)", "Measure temporal awareness", 3),
    _a("L3", "+ BodyRegionShift", "Replace random shift with BRASP (Idea F)", "Measure region shift gain", 3),  # noqa: E501
    _a("L4", "+ FrozenDCTGate", "Add frozen DCT frequency routing (Idea G)", "Measure frequency gain", 3),  # noqa: E501
    _a("L5", "Full ShiftFuse", "All components", "Full Lite model", 3),
    _a("L6", "− DCT Gate", "Full minus Idea G", "Ablate frequency routing", 3),
    _a("L7", "− JointEmbed", "Full minus embeddings", "Ablate identity encoding", 3),
    _a("L8", "− BodyRegionShift (use random)", "Full but random shift", "Ablate body-aware shift", 3),  # noqa: E501
    _a("L9", "+ CausalTraining", "Full + Idea E", "Measure causal training (Lite)", 3),
    _a("L10", "+ Distillation (from existing model)", "Full + KD from existing trained model", "Distillation from mid-size teacher", 4),  # noqa: E501
    _a("L11", "+ Distillation (from Base)", "Full + KD from LAST-Base", "Distillation from best teacher", 4),  # noqa: E501
    _a("L12", "+ MaskCLR → Distill", "Pretrained init + KD", "Full pipeline", 8),
    _a("P0", "T=64 uniform subsample (new)", "Recommended preprocessing", "Baseline comparison", 6),
    _a("P1", "T=300 store + crop 64 (current)", "Current pipeline", "Quantify preprocessing impact", 6),  # noqa: E501
    _a("P2", "T=120 uniform subsample", "Higher temporal resolution", "Measure T resolution gain", 8),  # noqa: E501
    _a("P3", "T=64 + M=2 (both bodies)", "Include second body", "Multi-person action impact", 6),
]
# fmt: on

ABLATIONS: dict[str, Ablation] = {a.id: a for a in _ROWS}


def ids(table: str | None = None) -> list[str]:
    """Ablation IDs in seed order, of one table or (``None``) of all three."""
    if table is not None and table not in TABLES:
        raise KeyError(f"unknown ablation table {table!r}; valid: {', '.join(TABLES)}")
    return [a.id for a in ABLATIONS.values() if table is None or a.table == table]


def sweep_ids(table: str) -> str:
    """A table's IDs as one sweep value, ``B0,B1,...``: what ``${lastexp_ablations:<table>}``
    in sweeps/<table>.yaml resolves to, so a new catalog row joins its table's sweep (and the
    tests that read :func:`ids`) with no other edit."""
    return ",".join(ids(table))


def get(ablation_id: str) -> Ablation:
    """The catalog row for ``ablation_id``; a ``KeyError`` naming every valid ID otherwise."""
    try:
        return ABLATIONS[ablation_id]
    except KeyError:
        raise KeyError(
            f"unknown ablation {ablation_id!r}; valid IDs: {', '.join(ABLATIONS)}"
        ) from None


def rows_budget(table: str) -> float:
    """Sum of the per-row GPU-hour budgets of ``table`` (may differ from the plan's total)."""
    return sum(ABLATIONS[i].gpu_hours for i in ids(table))


# The training plan §4 "When to Activate": "If Phase 2 distillation gives LAST-Lite small < 88%
# (below EfficientGCN-B0), add MaskCLR pretraining before distillation"; §11: "L12: MaskCLR +
# distill (if L10/L11 < 88%)". EfficientGCN-B0's 88.3 is the NTU-60 xsub column of §10.
MASKCLR_THRESHOLD = 88.0
MASKCLR_ROWS = ("L10", "L11")  # Phase 2: distillation from the existing model, from LAST-Base
MASKCLR_MODEL = "last_lite_small"
MASKCLR_DATASET = "ntu60_xsub"


def maskclr_decision(runs: Iterable[Mapping[str, Any]]) -> tuple[bool, str, float] | None:
    """The training plan §4's MaskCLR rule over runs' metrics (plain dicts, as metrics.json
    holds them): ``(due, row, mean)``, or None while no L10/L11 result exists.

    A row's result is the mean over its completed runs of LAST-Lite small on NTU-60 xsub of the
    number its selection rule reports (best_top1): the cell the §10 LAST-Lite table prints. The
    better of L10 and L11 is Phase 2's result (the first on a tie); MaskCLR (L12) is due when it
    is below 88%. Each run should be one seed (callers resolve duplicate seeds).
    """
    values: dict[str, list[float]] = {row: [] for row in MASKCLR_ROWS}
    for m in runs:
        row = m.get("ablation")
        if (row not in values or not is_completed(m)
                or m.get("model") != MASKCLR_MODEL or m.get("dataset") != MASKCLR_DATASET):
            continue
        value = m.get(SELECTION_KEY[ABLATIONS[row].selection])
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            values[row].append(float(value))
    means = [(statistics.fmean(v), row) for row, v in values.items() if v]
    if not means:
        return None
    mean, row = max(means, key=lambda t: t[0])  # max keeps the first of equal means
    return mean < MASKCLR_THRESHOLD, row, mean
