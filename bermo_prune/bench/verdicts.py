"""The report's computed text: the findings that open REPORT.md and the verdicts on the paper's three claims
(stability under pruning, convergence speed, parameter efficiency of penalty methods), each from a rule stated in
the text, plus the small helpers the report's tables share with them (:mod:`.report` writes the rest).

Divergence outcomes, one definition for every model (:class:`Study`): an evaluation is *at chance* when its
accuracy is at most the dev majority rate plus the tracker's ``collapse_margin`` (0.02). The primary outcome of a
pruned run is *ended at chance* (its final evaluation); the secondary one is *at chance at some evaluation after
pruning started* (a step at or after its schedule's warm-up step). A run already at chance at its last evaluation
before pruning started is a *fine-tuning failure*, counted apart and left out of the pruning counts.

Counting (:func:`units`): the runs of one (model, series, seed) share their data order and first steps (the
targets of a series differ only after the warm-up), so they are one independent unit, which has an outcome when any
of its runs has it. Distilled series (a teacher) form their own family of tests; Fisher exact tests run on unit
counts, and a test whose group sizes cannot reach p < 0.05 says "cannot decide".
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..tracking import DivergenceConfig
from .convergence import LEVEL_FRACTION, Analysis, analyse, has_fine_curves, log_ratio_interval, power_text
from .stats import (
    LEVEL_TOLERANCE,
    Fisher,
    Interval,
    fisher_greater,
    mcnemar_exact,
    mean_ci,
    median_ci,
    median_ci_coverage,
    median_ci_rank,
    median_range,
    no_spread,
    rate_upper_bound,
    wilcoxon_min_p,
)

#: Significance level of every test the report runs, and the level a test must be able to reach to be run.
ALPHA = 0.05
#: the confidence of the interval of a median accuracy placed against the bag-of-words line
CONFIDENCE = 0.95
#: The paired comparison of the claims: these two models; any other arm (e.g. ``bermo_last``) is shown beside them.
PAIR = ("bert", "bermo")
DISPLAY = {"bert": "BERT", "bermo": "BERMo"}


def name(model: str) -> str:
    return DISPLAY.get(model, model)


def model_order(models) -> list[str]:
    """BERT and BERMo first, then any other arm in alphabetical order."""
    models = set(models)
    return [m for m in PAIR if m in models] + sorted(models - set(PAIR))


def fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def steps_to(curve: list[list[float]], level: float) -> int | None:
    """First evaluation step whose metric reaches ``level`` (None if never); ties count as reached, see
    :data:`~bermo_prune.bench.stats.LEVEL_TOLERANCE`."""
    return next((int(step) for step, value in curve if value >= level - LEVEL_TOLERANCE), None)


def recovered(row: dict) -> bool:
    """A collapse the run climbed back from: its final evaluation lies at least the tracker's ``learned_margin``
    (0.1 by default) above the evaluation that counted the collapse, so it ended having learned again. Other kinds
    (no learning, a loss spike, a non-finite loss) never count as recovered."""
    if row.get("divergence_kind") != "collapse" or row.get("final") is None:
        return False
    step = row.get("divergence_step")
    low = next((value for at, value in row.get("curve") or [] if int(at) == step), None)
    return low is not None and row["final"] >= low + DivergenceConfig().learned_margin


def group_runs(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["status"] != "failed":
            out[(r["model"], r["method"], r["target"])].append(r)
    return out


def remaining_share(groups: dict[tuple, list[dict]], key: tuple) -> float | None:
    """Mean remaining share of one (model, method, target) group over its runs (None if there are none)."""
    runs = groups.get(key)
    return mean_ci([r["remaining"] for r in runs]).mean if runs else None


def stopped_at(rows: list[dict]) -> str:
    """Where the rows stopped by ``train.stop_after`` stopped ("step 1,500 of 6,315", joined); "" if none did."""
    stops = sorted({(r["stopped_after"], r["planned_steps"]) for r in rows if r.get("stopped_after")})
    return ", ".join(f"step {a:,} of {b:,}" for a, b in stops)


def pairs_text(n: int) -> str:
    return f"{n} pair" + ("s" if n != 1 else "")


def of(k: int, n: int, unit: str = "") -> str:
    return f"{k} of {n}{' ' + unit if unit else ''}"


# ---- divergence outcomes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """One run's divergence outcomes under :class:`Study`'s single definition."""

    ended: bool  # primary: the final evaluation is at chance
    after: bool  # secondary: at chance at some evaluation at or after the pruning start
    first_after: int | None  # the step of the first such evaluation
    finetune: (
        bool | None
    )  # at chance at the last evaluation before pruning started (dense: the final); None: none

    @property
    def pruning_counts(self) -> bool:
        """Counted in the pruning outcomes: not a fine-tuning failure."""
        return not self.finetune


@dataclass(frozen=True)
class Study:
    """What results rows do not say, read from ``baselines.json`` (:mod:`.baselines`): the dev majority rate and
    the baselines of each data draw, each run's draw and pruning start, and the tracker's at-chance margin; and from
    ``sweep.json``, the series the spec fixed for claim 1's test (``primary``; None: every undistilled series)."""

    baselines: dict
    primary: str | None = None

    @property
    def margin(self) -> float:
        return float(self.baselines["at_chance_margin"])

    def draw(self, row: dict) -> dict:
        run = self.baselines["runs"].get(row["run"])
        if run is None:
            raise InputError(
                f"baselines.json has no entry for run {row['run']}: it was written for another spec; write it again "
                "with `bermo-prune baselines SPEC.yaml --output RESULTS_DIR`"
            )
        return self.baselines["draws"][run["draw"]]

    def majority_rate(self, row: dict) -> float:
        return float(self.draw(row)["majority"]["dev_majority_rate"])

    def start(self, row: dict) -> int | None:
        return self.baselines["runs"][row["run"]]["pruning_start"]

    def at_chance(self, row: dict, accuracy: float) -> bool:
        return accuracy <= self.majority_rate(row) + self.margin + 1e-9

    def outcome(self, row: dict) -> Outcome:
        start = self.start(row)
        curve = [(int(s), float(v)) for s, v in row.get("curve") or []]
        ended = self.at_chance(row, row["final"])
        if start is None:  # a dense run: nothing is pruned, a failure is one of fine-tuning
            return Outcome(ended, False, None, ended)
        first = next((s for s, v in curve if s >= start and self.at_chance(row, v)), None)
        before = [v for s, v in curve if s < start]
        return Outcome(ended, first is not None, first, self.at_chance(row, before[-1]) if before else None)

    def pruned_starts(self, rows: list[dict]) -> list[int]:
        return sorted({s for r in rows if (s := self.start(r)) is not None})

    # the baselines, over the data draws the runs trained on
    def classification_draws(self) -> list[dict]:
        return [d for d in self.baselines["draws"] if d.get("majority")]

    def majority_accuracy(self) -> list[float]:
        return [d["majority"]["dev_accuracy"] for d in self.classification_draws()]

    def dev_size(self) -> int | None:
        """The dev set's size (the smallest, if several draws); None where baselines.json does not give it."""
        sizes = [d["dev_size"] for d in self.classification_draws() if d.get("dev_size")]
        return min(sizes) if sizes else None

    def bag_of_words(self) -> list[float]:
        return [d["bag_of_words"] for d in self.classification_draws()]

    def definition(self, rows: list[dict]) -> str:
        rates = sorted({round(d["majority"]["dev_majority_rate"], 4) for d in self.classification_draws()})
        starts = self.pruned_starts(rows)
        where = ", ".join(f"{s}" for s in starts) or "none"
        return (
            f"at chance: an evaluation's accuracy is at most the dev majority rate ({', '.join(f'{r:.4f}' for r in rates)}) "
            f"+ {self.margin:g} (the tracker's `collapse_margin`). Ended at chance (primary outcome): the final "
            "evaluation is at chance. At chance after pruning started (secondary): at some evaluation at or after the "
            f"step where the run's schedule starts (its warm-up step; here step {where}). Fine-tuning failure: at chance "
            "at the last evaluation before pruning started (a dense run: at its final evaluation); counted apart and "
            "left out of the pruning counts. Unit: the runs of one (model, series, seed) share their data order and "
            "warm-up steps, so they count once, with an outcome if any of them has it; distilled series are their "
            "own family of tests."
        )


