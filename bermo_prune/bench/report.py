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
import re
from collections import Counter, defaultdict
from pathlib import Path

from ..errors import InputError
from ..tracking import DivergenceConfig, DivergenceTracker
from .answer import plain_answer
from .arms import control_arms
from .baselines import BAG_OF_WORDS, load_baselines
from .convergence import LEVEL_FRACTION, power_text, sensitivity
from .stats import mean_ci, median_range, paired_comparison, pareto_front, ratio_ci
from .sweep import RETRAINED
from .verdicts import (
    ALPHA,
    Study,
    against_bag_of_words,
    claims,
    convergence_verdict,
    dense_means,
    findings,
    fine_analysis,
    fmt,
    group_runs,
    learned_finals,
    model_order,
    remaining_share,
    steps_to,
    stopped_at,
)

COLORS = {"bert": "tab:blue", "bermo": "tab:orange"}
#: colours of further model arms (e.g. bermo_last), in model order
EXTRA_COLORS = ("tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
#: an optional hand-written file next to results.jsonl, included at the end of the report under its own heading
NOTES = "notes.md"
#: a (method, level) cell is tested BERMo vs BERT only with at least this many seeds in both models: a paired t-test
#: on 2 pairs has 1 degree of freedom, so its p rests on how alike two differences happen to be
MIN_PAIRED_SEEDS = 3
MARKERS = {"magnitude": "o", "movement": "s", "soft_movement": "^", "l0": "D", "none": "*"}


#: a row's ``dev_predictions_from`` when its predictions were taken from a retrain (:func:`borrow_predictions`)
BORROWED = "retrained.jsonl"
#: the fewest evaluations a retrain must repeat to lend its predictions: equal finals alone happen by chance (two
#: models that disagree on 49 of 872 sentences have ended one sentence apart)
MIN_REPEATED_EVALUATIONS = 10


def borrow_predictions(rows: list[dict], results_dir: Path) -> list[str]:
    """Give each row without ``dev_predictions`` those of a ``bench --retrain`` run of it (``retrained.jsonl``) that
    repeated it: finished, with the row's steps, remaining share, best and final, and a curve equal to the row's at
    every one of at least :data:`MIN_REPEATED_EVALUATIONS` evaluations. Such a retrain is the recorded run again on a
    machine and code that give the same arithmetic, so its model is very probably the recorded one (the weights are
    not compared: the recorded model is gone). Every retrain of the run must agree: one that differs anywhere shows
    that the run does not repeat there, and none lends. The row gains ``dev_predictions_from``; the report still
    leaves the predictions out if they do not give back the final accuracy. Returns the runs that borrowed."""
    path = results_dir / RETRAINED
    if not path.is_file():
        return []
    retrains: dict[str, list[dict]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            e = json.loads(line)
            retrains[e["run"]].append(e)

    def repeats(e: dict, r: dict) -> bool:
        curve = r.get("curve") or []
        return (
            e.get("status") == "ok"
            and len(curve) >= MIN_REPEATED_EVALUATIONS
            and e.get("curve") == curve
            and all(e.get(k) == r.get(k) for k in ("steps", "remaining", "best", "final"))
        )

    borrowed = []
    for r in rows:
        found = retrains.get(r["run"])
        if r.get("dev_predictions") or r.get("status") != "ok" or not found:
            continue
        if not all(repeats(e, r) for e in found) or not found[-1].get("dev_predictions"):
            continue
        r["dev_predictions"] = found[-1]["dev_predictions"]
        r["dev_predictions_from"] = BORROWED
        borrowed.append(r["run"])
    return borrowed


def _paired_with_bag_of_words(groups: dict, study: Study, models: list[str]) -> list[str]:
    """Every cell with a run whose row keeps its dev predictions, paired with the bag of words on the same
    examples (:func:`~.verdicts.against_bag_of_words`, over its runs not at chance); nothing when no row keeps
    them. Predictions borrowed from an exact retrain (:func:`borrow_predictions`) are named."""
    items = []
    for key in sorted(groups, key=lambda k: (models.index(k[0]), k[1], -(k[2] or 0))):
        runs = [r for r in groups[key] if not study.outcome(r).ended]
        if any(r.get("dev_predictions") for r in runs):
            target = "dense" if key[2] is None else f"{key[2]:g}"
            items.append(f"- {key[0]} {key[1]} {target}: {against_bag_of_words(runs, study)}.")
    if not items:
        return []
    borrowed = sorted(
        r["run"] for rs in groups.values() for r in rs if r.get("dev_predictions_from") == BORROWED
    )
    lend = (
        [
            f"Rows recorded without predictions that take them from a retrain (`bench --retrain`, `{RETRAINED}`) "
            f"that repeated the recorded run: its curve equal at every evaluation (at least "
            f"{MIN_REPEATED_EVALUATIONS}), and the same best, final, steps and remaining share, so that its model is "
            f"very probably the recorded one (not compared weight for weight): {', '.join(borrowed)}.",
            "",
        ]
        if borrowed
        else []
    )
    return [
        "Paired with the bag of words on the same dev examples, each cell whose rows keep their dev predictions "
        "(runs not at chance):",
        "",
        *items,
        "",
        *lend,
    ]


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
    overlap = _overlapping_sittings(sittings)
    return (
        f"Time: the sweep took {_duration(meta['elapsed_s'])} of wall-clock time in {len(sittings)} sitting(s) "
        f"({first['started']} to {sittings[-1]['finished']}), {where}; {runs}."
        + (
            f" {overlap} sitting(s) overlapped an earlier one (run beside it on another machine), so the first "
            "figure, a sum over sittings, counts their shared time twice."
            if overlap
            else ""
        )
    )


def _overlapping_sittings(sittings: list[dict]) -> int:
    """How many sittings started before an earlier-started sitting had finished (0 where times are missing)."""
    from datetime import datetime

    from .sweep import SweepLog  # the stamp format the sweep log writes

    spans = []
    for s in sittings:
        try:
            spans.append(
                (
                    datetime.strptime(s["started"], SweepLog.STAMP),
                    datetime.strptime(s["finished"], SweepLog.STAMP),
                )
            )
        except (KeyError, TypeError, ValueError):
            return 0
    spans.sort()
    latest_end, count = None, 0
    for start, end in spans:
        if latest_end is not None and start < latest_end:
            count += 1
        latest_end = end if latest_end is None else max(latest_end, end)
    return count


def _machines_statement(meta: dict, rows: list[dict]) -> str | None:
    """Which machines the rows trained on, where more than one did: the sittings' devices (``sweep.json``) and each
    row's own ``environment`` (device and library versions; absent from rows written before rows kept it). None when
    every sitting ran on one device and no row says otherwise."""
    sittings = Counter(s.get("device") or "not recorded" for s in meta.get("sittings") or [])
    by_machine: dict[str, list[str]] = {}
    for r in rows:
        env = r.get("environment")
        where = f"{env['device']} (torch {env['torch']}, transformers {env['transformers']})" if env else None
        by_machine.setdefault(where, []).append(r["run"])
    recorded = [k for k in by_machine if k is not None]
    if len(sittings) <= 1 and len(recorded) <= 1 and not (recorded and None in by_machine):
        return None
    parts = [f"{k} ({n})" for k, n in sittings.items()]
    out = [f"Machines: the sittings ran on {', '.join(parts) or 'machines not recorded'}."]
    for k in recorded:
        out.append(f"Rows that finished on {k}: {', '.join(by_machine[k])}.")
    if None in by_machine:
        out.append(
            f"Rows that do not record their machine (no `environment` field): {len(by_machine[None])}."
        )
    out.append(
        "A row records the machine its run finished on (a run resumed from a checkpoint on another machine names "
        "the last). One recipe and seed give different arithmetic on different machines, so two rows of one cell "
        "from different machines are not reruns of one run."
    )
    return " ".join(out)


def _levels(values: list[float]) -> str:
    """One baseline value, or its range over the training draws."""
    if not values:
        return "n/a"
    return f"{values[0]:.4f}" if len(set(values)) == 1 else f"{min(values):.4f} to {max(values):.4f}"


def _scale_note(a, rows: list[dict]) -> list[str]:
    """Where the level sits: against the subset's own reading at the end of the window (the level is a share of
    full-dev accuracy, applied to the subset's curve) and against the bag-of-words line."""
    dense = [r for r in rows if r.get("status") != "failed" and r["method"] == "none" and r.get("fine_curve")]
    if not dense:
        return []
    subset_end = sum(r["fine_curve"][-1][1] for r in dense) / len(dense)
    full_end = sum(r["final"] for r in dense) / len(dense)
    crossings = [x for u in a.counted for x in (*u.bert_steps, *u.bermo_steps)]
    text = (
        f"Scale of the level: it is a share of the dense runs' full-dev {dense[0].get('metric', 'accuracy')} "
        f"(mean {full_end:.4f} at step {a.horizon}) applied to the subset's curve, which reads {subset_end:.4f} on "
        f"average at its last evaluation: the level is {a.level / subset_end:.1%} of the subset's own end value."
    )
    if crossings:
        text += (
            f" The counted crossings fall at steps {min(crossings):.0f} to {max(crossings):.0f} of a {a.horizon}-step "
            "window: the measurement times the start of fine-tuning, not the approach to its final accuracy."
        )
    return [text, ""]


def _sensitivity_table(a, rows: list[dict], study) -> list[str]:
    """The ratio at other definitions of the level (exploratory, chosen after the first results; not judged)."""
    dense = dense_means(rows)
    if len(dense) < 2:
        return []
    size = (a.subset or {}).get("size")
    variants = sensitivity(rows, min(dense.values()), study.start, 1 / size if size else None)
    lines = [
        "### How the ratio depends on the level (exploratory)",
        "",
        "Not part of the rule, and added after the three-seed results were seen: the same units timed to other "
        'levels, to show how much the verdict depends on where "reached" is put. The rule\'s reading of each row is '
        "given for comparison only; the pre-registered verdict is claim 2's, at the first row's level.",
        "",
        "| level | value | counted units | BERT/BERMo (95% t-interval) | units where BERMo is faster | rule's reading |",
        "|---|---|---|---|---|---|",
    ]
    for label, v in variants:
        r = v.ratio
        faster = sum(u.log_ratio > 0 for u in v.counted)
        reading = convergence_verdict(v).split(":")[0].split(";")[0]
        lines.append(
            f"| {label} | {v.level:.4f} | {len(v.counted)} | "
            + (f"{r.mean:.3f} ({fmt(r.low, 3)} to {fmt(r.high, 3)})" if r is not None else "-")
            + f" | {faster} of {len(v.counted)} | {reading} |"
        )
    lines.append("")
    return lines


def _fine_section(a, rows: list[dict], metric: str, out: Path, plt, study) -> list[str]:
    """Section 3 on the early-phase curves (:mod:`.convergence`): definitions, one row per unit, the intervals, the
    power calculation and ``fig_convergence.png``."""
    sub = a.subset or {}
    classes = ", ".join(f"label {k}: {v}" for k, v in (sub.get("per_class") or {}).items())
    lines = [
        "## 3. Convergence speed on the early-phase curves",
        "",
        "![convergence](fig_convergence.png)",
        "",
        f"Every run scored a fixed dev subset of {sub.get('size', '?')} examples ({classes}; drawn with seed "
        f"{sub.get('seed', '?')}, stratified by label, SHA-256 of its indices {str(sub.get('indices_sha256', '?'))[:12]}) "
        f"at step 0 and every {sub.get('every', '?')} steps to step {a.horizon}, and logged its training loss at every "
        f"step. Level: {metric} {a.level:.4f}, {LEVEL_FRACTION:.0%} of the weaker model's dense mean on the full dev "
        "set. Crossing step: the first evaluation at or above the level, interpolated linearly from the one before. "
        f"AUC: the mean of the subset curve over steps 0 to {a.horizon} (trapezoids). Loss: the mean training loss "
        f"over steps 1 to {a.horizon}. One row per independent unit (series, seed): the levels of a series share their "
        "warm-up, so their values are averaged (log ratios for steps); a pruned unit whose crossings all fall before "
        "its pruning starts is the dense unit of its seed again and is not counted twice (*no (warm-up)*); a unit "
        "where one model never reached the level has no ratio (the count is in claim 2).",
        "",
        "| unit | pairs | BERT crossing | BERMo crossing | BERT/BERMo | AUC BERT / BERMo | mean loss BERT / BERMo "
        "| counted |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    for u in a.units:
        pairs = len(u.log_ratios) + (u.only is not None) + u.neither
        steps = [mean(u.bert_steps), mean(u.bermo_steps)]
        ratio = "-" if u.log_ratio is None else f"{math.exp(u.log_ratio):.3f}"
        auc = (
            " / ".join(f"{x:.4f}" for x in (mean([p[0] for p in u.auc]), mean([p[1] for p in u.auc])))
            if u.auc
            else "-"
        )
        loss = (
            " / ".join(f"{x:.4f}" for x in (mean([p[0] for p in u.loss]), mean([p[1] for p in u.loss])))
            if u.loss
            else "-"
        )
        if not u.log_ratios and u.alone:  # reached by one model only: its crossing, and "not reached"
            steps = [mean(u.alone) if u.only == m else None for m in ("bert", "bermo")]
        reached = " / ".join("not reached" if x is None else f"{x:.1f}" for x in steps)
        lines.append(
            f"| {u.series} s{u.seed} | {pairs} | {reached.replace(' / ', ' | ')} | {ratio} | {auc} | {loss} | "
            f"{'no (warm-up)' if not u.counted else 'no ratio' if u.log_ratio is None else 'yes'} |"
        )
    lines.append("")
    if a.ratio is not None:
        r = a.ratio
        lines.append(
            f"BERT/BERMo ratio of crossing steps over {r.n} counted units: {r.mean:.3f} (95% t-interval on the log "
            f"ratios {fmt(r.low, 3)} to {fmt(r.high, 3)}; SD of the log ratios {a.sd:.3f})."
        )
    else:
        lines.append("BERT/BERMo ratio: fewer than 2 counted units reached the level in both models.")
    for label, cis in (("AUC, BERMo - BERT", a.auc), ("Mean training loss, BERMo - BERT", a.loss)):
        for series, ci in cis.items():
            lines.append(
                f"{label}, {series} over {ci.n} units: {ci.mean:+.4f} (95% t-interval {fmt(ci.low)} to "
                f"{fmt(ci.high)}; reported, not judged; each series apart: a pruned run's window shares its warm-up "
                "steps with the dense run of its seed)."
            )
    lines += ["", power_text(a), ""]
    lines += _scale_note(a, rows)
    lines += _sensitivity_table(a, rows, study)

    # the figure: mean subset curve and smoothed training loss per model and series, over seeds
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    runs = [r for r in rows if r.get("status") != "failed" and r.get("fine_curve")]
    series = sorted({r["method"] for r in runs}, key=lambda m: (m != "none", m))
    for i, (model, method) in enumerate(
        (m, s) for s in series for m in model_order({r["model"] for r in runs})
    ):
        mine = [r for r in runs if r["model"] == model and r["method"] == method]
        if not mine:
            continue
        color = COLORS.get(model, EXTRA_COLORS[i % len(EXTRA_COLORS)])
        style = ("-", "--", ":", "-.")[series.index(method) % 4]
        steps = [p[0] for p in mine[0]["fine_curve"] if p[0] <= a.horizon]
        ys = [
            mean([dict((int(s), v) for s, v in r["fine_curve"]).get(int(st), math.nan) for r in mine])
            for st in steps
        ]
        n = len(mine)
        left.plot(
            steps, ys, color=color, linestyle=style, label=f"{model} {method} ({n} run{'s' * (n != 1)})"
        )
        losses = [r["train_loss"][: a.horizon] for r in mine if r.get("train_loss")]
        if losses:
            width = min(len(x) for x in losses)
            avg = [mean([x[j] for x in losses]) for j in range(width)]
            k = 10
            smooth = [mean(avg[max(0, j - k + 1) : j + 1]) for j in range(width)]
            right.plot(range(1, width + 1), smooth, color=color, linestyle=style, label=f"{model} {method}")
    left.axhline(a.level, color="black", linewidth=1, linestyle="-.", label=f"level {a.level:.3f}")
    left.set_xlabel("step")
    left.set_ylabel(metric)
    left.set_title(f"{metric} on the dev subset, mean over runs", fontsize=9)
    right.set_xlabel("step")
    right.set_ylabel("training loss")
    right.set_title("training loss, mean over runs, 10-step moving average", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    fig.suptitle("Early-phase convergence", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "fig_convergence.png", dpi=120)
    plt.close(fig)
    return lines


def _label_narrow_log_axis(ax, xs: list[float]) -> None:
    """Within a decade a log axis has no major tick to label (and a single value gives it no width): widen it to
    a factor of 2 either side and label the values drawn (one label for values within 15% of each other, such as
    a target of 0.1 and a run that ended at 0.101, whose labels would overlap)."""
    from matplotlib.ticker import NullFormatter

    xs = [x for x in xs if x > 0]  # (a log axis has no place for 0)
    if not xs or max(xs) / min(xs) >= 10:
        return
    ax.set_xlim(min(xs) / 2, max(xs) * 2)
    ticks: list[float] = []
    for t in sorted({round(x, 3) for x in xs}):
        if not ticks or t / ticks[-1] >= 1.15:
            ticks.append(t)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _planned(sweep_log: dict, study) -> list[str] | None:
    """The runs the spec plans: ``sweep.json``'s list (sweeps from this version on), else ``baselines.json``'s runs
    (written for every run of the spec when the sweep started); None where neither says."""
    if sweep_log.get("cells"):
        return list(sweep_log["cells"])
    runs = study.baselines.get("runs")
    return list(runs) if runs else None


def _completeness(rows: list[dict], planned: list[str] | None) -> list[str]:
    """An unfinished sweep says so first: how many planned runs have a row, which have not, which failed."""
    if not planned:
        return []
    done = {r["run"] for r in rows if r["status"] != "failed"}
    failed = [r["run"] for r in rows if r["status"] == "failed" and r["run"] in planned]
    missing = [name for name in planned if name not in done and name not in failed]
    if not missing and not failed:
        return []

    def names(xs):
        return ", ".join(f"`{x}`" for x in xs[:6]) + (f" and {len(xs) - 6} more" if len(xs) > 6 else "")

    return [
        f"**Unfinished sweep: {len(planned) - len(missing) - len(failed)} of the {len(planned)} runs its spec plans "
        "have finished**"
        + (f"; not yet run: {names(missing)}" if missing else "")
        + (f"; failed (the next sitting runs them again): {names(failed)}" if failed else "")
        + ". Every count, interval and verdict below is over the rows there are, and may change as the rest come in.",
        "",
    ]


def _by_seed(rows: list[dict], study, planned: list[str] | None) -> list[str]:
    """Every run's final metric and outcomes, one row per (model, method, level), one column per seed."""
    suffix = re.compile(r"_s(\d+)$")
    seeds = sorted(
        {r["seed"] for r in rows} | {int(m.group(1)) for m in map(suffix.search, planned or []) if m}
    )
    cells: dict[tuple, dict[int, str]] = defaultdict(dict)
    names: dict[tuple, str] = {}
    # runs from a GPU beside others: each is marked (the report's Machines line names the machines)
    gpu = {r["run"] for r in rows if (r.get("environment") or {}).get("device", "").startswith("cuda")}
    gpu = gpu if len(gpu) < len(rows) else set()
    for r in rows:
        key = (r["model"], r["method"], r["target"])
        names[key] = r["run"]
        if r["status"] == "failed":
            cells[key][r["seed"]] = "failed"
            continue
        o = study.outcome(r)
        if o.finetune:  # a fine-tuning failure, counted apart whatever came after
            marks = "f"
        else:
            marks = "C" if o.ended else "a" if o.after else ""
        if r["status"] == "diverged-stopped":
            marks += "s"
        if r["run"] in gpu:
            marks += "g"
        cells[key][r["seed"]] = f"{r['final']:.3f}" + (f" **{marks}**" if marks else "")

    def empty(key, seed):
        if planned is None:
            return "-"
        return "-" if suffix.sub(f"_s{seed}", names[key]) in planned else "·"

    models = model_order({k[0] for k in cells})
    order = sorted(cells, key=lambda k: (k[1], models.index(k[0]), -(k[2] or 0)))
    lines = [
        "### Every run, by seed",
        "",
        "Final dev metric of each run; **C**: ended at chance (primary outcome), **a**: at chance at some evaluation "
        "after pruning started, not at the end (secondary), **f**: at chance at the last evaluation before pruning "
        "started (a fine-tuning failure, counted apart whatever followed; a dense run: at its end), **s**: stopped "
        "by the divergence tracker"
        + ("; **g**: trained on a GPU, the other runs on CPUs (see Machines below)" if gpu else "")
        + ("; -: planned, not run yet; ·: not planned" if planned is not None else "; -: no run")
        + ".",
        "",
        "| model | method | target | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|---|---|" + "---|" * len(seeds),
    ]
    for key in order:
        target = "dense" if key[2] is None else f"{key[2]:g}"
        lines.append(
            f"| {key[0]} | {key[1]} | {target} | "
            + " | ".join(cells[key].get(s) or empty(key, s) for s in seeds)
            + " |"
        )
    return [*lines, ""]


def write_report(results_dir: str | Path, fraction: float = 0.95) -> Path:
    """Write REPORT.md and its figures next to ``results.jsonl``; returns the report path."""
    import matplotlib  # here: selecting the Agg backend must precede pyplot's import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(results_dir)
    rows = load_results(out)
    borrow_predictions(rows, out)
    sweep_log = load_sweep_log(out)
    study = Study(load_baselines(out), sweep_log.get("primary"))
    groups = group_runs(rows)
    failed = [r for r in rows if r["status"] == "failed"]
    metric = next((r["metric"] for r in rows if r.get("metric")), "accuracy")
    models = model_order({k[0] for k in groups})
    dense = {
        m: mean_ci([r["final"] for r in groups.get((m, "none", None), [])])
        for m in ("bert", "bermo")
        if groups.get((m, "none", None))
    }
    lines = [f"# BERT vs BERMo under pruning: {out.name}", ""]
    lines += [
        f"{len(rows)} runs ({len(failed)} failed); metric: dev {metric}. Accuracy is summarised by the median and "
        "range over the runs that did not end at chance, with the count that did (no Student-t interval over a mix "
        "of collapsed and learned runs); t-intervals are given only for paired differences between runs that all "
        "learned, clipped to [-1, 1].",
        "",
    ]
    planned = _planned(sweep_log, study)
    lines += _completeness(rows, planned)
    stopped = stopped_at(rows)
    if stopped:
        lines += [
            f"**Runs stopped early** (`train.stop_after`: {stopped}). Every accuracy, remaining share, divergence "
            "count and verdict below describes the models at the step they stopped, not at the end of their "
            "schedules (a pruned run may be far from its target there); the early-phase convergence measurement is "
            "what such a study is for.",
            "",
        ]
    summary_at = len(lines)
    paired_results: list[tuple] = []
    ratios: list[object] = []
    bow, majority = study.bag_of_words(), study.majority_accuracy()

    # 1. Pareto plot ---------------------------------------------------------------------------------------------
    fig, ax = plt.subplots(figsize=(9.5, 5.2))
    table = [
        "| model | method | target | runs | remaining | ended at chance | final of the runs not at chance: median "
        "(range) | vs bag of words | best evaluation of the same runs, any step (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    front_points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    drawn_x: list[float] = []  # every remaining share drawn, for the axis
    for model in models:
        color = COLORS.get(model, EXTRA_COLORS[models.index(model) % len(EXTRA_COLORS)])
        for method in sorted({k[1] for k in groups if k[0] == model}):
            keys = sorted((k for k in groups if k[:2] == (model, method)), key=lambda k: -(k[2] or 0))
            xs, ys, lo, hi, chance_x, notes = [], [], [], [], [], []
            for key in keys:
                runs = groups[key]
                rem = remaining_share(groups, key)
                kept = learned_finals(runs, study)
                n_chance = len(runs) - len(kept)
                s = median_range(kept)
                target = "dense" if key[2] is None else f"{key[2]:g}"
                best = median_range([r["best"] for r in runs if not kept or not study.outcome(r).ended]).mean
                if kept:
                    xs.append(rem)
                    ys.append(s.mean)
                    lo.append(s.mean - s.low)
                    hi.append(s.high - s.mean)
                    if n_chance:
                        notes.append((rem, s.mean, f"{len(kept)}/{len(runs)}"))
                    else:
                        front_points[model].append((rem, s.mean))
                else:  # every run ended at chance: drawn hollow at their median
                    chance_x.append((rem, median_range([r["final"] for r in runs]).mean))
                summary = (
                    "-"
                    if not kept
                    else f"{s.mean:.4f} (one run)"
                    if len(kept) == 1
                    else f"{s.mean:.4f} ({s.low:.4f} to {s.high:.4f})"
                )
                versus = f"{s.mean - max(bow):+.4f}" if kept and bow else "-"
                table.append(
                    f"| {model} | {method} | {target} | {len(runs)} | {rem:.3f} | {n_chance} of {len(runs)} | "
                    f"{summary} | {versus} | {best:.4f} |"
                )
            first = groups[keys[0]][0]
            marker = MARKERS.get(method, MARKERS.get(first.get("pruning_method") or method, "x"))
            line = ":" if first.get("teacher") else "-"  # a distilled series: dotted, its method's marker
            drawn_x += xs + [x for x, _ in chance_x]
            if xs:
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[lo, hi],
                    color=color,
                    marker=marker,
                    capsize=3,
                    linestyle=line if method != "none" else "none",
                    label=f"{model} {method}",
                    alpha=0.85,
                )
            if chance_x:  # no run learned: drawn hollow on the majority line
                hollow = (
                    {"edgecolors": color, "facecolors": "none"} if marker not in "x+" else {"color": color}
                )
                ax.scatter(
                    [x for x, _ in chance_x],
                    [y for _, y in chance_x],
                    marker=marker,
                    **hollow,
                    s=60,
                    linewidths=1.5,
                    label=f"{model} {method}: every run at chance" if not xs else None,
                )
            for x, y, text in notes:
                ax.annotate(
                    text, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color=color
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
            color=COLORS.get(model, EXTRA_COLORS[models.index(model) % len(EXTRA_COLORS)]),
            linestyle="--",
            linewidth=1,
            alpha=0.6,
            label=f"{model} Pareto front",
        )
    if bow:
        ax.axhline(
            max(bow), color="black", linestyle="-.", linewidth=1.2, label=f"bag of words {_levels(bow)}"
        )
        if len(bow) > 1:
            ax.axhspan(min(bow), max(bow), color="black", alpha=0.08, linewidth=0)
    if majority:
        ax.axhline(
            majority[0],
            color="gray",
            linestyle=":",
            linewidth=1.5,
            label=f"majority class {_levels(majority)}",
        )
    ax.set_xscale("log")
    _label_narrow_log_axis(ax, drawn_x)
    ax.set_xlabel("remaining encoder linear weights (fraction, log scale)")
    ax.set_ylabel(f"dev {metric}")
    ax.set_title(
        "Accuracy vs remaining weights: median and range over the runs that did not end at chance\n"
        "(k/n: runs of n that did not; hollow: every run ended at chance)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the plot: it hides no point
    fig.tight_layout()
    fig.savefig(out / "fig_pareto.png", dpi=120)
    plt.close(fig)
    base = (
        f"Baselines (`baselines.json`, same training and dev data as the runs): majority class "
        f"{_levels(majority)}; bag of words {_levels(bow)} ({BAG_OF_WORDS['classifier']} on "
        f"{BAG_OF_WORDS['features']}; scikit-learn {study.baselines.get('scikit_learn', '?')}"
        + (f"; one value per training draw, {len(bow)} draws" if len(bow) > 1 else "")
        + "). *vs bag of words*: the median minus the bag-of-words accuracy (the highest, if several draws); a "
        + (
            "pruned model at or below it has failed whatever its rank"
            if not stopped
            else "finished pruned model at or below it has failed whatever its rank (runs stopped early are not "
            "finished: their margin is of the model where it stopped)"
        )
        + ". *Best evaluation*: each run's highest dev "
        "evaluation at any step (for a pruned run usually before or early in its ramp, with most weights still "
        "there; picked on dev), not a result at the level. The Pareto front is drawn over cells where no "
        "run ended at chance."
        if bow
        else "No classification baselines (a regression task)."
    )
    lines += [
        "## 1. Accuracy versus remaining weights",
        "",
        "![pareto](fig_pareto.png)",
        "",
        base,
        "",
        *table,
        "",
        *_paired_with_bag_of_words(groups, study, models),
    ]

    # 2. Divergence ------------------------------------------------------------------------------------------------
    definition = DivergenceTracker().summary()["definition"]
    lines += [
        "## 2. Divergence rate",
        "",
        f"Outcomes, one definition for every model: {study.definition(rows)}",
        "",
        "| model | method | target | runs | fine-tuning failure | at chance after pruning started (first step) "
        "| ended at chance | tracker events (first kind) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(groups, key=lambda k: (k[1], models.index(k[0]), -(k[2] or 0))):
        runs = groups[key]
        outcomes = [study.outcome(r) for r in runs]
        kinds = sorted({r["divergence_kind"] for r in runs if r.get("diverged")})
        target = "dense" if key[2] is None else f"{key[2]:g}"
        steps = sorted({o.first_after for o in outcomes if o.first_after is not None and o.pruning_counts})
        after = (
            "-"
            if key[1] == "none"
            else f"{sum(o.after and o.pruning_counts for o in outcomes)}"
            + (f" ({', '.join(map(str, steps))})" if steps else "")
        )
        seen = [o.finetune for o in outcomes if o.finetune is not None]
        ft = f"{sum(seen)}" if seen else "not seen"
        # a fine-tuning failure is counted apart, not again as a pruning outcome (a dense run's is its only one)
        ended = "-" if key[1] == "none" else f"{sum(o.ended and o.pruning_counts for o in outcomes)}"
        lines.append(
            f"| {key[0]} | {key[1]} | {target} | {len(runs)} | {ft} | {after} | {ended} | "
            f"{sum(bool(r.get('diverged')) for r in runs)} ({', '.join(kinds) or '-'}) |"
        )
    lines += [
        "",
        "The last column is the training-time tracker's record (`bermo_prune/tracking.py`), kept for reference; "
        "its rules differ by what a run did before (a collapse needs an earlier evaluation at majority + "
        f"{DivergenceConfig().learned_margin:g}), so the outcomes above do not use it:",
        "",
    ]
    lines += [f"- `{k}`: {v}" for k, v in definition.items()]
    lines.append("")
    lines += _by_seed(rows, study, planned)

    # 3. Convergence speed -------------------------------------------------------------------------------------------
    fine = fine_analysis(rows, study)
    if fine is not None:  # the early-phase curves (train.early_eval), then the coarse table for reference
        lines += _fine_section(fine, rows, metric, out, plt, study)
        lines += [
            f"### Steps to {fraction:.0%} of the dense {metric} on the full-dev evaluations (coarse)",
            "",
        ]
    else:
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
    mix_rows = [
        "| model | method | target | runs | layer weights, mean over runs (embeddings first) | gamma (mean) | "
        "heaviest state of each run: seed: state (its weight) |",
        "|---|---|---|---|---|---|---|",
    ]
    mix_keys = sorted(
        (k for k in groups if any(r.get("mix") for r in groups[k])),
        key=lambda k: (models.index(k[0]), k[1], -(k[2] or 0)),
    )
    several = len({k[0] for k in mix_keys}) > 1
    # One model: one colour per method. Several: each model's colour of the Pareto plot (methods apart by marker).
    # Then one line style per level (densest solid) within a (model, method), so no two series look alike.
    hue = {m: plt.cm.tab10(i % 10) for i, m in enumerate(sorted({k[1] for k in mix_keys}))}

    def colour(key):
        if not several:
            return hue[key[1]]
        return COLORS.get(key[0], EXTRA_COLORS[models.index(key[0]) % len(EXTRA_COLORS)])

    style = {
        k: ("-", "--", ":", "-.")[[j for j in mix_keys if j[:2] == k[:2]].index(k) % 4] for k in mix_keys
    }
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
            color=colour(key),
            linestyle=style[key],
            label=f"{key[0] + ' ' if several else ''}{key[1]} {target}",
        )
        heaviest = "; ".join(
            f"{r['seed']}: {max(range(width), key=lambda j: r['mix']['layer_weights'][j])} "
            f"({max(r['mix']['layer_weights']):.2f})"
            for r in sorted(groups[key], key=lambda r: r["seed"])
            if r.get("mix")
        )
        mix_rows.append(
            f"| {key[0]} | {key[1]} | {target} | {len(mixes)} | {', '.join(f'{w:.3f}' for w in mean)} | "
            f"{gamma:.3f} | {heaviest} |"
        )
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
        "Difference = BERMo - BERT in final dev metric, tested only in cells where no run of either model ended at "
        "chance (section 2): a t-test over a mix of collapsed and learned runs is not run, the counts are given "
        f"instead; and only where at least {MIN_PAIRED_SEEDS} seeds pair up (a t-test on 2 pairs has one degree of "
        "freedom: its p rests on how alike two differences happen to be). Paired t-test (scipy `ttest_rel`; its 95% "
        "interval of the mean difference), effect size d_z = "
        "mean / sd of the differences; the exact Wilcoxon signed-rank test is run only where its n can reach "
        f'p < {ALPHA:g} (6 pairs; at 3 pairs its smallest p is 0.25, at 5 pairs 0.0625), else it says "cannot '
        'decide". "No significant difference" is a finding, not a failure, and a paired t on 3 pairs (2 degrees of '
        "freedom) detects only large, consistent effects. Top-k methods prune both models to the same remaining "
        "share; for penalty methods (soft movement, L0) the same penalty can leave the two models at different "
        "shares, so the remaining columns say whether a row compares like with like (section 1's plot compares "
        "them at equal remaining weights).",
        "",
        "| method | target | remaining BERT / BERMo | n | ended at chance BERT / BERMo | mean diff (95% CI) | t-test p "
        "| Wilcoxon p | d_z | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, target in sorted({(k[1], k[2]) for k in groups}, key=lambda k: (k[0], -(k[1] or 0))):
        bert = {r["seed"]: r for r in groups.get(("bert", method, target), [])}
        bermo = {r["seed"]: r for r in groups.get(("bermo", method, target), [])}
        seeds = sorted(set(bert) & set(bermo))
        label = "dense" if target is None else f"{target:g}"
        shares = " / ".join(
            "-" if (x := remaining_share(groups, (m, method, target))) is None else f"{x:.3f}"
            for m in ("bert", "bermo")
        )
        chance = [sum(study.outcome(side[s]).ended for s in seeds) for side in (bert, bermo)]
        counted = f"{chance[0]} / {chance[1]}"
        if len(seeds) < MIN_PAIRED_SEEDS:
            lines.append(
                f"| {method} | {label} | {shares} | {len(seeds)} | {counted} | - | - | - | - | "
                f"not tested: fewer than {MIN_PAIRED_SEEDS} paired seeds |"
            )
            continue
        if any(chance):
            paired_results.append((method, target, None, sum(chance)))
            lines.append(
                f"| {method} | {label} | {shares} | {len(seeds)} | {counted} | - | - | - | - | not tested: "
                f"{sum(chance)} of {2 * len(seeds)} runs ended at chance (a mix; see section 2) |"
            )
            continue
        p = paired_comparison([bert[s]["final"] for s in seeds], [bermo[s]["final"] for s in seeds])
        paired_results.append((method, target, p, 0))
        lines.append(
            f"| {method} | {label} | {shares} | {p.n} | {counted} | {p.mean_difference:+.4f} ({fmt(p.ci_low)}, "
            f"{fmt(p.ci_high)}) | {p.p_value:.3g} | {p.wilcoxon_text(ALPHA)} | {p.effect_size_dz:.2f} | {p.verdict} |"
        )
    lines.append("")

    # 6. Reproduce ---------------------------------------------------------------------------------------------------
    # here for start-up time: only this section needs the versions (the report itself runs without torch)
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
        f"This report was generated with `bermo-prune report {out}` from the `results.jsonl`, `baselines.json` "
        "(and `sweep.json`) in that directory; `bermo-prune baselines SPEC --output DIR` writes `baselines.json` "
        "(`bench` writes it when a sweep starts).",
        "",
        f"Versions: torch {torch.__version__}, transformers {transformers.__version__}, accelerate "
        f"{accelerate.__version__}, scipy {scipy.__version__}. Machine: {platform.platform()}, "
        f"{os.cpu_count()} CPU cores (the machine that generated this report, not necessarily the runs'; rows that "
        "record their machine are listed by it below where they differ).",
        "",
        _time_statement(meta, wall),
        "",
    ]
    machines = _machines_statement(meta, rows)
    if machines:
        lines += [machines, ""]
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
    claim_lines = claims(rows, dense, level, metric, fraction, study)
    lines[summary_at:summary_at] = [
        *plain_answer(rows, study, claim_lines, bool(_completeness(rows, planned)), stopped),
        *findings(groups, paired_results, ratios, metric, fraction, study),
        *claim_lines,
        *control_arms(rows, study),
    ]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
