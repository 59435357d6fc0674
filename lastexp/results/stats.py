"""Summary statistics of the results tables, each computed by the library that defines it:
Welch's t-test and its interval (``scipy.stats.ttest_ind(equal_var=False)``), the t-interval of
a mean (``scipy.stats.t``), the exact McNemar test (``scipy.stats.binomtest``), Holm's
correction (``statsmodels.stats.multitest.multipletests``) and the seeds needed for power
(``statsmodels.stats.power.TTestIndPower``)."""

from __future__ import annotations

import gc
import math
import statistics
import warnings

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

ALPHA = 0.05  # the tests' level, the intervals' 1 - confidence, the power analysis' α
POWER = 0.8
_SEARCH_N = np.arange(2, 34)  # seeds a table plausibly runs; solve_power beyond


def _ttest(a: list[float], b: list[float]):
    if len(a) < 2 or len(b) < 2:
        return None
    se2 = statistics.variance(a) / len(a) + statistics.variance(b) / len(b)
    if se2 <= 0.0:
        return None
    with warnings.catch_warnings():  # near-identical seeds: SciPy warns of precision loss
        warnings.simplefilter("ignore", RuntimeWarning)
        return stats.ttest_ind(a, b, equal_var=False)


def welch_test(a: list[float], b: list[float]
               ) -> tuple[float, tuple[float, float]] | tuple[None, None]:
    """Welch's two-sided p and the 95% interval of ``mean(a) - mean(b)`` from one
    ``scipy.stats.ttest_ind(a, b, equal_var=False)``; ``(None, None)`` where undefined."""
    res = _ttest(a, b)
    if res is None:
        return None, None
    ci = res.confidence_interval(1 - ALPHA)
    return min(1.0, max(0.0, float(res.pvalue))), (float(ci.low), float(ci.high))


def welch(a: list[float], b: list[float]) -> tuple[float, float, float] | None:
    """Welch's unequal-variance t-test: ``(t, dof, two-sided p)`` of
    ``scipy.stats.ttest_ind(a, b, equal_var=False)``, or ``None`` when undefined (n < 2 on a
    side, or a zero pooled standard error, where SciPy would answer NaN)."""
    res = _ttest(a, b)
    if res is None:
        return None
    return float(res.statistic), float(res.df), min(1.0, max(0.0, float(res.pvalue)))


def welch_interval(a: list[float], b: list[float]) -> tuple[float, float] | None:
    """The 95% interval of ``mean(a) - mean(b)`` from Welch's test (SciPy's
    ``confidence_interval()``); None where :func:`welch` is undefined."""
    res = _ttest(a, b)
    if res is None:
        return None
    ci = res.confidence_interval(1 - ALPHA)
    return float(ci.low), float(ci.high)


def mean_interval(values: list[float]) -> tuple[float, float] | None:
    """The 95% t-interval of the mean over seeds (``scipy.stats.t.interval``), n >= 2; a
    zero spread gives the mean itself on both ends."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(len(values))
    if sem == 0.0:
        return mean, mean
    low, high = stats.t.interval(1 - ALPHA, len(values) - 1, loc=mean, scale=sem)
    return float(low), float(high)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: ``scipy.stats.binomtest(b, b + c, 0.5)``, with b and c the
    discordant counts; 1.0 when there is no discordant sample (the two agree everywhere)."""
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(b, b + c, 0.5).pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given (statsmodels')."""
    if not pvalues:
        return []
    # multipletests ends with gc.collect(), a full pass over every live object (seconds on a
    # 10,000-run store); frozen objects are skipped, so freeze what exists around the call.
    gc.freeze()
    try:
        return [float(p) for p in multipletests(pvalues, alpha=ALPHA, method="holm")[1]]
    finally:
        gc.unfreeze()


def seeds_for_power(delta: float, a: list[float], b: list[float]) -> int | None:
    """Seeds per side for 80% power at α = 0.05 (two-sided two-sample t-test) to detect
    ``delta`` given the pooled seed std of ``a`` and ``b``: statsmodels' ``solve_power``,
    rounded up. None when n < 2 on a side, or the pooled std or Δ is zero."""
    if len(a) < 2 or len(b) < 2:
        return None
    pooled = ((len(a) - 1) * statistics.variance(a) + (len(b) - 1) * statistics.variance(b)) \
        / (len(a) + len(b) - 2)
    if pooled <= 0.0 or delta == 0.0:
        return None
    effect = abs(delta) / math.sqrt(pooled)
    analysis = TTestIndPower()
    # Power grows with the effect; at d >= 8 two seeds per side have > 95% (statsmodels' own
    # power() turns NaN for very large d, and solve_power does not converge below n = 2).
    if effect >= 8.0:
        return 2
    # The smallest n whose power reaches 80% (= solve_power rounded up, power growing with n),
    # from one vectorised power() over n = 2..SEARCH_N; solve_power's root finder beyond it.
    with np.errstate(all="ignore"):
        powers = analysis.power(effect_size=effect, nobs1=_SEARCH_N, alpha=ALPHA, ratio=1.0)
    reached = np.flatnonzero(~(powers < POWER))  # NaN counts as reached: d is huge
    if len(reached):
        return int(_SEARCH_N[reached[0]])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n = analysis.solve_power(effect_size=effect, alpha=ALPHA, power=POWER,
                                       ratio=1.0, alternative="two-sided")
    except (ValueError, RuntimeError):
        return None
    n = float(n[0] if hasattr(n, "__len__") else n)
    return max(2, math.ceil(n)) if math.isfinite(n) else None


def median(values: list[float | None]) -> float | None:
    """The median of the known values (None and NaN left out); None when there are none."""
    vals = [float(v) for v in values if v is not None and v == v]
    return statistics.median(vals) if vals else None