def family(row: dict) -> str:
    """``distilled`` for a series trained from a teacher (its own family of tests), else ``undistilled``."""
    return "distilled" if row.get("teacher") else "undistilled"


def units(
    rows: list[dict], study: Study, model: str, fam: str, series: str | None = None
) -> dict[tuple, list[Outcome]]:
    """The independent units (series, seed) of ``model``'s pruned runs in family ``fam`` (of one ``series`` when
    given), each with the outcomes of its runs that are not fine-tuning failures (a unit of fine-tuning failures
    only is left out)."""
    out: dict[tuple, list[Outcome]] = defaultdict(list)
    for r in rows:
        if r["status"] == "failed" or r["method"] == "none" or r["model"] != model or family(r) != fam:
            continue
        if series is not None and r["method"] != series:
            continue
        o = study.outcome(r)
        if o.pruning_counts:
            out[(r["method"], r["seed"])].append(o)
    return out


def unit_count(us: dict[tuple, list[Outcome]], attr: str) -> tuple[int, int]:
    """(units with the outcome in any run, units)."""
    return sum(any(getattr(o, attr) for o in os) for os in us.values()), len(us)


def run_count(us: dict[tuple, list[Outcome]], attr: str) -> tuple[int, int]:
    return sum(getattr(o, attr) for os in us.values() for o in os), sum(len(os) for os in us.values())


def fisher_text(f: Fisher) -> str:
    if not f.can_decide(ALPHA):
        return (
            f"cannot decide: {f.n_a} units against {f.n_b} cannot reach p < {ALPHA:g} (minimum attainable one-sided "
            f"Fisher p {f.min_p:.3g})"
        )
    return f"one-sided Fisher exact test that BERT's units have it more often: p = {f.p_value:.3g}"


def stability_verdict(f: Fisher) -> str:
    """Claim 1's rule on one family's unit counts of the primary outcome."""
    if not f.can_decide(ALPHA):
        return f"**inconclusive**: {fisher_text(f)}"
    if f.a == 0 and f.b == 0:
        return (
            "**not supported**: its premise did not occur: no pruned unit of either model ended at chance (BERT 0 "
            f"of {f.n_a} units; a true BERT rate up to {rate_upper_bound(0, f.n_a, CONFIDENCE):.0%} is not "
            f"excluded, one-sided {CONFIDENCE:.0%} Clopper-Pearson), so the claim's contrast was not tested here"
        )
    if f.p_value < ALPHA:
        return "**supported**"
    if f.b / f.n_b >= f.a / f.n_a:
        return "**not supported**: BERMo ended at chance at least as often as BERT"
    return "**inconclusive**: fewer BERMo units ended at chance, but not significantly"


def learned_finals(runs: list[dict], study: Study) -> list[float]:
    """Final accuracies of the runs that did not end at chance (the runs an accuracy summary is over)."""
    return [r["final"] for r in runs if not study.outcome(r).ended]


