"""The report's computed text: the findings that open REPORT.md and the verdicts on the paper's three claims
(stability under pruning, convergence speed, parameter efficiency of penalty methods), each from a rule stated in
the text, plus the small helpers the report's tables share with them (:mod:`.report` writes the rest)."""

from __future__ import annotations

import math
from collections import defaultdict

from ..tracking import DivergenceConfig
from .stats import mean_ci, paired_comparison, ratio_ci


def fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def steps_to(curve: list[list[float]], level: float) -> int | None:
    """First evaluation step whose metric reaches ``level`` (None if never)."""
    return next((int(step) for step, value in curve if value >= level), None)


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


def findings(groups, dense, paired, ratios, metric: str, fraction: float) -> list[str]:
    """The report's opening summary, computed from the sections below it (nothing here is typed in by hand)."""
    out = ["## Findings", ""]
    if dense:
        out.append(
            "- Dense fine-tuning: "
            + "; ".join(
                f"{'BERT' if m == 'bert' else 'BERMo'} {ci.mean:.4f} ({fmt(ci.low)}, {fmt(ci.high)})"
                for m, ci in dense.items()
            )
            + f" dev {metric}."
        )

    # A paired cell compares like with like only when both models ended at about the same remaining share (always
    # for top-k methods; a penalty level can leave them far apart, which the Pareto plot handles instead).
    pruned, apart = [], []
    for m, t, p in paired:
        if m != "none":
            a, b = remaining_share(groups, ("bert", m, t)), remaining_share(groups, ("bermo", m, t))
            (pruned if abs(a - b) <= 0.1 * max(a, b) else apart).append((m, t, p))
    if pruned:
        higher = [x for x in pruned if x[2].p_value < 0.05 and x[2].mean_difference > 0]
        lower = [x for x in pruned if x[2].p_value < 0.05 and x[2].mean_difference < 0]
        mean_diff = sum(x[2].mean_difference for x in pruned) / len(pruned)

        def cells(xs):
            return ", ".join(f"{m} {t:g}" for m, t, _ in xs)

        out.append(
            f"- BERMo vs BERT over {len(pruned)} pruned (method, level) cells, paired by seed: significantly higher "
            f"in {len(higher)}{f' ({cells(higher)})' if higher else ''}, significantly lower in {len(lower)}"
            f"{f' ({cells(lower)})' if lower else ''}, no significant difference in "
            f"{len(pruned) - len(higher) - len(lower)} (paired t-test at 0.05, uncorrected for "
            f"{len(pruned)} comparisons). Mean difference over cells: {mean_diff:+.4f}."
        )
    if apart:
        out.append(
            f"- Left out of that count: {len(apart)} penalty cell{'s' if len(apart) != 1 else ''} where the same "
            "level left the two models more "
            f"than 10% apart in remaining weights ({', '.join(f'{m} {t:g}' for m, t, _ in apart)}); section 1's "
            "plot compares them at equal remaining weights."
        )
    for model in ("bert", "bermo"):
        sparse = [
            (mean_ci([r["final"] for r in runs]).mean, remaining_share(groups, k), k)
            for k, runs in groups.items()
            if k[0] == model
            and k[1] != "none"
            and remaining_share(groups, k) <= 0.1 * 1.001  # top-k rounding
        ]
        if sparse:
            acc, rem, k = max(sparse)
            out.append(
                f"- Best {'BERT' if model == 'bert' else 'BERMo'} at <= 10% remaining: {acc:.4f} "
                f"({k[1]} {k[2]:g}, {rem:.1%} remaining)."
            )
    runs = [r for rs in groups.values() for r in rs]
    div = {
        m: (sum(bool(r.get("diverged")) for r in runs if r["model"] == m), sum(r["model"] == m for r in runs))
        for m in ("bert", "bermo")
    }
    out.append(
        "- Diverged runs (section 2): "
        + "; ".join(f"{'BERT' if m == 'bert' else 'BERMo'} {d} of {n}" for m, (d, n) in div.items() if n)
        + "."
    )
    if ratios:
        above = sum(r.low > 1 for r in ratios if not math.isnan(r.low))
        below = sum(r.high < 1 for r in ratios if not math.isnan(r.high))
        out.append(
            f"- Steps to {fraction:.0%} of the dense {metric} (section 3): BERMo significantly faster in {above} "
            f"of {len(ratios)} cells, slower in {below}; geometric mean of the BERT/BERMo ratios "
            f"{math.exp(sum(math.log(r.mean) for r in ratios) / len(ratios)):.2f}."
        )
    out.append("")
    return out


#: A convergence speed-up the data must rule out before "not supported": the smaller of the paper's two figures
#: (1.67x on MNLI, 1.15x on QQP).
PAPER_SPEEDUP = 1.15
#: Accuracy gain (absolute) below which a difference is too small to call BERMo "more parameter-efficient".
MIN_GAIN = 0.01
#: Two runs compare at equal remaining weights when their shares differ by at most this fraction of the larger.
EQUAL_SHARE = 0.1


