"""Benchmark statistics against hand-made points and direct scipy calls."""

import math

import numpy as np
import pytest
from scipy import stats

from bermo_prune.bench.stats import (
    fisher_greater,
    fisher_min_p,
    mcnemar_exact,
    mean_ci,
    median_ci,
    median_ci_coverage,
    median_ci_rank,
    median_range,
    paired_comparison,
    pareto_front,
    rate_upper_bound,
    ratio_ci,
    wilcoxon_min_p,
)


def test_pareto_front_on_hand_made_points():
    points = [
        (0.50, 0.90),  # 0: front (densest, best)
        (0.30, 0.88),  # 1: dominated by 3 (fewer weights, higher accuracy)
        (0.30, 0.85),  # 2: dominated by 1 and 3
        (0.20, 0.89),  # 3: front
        (0.10, 0.80),  # 4: front
        (0.05, 0.70),  # 5: front
        (0.10, 0.75),  # 6: dominated by 4
        (0.50, 0.85),  # 7: dominated by 0
    ]
    assert pareto_front(points) == [5, 4, 3, 0]
    assert pareto_front([(0.1, 0.8), (0.1, 0.8)]) == [0]
    assert pareto_front([]) == []


def test_mean_ci_matches_scipy():
    x = [0.81, 0.84, 0.79, 0.83]
    ci = mean_ci(x)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert (ci.mean, ci.low, ci.high, ci.n) == pytest.approx((np.mean(x), low, high, 4))
    one = mean_ci([0.5])
    assert one.mean == 0.5 and math.isnan(one.low) and math.isnan(one.high)


def test_paired_comparison_matches_scipy_and_words_the_verdict():
    bert = [0.80, 0.82, 0.79, 0.81, 0.83]
    bermo = [0.82, 0.83, 0.81, 0.84, 0.84]
    r = paired_comparison(bert, bermo)
    t = stats.ttest_rel(bermo, bert)
    d = np.subtract(bermo, bert)
    assert r.t_statistic == pytest.approx(t.statistic) and r.p_value == pytest.approx(t.pvalue)
    # 5 pairs: the exact Wilcoxon test's smallest p is 2/2^5 = 0.0625, so it is not run and says so
    assert math.isnan(r.wilcoxon_p) and r.wilcoxon_min_p == pytest.approx(0.0625)
    assert r.wilcoxon_text() == "cannot decide (min p 0.0625 at n=5)"
    six = paired_comparison([*bert, 0.80], [*bermo, 0.83])
    assert six.wilcoxon_p == pytest.approx(stats.wilcoxon([*bermo, 0.83], [*bert, 0.80]).pvalue)
    assert six.wilcoxon_text() == f"{six.wilcoxon_p:.3g}"
    assert r.effect_size_dz == pytest.approx(d.mean() / d.std(ddof=1))
    assert r.verdict.startswith("BERMo higher by +0.0180")
    noisy = paired_comparison([0.80, 0.85, 0.78], [0.82, 0.80, 0.79])
    assert noisy.verdict.startswith("no significant difference")
    with pytest.raises(ValueError):
        paired_comparison([0.8], [0.9])


def test_ratio_ci_is_a_geometric_mean_with_a_log_t_interval():
    bert_steps, bermo_steps = [1000, 1200, 900], [600, 800, 500]
    r = ratio_ci(bert_steps, bermo_steps)
    logs = np.log(np.divide(bert_steps, bermo_steps))
    low, high = stats.t.interval(0.95, 2, loc=logs.mean(), scale=stats.sem(logs))
    assert (r.mean, r.low, r.high) == pytest.approx((math.exp(logs.mean()), math.exp(low), math.exp(high)))
    with pytest.raises(ValueError):
        ratio_ci([1, 2], [0, 1])