# ---- findings ----------------------------------------------------------------------------------------------------
def findings(groups, paired, ratios, metric: str, fraction: float, study: Study) -> list[str]:
    """The report's opening summary, computed from the sections below it (nothing here is typed in by hand)."""
    out = ["## Findings", ""]
    rows = [r for rs in groups.values() for r in rs]
    models = model_order({k[0] for k in groups})
    bow, maj = study.bag_of_words(), study.majority_accuracy()
    if bow:
        spread = (
            f" (range {min(bow):.4f} to {max(bow):.4f} over {len(bow)} training draws)"
            if len(bow) > 1
            else ""
        )
        out.append(
            f"- Baselines on the same dev set: majority class {median_range(maj).mean:.4f}; bag of words (logistic "
            f"regression on unigrams and bigrams, trained on the runs' training set) {median_range(bow).mean:.4f}"
            f"{spread}."
        )
    dense = [
        (m, median_range([r["final"] for r in groups[(m, "none", None)]]))
        for m in models
        if (m, "none", None) in groups
    ]
    if dense:
        out.append(
            "- Dense fine-tuning (median, range over seeds): "
            + "; ".join(f"{name(m)} {s.mean:.4f} ({s.low:.4f} to {s.high:.4f})" for m, s in dense)
            + f" dev {metric}."
        )
    pruned = [r for r in rows if r["method"] != "none"]
    parts = []
    for m in models:
        mine = [r for r in pruned if r["model"] == m]
        if not mine:
            continue
        fams = [f for f in ("undistilled", "distilled") if any(family(r) == f for r in mine)]
        us = {f: units(rows, study, m, f) for f in fams}
        ended = sum(unit_count(us[f], "ended")[0] for f in fams)
        total = sum(unit_count(us[f], "ended")[1] for f in fams)
        er, nr = (sum(x) for x in zip(*(run_count(us[f], "ended") for f in fams), strict=True))
        parts.append(f"{name(m)} {of(ended, total, 'units')} ({of(er, nr, 'runs')})")
    if parts:
        out.append(
            "- Pruned runs that ended at chance (primary outcome, section 2"
            + ("; every series pooled" if study.primary else "")
            + "): "
            + "; ".join(parts)
            + "."
        )
    if study.primary:
        prim = []
        for m in models:
            mine = units(rows, study, m, "undistilled", study.primary)
            if mine:
                prim.append(f"{name(m)} {of(unit_count(mine, 'ended')[0], len(mine), 'units')}")
        out.append(
            f"- In the series claim 1 tests (`{study.primary}`, the spec's `primary`): "
            + ("; ".join(prim) or "no runs yet")
            + "."
        )
    parts = []
    for m in models:
        fams = [
            f for f in ("undistilled", "distilled") if any(family(r) == f and r["model"] == m for r in pruned)
        ]
        if fams:
            k = sum(unit_count(units(rows, study, m, f), "after")[0] for f in fams)
            n = sum(unit_count(units(rows, study, m, f), "after")[1] for f in fams)
            parts.append(f"{name(m)} {of(k, n, 'units')}")
    if parts:
        out.append(
            "- At chance at some evaluation after pruning started (secondary): " + "; ".join(parts) + "."
        )
    failures = [r for r in rows if study.outcome(r).finetune]
    out.append(
        f"- Fine-tuning failures (at chance before pruning started, or a dense run that ended at chance): "
        f"{len(failures)}" + (f" ({', '.join(r['run'] for r in failures)})" if failures else "") + "."
    )

    # A paired cell compares like with like only when both models ended at about the same remaining share (always
    # for top-k methods; a penalty level can leave them far apart, which the Pareto plot handles instead), and is
    # tested only when no run in it ended at chance (a t-test on a mix of collapsed and learned runs is not run).
    tested, mixed, apart = [], [], []
    for m, t, p, n_chance in paired:
        if m == "none":
            continue
        a, b = remaining_share(groups, ("bert", m, t)), remaining_share(groups, ("bermo", m, t))
        if abs(a - b) > EQUAL_SHARE * max(a, b):
            apart.append((m, t))
        elif n_chance:
            mixed.append((m, t))
        else:
            tested.append((m, t, p))

    def cells(xs):
        return ", ".join(f"{x[0]} {x[1]:g}" for x in xs)

    if tested or mixed:
        higher = [x for x in tested if x[2].p_value < ALPHA and x[2].mean_difference > 0]
        lower = [x for x in tested if x[2].p_value < ALPHA and x[2].mean_difference < 0]
        text = (
            f"- BERMo vs BERT, paired by seed (section 5): of {len(tested) + len(mixed)} pruned (method, level) cells "
            f"at equal remaining weights, {len(mixed)} hold a run that ended at chance and are counted in section 2, "
            "not tested"
            + (f" ({cells(mixed)})" if mixed else "")
            + f"; of the other {len(tested)}, BERMo is significantly higher in {len(higher)}"
            + (f" ({cells(higher)})" if higher else "")
            + f", significantly lower in {len(lower)}"
            + (f" ({cells(lower)})" if lower else "")
            + f", not significantly different in {len(tested) - len(higher) - len(lower)} (paired t-test at "
            f"{ALPHA:g} over {'/'.join(str(n) for n in sorted({x[2].n for x in tested})) or 'no'} seeds a cell, "
            f"uncorrected for {len(tested)} comparisons)."
        )
        if tested:
            text += f" Mean difference over those cells: {sum(x[2].mean_difference for x in tested) / len(tested):+.4f}."
        out.append(text)
    if apart:
        out.append(
            f"- Left out of that count: {len(apart)} penalty cell{'s' if len(apart) != 1 else ''} where the same "
            "level left the two models more "
            f"than 10% apart in remaining weights ({cells(apart)}); section 1's plot compares them at equal "
            "remaining weights."
        )
    top_bow = max(bow) if bow else None
    for model in models:
        sparse = []
        for k, runs in groups.items():
            if k[0] != model or k[1] == "none" or remaining_share(groups, k) > 0.1 * 1.001:  # top-k rounding
                continue
            if any(study.outcome(r).ended for r in runs):
                continue
            finals = [r["final"] for r in runs]
            sparse.append((median_range(finals).mean, remaining_share(groups, k), k, finals))
        if sparse:
            acc, rem, k, finals = max(sparse, key=lambda x: x[:3])
            versus = (
                f"; {acc - top_bow:+.4f} against the bag of words, {median_against(finals, top_bow, study.dev_size())}"
                f"; {against_bag_of_words(groups[k], study)}"
                + (
                    f"; the best of {len(sparse)} such cells, picked on these dev results (nothing here corrects "
                    "for that choice)"
                    if len(sparse) > 1
                    else ""
                )
                if top_bow is not None
                else ""
            )
            dense_finals = [
                r["final"] for r in groups.get((model, "none", None), []) if not study.outcome(r).ended
            ]  # dense runs that learned (one that ended at chance is a fine-tuning failure, counted apart)
            below = (
                f"; {acc - median_range(dense_finals).mean:+.4f} against the median of its "
                f"{len(dense_finals)} dense run{'s' if len(dense_finals) != 1 else ''} that did not end at chance"
                if dense_finals
                else ""
            )
            out.append(
                f"- Best {name(model)} at <= 10% remaining, over cells where no run ended at chance: {acc:.4f} "
                f"median ({k[1]} {k[2]:g}, {rem:.1%} remaining{versus}{below})."
            )
    if ratios:
        # a cell tests something only where its interval exists and has width: 2 or more seeds reached by both,
        # not all at the same ratio (steps to the level are multiples of the evaluation interval)
        testable = [r for r in ratios if not math.isnan(r.low) and not math.isnan(r.high) and r.low < r.high]
        above = sum(r.low > 1 for r in testable)
        below = sum(r.high < 1 for r in testable)
        untested = len(ratios) - len(testable)
        out.append(
            f"- Steps to {fraction:.0%} of the dense {metric} (section 3): of {len(ratios)} cells, "
            + (
                f"{len(testable)} ha{'s' if len(testable) == 1 else 've'} an interval of nonzero width, BERMo "
                f"significantly faster in {above} of "
                f"them, slower in {below}"
                if testable
                else "none can be tested"
            )
            + (
                f" ({untested} without: fewer than 2 seeds reached the level in both models, or every seed gives "
                "the same ratio on the evaluation grid)"
                if untested
                else ""
            )
            + f"; geometric mean of the BERT/BERMo ratios "
            f"{math.exp(sum(math.log(r.mean) for r in ratios) / len(ratios)):.2f}."
        )
    fine = fine_analysis(rows, study)
    if fine is not None and fine.ratio is not None:
        r = fine.ratio
        out.append(
            f"- Convergence on the early-phase curves (section 3; claim 2 reads this, not the coarse line above): "
            f"BERT/BERMo ratio of the steps to {metric} {fine.level:.4f}: {r.mean:.2f} (95% t-interval over {r.n} "
            f"units {fmt(r.low, 2)} to {fmt(r.high, 2)})."
        )
    out.append("")
    return out


