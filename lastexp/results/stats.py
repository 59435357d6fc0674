"""Summary statistics of the results tables: Welch's t-test (SciPy's) and a NaN-aware median."""

from __future__ import annotations

import statistics
import warnings


def welch(a: list[float], b: list[float]) -> tuple[float, float, float] | None:
    """Welch's unequal-variance t-test: ``(t, dof, two-sided p)`` of
    ``scipy.stats.ttest_ind(a, b, equal_var=False)``, or ``None`` when undefined (n < 2 on a
    side, or a zero pooled standard error, where SciPy would answer NaN)."""
    if len(a) < 2 or len(b) < 2:
        return None
    se2 = statistics.variance(a) / len(a) + statistics.variance(b) / len(b)
    if se2 <= 0.0:
        return None
    from scipy import stats  # imported when a Δ first needs it

    with warnings.catch_warnings():  # near-identical seeds: SciPy warns of precision loss
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.df), min(1.0, max(0.0, float(res.pvalue)))


def median(values: list[float | None]) -> float | None:
    """The median of the known values (None and NaN left out); None when there are none."""
    vals = [float(v) for v in values if v is not None and v == v]
    return statistics.median(vals) if vals else None
