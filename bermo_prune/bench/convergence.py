"""Convergence speed from the early-phase curves (``train.early_eval``, :mod:`bermo_prune.early_eval`).

Per run: the *crossing step* of a level (the first evaluation of the fixed dev subset at or above it, interpolated
linearly from the evaluation before), the *area under the curve* up to a fixed step (the mean of the metric over
steps 0 to that step, trapezoids between evaluations) and the mean training loss over the same steps.

Across runs (:func:`analyse`): BERT and BERMo runs are paired by (series, level, seed); the levels (targets) of one
(series, seed) share their data order and warm-up steps, so they form one independent *unit* whose log ratios (and
differences) are averaged; dense runs are their own units. A pruned unit whose crossings all fall before its pruning
starts measured nothing the dense unit of the same seed did not: before the schedule starts its forward equals the
dense one (tested), from the same initialization and data order. It is not counted again when that dense unit is.
The BERT/BERMo ratio is the geometric mean over units with a Student-t interval on the log ratios, and
:func:`units_needed` sizes the number of units that resolves a given speed-up at the spread measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scipy import stats

from .stats import LEVEL_TOLERANCE, Interval, mean_ci

#: the level both models are timed to: this fraction of the weaker model's dense metric (mean over seeds)
LEVEL_FRACTION = 0.9
#: the other shares of the weaker model's dense metric the report's sensitivity table times (exploratory)
SENSITIVITY_FRACTIONS = (0.9, 0.925, 0.95, 0.975)
#: the speed-up the power calculation sizes for (the smaller of the paper's two figures)
TARGET_RATIO = 1.15
#: the probability, at that speed-up, that the 95% interval lies above 1
POWER = 0.8


def crossing_step(curve, level: float) -> float | None:
    """The step at which ``curve`` ([[step, value], ...], in step order) first reaches ``level``: the first point at or
    above it (up to :data:`~bermo_prune.bench.stats.LEVEL_TOLERANCE`, so a tie counts whatever the rounding), interpolated linearly between it and the point before (the point's own step when it is the first one).
    None if it never does."""
    prev = None
    for step, value in curve:
        if value >= level - LEVEL_TOLERANCE:  # a tie is reached whatever the float rounding
            if prev is None or value == prev[1] or value <= level:
                return float(step)
            s0, v0 = prev
            return float(s0 + (level - v0) / (value - v0) * (step - s0))
        prev = (step, value)
    return None


def curve_auc(curve, until: float) -> float | None:
    """The mean of the curve over steps from its first point to ``until`` (trapezoids between points, the last one
    cut at ``until`` by linear interpolation); None when the curve does not reach ``until`` or has one point."""
    pts = [(float(s), float(v)) for s, v in curve]
    if len(pts) < 2 or pts[-1][0] < until or until <= pts[0][0]:
        return None
    area = 0.0
    for (s0, v0), (s1, v1) in zip(pts, pts[1:], strict=False):
        if s0 >= until:
            break
        if s1 > until:
            v1 = v0 + (v1 - v0) * (until - s0) / (s1 - s0)
            s1 = until
        area += (v0 + v1) / 2 * (s1 - s0)
    return area / (until - pts[0][0])


def mean_loss(losses, until: int) -> float | None:
    """The mean training loss over steps 1 to ``until`` (None when the run logged fewer steps)."""
    if losses is None or len(losses) < until or until < 1:
        return None
    return sum(losses[:until]) / until


def log_ratio_interval(log_ratios, confidence: float = 0.95) -> Interval:
    """Geometric mean ratio and its t-interval over units, from the units' log ratios."""
    ci = mean_ci(log_ratios, confidence)
    return Interval(math.exp(ci.mean), math.exp(ci.low), math.exp(ci.high), ci.n)


def power(sd: float, n: int, ratio: float = TARGET_RATIO, confidence: float = 0.95) -> float:
    """The probability that the two-sided ``confidence`` t-interval of the mean log ratio over ``n`` units lies above
    0 (the ratio's above 1) when the true ratio is ``ratio`` and the log ratios' SD is ``sd``: one minus the
    noncentral t CDF at the critical value (``n - 1`` degrees of freedom, noncentrality ``log(ratio) sqrt(n) / sd``)."""
    if n < 2 or sd <= 0:
        return math.nan
    df = n - 1
    crit = stats.t.ppf(0.5 + confidence / 2, df)
    return float(stats.nct.sf(crit, df, math.log(ratio) * math.sqrt(n) / sd))


def units_needed(
    sd: float,
    ratio: float = TARGET_RATIO,
    target_power: float = POWER,
    confidence: float = 0.95,
    cap: int = 100_000,
) -> int | None:
    """The smallest number of units (at least 2) whose :func:`power` reaches ``target_power`` (None beyond ``cap``)."""
    if sd <= 0 or not math.isfinite(sd):
        return None
    n = 2
    while n <= cap:
        if power(sd, n, ratio, confidence) >= target_power:
            return n
        n = n + 1 if n < 1000 else int(n * 1.01) + 1
    return None


def sd_upper(sd: float, n: int, confidence: float = 0.8) -> float:
    """The one-sided ``confidence`` upper bound of a standard deviation estimated from ``n`` values (chi-square)."""
    return sd * math.sqrt((n - 1) / stats.chi2.ppf(1 - confidence, n - 1))


@dataclass
class Unit:
    """One independent unit (series, seed): its pairs' crossing steps and differences, averaged over its levels."""

    series: str
    seed: int
    bert_steps: list[float] = field(default_factory=list)
    bermo_steps: list[float] = field(default_factory=list)
    log_ratios: list[float] = field(default_factory=list)
    auc: list[tuple[float, float]] = field(default_factory=list)  # (BERT, BERMo) per pair
    loss: list[tuple[float, float]] = field(default_factory=list)
    only: str | None = None  # "bert"/"bermo": the level reached by that model only (in some pair)
    alone: list[float] = field(
        default_factory=list
    )  # the crossing steps of those pairs (the model that reached)
    neither: int = 0
    at_start: int = 0  # pairs where a model was at the level at step 0 already (no ratio of steps)
    in_warmup: bool = False  # every crossing of the unit fell before its pruning started
    window_in_warmup: bool = False  # the AUC window ends before its pruning starts
    counted: bool = True  # False: folded into the dense unit of its seed

    @property
    def log_ratio(self) -> float | None:
        return sum(self.log_ratios) / len(self.log_ratios) if self.log_ratios else None

    @staticmethod
    def _mean_diff(pairs):
        return sum(b - a for a, b in pairs) / len(pairs) if pairs else None

    @property
    def auc_difference(self) -> float | None:
        return self._mean_diff(self.auc)

    @property
    def loss_difference(self) -> float | None:
        return self._mean_diff(self.loss)


@dataclass
class Analysis:
    level: float
    horizon: int  # the AUC and loss window: steps 0 to horizon
    units: list[Unit]
    ratio: Interval | None
    sd: float | None  # SD of the counted units' log ratios
    auc: dict[str, Interval]  # series -> BERMo - BERT over its units (series with 2 or more)
    loss: dict[str, Interval]  # series -> BERMo - BERT mean training loss over its units
    subset: dict | None  # the fine_eval record of the first row

    @property
    def counted(self) -> list[Unit]:
        return [u for u in self.units if u.counted and u.log_ratio is not None]


def has_fine_curves(rows) -> bool:
    return any(r.get("fine_curve") for r in rows if r.get("status") != "failed")


def analyse(rows, level: float, start_of) -> Analysis:
    """The pairs, units and intervals of the rows carrying ``fine_curve``; ``start_of(row)`` is the row's pruning
    start (None: dense)."""
    runs = [r for r in rows if r.get("status") != "failed" and r.get("fine_curve")]
    horizon = min(int(r["fine_curve"][-1][0]) for r in runs) if runs else 0
    by_cell = {(r["model"], r["method"], r["target"], r["seed"]): r for r in runs}
    units: dict[tuple, Unit] = {}
    for (model, series, target, seed), bert in sorted(by_cell.items(), key=lambda kv: str(kv[0])):
        bermo = by_cell.get(("bermo", series, target, seed))
        if model != "bert" or bermo is None:
            continue
        u = units.setdefault((series, seed), Unit(series, seed))
        start = start_of(bert)
        a, b = crossing_step(bert["fine_curve"], level), crossing_step(bermo["fine_curve"], level)
        if a is not None and b is not None and a > 0 and b > 0:
            u.bert_steps.append(a)
            u.bermo_steps.append(b)
            u.log_ratios.append(math.log(a / b))
        elif a == 0 or b == 0:  # at the level before any training step: no ratio, not "only one reached"
            u.at_start += 1
        elif a is not None or b is not None:
            u.only = "bert" if a is not None else "bermo"
            u.alone.append(a if a is not None else b)
        else:
            u.neither += 1
        areas = (curve_auc(bert["fine_curve"], horizon), curve_auc(bermo["fine_curve"], horizon))
        if None not in areas:
            u.auc.append(areas)
        losses = (mean_loss(bert.get("train_loss"), horizon), mean_loss(bermo.get("train_loss"), horizon))
        if None not in losses:
            u.loss.append(losses)
        crossings = [*u.bert_steps, *u.bermo_steps]
        u.in_warmup = start is not None and bool(crossings) and max(crossings) < start
        u.window_in_warmup = start is not None and horizon < start
    dense_seeds = {seed for (series, seed), u in units.items() if series == "none" and u.log_ratios}
    for (series, seed), u in units.items():
        if series != "none" and u.in_warmup and seed in dense_seeds:
            u.counted = False
    counted = [u for u in units.values() if u.counted and u.log_ratio is not None]
    logs = [u.log_ratio for u in counted]
    ratio = log_ratio_interval(logs) if len(logs) >= 2 else None
    sd = float(stats.tstd(logs)) if len(logs) >= 2 else None

    def diffs(attr):
        """Per series: its units' differences. Series apart, because a pruned run's window shares its warm-up steps
        with the dense run of its seed (all of them when the window ends before pruning starts)."""
        out = {}
        for name in sorted({series for series, _ in units}, key=lambda x: (x != "none", x)):
            vals = [getattr(u, attr) for (series, _), u in units.items() if series == name]
            vals = [v for v in vals if v is not None]
            if len(vals) >= 2:
                out[name] = mean_ci(vals)
        return out

    subset = next((r.get("fine_eval") for r in runs if r.get("fine_eval")), None)
    ordered = sorted(units.values(), key=lambda u: (u.series != "none", u.series, u.seed))
    return Analysis(
        level, horizon, ordered, ratio, sd, diffs("auc_difference"), diffs("loss_difference"), subset
    )


def smoothed(rows, width: int = 3) -> list[dict]:
    """Copies of ``rows`` whose ``fine_curve`` is a trailing running mean over ``width`` evaluations (a crossing then
    needs the level held on average, not touched once by a noisy evaluation)."""
    out = []
    for r in rows:
        curve = r.get("fine_curve")
        if curve:
            values = [v for _, v in curve]
            mean = [
                sum(values[max(0, i - width + 1) : i + 1]) / (i + 1 - max(0, i - width + 1))
                for i in range(len(values))
            ]
            r = {**r, "fine_curve": [[s, m] for (s, _), m in zip(curve, mean, strict=True)]}
        out.append(r)
    return out


def sensitivity(rows, dense_level: float, start_of, step: float | None = None) -> list[tuple[str, Analysis]]:
    """The ratio at other definitions of "reached" (exploratory): other shares of the weaker model's dense mean,
    the pre-registered level one subset example (``step``) lower and higher, and a running mean of 3 evaluations."""
    variants = [
        (
            f"{f:.1%} of dense" + (" (the rule's level)" if f == LEVEL_FRACTION else ""),
            analyse(rows, f * dense_level, start_of),
        )
        for f in SENSITIVITY_FRACTIONS
    ]
    base = LEVEL_FRACTION * dense_level
    if step:
        variants += [
            (
                f"{LEVEL_FRACTION:.0%} of dense, one subset example lower",
                analyse(rows, base - step, start_of),
            ),
            (
                f"{LEVEL_FRACTION:.0%} of dense, one subset example higher",
                analyse(rows, base + step, start_of),
            ),
        ]
    variants.append(
        (
            f"{LEVEL_FRACTION:.0%} of dense, running mean of 3 evaluations",
            analyse(smoothed(rows), base, start_of),
        )
    )
    return variants


def power_text(analysis: Analysis) -> str:
    """The power calculation, in words, at the spread of the counted units."""
    units = analysis.counted
    n, sd = len(units), analysis.sd
    if sd is None or n < 2:
        return "Power: needs the log ratios of 2 counted units to measure their spread."
    if sd == 0:
        return f"Power: the {n} counted units give the same log ratio (SD 0): no spread to size a study from."
    per_seed = n / len({u.seed for u in units})
    need = units_needed(sd)
    up = sd_upper(sd, n)
    need_up = units_needed(up)

    def seeds(k):
        return (
            "more than 100,000 units"
            if k is None
            else f"{k} units ({math.ceil(k / per_seed)} seeds at {per_seed:g} counted unit{'s' if per_seed != 1 else ''} per seed)"
        )

    return (
        f"Power (criterion fixed before the numbers): the number of units for which the two-sided 95% t-interval of "
        f"the ratio lies above 1 with probability {POWER:.0%} when the true BERT/BERMo ratio is {TARGET_RATIO:.2f} "
        f"(one-sample t-test power on the log ratios, noncentral t with noncentrality log({TARGET_RATIO:.2f}) "
        f"sqrt(n) / SD). At the SD of the {n} counted units' log ratios, {sd:.3f}: {seeds(need)}, against "
        f"{n} here (power now {power(sd, n):.2f}). At that SD's 80% upper confidence bound, {up:.3f} (an SD from "
        f"{n} values is itself uncertain): {seeds(need_up)}. The t-test is symmetric: at the same SD, the same "
        f"number of units gives the same power for the interval to lie below {TARGET_RATIO:.2f} (not supported) "
        "when the true ratio is 1."
    )