def binomial_se(accuracy: float, n: int) -> float:
    """One binomial standard error of an accuracy measured on ``n`` examples."""
    return math.sqrt(accuracy * (1 - accuracy) / n)


def median_against(values: list[float], line: float, dev_size: int | None = None) -> str:
    """Where the line lies against the distribution-free 95% interval of the median of ``values``; with
    ``dev_size``, also what that interval leaves out: it is over runs scored on one dev set, so the set's own
    sampling error (a binomial standard error of an accuracy near the line), which the runs and the line share, is
    not in it."""
    ci, n = median_ci(values, CONFIDENCE), len(values)
    r = median_ci_rank(n, CONFIDENCE)
    if n == 1:
        text = "one run: no interval of the median"
    elif r == 0:
        text = (
            f"too few runs for a {CONFIDENCE:.0%} interval of the median: their range, min to max, is only a "
            f"{median_ci_coverage(n, 1):.1%} interval"
        )
    else:
        where = (
            "lies above the line"
            if line < ci.low
            else "lies below the line"
            if line > ci.high
            else "holds the line: not separable from it"
        )
        text = (
            f"the {median_ci_coverage(n, r):.1%} interval of the median, {ci.low:.4f} to {ci.high:.4f} (order "
            f"statistics {r} and {n + 1 - r} of {n}), {where}"
        )
    if dev_size:
        se = binomial_se(line, dev_size)
        margin = median_range(values).mean - line
        text += (
            (
                f"; that interval is over runs on one dev set of {dev_size} examples, whose own sampling error it "
                "leaves out"
                if n > 1
                else f"; scored on one dev set of {dev_size} examples"
            )
            + f": one binomial SE at the line is {se:.4f}"
            + (
                f"; the margin is within 2 SE ({2 * se:.4f}): on another sample of sentences its sign could "
                "reverse (not evidence of equality)"
                if abs(margin) < 2 * se
                else ""
            )
        )
    return text


def against_bag_of_words(runs: list[dict], study: Study) -> str:
    """The runs paired with the bag-of-words baseline of their own data draw on the same dev examples.

    The cell: the mean over its runs of each example's correctness minus the bag of words' (a paired difference
    over examples), with a 95% t-interval over the examples (what another sample of sentences could change; the
    runs' own spread is not in it). Each run: an exact McNemar test (two-sided, :data:`ALPHA`, uncorrected) on the
    examples where it and the bag of words disagree, and their agreement; described, not a test of the cell (the
    runs share the dev set). Needs the rows' ``dev_predictions`` and baselines.json's per-example labels and
    bag-of-words predictions; runs whose predictions do not give back their final accuracy are left out. Says
    what is missing otherwise."""
    with_predictions = [r for r in runs if r.get("dev_predictions")]
    none = "no paired test against the bag of words on the same examples: "
    if not with_predictions:
        return none + (
            "the run's row has no dev predictions"
            if len(runs) == 1
            else f"none of the {len(runs)} runs' rows has dev predictions"
        )
    pairs, notes = [], []
    for r in with_predictions:
        draw = study.draw(r)
        gold, bow, pred = draw.get("dev_labels"), draw.get("bag_of_words_predictions"), r["dev_predictions"]
        if not gold or not bow:
            return none + (
                "baselines.json keeps no per-example labels and predictions (write it again with "
                "`bermo-prune baselines SPEC.yaml --output DIR`)"
            )
        if len(pred) != len(gold):
            notes.append(f"{r['run']}: {len(pred)} predictions for {len(gold)} dev examples, left out")
            continue
        correct = np.array([p == g for p, g in zip(pred, gold, strict=True)], dtype=float)
        if r.get("metric", "accuracy") == "accuracy" and abs(correct.mean() - r["final"]) > 1e-9:
            notes.append(f"{r['run']}: its predictions do not give back its final accuracy, left out")
            continue
        pairs.append(
            (r, gold, bow, correct, np.array([w == g for w, g in zip(bow, gold, strict=True)], dtype=float))
        )
    if not pairs:
        return none + "; ".join(notes)
    above = below = 0
    agreement = []
    for r, gold, bow, correct, bow_correct in pairs:
        b = int(((correct == 1) & (bow_correct == 0)).sum())  # the run alone right
        c = int(((correct == 0) & (bow_correct == 1)).sum())  # the bag of words alone right
        if mcnemar_exact(b, c) < ALPHA:
            above += b > c
            below += c > b
        agreement.append(sum(p == w for p, w in zip(r["dev_predictions"], bow, strict=True)) / len(gold))
    n = len(pairs)
    golds = {g for _, g, _, _, _ in pairs}
    if len(golds) == 1:
        d = np.mean([correct - bow_correct for *_, correct, bow_correct in pairs], axis=0)
        ci = mean_ci(d, CONFIDENCE, bounds=(-1.0, 1.0))
        cell = (
            f"paired with the bag of words on the same {len(d)} dev examples: "
            + ("the run's" if n == 1 else f"the mean over its {n} runs of each example's")
            + f" correctness minus the bag of words': {ci.mean:+.4f} ({CONFIDENCE:.0%} t-interval over the examples "
            f"{ci.low:+.4f} to {ci.high:+.4f}: "
            + (
                "above the line"
                if ci.low > 0
                else "below the line"
                if ci.high < 0
                else "not separable from the line on these examples"
            )
            + ")"
        )
    else:
        cell = "paired with the bag of words of each run's own data draw (their dev sets differ: no cell difference)"
    agree = f"{agreement[0]:.1%}" if n == 1 else f"{min(agreement):.1%} to {max(agreement):.1%}"
    return (
        f"{cell}; by run, exact McNemar tests on the examples where the run and the bag of words disagree "
        f"(two-sided, {ALPHA:g}, uncorrected; described: the runs share the dev set): {above} of {n} "
        f"significantly above, {below} below, {n - above - below} not separable; "
        f"{'the run agrees' if n == 1 else 'the runs agree'} with the bag of words on {agree} of the examples"
        + (
            f"; {len(runs) - len(with_predictions)} of the {len(runs)} runs' rows have no dev predictions"
            if len(with_predictions) < len(runs)
            else ""
        )
        + ("; " + "; ".join(notes) if notes else "")
    )


