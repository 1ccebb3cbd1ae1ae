"""``bermo-prune report RESULTS_DIR``: REPORT.md and PNG figures from a sweep's ``results.jsonl``.

Opens with computed findings and the paper's three claims (stability, convergence speed, parameter efficiency of
penalty methods), each with a verdict from a rule stated in the text. Sections: (1) accuracy versus remaining
encoder weights with 95% CIs over seeds and each model's Pareto front;
(2) divergence rates; (3) convergence speed, steps to a fraction of the dense accuracy and the BERT/BERMo step
ratio; (4) BERMo's learned layer weights per sparsity; (5) paired BERMo-vs-BERT comparisons per sparsity;
(6) how to reproduce; then ``notes.md`` from the results directory, if there is one (hand-written interpretation,
under a heading that says so).
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections import defaultdict
from pathlib import Path

from ..errors import InputError
from ..tracking import DivergenceTracker
from .stats import mean_ci, paired_comparison, pareto_front, ratio_ci

COLORS = {"bert": "tab:blue", "bermo": "tab:orange"}
#: an optional hand-written file next to results.jsonl, included at the end of the report under its own heading
NOTES = "notes.md"
MARKERS = {"magnitude": "o", "movement": "s", "soft_movement": "^", "l0": "D", "none": "*"}


def load_results(results_dir: str | Path) -> list[dict]:
    path = Path(results_dir) / "results.jsonl"
    if not path.is_file():
        raise InputError(f"{results_dir}: no results.jsonl (run `bermo-prune bench SPEC` first)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise InputError(f"{path}: empty")
    return rows


def load_sweep_log(results_dir: Path) -> dict:
    """``sweep.json`` written by the sweep (spec, sittings, elapsed time); empty if absent."""
    path = results_dir / "sweep.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _time_statement(meta: dict, run_wall: float) -> str:
    runs = f"the runs' own wall times sum to {_duration(run_wall)}"
    sittings = meta.get("sittings") or []
    if not sittings:
        return f"Time: no sweep.json (sweep log) next to the results; {runs}."
    first = sittings[0]
    where = (
        f"{first['workers']} parallel workers of {first['threads_per_worker']} torch thread(s)"
        if len({(s["workers"], s["threads_per_worker"]) for s in sittings}) == 1
        else "varying workers"
    )
    return (
        f"Time: the sweep took {_duration(meta['elapsed_s'])} of wall-clock time in {len(sittings)} sitting(s) "
        f"({first['started']} to {sittings[-1]['finished']}), {where}; {runs}."
    )


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def steps_to(curve: list[list[float]], level: float) -> int | None:
    """First evaluation step whose metric reaches ``level`` (None if never)."""
    return next((int(step) for step, value in curve if value >= level), None)


def _groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["status"] != "failed":
            out[(r["model"], r["method"], r["target"])].append(r)
    return out


def _share(groups: dict[tuple, list[dict]], key: tuple) -> float | None:
    """Mean remaining share of one (model, method, target) group over its runs (None if there are none)."""
    runs = groups.get(key)
    return mean_ci([r["remaining"] for r in runs]).mean if runs else None


def _findings(groups, dense, paired, ratios, metric: str, fraction: float) -> list[str]:
    """The report's opening summary, computed from the sections below it (nothing here is typed in by hand)."""
    out = ["## Findings", ""]
    if dense:
        out.append(
            "- Dense fine-tuning: "
            + "; ".join(
                f"{'BERT' if m == 'bert' else 'BERMo'} {ci.mean:.4f} ({_fmt(ci.low)}, {_fmt(ci.high)})"
                for m, ci in dense.items()
            )
            + f" dev {metric}."
        )

    # A paired cell compares like with like only when both models ended at about the same remaining share (always
    # for top-k methods; a penalty level can leave them far apart, which the Pareto plot handles instead).
    pruned, apart = [], []
    for m, t, p in paired:
        if m != "none":
            a, b = _share(groups, ("bert", m, t)), _share(groups, ("bermo", m, t))
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
            f"- Left out of that count: {len(apart)} penalty cells where the same level left the two models more "
            f"than 10% apart in remaining weights ({', '.join(f'{m} {t:g}' for m, t, _ in apart)}); section 1's "
            "plot compares them at equal remaining weights."
        )
    for model in ("bert", "bermo"):
        sparse = [
            (mean_ci([r["final"] for r in runs]).mean, _share(groups, k), k)
            for k, runs in groups.items()
            if k[0] == model and k[1] != "none" and _share(groups, k) <= 0.1 * 1.001  # top-k rounding
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


def _pairs(n: int) -> str:
    return f"{n} pair" + ("s" if n != 1 else "")


def pruning_method(row: dict) -> str:
    """The pruning method a row ran (its ``method`` may be a series label such as ``movement_kd``)."""
    return row.get("pruning_method") or row["method"]


def is_penalty_method(name: str) -> bool:
    """A method that prunes through a loss penalty (soft movement, L0): its class overrides ``Pruner.penalty``."""
    from ..pruners import Pruner, available_pruners, pruner_class

    return name in available_pruners() and pruner_class(name).penalty is not Pruner.penalty


def _claims(rows: list[dict], dense: dict, level: dict | None, metric: str, fraction: float) -> list[str]:
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
            if rc.low > 1:
                verdict = "**supported**"
            elif rc.high < PAPER_SPEEDUP:
                verdict = f"**not supported**: the interval rules out a {PAPER_SPEEDUP:.2f}x speed-up"
            else:
                verdict = "**inconclusive**"
            out += [
                f"2. *BERMo converges faster (1.67x on MNLI, 1.15x on QQP).* Steps to {fraction:.0%} of each "
                f"model's dense {metric}, over {len(pairs)} pruned (method, level, seed) pairs reached by both: "
                f"BERT/BERMo ratio {rc.mean:.2f} (95% CI {_fmt(rc.low, 2)} to {_fmt(rc.high, 2)}); reached by "
                f"BERMo only in {_pairs(only['bermo'])}, by BERT only in {_pairs(only['bert'])}. Rule: supported if the "
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
    pairs, apart = [], 0
    for (model, method, target, seed), r in sorted(by_cell.items(), key=lambda kv: str(kv[0])):
        other = by_cell.get(("bermo", method, target, seed))
        if model != "bert" or other is None:
            continue
        if abs(r["remaining"] - other["remaining"]) <= EQUAL_SHARE * max(r["remaining"], other["remaining"]):
            pairs.append((r["final"], other["final"]))
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
            f"weights (within {EQUAL_SHARE:.0%}; {apart} pairs further apart left out): {len(pairs)} pairs, BERMo "
            f"- BERT {pc.mean_difference:+.4f} (95% CI {_fmt(pc.ci_low)} to {_fmt(pc.ci_high)}), paired t-test "
            f"p = {pc.p_value:.3g}. Rule: supported if significantly higher (p < 0.05) by at least {MIN_GAIN:.2f}; "
            f"not supported if significantly lower or the interval lies below +{MIN_GAIN:.2f}. Verdict: {verdict}.",
            "",
        ]
    else:
        out += [
            "3. *BERMo is more parameter-efficient under penalty-based pruning.* Fewer than 2 pairs of penalty runs "
            f"at equal remaining weights (within {EQUAL_SHARE:.0%}; {_pairs(apart)} further apart): "
            "**inconclusive**.",
            "",
        ]
    return out


def write_report(results_dir: str | Path, fraction: float = 0.95) -> Path:
    """Write REPORT.md and its figures next to ``results.jsonl``; returns the report path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(results_dir)
    rows = load_results(out)
    groups = _groups(rows)
    failed = [r for r in rows if r["status"] == "failed"]
    metric = next((r["metric"] for r in rows if r.get("metric")), "accuracy")
    dense = {
        m: mean_ci([r["final"] for r in groups.get((m, "none", None), [])])
        for m in ("bert", "bermo")
        if groups.get((m, "none", None))
    }
    lines = [f"# BERT vs BERMo under pruning: {out.name}", ""]
    lines += [
        f"{len(rows)} runs ({len(failed)} failed); metric: dev {metric}; intervals are 95% Student-t over seeds.",
        "",
    ]
    summary_at = len(lines)
    paired_results: list[tuple[str, float | None, object]] = []
    ratios: list[object] = []

    # 1. Pareto plot ---------------------------------------------------------------------------------------------
    fig, ax = plt.subplots(figsize=(7.5, 5))
    table = [
        "| model | method | target | seeds | remaining | final (95% CI) | best |",
        "|---|---|---|---|---|---|---|",
    ]
    front_points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for model in ("bert", "bermo"):
        for method in sorted({k[1] for k in groups if k[0] == model}):
            keys = sorted((k for k in groups if k[:2] == (model, method)), key=lambda k: -(k[2] or 0))
            xs, ys, lo, hi = [], [], [], []
            for key in keys:
                runs = groups[key]
                rem = _share(groups, key)
                ci = mean_ci([r["final"] for r in runs])
                xs.append(rem)
                ys.append(ci.mean)
                lo.append(ci.mean - ci.low if not math.isnan(ci.low) else 0)
                hi.append(ci.high - ci.mean if not math.isnan(ci.high) else 0)
                front_points[model].append((rem, ci.mean))
                target = "dense" if key[2] is None else f"{key[2]:g}"
                best = mean_ci([r["best"] for r in runs]).mean
                table.append(
                    f"| {model} | {method} | {target} | {ci.n} | {rem:.3f} | {ci.mean:.4f} "
                    f"({_fmt(ci.low)}, {_fmt(ci.high)}) | {best:.4f} |"
                )
            ax.errorbar(
                xs,
                ys,
                yerr=[lo, hi],
                color=COLORS[model],
                marker=MARKERS.get(method, "x"),
                capsize=3,
                linestyle="-" if method != "none" else "none",
                label=f"{model} {method}",
                alpha=0.85,
            )
    for model, pts in front_points.items():
        idx = pareto_front(pts)
        fx, fy = [pts[i][0] for i in idx], [pts[i][1] for i in idx]
        fx.append(max(p[0] for p in pts))  # the front holds up to the densest point
        fy.append(fy[-1])
        ax.step(
            fx,
            fy,
            where="post",
            color=COLORS[model],
            linestyle="--",
            linewidth=1,
            alpha=0.6,
            label=f"{model} Pareto front",
        )
    ax.set_xscale("log")
    ax.set_xlabel("remaining encoder linear weights (fraction, log scale)")
    ax.set_ylabel(f"dev {metric}")
    ax.set_title("Accuracy vs remaining weights (mean and 95% CI over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "fig_pareto.png", dpi=120)
    plt.close(fig)
    lines += ["## 1. Accuracy versus remaining weights", "", "![pareto](fig_pareto.png)", "", *table, ""]

    # 2. Divergence ------------------------------------------------------------------------------------------------
    definition = DivergenceTracker().summary()["definition"]
    lines += ["## 2. Divergence rate", "", "Definition (defaults of `bermo_prune/tracking.py`):", ""]
    lines += [f"- `{k}`: {v}" for k, v in definition.items()]
    lines += [
        "",
        "| model | method | target | diverged / seeds | kinds (first event) |",
        "|---|---|---|---|---|",
    ]
    for key in sorted(groups, key=lambda k: (k[1], k[0], -(k[2] or 0))):
        runs = groups[key]
        kinds = sorted({r["divergence_kind"] for r in runs if r.get("diverged")})
        n_div = sum(bool(r.get("diverged")) for r in runs)
        target = "dense" if key[2] is None else f"{key[2]:g}"
        lines.append(
            f"| {key[0]} | {key[1]} | {target} | {n_div} / {len(runs)} | {', '.join(kinds) or '-'} |"
        )
    lines.append("")

    # 3. Convergence speed -------------------------------------------------------------------------------------------
    lines += [f"## 3. Convergence speed: steps to {fraction:.0%} of the dense {metric}", ""]
    if len(dense) == 2:
        level = {m: fraction * dense[m].mean for m in dense}
        lines += [
            f"Dense {metric}: BERT {dense['bert'].mean:.4f}, BERMo {dense['bermo'].mean:.4f}; each model's target is "
            f"{fraction:.0%} of its own dense mean. Ratio = BERT steps / BERMo steps over seeds reached by both "
            "(> 1: BERMo converges faster; the paper reports 1.67x on MNLI and 1.15x on QQP).",
            "",
            "| method | target | seeds reached by both | BERT steps | BERMo steps | ratio (95% CI) |",
            "|---|---|---|---|---|---|",
        ]
        for method, target in sorted({(k[1], k[2]) for k in groups}, key=lambda k: (k[0], -(k[1] or 0))):
            bert = {
                r["seed"]: steps_to(r["curve"], level["bert"])
                for r in groups.get(("bert", method, target), [])
            }
            bermo = {
                r["seed"]: steps_to(r["curve"], level["bermo"])
                for r in groups.get(("bermo", method, target), [])
            }
            both = [s for s in bert if s in bermo and bert[s] and bermo[s]]
            label = "dense" if target is None else f"{target:g}"
            if both:
                a, b = [bert[s] for s in both], [bermo[s] for s in both]
                r = ratio_ci(a, b)
                ratios.append(r)
                lines.append(
                    f"| {method} | {label} | {len(both)} / {len(bert)} | {sum(a) / len(a):.0f} | {sum(b) / len(b):.0f} "
                    f"| {r.mean:.2f} ({_fmt(r.low, 2)}, {_fmt(r.high, 2)}) |"
                )
            else:
                lines.append(f"| {method} | {label} | 0 / {len(bert)} | - | - | not reached by both |")
    else:
        lines.append("Needs dense (`none`) runs of both models.")
    lines.append("")

    # 4. BERMo layer weights ---------------------------------------------------------------------------------------
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    drawn = 0
    mix_rows = ["| method | target | layer weights (embeddings first) | gamma |", "|---|---|---|---|"]
    for key in sorted((k for k in groups if k[0] == "bermo"), key=lambda k: (k[1], -(k[2] or 0))):
        mixes = [r["mix"] for r in groups[key] if r.get("mix")]
        if not mixes:
            continue
        width = len(mixes[0]["layer_weights"])
        mean = [sum(m["layer_weights"][j] for m in mixes) / len(mixes) for j in range(width)]
        gamma = sum(m["gamma"] for m in mixes) / len(mixes)
        target = "dense" if key[2] is None else f"{key[2]:g}"
        ax.plot(range(width), mean, marker=MARKERS.get(key[1], "x"), label=f"{key[1]} {target}")
        mix_rows.append(f"| {key[1]} | {target} | {', '.join(f'{w:.3f}' for w in mean)} | {gamma:.3f} |")
        drawn += 1
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("mixed state (0 = embeddings, j = layer j)")
    ax.set_ylabel("softmax weight (mean over seeds)")
    ax.set_title("BERMo's learned layer weights at the end of training")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "fig_mix.png", dpi=120)
    plt.close(fig)
    lines += ["## 4. BERMo's layer weights", "", "![mix](fig_mix.png)", "", *mix_rows, ""]

    # 5. Paired comparisons ----------------------------------------------------------------------------------------
    lines += [
        "## 5. BERMo vs BERT, paired by seed",
        "",
        "Difference = BERMo - BERT in final dev metric; paired t-test (scipy `ttest_rel`), Wilcoxon signed-rank, "
        'effect size d_z = mean / sd of the differences. "No significant difference" is a finding, not a failure. '
        "Top-k methods prune both models to the same remaining share; for penalty methods (soft movement, L0) "
        "the same penalty can leave the two models at different shares, so the remaining columns say whether a "
        "row compares like with like (section 1's plot compares them at equal remaining weights).",
        "",
        "| method | target | remaining BERT / BERMo | n | mean diff (95% CI) | t-test p | Wilcoxon p | d_z | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, target in sorted({(k[1], k[2]) for k in groups}, key=lambda k: (k[0], -(k[1] or 0))):
        bert = {r["seed"]: r["final"] for r in groups.get(("bert", method, target), [])}
        bermo = {r["seed"]: r["final"] for r in groups.get(("bermo", method, target), [])}
        seeds = sorted(set(bert) & set(bermo))
        label = "dense" if target is None else f"{target:g}"
        shares = " / ".join(
            "-" if (x := _share(groups, (m, method, target))) is None else f"{x:.3f}"
            for m in ("bert", "bermo")
        )
        if len(seeds) < 2:
            lines.append(
                f"| {method} | {label} | {shares} | {len(seeds)} | - | - | - | - | fewer than 2 paired seeds |"
            )
            continue
        p = paired_comparison([bert[s] for s in seeds], [bermo[s] for s in seeds])
        paired_results.append((method, target, p))
        lines.append(
            f"| {method} | {label} | {shares} | {p.n} | {p.mean_difference:+.4f} ({_fmt(p.ci_low)}, {_fmt(p.ci_high)}) | "
            f"{p.p_value:.3g} | {p.wilcoxon_p:.3g} | {p.effect_size_dz:.2f} | {p.verdict} |"
        )
    lines.append("")

    # 6. Reproduce ---------------------------------------------------------------------------------------------------
    import accelerate
    import scipy
    import torch
    import transformers

    wall = sum(r.get("wall_time_s") or 0 for r in rows)
    meta = load_sweep_log(out)
    spec = meta.get("spec", f"{out}/spec.yaml")
    lines += [
        "## 6. How to reproduce",
        "",
        "```",
        "make install",
        f".venv/bin/bermo-prune bench {spec}    # resumable; finished runs are skipped",
        f".venv/bin/bermo-prune report {meta.get('output_dir', out)}",
        "```",
        "",
        f"This report was generated with `bermo-prune report {out}` from the `results.jsonl` (and `sweep.json`) "
        "in that directory.",
        "",
        f"Versions: torch {torch.__version__}, transformers {transformers.__version__}, accelerate "
        f"{accelerate.__version__}, scipy {scipy.__version__}. Machine: {platform.platform()}, "
        f"{os.cpu_count()} CPU cores.",
        "",
        _time_statement(meta, wall),
        "",
    ]
    if meta.get("spec_text"):
        lines += ["The spec as run:", "", "```yaml", meta["spec_text"].rstrip(), "```", ""]
    if failed:
        lines += ["Failed runs:", ""] + [f"- {r['run']}: {r.get('error', '')}" for r in failed] + [""]
    notes = out / NOTES
    if notes.is_file():
        lines += [
            "## Notes (written by hand, not generated)",
            "",
            notes.read_text(encoding="utf-8").strip(),
            "",
        ]
    level = {m: fraction * dense[m].mean for m in dense} if len(dense) == 2 else None
    lines[summary_at:summary_at] = [
        *_findings(groups, dense, paired_results, ratios, metric, fraction),
        *_claims(rows, dense, level, metric, fraction),
    ]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
