"""The report's "Control arms" section: every model arm other than BERT and BERMo (e.g. ``bermo_last``) placed
against both on claim 1's primary outcome, series by series, and its accuracy against the bag-of-words line.

The outcome and its counting are claim 1's own (:func:`.verdicts.units`, :func:`.verdicts.unit_count`): a pruned
run ended at chance, counted once per independent unit (model, series, seed); only undistilled series are placed.
Tests are one-sided Fisher exact tests on unit counts (:func:`.stats.fisher_greater`), in the directions the
question fixes (does the arm end at chance as often as BERT, or as rarely as BERMo?); a test whose group sizes
cannot reach p < 0.05 cannot decide. The section is absent when the rows hold no other arm.
"""

from __future__ import annotations

from dataclasses import dataclass

from .stats import Fisher, fisher_greater, median_range
from .verdicts import (
    ALPHA,
    PAIR,
    Study,
    against_bag_of_words,
    learned_finals,
    median_against,
    model_order,
    of,
    run_count,
    unit_count,
    units,
)

LIKE_BERT = "behaves like BERT"
LIKE_BERMO = "behaves like BERMo"
BETWEEN = "in between or undecided"


def extra_arms(rows: list[dict]) -> list[str]:
    """The model arms of the (not failed) rows other than BERT and BERMo, in report order."""
    return [m for m in model_order({r["model"] for r in rows if r["status"] != "failed"}) if m not in PAIR]


@dataclass(frozen=True)
class Placement:
    """One arm in one undistilled series against BERT and BERMo."""

    arm: str
    series: str
    counts: dict[str, tuple[int, int]]  # model -> (units that ended at chance, units)
    runs: dict[str, tuple[int, int]]  # model -> (runs that ended at chance, runs)
    pair: Fisher  # BERT's units end at chance more often than BERMo's (claim 1's test on this series)
    vs_bert: Fisher  # BERT's units end at chance more often than the arm's
    vs_bermo: Fisher  # the arm's units end at chance more often than BERMo's

    @property
    def reading(self) -> str:
        return place(self.pair, self.vs_bert, self.vs_bermo)[0]


def place(pair: Fisher, vs_bert: Fisher, vs_bermo: Fisher) -> tuple[str, str]:
    """The rule stated in :func:`control_arms`: (reading, why)."""
    undecidable = [
        t
        for t, f in (("BERT vs BERMo", pair), ("vs BERT", vs_bert), ("vs BERMo", vs_bermo))
        if not f.can_decide(ALPHA)
    ]
    if undecidable:
        return BETWEEN, f"undecided: {', '.join(undecidable)} cannot decide at these numbers of units"
    if pair.p_value >= ALPHA:
        return BETWEEN, "undecided: BERT and BERMo themselves do not differ significantly in this series"
    below_bert, above_bermo = vs_bert.p_value < ALPHA, vs_bermo.p_value < ALPHA
    if above_bermo and not below_bert:
        return (
            LIKE_BERT,
            "its units ended at chance significantly more often than BERMo's, not significantly less often than BERT's",
        )
    if below_bert and not above_bermo:
        return (
            LIKE_BERMO,
            "its units ended at chance significantly less often than BERT's, not significantly more often than BERMo's",
        )
    if below_bert and above_bermo:
        return (
            BETWEEN,
            "in between: its units ended at chance significantly less often than BERT's and more often than BERMo's",
        )
    return BETWEEN, "undecided: significantly different from neither model"


def placements(rows: list[dict], study: Study) -> list[Placement]:
    """Every (extra arm, undistilled pruned series) with claim 1's unit counts and the three tests."""
    us = {m: units(rows, study, m, "undistilled") for m in model_order({r["model"] for r in rows})}
    out = []
    for arm in extra_arms(rows):
        for series in sorted({s for s, _ in us.get(arm, {})}):
            mine = {m: {k: v for k, v in us.get(m, {}).items() if k[0] == series} for m in (*PAIR, arm)}
            counts = {m: unit_count(u, "ended") for m, u in mine.items()}
            runs = {m: run_count(u, "ended") for m, u in mine.items()}
            (a, na), (b, nb), (c, nc) = counts["bert"], counts["bermo"], counts[arm]
            out.append(
                Placement(
                    arm,
                    series,
                    counts,
                    runs,
                    fisher_greater(a, na, b, nb),
                    fisher_greater(a, na, c, nc),
                    fisher_greater(c, nc, b, nb),
                )
            )
    return out


def _p(f: Fisher) -> str:
    if not f.can_decide(ALPHA):
        return f"cannot decide ({f.n_a} units against {f.n_b}, minimum attainable p {f.min_p:.3g})"
    return f"p = {f.p_value:.3g}"