def dense_means(rows: list[dict]) -> dict[str, float]:
    """Each model's mean dense final metric over seeds (BERT and BERMo, where present)."""
    out = {}
    for m in PAIR:
        finals = [
            r["final"] for r in rows if r["status"] != "failed" and r["model"] == m and r["method"] == "none"
        ]
        if finals:
            out[m] = sum(finals) / len(finals)
    return out


def fine_analysis(rows: list[dict], study: Study) -> Analysis | None:
    """The early-phase convergence analysis (:mod:`.convergence`) when rows carry fine curves and both models have
    dense runs: the level is :data:`~.convergence.LEVEL_FRACTION` of the weaker model's dense mean."""
    dense = dense_means(rows)
    if not has_fine_curves(rows) or len(dense) < 2:
        return None
    return analyse(rows, LEVEL_FRACTION * min(dense.values()), study.start)


def convergence_verdict(analysis: Analysis) -> str:
    """Claim 2's rule on the early-phase ratio interval (stated in :func:`_convergence`)."""
    r = analysis.ratio
    if r is None:
        return "**inconclusive**: fewer than 2 counted units reached the level in both models"
    if r.low == r.high:  # mean_ci gives no width to values equal up to rounding
        return "**inconclusive**: every unit gives the same ratio, so the interval has no width and bounds nothing"
    if r.low > 1:
        where = (
            "inside the interval"
            if r.low <= PAPER_SPEEDUP <= r.high
            else "below the interval (BERMo faster than the paper's smaller figure)"
            if PAPER_SPEEDUP < r.low
            else "above the interval (BERMo faster, but by less than 1.15x)"
        )
        return f"**supported**; {PAPER_SPEEDUP:.2f}x lies {where}"
    if r.high < PAPER_SPEEDUP:
        return (
            f"**not supported**: the interval excludes a {PAPER_SPEEDUP:.2f}x speed-up at 95% confidence, at this "
            "level"
        )
    return "**inconclusive**"


def _convergence(rows: list[dict], metric: str, study: Study) -> list[str]:
    """Claim 2 on the early-phase curves: the rule, then the numbers, the verdict and the power calculation."""
    a = fine_analysis(rows, study)
    dense = dense_means(rows)
    rule = (
        "Rule (fixed before the numbers): supported only if the 95% t-interval of the BERT/BERMo ratio of crossing "
        "steps over independent units (computed on their log ratios) lies above 1, and then the text says whether "
        f"{PAPER_SPEEDUP:.2f}x lies inside it; not supported if it lies below {PAPER_SPEEDUP:.2f}; otherwise "
        "inconclusive (where both tests apply, an interval above 1 whose upper end is below "
        f"{PAPER_SPEEDUP:.2f}, the first decides)."
    )
    sub = a.subset or {}
    measure = (
        f"Measurement: every run scores a fixed dev subset of {sub.get('size', '?')} examples (stratified by label, "
        f"seed {sub.get('seed', '?')}, the same for every run) at step 0 and every {sub.get('every', '?')} steps to "
        f"step {a.horizon}; a run's crossing step is its first evaluation at or above {metric} {a.level:.4f} "
        f"({LEVEL_FRACTION:.0%} of the weaker model's dense mean: BERT {dense['bert']:.4f}, BERMo "
        f"{dense['bermo']:.4f}), interpolated linearly from the evaluation before. Unit: (series, seed); the levels of "
        "one series share their warm-up steps, so their log ratios are averaged; dense runs are their own units; a "
        "pruned unit whose crossings all fall before its pruning starts is the dense unit of its seed again (same "
        "initialization and data order, and the dense forward in the warm-up) and is not counted twice."
    )
    counted = a.counted
    folded = [u for u in a.units if not u.counted]
    only_bermo = sum(u.only == "bermo" for u in a.units)
    only_bert = sum(u.only == "bert" for u in a.units)
    if a.ratio is not None:
        r = a.ratio
        numbers = (
            f"Numbers: {len(counted)} counted units, BERT/BERMo ratio {r.mean:.2f} (95% t-interval {fmt(r.low, 2)} "
            f"to {fmt(r.high, 2)}, {r.n - 1} degrees of freedom; SD of the log ratios {a.sd:.3f})"
        )
    else:
        numbers = f"Numbers: {len(counted)} counted unit(s) reached the level in both models"
    numbers += (
        f"; units where only BERMo reached the level: {only_bermo}, only BERT: {only_bert}; pruned units crossed "
        f"inside their warm-up and not counted again: {len(folded)}"
        + (f" ({', '.join(f'{u.series} s{u.seed}' for u in folded)})" if folded else "")
        + "."
    )
    return [
        f"2. *BERMo converges faster (1.67x on MNLI, 1.15x on QQP).* {rule} {measure} {numbers} Verdict: "
        f"{convergence_verdict(a)}.",
        "",
        f"   {power_text(a)}",
        "",
    ]


#: A convergence speed-up the data must rule out before "not supported": the smaller of the paper's two figures
#: (1.67x on MNLI, 1.15x on QQP).
PAPER_SPEEDUP = 1.15
#: Accuracy gain (absolute) the lower bound of claim 3's interval must reach for "supported".
MIN_GAIN = 0.01
#: Two runs compare at equal remaining weights when their shares differ by at most this fraction of the larger.
EQUAL_SHARE = 0.1


def pruning_method(row: dict) -> str:
    """The pruning method a row ran (its ``method`` may be a series label such as ``movement_kd``)."""
    return row.get("pruning_method") or row["method"]


def is_penalty_method(name: str) -> bool:
    """A method that prunes through a loss penalty (soft movement, L0): its class overrides ``Pruner.penalty``."""
    from ..pruners import Pruner, available_pruners, pruner_class  # here for start-up time: imports torch

    return name in available_pruners() and pruner_class(name).penalty is not Pruner.penalty


