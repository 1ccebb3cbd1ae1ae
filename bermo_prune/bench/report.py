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
from ..tracking import DivergenceConfig, DivergenceTracker
from .stats import mean_ci, paired_comparison, pareto_front, ratio_ci
from .verdicts import claims, findings, fmt, group_runs, recovered, remaining_share, steps_to

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


def write_report(results_dir: str | Path, fraction: float = 0.95) -> Path:
    """Write REPORT.md and its figures next to ``results.jsonl``; returns the report path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(results_dir)
    rows = load_results(out)
    groups = group_runs(rows)
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
    fig, ax = plt.subplots(figsize=(9.5, 5))
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
                rem = remaining_share(groups, key)
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
                    f"({fmt(ci.low)}, {fmt(ci.high)}) | {best:.4f} |"
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
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the plot: it hides no point
    fig.tight_layout()
    fig.savefig(out / "fig_pareto.png", dpi=120)
    plt.close(fig)
    lines += ["## 1. Accuracy versus remaining weights", "", "![pareto](fig_pareto.png)", "", *table, ""]

    # 2. Divergence ------------------------------------------------------------------------------------------------
    definition = DivergenceTracker().summary()["definition"]
    lines += ["## 2. Divergence rate", "", "Definition (defaults of `bermo_prune/tracking.py`):", ""]
    lines += [f"- `{k}`: {v}" for k, v in definition.items()]
    learned = DivergenceConfig().learned_margin
    lines += [
        f"- recovered: a collapse after which the run's final evaluation lies at least {learned:g} above the "
        "evaluation that counted it (the run learned again); the diverged column counts these too",
        "",
        "| model | method | target | diverged / seeds | recovered | kinds (first event) |",
        "|---|---|---|---|---|---|",
    ]
    for key in sorted(groups, key=lambda k: (k[1], k[0], -(k[2] or 0))):
        runs = groups[key]
        kinds = sorted({r["divergence_kind"] for r in runs if r.get("diverged")})
        n_div = sum(bool(r.get("diverged")) for r in runs)
        target = "dense" if key[2] is None else f"{key[2]:g}"
        back = sum(recovered(r) for r in runs)
        lines.append(
            f"| {key[0]} | {key[1]} | {target} | {n_div} / {len(runs)} | {back} | {', '.join(kinds) or '-'} |"
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
                    f"| {r.mean:.2f} ({fmt(r.low, 2)}, {fmt(r.high, 2)}) |"
                )
            else:
                lines.append(f"| {method} | {label} | 0 / {len(bert)} | - | - | not reached by both |")
    else:
        lines.append("Needs dense (`none`) runs of both models.")
    lines.append("")

    # 4. BERMo layer weights ---------------------------------------------------------------------------------------
    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    drawn = 0
    mix_rows = ["| method | target | layer weights (embeddings first) | gamma |", "|---|---|---|---|"]
    mix_keys = sorted((k for k in groups if k[0] == "bermo"), key=lambda k: (k[1], -(k[2] or 0)))
    # one colour per method, one line style per level (densest solid), so no two series look alike
    hue = {m: plt.cm.tab10(i % 10) for i, m in enumerate(sorted({k[1] for k in mix_keys}))}
    style = {k: ("-", "--", ":", "-.")[[j for j in mix_keys if j[1] == k[1]].index(k) % 4] for k in mix_keys}
    for key in mix_keys:
        mixes = [r["mix"] for r in groups[key] if r.get("mix")]
        if not mixes:
            continue
        width = len(mixes[0]["layer_weights"])
        mean = [sum(m["layer_weights"][j] for m in mixes) / len(mixes) for j in range(width)]
        gamma = sum(m["gamma"] for m in mixes) / len(mixes)
        target = "dense" if key[2] is None else f"{key[2]:g}"
        ax.plot(
            range(width),
            mean,
            marker=MARKERS.get(key[1], "x"),
            color=hue[key[1]],
            linestyle=style[key],
            label=f"{key[1]} {target}",
        )
        mix_rows.append(f"| {key[1]} | {target} | {', '.join(f'{w:.3f}' for w in mean)} | {gamma:.3f} |")
        drawn += 1
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("mixed state (0 = embeddings, j = layer j)")
    ax.set_ylabel("softmax weight (mean over seeds)")
    ax.set_title("BERMo's learned layer weights at the end of training")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
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
            "-" if (x := remaining_share(groups, (m, method, target))) is None else f"{x:.3f}"
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
            f"| {method} | {label} | {shares} | {p.n} | {p.mean_difference:+.4f} ({fmt(p.ci_low)}, {fmt(p.ci_high)}) | "
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
        *findings(groups, dense, paired_results, ratios, metric, fraction),
        *claims(rows, dense, level, metric, fraction),
    ]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