def test_intervals_stay_in_their_bounds_and_bimodal_values_get_a_median_and_range():
    """The committed study's BERT movement cell at 3% (0.509, 0.509, 0.767) gave a Student-t interval of 0.225 to
    0.965; clipped, an accuracy interval never leaves [0, 1], and the report summarises such cells by counts and
    median and range instead."""
    x = [0.5092, 0.5092, 0.7672]
    wide = mean_ci(x)
    assert wide.low < 0.25  # the interval the issue quoted
    clipped = mean_ci([0.2, 0.9, 0.99], bounds=(0.0, 1.0))
    raw = mean_ci([0.2, 0.9, 0.99])
    assert raw.low < 0 and raw.high > 1 and (clipped.low, clipped.high) == (0.0, 1.0)
    m = median_range(x)
    assert (m.mean, m.low, m.high, m.n) == (0.5092, 0.5092, 0.7672, 3)
    assert math.isnan(median_range([]).mean)


def test_minimum_attainable_p_values_and_the_fisher_test_on_unit_counts():
    assert wilcoxon_min_p(3) == 0.25 and wilcoxon_min_p(5) == 0.0625 and wilcoxon_min_p(6) == 0.03125
    # the smallest p really is attained: all differences of one sign
    assert stats.wilcoxon([1, 2, 3]).pvalue == pytest.approx(0.25)
    assert fisher_min_p(3, 3) == pytest.approx(0.05) and fisher_min_p(12, 12) < 1e-6
    assert stats.fisher_exact([[3, 0], [0, 3]], alternative="greater")[1] == pytest.approx(0.05)
    f = fisher_greater(7, 12, 4, 12)  # the committed study's old count by (model, method, seed)
    assert f.p_value == pytest.approx(stats.fisher_exact([[7, 5], [4, 8]], alternative="greater")[1])
    assert 0.1 < f.p_value < 0.3 and f.can_decide()
    assert not fisher_greater(3, 3, 0, 3).can_decide()


def test_the_median_interval_is_the_order_statistics_with_binomial_coverage():
    # coverage of [x(r), x(n+1-r)] is 1 - 2 P(Binomial(n, 1/2) <= r - 1)
    assert median_ci_coverage(6, 1) == pytest.approx(1 - 2 / 64)
    assert median_ci_coverage(9, 2) == pytest.approx(1 - 2 * 10 / 512)
    assert [median_ci_rank(n) for n in range(1, 13)] == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert median_ci_coverage(9, 3) < 0.95 <= median_ci_coverage(9, 2)  # r = 2 is the largest at 95%
    values = [0.83, 0.81, 0.52, 0.84, 0.80, 0.82, 0.85, 0.79, 0.86]
    ci = median_ci(values)
    assert (ci.mean, ci.low, ci.high, ci.n) == (0.82, 0.79, 0.85, 9)  # 2nd lowest and 2nd highest
    few = median_ci([0.8, 0.9, 0.85])
    assert few.mean == 0.85 and math.isnan(few.low) and math.isnan(few.high)  # [min, max] covers only 75%
    assert median_ci([0.7, 0.7, 0.7, 0.7, 0.7, 0.7]).low == 0.7  # ties are fine


def test_the_rate_upper_bound_is_the_one_sided_clopper_pearson_bound():
    # k = 0: the rate p with (1 - p)^n = 0.05
    assert (
        rate_upper_bound(0, 6) == pytest.approx(1 - 0.05 ** (1 / 6)) and 0.39 < rate_upper_bound(0, 6) < 0.40
    )
    # at that bound, k or fewer events have probability 1 - confidence exactly
    for k, n in [(0, 6), (1, 6), (3, 12)]:
        assert stats.binom.cdf(k, n, rate_upper_bound(k, n)) == pytest.approx(0.05)
    assert rate_upper_bound(6, 6) == 1.0 and rate_upper_bound(0, 0) == 1.0
    assert rate_upper_bound(0, 60) < rate_upper_bound(0, 6)


def test_the_exact_mcnemar_test_is_the_binomial_test_on_the_discordant_examples():
    assert (
        mcnemar_exact(20, 5) == pytest.approx(stats.binomtest(20, 25, 0.5).pvalue)
        and mcnemar_exact(20, 5) < 0.01
    )
    assert mcnemar_exact(5, 20) == mcnemar_exact(20, 5)  # two-sided
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