def _stability(rows: list[dict], study: Study) -> list[str]:
    """Claim 1 on the primary outcome, with the secondary outcome, the distilled family, fine-tuning failures and
    other arms beside it."""
    pruned = [r for r in rows if r["status"] != "failed" and r["method"] != "none"]
    fams = [f for f in ("undistilled", "distilled") if any(family(r) == f for r in pruned)]
    us = {(m, f): units(rows, study, m, f) for m in model_order({r["model"] for r in pruned}) for f in fams}
    if not fams or not all(us.get((m, f)) for m in PAIR for f in fams[:1]):  # (a dense-only study: no fams)
        return ["1. *BERMo prunes stably.* Needs pruned runs of both BERT and BERMo: **inconclusive**.", ""]

    def test(f: str, attr: str, src: dict = us) -> Fisher:
        (a, na), (b, nb) = unit_count(src[("bert", f)], attr), unit_count(src[("bermo", f)], attr)
        return fisher_greater(a, na, b, nb)

    def counts(f: str, attr: str, src: dict = us) -> str:
        (a, na), (b, nb) = unit_count(src[("bert", f)], attr), unit_count(src[("bermo", f)], attr)
        (ra, rna), (rb, rnb) = run_count(src[("bert", f)], attr), run_count(src[("bermo", f)], attr)
        return f"BERT {of(a, na, 'units')} ({of(ra, rna, 'runs')}), BERMo {of(b, nb, 'units')} ({of(rb, rnb, 'runs')})"

    main = fams[0]
    primary, tested, missing = study.primary, us, None
    if primary:  # the spec names the one series claim 1 reads: its undistilled units alone are tested
        tested = {(m, "undistilled"): units(rows, study, m, "undistilled", primary) for m in PAIR}
        if not all(tested.get((m, "undistilled")) for m in PAIR):
            missing = "no undistilled pruned runs of both BERT and BERMo yet"
    if missing:
        verdict = f"**inconclusive**: the series the spec names, {primary}, has {missing}"
    else:
        f = test("undistilled" if primary else main, "ended", tested)
        verdict = stability_verdict(f)
    series = sorted({r["method"] for r in pruned if family(r) == main})
    per = "; ".join(
        f"{s} {sum(any(o.ended for o in os) for (ser, _), os in us[('bert', main)].items() if ser == s)}/"
        f"{sum(ser == s for ser, _ in us[('bert', main)])} vs "
        f"{sum(any(o.ended for o in os) for (ser, _), os in us[('bermo', main)].items() if ser == s)}/"
        f"{sum(ser == s for ser, _ in us[('bermo', main)])}"
        for s in series
    )
    out = [
        "1. *BERMo prunes stably on small data such as SST-2, where BERT diverges.* Primary outcome: the pruned run "
        "ended at chance (section 2's definition), counted per independent unit (model, series, seed). "
        + (
            f"Tested series, named by the spec's `primary` key: {primary}: "
            + (missing if missing else f"{counts('undistilled', 'ended', tested)}; {fisher_text(f)}")
            + f". {main.capitalize()} series pooled (reported, not judged): {counts(main, 'ended')}; "
            f"{fisher_text(test(main, 'ended'))}. "
            if primary
            else f"{main.capitalize()} series: {counts(main, 'ended')}; {fisher_text(f)}. "
        )
        + f"Per series (units, BERT vs "
        f"BERMo): {per}. Rule: supported if p < {ALPHA:g}; not supported if BERMo's share is at least BERT's; "
        f"a test that cannot reach p < {ALPHA:g} at its n cannot decide. Verdict: {verdict}.",
        "",
    ]
    if "distilled" in fams[1:]:
        out += [
            f"   Distilled series (their own family: "
            f"{', '.join(sorted({r['method'] for r in pruned if family(r) == 'distilled'}))}): "
            f"{counts('distilled', 'ended')}; {fisher_text(test('distilled', 'ended'))}. The same rule on this "
            f"family alone: {stability_verdict(test('distilled', 'ended'))}.",
            "",
        ]
    secondary = "; ".join(
        f"{f_} series{' (all pooled)' if primary else ''} {counts(f_, 'after')}, {fisher_text(test(f_, 'after'))}"
        for f_ in fams
    )
    starts = study.pruned_starts(pruned)
    dense = [r for r in rows if r["status"] != "failed" and r["method"] == "none"]
    calib = ""
    if dense and starts:
        hit = sum(any(s >= starts[0] and study.at_chance(r, v) for s, v in r["curve"]) for r in dense)
        calib = (
            f" Calibration: the dense runs, which never prune, were at chance at an evaluation at or after step "
            f"{starts[0]} in {of(hit, len(dense))} runs; that share of the secondary outcome is not pruning's."
        )
    out += [
        f"   Secondary outcome, at chance at some evaluation after pruning started (reported, not judged): {secondary}."
        + calib,
        "",
    ]
    failed_ft = [r for r in pruned if study.outcome(r).finetune]
    seen = sum(study.outcome(r).finetune is not None for r in pruned)
    dense_fail = {
        m: sum(study.outcome(r).ended for r in dense if r["model"] == m)
        for m in model_order({r["model"] for r in dense})
    }
    out += [
        "   Fine-tuning failures, counted apart: pruned runs at chance at their last evaluation before pruning "
        + (
            f"started: {of(len(failed_ft), seen)} runs with such an evaluation"
            if seen
            else "started: none can be seen, no pruned run has an evaluation before its pruning starts"
        )
        + "; dense runs that ended at chance: "
        + (
            "; ".join(
                f"{name(m)} {of(k, sum(r['model'] == m for r in dense))}" for m, k in dense_fail.items()
            )
            or "no dense runs"
        )
        + ".",
        "",
    ]
    others = [m for m in model_order({r["model"] for r in pruned}) if m not in PAIR]
    if others:
        text = "; ".join(
            f"{m} ended at chance in {of(*[sum(x) for x in zip(*(unit_count(us[(m, f_)], 'ended') for f_ in fams if us.get((m, f_))), strict=True)], 'units')}, "
            f"at chance after pruning started in "
            f"{of(*[sum(x) for x in zip(*(unit_count(us[(m, f_)], 'after') for f_ in fams if us.get((m, f_))), strict=True)], 'units')}"
            for m in others
        )
        out += [f"   Other arms (shown, not part of the BERT-BERMo test): {text}.", ""]
    return out


def _unit_differences(pairs: list[tuple[tuple, float, float]]) -> list[float]:
    """BERMo - BERT averaged within each independent unit (method, seed) of the pairs, in unit order."""
    by_unit: dict[tuple, list[float]] = defaultdict(list)
    for unit, bert, bermo in pairs:
        by_unit[unit].append(bermo - bert)
    return [sum(d) / len(d) for _, d in sorted(by_unit.items(), key=lambda kv: str(kv[0]))]