def pairs_text(n: int) -> str:
    return f"{n} pair" + ("s" if n != 1 else "")


def pruning_method(row: dict) -> str:
    """The pruning method a row ran (its ``method`` may be a series label such as ``movement_kd``)."""
    return row.get("pruning_method") or row["method"]


def is_penalty_method(name: str) -> bool:
    """A method that prunes through a loss penalty (soft movement, L0): its class overrides ``Pruner.penalty``."""
    from ..pruners import Pruner, available_pruners, pruner_class

    return name in available_pruners() and pruner_class(name).penalty is not Pruner.penalty


def claims(rows: list[dict], dense: dict, level: dict | None, metric: str, fraction: float) -> list[str]:
    """The paper's three claims, each with a verdict computed from the runs by the rules stated in the text."""
    from scipy import stats as sps

    runs = [r for r in rows if r["status"] != "failed" and r["method"] != "none"]
    out = [
        "## The paper's claims, one by one",
        "",
        "Verdicts follow fixed rules (stated with each claim) applied to the pruned runs of this sweep; they hold "
        "for this encoder, task and schedule only.",
        "",
    ]
    # 1. stability
    div = {m: [bool(r.get("diverged")) for r in runs if r["model"] == m] for m in ("bert", "bermo")}
    if all(div.values()):
        (db, nb), (dm, nm) = ((sum(v), len(v)) for v in (div["bert"], div["bermo"]))
        p = float(sps.fisher_exact([[db, nb - db], [dm, nm - dm]], alternative="greater")[1])
        if db == 0 and dm == 0:
            verdict = "**not supported**: no pruned run of either model diverged"
        elif p < 0.05:
            verdict = "**supported**"
        elif dm / nm >= db / nb:
            verdict = "**not supported**: BERMo diverged at least as often as BERT"
        else:
            verdict = "**inconclusive**: fewer BERMo divergences, but not significantly"
        per = "; ".join(
            f"{meth} {sum(bool(r.get('diverged')) for r in runs if r['method'] == meth and r['model'] == 'bert')}"
            f"/{sum(r['method'] == meth and r['model'] == 'bert' for r in runs)} vs "
            f"{sum(bool(r.get('diverged')) for r in runs if r['method'] == meth and r['model'] == 'bermo')}"
            f"/{sum(r['method'] == meth and r['model'] == 'bermo' for r in runs)}"
            for meth in sorted({r["method"] for r in runs})
        )
        out += [
            "1. *BERMo prunes stably on small data such as SST-2, where BERT diverges.* "
            f"Diverged pruned runs (section 2's definition): BERT {db} of {nb} ({db / nb:.0%}), BERMo {dm} of {nm} "
            f"({dm / nm:.0%}); one-sided Fisher exact test that BERT diverges more often: p = {p:.3g}. "
            f"Per method (BERT vs BERMo): {per}. Rule: supported if p < 0.05; not supported if BERMo's rate is "
            f"at least BERT's. Verdict: {verdict}.",
            "",
        ]
        if db or dm:  # the rule counts every divergence; how many runs ended diverged is reported, not judged
            back = {m: sum(recovered(r) for r in runs if r["model"] == m) for m in ("bert", "bermo")}
            eb, em = db - back["bert"], dm - back["bermo"]
            p_end = float(sps.fisher_exact([[eb, nb - eb], [em, nm - em]], alternative="greater")[1])
            out += [
                f"   The count above includes collapses the run recovered from (section 2): BERT {back['bert']} of "
                f"its {db}, BERMo {back['bermo']} of its {dm}. Runs that ended diverged: BERT {eb} of {nb}, BERMo "
                f"{em} of {nm} (one-sided Fisher exact test: p = {p_end:.3g}).",
                "",
            ]
    # 2. convergence speed
    if level:
        pairs, only = [], {"bert": 0, "bermo": 0}
        by_cell = {(r["model"], r["method"], r["target"], r["seed"]): r for r in runs}
        for (model, method, target, seed), r in by_cell.items():
            other = by_cell.get(("bermo", method, target, seed))
            if model != "bert" or other is None:
                continue
            a, b = steps_to(r["curve"], level["bert"]), steps_to(other["curve"], level["bermo"])
            if a and b:
                pairs.append((a, b))
            elif a or b:
                only["bert" if a else "bermo"] += 1
        if len(pairs) >= 2:
            rc = ratio_ci([a for a, _ in pairs], [b for _, b in pairs])
            # every pair gives the same ratio (steps are multiples of the evaluation interval)
            if rc.low == rc.high:
                verdict = (
                    "**inconclusive**: every pair gives the same ratio, so the interval has no width and bounds "
                    "nothing; more pairs, or finer evaluation, are needed"
                )
            elif rc.low > 1:
                verdict = "**supported**"
            elif rc.high < PAPER_SPEEDUP:
                verdict = f"**not supported**: the interval rules out a {PAPER_SPEEDUP:.2f}x speed-up"
            else:
                verdict = "**inconclusive**"
            out += [
                f"2. *BERMo converges faster (1.67x on MNLI, 1.15x on QQP).* Steps to {fraction:.0%} of each "
                f"model's dense {metric}, over {len(pairs)} pruned (method, level, seed) pairs reached by both: "
                f"BERT/BERMo ratio {rc.mean:.2f} (95% CI {fmt(rc.low, 2)} to {fmt(rc.high, 2)}); reached by "
                f"BERMo only in {pairs_text(only['bermo'])}, by BERT only in {pairs_text(only['bert'])}. Rule: supported if the "
                f"interval lies above 1; not supported if it lies below {PAPER_SPEEDUP:.2f}. Verdict: {verdict}.",
                "",
            ]
        else:
            out += [
                "2. *BERMo converges faster.* Fewer than 2 pruned pairs reached the level: **inconclusive**.",
                "",
            ]
    # 3. parameter efficiency of penalty methods
    pen = [r for r in runs if is_penalty_method(pruning_method(r))]
    by_cell = {(r["model"], r["method"], r["target"], r["seed"]): r for r in pen}
    pairs, apart, steady = [], 0, []
    for (model, method, target, seed), r in sorted(by_cell.items(), key=lambda kv: str(kv[0])):
        other = by_cell.get(("bermo", method, target, seed))
        if model != "bert" or other is None:
            continue
        if abs(r["remaining"] - other["remaining"]) <= EQUAL_SHARE * max(r["remaining"], other["remaining"]):
            pairs.append((r["final"], other["final"]))
            if not (r.get("diverged") or other.get("diverged")):
                steady.append(pairs[-1])
        else:
            apart += 1
    if len(pairs) >= 2:
        pc = paired_comparison([a for a, _ in pairs], [b for _, b in pairs])
        if pc.p_value < 0.05 and pc.mean_difference > 0 and pc.mean_difference >= MIN_GAIN:
            verdict = "**supported**"
        elif (pc.p_value < 0.05 and pc.mean_difference < 0) or pc.ci_high < MIN_GAIN:
            verdict = f"**not supported**: the interval rules out a gain of {MIN_GAIN:.2f}"
        else:
            verdict = "**inconclusive**"
        out += [
            "3. *BERMo is more parameter-efficient under penalty-based pruning.* "
            f"{', '.join(sorted({r['method'] for r in pen}))}, paired by (method, level, seed) at equal remaining "
            f"weights (within {EQUAL_SHARE:.0%}; {pairs_text(apart)} further apart left out): {len(pairs)} pairs, "
            f"BERMo - BERT {pc.mean_difference:+.4f} (95% CI {fmt(pc.ci_low)} to {fmt(pc.ci_high)}), paired t-test "
            f"p = {pc.p_value:.3g}. Rule: supported if significantly higher (p < 0.05) by at least {MIN_GAIN:.2f}; "
            f"not supported if significantly lower or the interval lies below +{MIN_GAIN:.2f}. Verdict: {verdict}.",
            "",
            f"   {_without_divergence(pairs, steady)}",
            "",
        ]
    else:
        out += [
            "3. *BERMo is more parameter-efficient under penalty-based pruning.* Fewer than 2 pairs of penalty runs "
            f"at equal remaining weights (within {EQUAL_SHARE:.0%}; {pairs_text(apart)} further apart): "
            "**inconclusive**.",
            "",
        ]
    return out


def _without_divergence(pairs: list[tuple[float, float]], steady: list[tuple[float, float]]) -> str:
    """Claim 3 again on the pairs where neither run diverged: whether a gain is parameter efficiency or the
    stability of claim 1 seen at equal weights."""
    if len(steady) == len(pairs):
        return "No run in these pairs diverged: the comparison is one of accuracy at equal weights alone."
    head = (
        f"{len(pairs) - len(steady)} of the {len(pairs)} pairs hold a diverged run (claim 1), so the difference "
        "above mixes stability with accuracy at equal weights. Without them: "
    )
    if len(steady) < 2:
        return head + f"{pairs_text(len(steady))} left, too few to compare."
    pc = paired_comparison([a for a, _ in steady], [b for _, b in steady])
    return head + (
        f"{len(steady)} pairs, BERMo - BERT {pc.mean_difference:+.4f} (95% CI {fmt(pc.ci_low)} to "
        f"{fmt(pc.ci_high)}), paired t-test p = {pc.p_value:.3g}."
    )
