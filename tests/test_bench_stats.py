"""Benchmark statistics against hand-made points and direct scipy calls."""

import math

import numpy as np
import pytest
from scipy import stats

from bermo_prune.bench.stats import mean_ci, paired_comparison, pareto_front, ratio_ci


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
    assert r.wilcoxon_p == pytest.approx(stats.wilcoxon(bermo, bert).pvalue)
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
