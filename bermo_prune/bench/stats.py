"""Statistics for BERT-vs-BERMo comparisons: Pareto fronts, confidence intervals, paired tests, speed ratios.

Everything takes plain lists of numbers (one per seed) so reports can be checked against direct scipy calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: A level is reached up to this float slack: a level such as 95% of a mean of k/n accuracies can equal some j/n in
#: exact arithmetic yet round one ulp above it (0.9 * mean(0.700, 0.840) = 0.6930000000000001), and a tie must count as
#: reached whatever the rounding. A level f * sum(k) / (m * n) that is no tie lies at least 1 / (q * m * n) from every
#: j/n (f = p/q in lowest terms, m dense seeds, n examples): 1.9e-5 for 95% of 3 seeds on 872 sentences, so the slack
#: can only merge a near miss with a tie where q * m * n exceeds 10^9. Where the curve is on another grid than the level
#: (a dev subset of s examples, or a 3-point running mean of it, against a level from full-dev means), the bound is
#: 1 / lcm(q * m * n, 3 * s): at least 1.3e-8 for the committed specs.
LEVEL_TOLERANCE = 1e-9
#: a spread of values (units' log ratios, units' accuracy differences) at or below this is rounding, not data: the
#: mean of identical values can differ from them in the last bit, which gave t-intervals of width 1e-16 that
#: "lay above 1"; distinct accuracies on a dev set differ by at least 1/n and distinct log ratios of step counts by
#: far more than this
SPREAD_TOLERANCE = 1e-12


def no_spread(values: Sequence[float]) -> bool:
    """Whether ``values`` are all equal up to rounding (:data:`SPREAD_TOLERANCE`)."""
    return float(max(values)) - float(min(values)) <= SPREAD_TOLERANCE


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


def mean_ci(
    values: Sequence[float], confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> Interval:
    """Mean and Student-t confidence interval over seeds (NaN bounds for a single value), clipped to ``bounds``
    when given (an accuracy's interval never leaves [0, 1], a difference of accuracies never leaves [-1, 1]).
    Only for unimodal values: a mix of collapsed and learned runs gets counts and :func:`median_range`."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    m = float(x.mean())
    if n == 1:
        return Interval(m, math.nan, math.nan, 1)
    # values equal up to rounding: no width (their SD's last-bit noise gave intervals such as 1.5 to
    # 1.5000000000000002 that "lay above 1"; every caller's low == high check relies on this)
    spread = no_spread(x)
    half = 0.0 if spread else float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    low, high = (m, m) if spread else (m - half, m + half)
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(m, low, high, n)


def median_range(values: Sequence[float]) -> Interval:
    """Median, minimum and maximum (``mean`` holds the median): the summary of a handful of runs that makes no
    distributional assumption (NaN everywhere for no values)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    return Interval(float(np.median(x)), float(x.min()), float(x.max()), len(x))


def median_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Median and its distribution-free confidence interval: the order statistics ``x(r)`` and ``x(n + 1 - r)``
    with the largest ``r`` whose coverage, ``1 - 2 P(Binomial(n, 1/2) <= r - 1)``, is at least ``confidence``
    (any continuous distribution; at 95% from 6 values on, where ``[min, max]`` covers 96.9%). NaN bounds where
    even ``[min, max]`` covers less (``1 - 2 / 2^n``: 75% at 3 values, 93.8% at 5)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    med = float(np.median(x))
    r = median_ci_rank(n, confidence)
    if r == 0:
        return Interval(med, math.nan, math.nan, n)
    return Interval(med, float(x[r - 1]), float(x[n - r]), n)


def median_ci_rank(n: int, confidence: float = 0.95) -> int:
    """The ``r`` of :func:`median_ci` for ``n`` values (0: no interval reaches ``confidence``)."""
    r = 0
    while r + 1 <= n // 2 and median_ci_coverage(n, r + 1) >= confidence:
        r += 1
    return r


def median_ci_coverage(n: int, r: int) -> float:
    """The coverage of ``[x(r), x(n + 1 - r)]`` as an interval for the median of ``n`` values."""
    return 1 - 2 * float(stats.binom.cdf(r - 1, n, 0.5))


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided p-value the exact Wilcoxon signed-rank test can give on ``n`` pairs (every
    difference of one sign): 2 / 2^n, so 0.25 at 3 pairs and below 0.05 only from 6 pairs on."""
    return min(1.0, 2.0 / 2**n) if n > 0 else 1.0


def rate_upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen in ``k`` of ``n`` units: the highest true rate that
    would give ``k`` or fewer events with probability at least ``1 - confidence``; 1 - 0.05^(1/n) at ``k`` = 0
    (0.39 at 6 units)."""
    if n <= 0:
        return 1.0
    return 1.0 if k >= n else float(stats.beta.ppf(confidence, k + 1, n - k))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of two classifiers scored on the same examples, from the discordant
    counts: ``b`` examples only the first gets right, ``c`` only the second (a binomial test of b in b + c at
    one half; 1 when they never disagree)."""
    return float(stats.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0


def fisher_min_p(n1: int, n2: int) -> float:
    """The smallest one-sided Fisher exact p-value two groups of ``n1`` and ``n2`` units can give (all of one
    group with the event, none of the other): 1 / C(n1 + n2, n1); 0.05 at 3 units against 3."""
    return 1.0 / math.comb(n1 + n2, n1) if n1 and n2 else 1.0


@dataclass(frozen=True)
class Fisher:
    """One-sided Fisher exact test that group A has the event more often than group B, on unit counts."""

    a: int
    n_a: int
    b: int
    n_b: int
    p_value: float
    min_p: float  # the smallest p these group sizes can give: >= alpha means the test cannot decide

    def can_decide(self, alpha: float = 0.05) -> bool:
        return self.min_p < alpha


def fisher_greater(a: int, n_a: int, b: int, n_b: int) -> Fisher:
    """scipy ``fisher_exact([[a, n_a - a], [b, n_b - b]], alternative="greater")`` with its minimum attainable p."""
    p = (
        float(stats.fisher_exact([[a, n_a - a], [b, n_b - b]], alternative="greater")[1])
        if n_a and n_b
        else 1.0
    )
    return Fisher(a, n_a, b, n_b, p, fisher_min_p(n_a, n_b))


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
    wilcoxon_min_p: float = math.nan  # the smallest p the exact Wilcoxon test can give at this n

    def wilcoxon_text(self, alpha: float = 0.05) -> str:
        """The Wilcoxon p, or "cannot decide" when no outcome at this n could reach ``alpha``."""
        if self.wilcoxon_min_p >= alpha:
            return f"cannot decide (min p {self.wilcoxon_min_p:.3g} at n={self.n})"
        return f"{self.wilcoxon_p:.3g}"


def paired_comparison(bert: Sequence[float], bermo: Sequence[float], alpha: float = 0.05) -> Paired:
    """Paired t-test (scipy ``ttest_rel``) and Wilcoxon signed-rank test of ``bermo - bert``, with d_z; the
    interval of the mean difference is clipped to [-1, 1] (differences of accuracies).

    The verdict is worded honestly: "no significant difference" unless the t-test rejects at ``alpha``. The
    Wilcoxon test is run only where it can reach ``alpha`` (6 pairs or more); below that ``wilcoxon_p`` is NaN.
    Only for pairs of runs that all learned: a mix of collapsed and learned runs is bimodal.
    """
    a, b = np.asarray(bert, dtype=float), np.asarray(bermo, dtype=float)
    if a.shape != b.shape or len(a) < 2:
        raise ValueError("paired_comparison needs two equal-length lists of at least 2 paired values")
    d = b - a
    ci = mean_ci(d, bounds=(-1.0, 1.0))
    sd = float(d.std(ddof=1))
    if sd == 0:
        t, p = (math.nan, 1.0) if d.mean() == 0 else (math.copysign(math.inf, d.mean()), 0.0)
        dz = 0.0 if d.mean() == 0 else math.copysign(math.inf, d.mean())
    else:
        res = stats.ttest_rel(b, a)
        t, p, dz = float(res.statistic), float(res.pvalue), float(d.mean() / sd)
    min_wp = wilcoxon_min_p(int(np.count_nonzero(d)))
    wp = math.nan if min_wp >= alpha else float(stats.wilcoxon(b, a).pvalue)
    if p < alpha:
        side = "higher" if d.mean() > 0 else "lower"
        verdict = f"BERMo {side} by {d.mean():+.4f} (paired t-test p={p:.3g}, n={len(d)})"
    else:
        verdict = f"no significant difference ({d.mean():+.4f}, paired t-test p={p:.3g}, n={len(d)})"
    return Paired(len(d), float(d.mean()), ci.low, ci.high, t, p, wp, dz, verdict, min_wp)


def ratio_ci(numerator: Sequence[float], denominator: Sequence[float], confidence: float = 0.95) -> Interval:
    """Geometric-mean ratio of paired positive values (e.g. BERT steps / BERMo steps to a target accuracy), with a
    t interval computed on the log ratios."""
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if num.shape != den.shape or np.any(num <= 0) or np.any(den <= 0):
        raise ValueError("ratio_ci needs paired positive values")
    ci = mean_ci(np.log(num / den), confidence)
    return Interval(math.exp(ci.mean), math.exp(ci.low), math.exp(ci.high), ci.n)
