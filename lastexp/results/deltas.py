"""The Δ of a table row against its baseline row on a dataset, with every statistic the csv
reports: Welch's test and interval, the exact McNemar test on the per-sample predictions pooled
over matched seeds, seeds for power, and Holm's correction over a table's Δs on a dataset."""

from __future__ import annotations

from dataclasses import dataclass

from lastexp import catalog
from lastexp.results.aggregate import Cell, Row, Runs, table_rows_cache
from lastexp.results.predictions import PredictionReader, discordant
from lastexp.results.stats import holm, mcnemar_exact, seeds_for_power, welch_test


@dataclass
class Delta:
    """A row's Δ against its baseline on one dataset, with every statistic the csv reports."""

    value: float | None = None  # mean difference; None when refused
    refused: str = ""  # why no Δ is shown (different selection protocols)
    p_value: float | None = None  # Welch's two-sided p (n >= 2 both sides)
    ci95: tuple[float, float] | None = None  # Welch's 95% interval of the difference
    b: int | None = None  # McNemar's discordant counts, summed over matched seeds
    c: int | None = None
    mcnemar_seeds: int = 0  # matched seeds pooled into b and c
    no_predictions: int = 0  # matched seeds lacking per-sample predictions on a side
    p_mcnemar: float | None = None
    p_value_holm: float | None = None
    p_mcnemar_holm: float | None = None
    seeds_for_power: int | None = None
    both_n2: bool = False  # both sides have n >= 2: the marker reads Welch's test

    @property
    def marker_test(self) -> str:
        """``Welch`` or ``McNemar``: the test whose Holm-adjusted p decides the marker."""
        return "Welch" if self.both_n2 else "McNemar"

    @property
    def marked(self) -> bool:
        p = self.p_value_holm if self.both_n2 else self.p_mcnemar_holm
        return p is not None and p < 0.05

    def as_pair(self) -> tuple[float, float | None] | None:
        return None if self.value is None else (self.value, self.p_value)


def _seed_runs(cell: Cell) -> dict[float, str]:
    return {s: d for s, d in zip(cell.seeds, cell.run_dirs) if s is not None and s == s}


def compute_delta(row: Row, dataset: str, predictions: PredictionReader | None) -> Delta | None:
    """The Δ of ``row``'s main config vs its baseline's main config on ``dataset`` (None when
    there is no baseline or a side has no completed run); its tests before Holm's correction."""
    if row.baseline_row is None:
        return None
    base_rule = catalog.compared_rule(row.rule)
    mine = row.cell(dataset)
    base = row.baseline_row.cell(dataset, base_rule)
    if not mine.values or not base.values:
        return None
    if len(mine.protocols | base.protocols) > 1:
        return Delta(refused="the two sides selected their epoch on different splits")
    d = Delta(value=mine.mean - base.mean, both_n2=mine.n >= 2 and base.n >= 2)
    d.p_value, d.ci95 = welch_test(mine.values, base.values)
    d.seeds_for_power = seeds_for_power(d.value, mine.values, base.values)
    mine_runs, base_runs = _seed_runs(mine), _seed_runs(base)
    matched = sorted(set(mine_runs) & set(base_runs))
    b = c = 0
    for seed in matched:
        rp = predictions.get(mine_runs[seed], row.rule) if predictions else None
        bp = predictions.get(base_runs[seed], base_rule) if predictions else None
        counts = discordant(rp, bp) if rp is not None and bp is not None else None
        if counts is None:
            d.no_predictions += 1
            continue
        b, c = b + counts[0], c + counts[1]
        d.mcnemar_seeds += 1
    if matched and not d.no_predictions:
        d.b, d.c = b, c
        d.p_mcnemar = mcnemar_exact(b, c)
    return d


def table_deltas(table: str, runs: Runs, datasets: list[str]) -> dict[tuple[int, str], Delta]:
    """Every Δ of a table on ``datasets``, keyed by (id(row), dataset), with Holm's correction
    applied over the table's Δs on each dataset, Welch's and McNemar's families separately."""
    rows = table_rows_cache(runs, table)
    out: dict[tuple[int, str], Delta] = {}
    for ds in datasets:
        key = f"{table}:{ds}"
        if key not in runs.deltas_cache:
            here = {}
            for row in rows:
                d = compute_delta(row, ds, runs.predictions)
                if d is not None:
                    here[(id(row), ds)] = d
            for attr, adjusted in (("p_value", "p_value_holm"),
                                   ("p_mcnemar", "p_mcnemar_holm")):
                family = [d for d in here.values() if getattr(d, attr) is not None]
                for d, p in zip(family, holm([getattr(d, attr) for d in family])):
                    setattr(d, adjusted, p)
            runs.deltas_cache[key] = here
        out.update(runs.deltas_cache[key])
    return out