def _efficiency_interval(pairs) -> tuple[str, object | None]:
    """The comparison text of claim 3 over ``pairs`` ((unit, bert, bermo)): a t-interval over units."""
    diffs = _unit_differences(pairs)
    n_units = len(diffs)
    if n_units < 2:
        return (
            f"{pairs_text(len(pairs))} in {n_units} independent unit(s): cannot decide (an interval needs 2 units)",
            None,
        )
    ci = mean_ci(diffs, bounds=(-1.0, 1.0))
    if no_spread(diffs):
        return (
            f"{pairs_text(len(pairs))} in {n_units} units, every unit differing by {diffs[0]:+.4f}: cannot decide (no spread)",
            None,
        )
    from scipy import stats as sps

    p = float(sps.ttest_1samp(diffs, 0.0).pvalue)
    wmin = wilcoxon_min_p(sum(d != 0 for d in diffs))
    wil = (
        f"Wilcoxon signed-rank cannot decide at {n_units} units (minimum attainable p {wmin:.3g})"
        if wmin >= ALPHA
        else f"Wilcoxon signed-rank p = {float(sps.wilcoxon(diffs).pvalue):.3g}"
    )
    text = (
        f"{pairs_text(len(pairs))} in {n_units} independent units (method, seed: the levels of one unit share their "
        f"warm-up steps, so their differences are averaged), BERMo - BERT {ci.mean:+.4f} (95% t-interval over units "
        f"{ci.low:+.4f} to {ci.high:+.4f}, {n_units - 1} degrees of freedom; t-test p = {p:.3g}; {wil})"
    )
    return text, ci


def _efficiency(rows: list[dict], study: Study) -> list[str]:
    runs = [r for r in rows if r["status"] != "failed" and r["method"] != "none"]
    pen = [r for r in runs if is_penalty_method(pruning_method(r))]
    by_cell = {(r["model"], r["method"], r["target"], r["seed"]): r for r in pen}
    pairs, apart = [], 0
    for (model, method, target, seed), r in sorted(by_cell.items(), key=lambda kv: str(kv[0])):
        other = by_cell.get(("bermo", method, target, seed))
        if model != "bert" or other is None:
            continue
        if abs(r["remaining"] - other["remaining"]) <= EQUAL_SHARE * max(r["remaining"], other["remaining"]):
            pairs.append((r, other))
        else:
            apart += 1
    head = (
        "3. *BERMo is more parameter-efficient under penalty-based pruning.* "
        f"{', '.join(sorted({r['method'] for r in pen})) or 'no penalty method'}, paired by (method, level, seed) at "
        f"equal remaining weights (within {EQUAL_SHARE:.0%}; {pairs_text(apart)} further apart left out): "
        f"{pairs_text(len(pairs))}."
    )
    rule = (
        f"Rule: over the pairs where neither run ended at chance, supported only if the "
        f"interval's lower bound is at least +{MIN_GAIN:.2f}; not supported if its upper bound is below "
        f"+{MIN_GAIN:.2f}; otherwise inconclusive."
    )

    def fails(r):
        o = study.outcome(r)
        return o.ended or o.finetune

    steady = [
        ((r["method"], r["seed"]), r["final"], o["final"]) for r, o in pairs if not (fails(r) or fails(o))
    ]
    dropped = len(pairs) - len(steady)
    text, ci = _efficiency_interval(steady)
    if ci is None:
        verdict = "**inconclusive**: cannot decide"
    elif ci.low >= MIN_GAIN:
        verdict = "**supported**"
    elif ci.high < MIN_GAIN:
        verdict = f"**not supported**: the interval rules out a gain of {MIN_GAIN:.2f}"
    else:
        verdict = "**inconclusive**"
    out = [
        f"{head} {pairs_text(dropped)} hold a run that ended at chance (claim 1's outcome; no t-interval is given "
        f"over a mix of collapsed and learned runs). Pairs where neither run ended at chance: {text}. {rule} "
        f"Verdict: {verdict}.",
        "",
    ]
    calm = [
        ((r["method"], r["seed"]), r["final"], o["final"])
        for r, o in pairs
        if not any(study.outcome(x).after or fails(x) for x in (r, o))
    ]
    if len(calm) != len(steady):
        out += [
            f"   Exploratory (a subset chosen by outcome, not a test of the claim): the pairs where neither run was "
            f"at chance at any evaluation after pruning started: {_efficiency_interval(calm)[0]}.",
            "",
        ]
    return out


#: the key of claim 2's unit of the pairs that crossed before their pruning started (one per seed)
BEFORE_PRUNING = "before pruning"


def step_units(
    paired: list[tuple[dict, dict]], steps: list[tuple[int, int]], study: Study
) -> dict[tuple, list]:
    """Claim 2's units: the log ratios (BERT steps / BERMo steps) of ``paired`` runs' crossing ``steps``, grouped as
    claim 3 groups its differences and :func:`~.convergence.analyse` its units, by series and seed, since the levels
    of one series and seed share their data order and warm-up steps (their log ratios are averaged). A group whose
    crossings all fall before its runs' pruning starts timed the dense warm-up of its seed (every mask at one), which
    every undistilled series of that seed shares, so all such groups of a seed form one unit, (:data:`BEFORE_PRUNING`,
    family, seed); a distilled series learns from its teacher from step 0, so its warm-up is its family's own. A
    unit's log ratio is the mean of its pairs'."""
    groups: dict[tuple, list] = {}
    for (bert, bermo), (a, b) in zip(paired, steps, strict=True):
        starts = (study.start(bert), study.start(bermo))
        before = None not in starts and max(a, b) < min(starts)
        groups.setdefault((bert["method"], bert["seed"]), []).append((before, family(bert), math.log(a / b)))
    units: dict[tuple, list] = {}
    for (series, seed), members in groups.items():
        fams = {f for _, f, _ in members}
        warm = all(before for before, _, _ in members) and len(fams) == 1
        key = (BEFORE_PRUNING, fams.pop(), seed) if warm else (series, seed)
        units.setdefault(key, []).extend(log for _, _, log in members)
    return units


def unit_ratio(units: dict[tuple, list]) -> Interval | None:
    """The geometric-mean BERT/BERMo ratio over units (each unit's log ratio the mean of its pairs') with its 95%
    t-interval (None below 2 units)."""
    logs = [sum(v) / len(v) for v in units.values()]
    return log_ratio_interval(logs) if len(logs) >= 2 else None


def units_text(units: dict[tuple, list]) -> str:
    """How many units the pairs form, and how they were grouped."""
    shared = sum(k[0] == BEFORE_PRUNING for k in units)
    return (
        f"{len(units)} unit(s), counted as independent (series and seed: the levels of one series and seed share "
        "their warm-up steps, so their log ratios are averaged; a seed's series whose crossings all fall before "
        "pruning starts timed that seed's shared dense warm-up and are one unit; "
        f"{shared} of the {len(units)} are such warm-up units)"
    )