def _accuracy(rows: list[dict], study: Study, arm: str, series: str, line: float | None) -> str:
    """The arm's median final accuracy over its runs that did not end at chance, per level of the series."""
    parts = []
    for target in sorted(
        {r["target"] for r in rows if (r["model"], r["method"]) == (arm, series)}, key=lambda t: -(t or 0)
    ):
        runs = [
            r
            for r in rows
            if r["status"] != "failed" and (r["model"], r["method"], r["target"]) == (arm, series, target)
        ]
        kept = learned_finals(runs, study)
        if not kept:
            parts.append(f"at {target:g}, every one of {len(runs)} runs ended at chance")
            continue
        s = median_range(kept)
        spread = "one run" if len(kept) == 1 else f"range {s.low:.4f} to {s.high:.4f}"
        versus = ""
        if line is not None:
            side = "above" if s.mean > line else "not above"
            versus = (
                f", {s.mean - line:+.4f} against the bag of words: median {side} the line; "
                f"{median_against(kept, line, study.dev_size())}; "
                f"{against_bag_of_words([r for r in runs if not study.outcome(r).ended], study)}"
            )
        parts.append(
            f"at {target:g}, median {s.mean:.4f} over {of(len(kept), len(runs), 'runs')} ({spread}){versus}"
        )
    return "; ".join(parts)


def control_arms(rows: list[dict], study: Study) -> list[str]:
    """The "Control arms" section, or nothing when the rows hold no arm besides BERT and BERMo."""
    arms = extra_arms(rows)
    if not arms:
        return []
    bow = study.bag_of_words()
    line = max(bow) if bow else None
    out = [
        "## Control arms",
        "",
        f"Arms besides BERT and BERMo ({', '.join(f'`{a}`' for a in arms)}), placed against both, series by series, "
        "on claim 1's primary outcome: a pruned run ended at chance, counted per independent unit (model, series, "
        "seed) exactly as claim 1 counts it; undistilled series only. Tests: one-sided Fisher exact tests on unit "
        "counts, in the directions the question fixes (the arm between the two models): BERT vs BERMo, that BERT's "
        "units end at chance more often (claim 1's test on this series alone); vs BERT, that BERT's units end at "
        "chance more often than the arm's; vs BERMo, that the arm's end at chance more often than BERMo's. No test of "
        "the opposite directions: an arm beyond either model is placed with that model. A test whose group sizes "
        f"cannot reach p < {ALPHA:g} cannot decide; p-values are uncorrected for the number of series and arms.",
        "",
        f"Rule: undecided unless all three tests can decide and BERT's units end at chance "
        f"significantly more often than BERMo's (p < {ALPHA:g}); then *{LIKE_BERT}* if the arm's units end at chance "
        f"significantly more often than BERMo's and not significantly less often than BERT's; *{LIKE_BERMO}* if they "
        "end at chance significantly less often than BERT's and not significantly more often than BERMo's; otherwise "
        f"*{BETWEEN}* (significantly apart from both: in between; from neither: undecided). Accuracy: the arm's median "
        "final accuracy over its runs that did not end at chance, per level, against the bag-of-words line"
        + (
            f" ({line:.4f}" + (", the highest over the training draws)" if len(bow) > 1 else ")")
            if line is not None
            else " (none: no classification baselines)"
        )
        + "; a cell is useful only if its median lies above that line.",
        "",
    ]
    found = placements(rows, study)
    for arm in arms:
        if not any(p.arm == arm for p in found):
            out.append(f"- `{arm}`: no undistilled pruned runs, nothing to place.")
    for p in found:
        reading, why = place(p.pair, p.vs_bert, p.vs_bermo)
        (c, nc), (rc, rnc) = p.counts[p.arm], p.runs[p.arm]
        (a, na), (b, nb) = p.counts["bert"], p.counts["bermo"]
        out.append(
            f"- `{p.arm}`, {p.series}: ended at chance in {of(c, nc, 'units')} ({of(rc, rnc, 'runs')}); BERT "
            f"{of(a, na, 'units')}, BERMo {of(b, nb, 'units')}. BERT vs BERMo: {_p(p.pair)}; vs BERT: {_p(p.vs_bert)}; "
            f"vs BERMo: {_p(p.vs_bermo)}. Accuracy of its runs not at chance: "
            f"{_accuracy(rows, study, p.arm, p.series, line)}. Reading for `{p.arm}` under {p.series}: "
            f"**{reading}** ({why})."
        )
    out.append("")
    return out


__all__ = [
    "BETWEEN",
    "LIKE_BERMO",
    "LIKE_BERT",
    "Placement",
    "control_arms",
    "extra_arms",
    "place",
    "placements",
]
