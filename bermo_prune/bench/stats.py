"""Statistics for BERT-vs-BERMo comparisons: Pareto fronts, confidence intervals, paired tests, speed ratios.

Everything takes plain lists of numbers (one per seed) so reports can be checked against direct scipy calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates, sorted by remaining weights.

    A point is ``(remaining, accuracy)``: fewer remaining weights and higher accuracy are better. ``p`` dominates
    ``q`` when it is no worse in both and strictly better in one. Exact duplicates keep the first.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t confidence interval over seeds (NaN bounds for a single value)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    m = float(x.mean())
    if n == 1:
        return Interval(m, math.nan, math.nan, 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(m, m - half, m + half, n)


@dataclass(frozen=True)
class Paired:
    """BERMo minus BERT over seeds paired by seed."""

    n: int
    mean_difference: float
    ci_low: float
    ci_high: float
    t_statistic: float
    p_value: float
    wilcoxon_p: float
    effect_size_dz: float  # Cohen's d_z = mean(d) / sd(d)
    verdict: str


def paired_comparison(bert: Sequence[float], bermo: Sequence[float], alpha: float = 0.05) -> Paired:
    """Paired t-test (scipy ``ttest_rel``) and Wilcoxon signed-rank test of ``bermo - bert``, with d_z.

    The verdict is worded honestly: "no significant difference" unless the t-test rejects at ``alpha``.
    """
    a, b = np.asarray(bert, dtype=float), np.asarray(bermo, dtype=float)
    if a.shape != b.shape or len(a) < 2:
        raise ValueError("paired_comparison needs two equal-length lists of at least 2 paired values")
    d = b - a
    ci = mean_ci(d)
    sd = float(d.std(ddof=1))
    if sd == 0:
        t, p = (math.nan, 1.0) if d.mean() == 0 else (math.copysign(math.inf, d.mean()), 0.0)
        dz = 0.0 if d.mean() == 0 else math.copysign(math.inf, d.mean())
    else:
        res = stats.ttest_rel(b, a)
        t, p, dz = float(res.statistic), float(res.pvalue), float(d.mean() / sd)
    wp = float(stats.wilcoxon(b, a).pvalue) if np.any(d != 0) else 1.0
    if p < alpha:
        side = "higher" if d.mean() > 0 else "lower"
        verdict = f"BERMo {side} by {d.mean():+.4f} (paired t-test p={p:.3g}, n={len(d)})"
    else:
        verdict = f"no significant difference ({d.mean():+.4f}, paired t-test p={p:.3g}, n={len(d)})"
    return Paired(len(d), float(d.mean()), ci.low, ci.high, t, p, wp, dz, verdict)


def ratio_ci(numerator: Sequence[float], denominator: Sequence[float], confidence: float = 0.95) -> Interval:
    """Geometric-mean ratio of paired positive values (e.g. BERT steps / BERMo steps to a target accuracy), with a
    t interval computed on the log ratios."""
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if num.shape != den.shape or np.any(num <= 0) or np.any(den <= 0):
        raise ValueError("ratio_ci needs paired positive values")
    ci = mean_ci(np.log(num / den), confidence)
    return Interval(math.exp(ci.mean), math.exp(ci.low), math.exp(ci.high), ci.n)