def _dense_phase_only(
    paired: list[tuple[dict, dict]], only: dict, level: dict, study: Study, metric: str
) -> str | None:
    """Claim 2 on the full-dev evaluations where no paired run reaches its level after its pruning starts (and
    every pruned pair has both crossings): the rule's ratio then times fine-tuning before any mask falls below one,
    not convergence under pruning, in whole evaluation intervals, and each model is timed to its own dense mean.
    Returns why, with the ratio at one level for both (the lower of the two), or None where the rule applies."""
    if not paired or any(only.values()):
        return None
    steps = []
    for bert, bermo in paired:
        for row, lvl in ((bert, level["bert"]), (bermo, level["bermo"])):
            start, at = study.start(row), steps_to(row["curve"], lvl)
            if start is None or at >= start:
                return None
            steps.append(at)
    starts = sorted({study.start(row) for pair in paired for row in pair})
    common = min(level.values())
    both = [
        ((bert, bermo), (a, b))
        for bert, bermo in paired
        if (a := steps_to(bert["curve"], common)) and (b := steps_to(bermo["curve"], common))
    ]
    units = step_units([p for p, _ in both], [s for _, s in both], study)
    rc = unit_ratio(units)
    if rc is not None:
        at_common = f"{rc.mean:.2f} ({fmt(rc.low, 2)} to {fmt(rc.high, 2)}) over {len(units)} units"
    else:
        at_common = f"{len(both)} pair(s) reached by both in {len(units)} unit(s), no ratio"
    lower = "BERT" if level["bert"] <= level["bermo"] else "BERMo"
    return (
        f"every paired crossing (steps {min(steps):,} to {max(steps):,}) falls before its run's pruning starts "
        f"(step {starts[0]:,}{' or later' if len(starts) > 1 else ''}), while every mask is at one (the dense "
        "forward and data order of its seed; trained scores can still change the weights' steps through a shared "
        "gradient-norm clip), so the ratio times fine-tuning before pruning, on the evaluation grid, not "
        f"convergence under pruning; each model is timed to its own dense mean (levels BERT {level['bert']:.4f}, "
        f"BERMo {level['bermo']:.4f}), and at one level for both ({lower}'s, {metric} {common:.4f}) the same pairs "
        f"give {at_common}"
    )


def claims(
    rows: list[dict], dense: dict, level: dict | None, metric: str, fraction: float, study: Study
) -> list[str]:
    """The paper's three claims, each with a verdict computed from the runs by the rules stated in the text."""
    runs = [r for r in rows if r["status"] != "failed" and r["method"] != "none"]
    out = [
        "## The paper's claims, one by one",
        "",
        "Verdicts follow fixed rules (stated with each claim) applied to the pruned runs of this sweep; they hold "
        "for this encoder, task and schedule only.",
        "",
    ]
    early = bool(runs) and all(r.get("stopped_after") for r in runs)
    if early:
        # claims 1 and 3 are about models at the end of their pruning schedules, which a stopped run never reached
        not_addressed = (
            "Verdict: **not addressed by this sweep**: every pruned run stopped early (`train.stop_after`: "
            f"{stopped_at(runs)}), "
            "before the end of its schedule, and the claim is about models at the end of theirs (sections 1, 2 and 5 "
            "show the runs as they stopped)."
        )
        out += [
            f"1. *BERMo prunes stably on small data such as SST-2, where BERT diverges.* {not_addressed}",
            "",
        ]
    else:
        out += _stability(rows, study)
    # 2. convergence speed: on the early-phase curves where the rows carry them, else on the full-dev evaluations
    if fine_analysis(rows, study) is not None:
        out += _convergence(rows, metric, study)
    elif level:
        pairs, paired, only = [], [], {"bert": 0, "bermo": 0}
        by_cell = {(r["model"], r["method"], r["target"], r["seed"]): r for r in runs}
        for (model, method, target, seed), r in by_cell.items():
            other = by_cell.get(("bermo", method, target, seed))
            if model != "bert" or other is None:
                continue
            a, b = steps_to(r["curve"], level["bert"]), steps_to(other["curve"], level["bermo"])
            if a and b:
                pairs.append((a, b))
                paired.append((r, other))
            elif a or b:
                only["bert" if a else "bermo"] += 1
        units = step_units(paired, pairs, study)
        if len(units) >= 2:
            rc = unit_ratio(units)
            # every unit gives the same ratio (steps are multiples of the evaluation interval)
            if rc.low == rc.high:  # mean_ci gives no width to values equal up to rounding
                verdict = (
                    "**inconclusive**: every unit gives the same ratio, so the interval has no width and bounds "
                    "nothing; more units, or finer evaluation, are needed"
                )
            elif rc.low > 1:
                verdict = "**supported**"
            elif rc.high < PAPER_SPEEDUP:
                verdict = f"**not supported**: the interval rules out a {PAPER_SPEEDUP:.2f}x speed-up"
            else:
                verdict = "**inconclusive**"
            before = _dense_phase_only(paired, only, level, study, metric)
            if before:  # the rule's reading stands beside why it does not answer the claim
                verdict = f"**not addressed under pruning**: the rule reads {verdict.replace('**', '')}, but {before}"
            out += [
                f"2. *BERMo converges faster (1.67x on MNLI, 1.15x on QQP).* Steps to {fraction:.0%} of each "
                f"model's dense {metric}, over {len(pairs)} pruned (method, level, seed) pairs reached by both, in "
                f"{units_text(units)}: BERT/BERMo ratio {rc.mean:.2f} (95% CI over units {fmt(rc.low, 2)} to "
                f"{fmt(rc.high, 2)}); reached by "
                f"BERMo only in {pairs_text(only['bermo'])}, by BERT only in {pairs_text(only['bert'])}. Rule: supported if the "
                f"interval lies above 1; not supported if it lies below {PAPER_SPEEDUP:.2f}. Verdict: {verdict}.",
                "",
            ]
        else:
            out += [
                f"2. *BERMo converges faster (1.67x on MNLI, 1.15x on QQP).* Steps to {fraction:.0%} of each "
                f"model's dense {metric}: {pairs_text(len(pairs))} reached by both, in {len(units)} unit(s); reached "
                f"by BERMo only in {pairs_text(only['bermo'])}, by BERT only in {pairs_text(only['bert'])}. An "
                "interval needs 2 units: **inconclusive**.",
                "",
            ]
    else:
        out += [
            "2. *BERMo converges faster (1.67x on MNLI, 1.15x on QQP).* Not measured: the level each model is timed "
            "to is taken from its dense (`none`) runs, and this sweep lacks them for BERT, BERMo or both: "
            "**inconclusive**.",
            "",
        ]
    if early:
        out += [f"3. *BERMo is more parameter-efficient under penalty-based pruning.* {not_addressed}", ""]
    else:
        out += _efficiency(rows, study)
    return out
