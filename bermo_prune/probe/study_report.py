"""REPORT.md of a probing study (:mod:`.study`), written from its committed files alone: ``results.jsonl``,
``probed.json``, ``tasks.json`` and the spec (and a hand-written ``notes.md``), so a test can regenerate it byte
for byte.

Numbers. A (condition, arm) cell at one task, pooling, classifier and layer is the mean over its fine-tuning seeds
of each run's test accuracy (the mean over its probe seeds); the pretrained encoder's is over probe seeds. Its
interval: a 95% t interval clipped to [0, 1] for 3 or more values, the range for 2, none for 1
(:func:`.report.format_cell`). A run's semantic average is the mean of its test accuracies over the spec's
semantic tasks, read where its classifier reads (the last layer; BERMo's mix). BERMo minus BERT pairs runs by
fine-tuning seed; the interval is over seeds only: every run is scored on the same test sentences, which the
pairing holds fixed, and the test sets' own sampling error is not in it. Beside it, a second interval holds that
error alone (seeds fixed, each task's test sentences resampled: :func:`sentence_interval`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..bench.stats import mean_ci
from .report import finish_report, format_cell, summarise
from .study import BASELINES, CLASSIFIERS, PRETRAINED, PROBED, TASKS, Study

MIN_SEEDS = 3  # paired fine-tuning seeds the verdict needs


def _layer_key(layer: str) -> tuple[int, str]:
    return (10_000, layer) if not layer.isdigit() else (int(layer), "")


def run_values(rows: list[dict]) -> dict[str, float]:
    """``{run: mean test accuracy over its probe seeds}``."""
    by = defaultdict(list)
    for r in rows:
        by[r["run"]].append(r["te"])
    return {run: sum(v) / len(v) for run, v in by.items()}


#: where a run's semantic average is read: ``reads`` what its classifier reads (BERMo's mix, else the last
#: layer), ``best`` the layer (or mix) with the best validation accuracy, per task, ``last`` the last layer
PICKS = ("reads", "best", "last")
PICK_TEXT = {
    "reads": "what each classifier reads (BERMo's mix, BERT's last layer)",
    "best": "each run's best layer or mix on the validation split, per task",
    "last": "the last layer of both",
}
#: the parsed tasks, above the floor on the pretrained encoder: a secondary average, descriptive
PARSED = ("past_present", "subj_number", "obj_number")


def verdict(diffs: list[float], size: float) -> tuple[str, str]:
    """``(word, reason)`` by the rule the report states before its numbers (see :func:`rule_text`)."""
    if len(diffs) < MIN_SEEDS:
        return "not decided yet", f"{len(diffs)} of the {MIN_SEEDS} paired fine-tuning seeds the rule needs"
    c = summarise(diffs, (-1.0, 1.0))[0]
    where = f"mean {c.mean:+.4f}, 95% t interval ({c.low:+.4f}, {c.high:+.4f}) over {len(diffs)} seeds"
    if c.low > 0 and c.high >= size:
        return "supported", f"{where}: above 0 and reaching the claimed +{size:.4f}"
    if c.high < size:
        if c.low > 0:
            return "not reproduced at the claimed size", f"{where}: BERMo is ahead, by less than +{size:.4f}"
        if c.high < 0:
            return "not reproduced at the claimed size", f"{where}: BERT is ahead"
        return "not reproduced at the claimed size", f"{where}: excludes +{size:.4f}; no difference is shown"
    return "inconclusive", f"{where}: holds both 0 and +{size:.4f}"


def rule_text(study: Study) -> list[str]:
    c = study.conf.claim
    return [
        "## The rule (fixed in the spec before any fine-tuned model was probed)",
        "",
        f"- The claim (BERMo, arXiv 2110.15802, abstract): BERMo is better than BERT by **+{c.size:.4f}** in "
        "accuracy on average over SentEval's semantic probing tasks. The paper's protocol was not available "
        "here; its setting (BERT-base, SentEval's data and probes) differs from this one (a 6-layer MiniLM "
        "fine-tuned on SST-2, tasks generated from about a million words of local text, spaCy's labels), so an "
        "absolute difference is not expected to carry over exactly.",
        f"- Semantic tasks: {', '.join(study.conf.semantic)} (SentEval's semantic group as far as it is built "
        "here; the other tasks are reported, not averaged). A run's semantic average is the mean of its test "
        f"accuracies over them; features `{c.pooling}` (the [CLS] position, which BERT's pooler reads), probe "
        f"`{c.classifier}`, condition `{c.condition}`; BERMo minus BERT per fine-tuning seed, the 95% t interval "
        f"over the paired seeds; the probe's value is the mean of {study.conf.claim_probe_seeds} probe seeds.",
        f"- **Verdict 1, the claim as stated**: the average read at {PICK_TEXT['reads']}. **Verdict 2, the "
        f"control**: the average read at {PICK_TEXT['best']}. BERMo's mix leans on lower layers (the reference "
        "study's movement mixes put most weight on states 2-3), and on a first probe of the pretrained encoder "
        "layer 3 was about 0.05 above layer 6 on these tasks, so verdict 1 can favour BERMo through where its "
        "classifier reads alone; verdict 2 asks whether BERMo's layers hold more anywhere.",
        f"- Each verdict: **supported** if the interval lies above 0 and its upper end reaches +{c.size:.4f}; "
        f"**not reproduced at the claimed size** if its upper end is below +{c.size:.4f} (said whether BERMo is "
        f"ahead by less, BERT is ahead, or no difference is shown); **inconclusive** if it holds both 0 and "
        f"+{c.size:.4f}; fewer than {MIN_SEEDS} paired seeds: not decided yet. With 3 seeds (t = 4.30) the "
        'interval\'s half-width is 2.48 standard deviations of the per-seed differences: "not reproduced" '
        "at a true difference of 0 needs that deviation under about 0.011, so **inconclusive is the likely "
        "outcome** unless the differences are very consistent.",
        "- Left out of the interval: the test sets' own sampling error (400-2,230 sentences per task; every run "
        "is scored on the same sentences, so the pairing holds them fixed). Every row keeps which test examples "
        "it got right, for a bootstrap over sentences.",
        f"- Descriptive, without a verdict: the last layer of both, the average over the parsed tasks "
        f"({', '.join(PARSED)}; SOMO and CoordInv are near chance on the pretrained encoder), every other "
        "condition, pooling and probe.",
        "",
    ]


def _pick(rows: list[dict], how: str) -> list[dict]:
    """The rows (probe seeds) of one run and task at the layer ``how`` picks."""
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by[r["layer"]].append(r)
    digits = [x for x in by if x.isdigit()]
    if how == "best":
        layer = max(sorted(by, key=_layer_key), key=lambda x: sum(r["va"] for r in by[x]) / len(by[x]))
    elif how == "reads" and "mix" in by:
        layer = "mix"
    else:
        layer = max(digits, key=int)
    return by[layer]


def _picked(study, rows, condition, arm, pooling, classifier, how, tasks) -> dict[object, list[list[dict]]]:
    """``{fine-tuning seed (the run for the pretrained encoder): per task, the rows (probe seeds) at the layer how
    picks}`` for the runs of one cell that have every one of ``tasks``."""
    per: dict[tuple[str, str], list[dict]] = defaultdict(list)
    key: dict[str, object] = {}
    for r in rows:
        if (
            r["run"] not in BASELINES
            and r["task"] in tasks
            and (r["condition"], r["arm"], r["pooling"], r["classifier"])
            == (condition, arm, pooling, classifier)
        ):
            per[(r["run"], r["task"])].append(r)
            key[r["run"]] = r["ft_seed"] if r["ft_seed"] is not None else r["run"]
    return {
        key[run]: [_pick(per[(run, t)], how) for t in tasks]
        for run in key
        if all((run, t) in per for t in tasks)
    }


def semantic_averages(
    study: Study,
    rows: list[dict],
    condition: str,
    arm: str,
    pooling: str,
    classifier: str,
    how: str = "reads",
    tasks: tuple[str, ...] | None = None,
) -> dict:
    """``{fine-tuning seed (the run for the pretrained encoder): average over tasks}`` of the runs of one cell
    that have every task (default: the semantic ones), each task's accuracy the mean over probe seeds at the
    layer ``how`` picks (:data:`PICKS`)."""
    tasks = tuple(tasks or study.conf.semantic)
    picked = _picked(study, rows, condition, arm, pooling, classifier, how, tasks)
    return {
        k: sum(sum(r["te"] for r in v) / len(v) for v in values) / len(tasks) for k, values in picked.items()
    }


#: resamples of the test sentences in :func:`sentence_interval`
RESAMPLES = 2000


def _correct(rows: list[dict], n: int) -> np.ndarray:
    """Per test sentence (``n`` of them: the bits are padded to whole bytes), the share of these rows (probe
    seeds) that got it right."""
    bits = [np.unpackbits(np.frombuffer(bytes.fromhex(r["te_correct"]), dtype=np.uint8))[:n] for r in rows]
    for r, b in zip(rows, bits, strict=True):
        if len(b) != n or abs(b.mean() - r["te"]) > 1e-6:
            raise ValueError(
                f"{r['run']} {r['task']}: te_correct does not give its test accuracy over {n} sentences"
            )
    return np.mean(bits, axis=0)


def sentence_interval(
    study: Study,
    rows: list[dict],
    condition: str,
    pooling: str,
    classifier: str,
    how: str = "reads",
    tasks: tuple[str, ...] | None = None,
    resamples: int = RESAMPLES,
) -> tuple[float, float, float] | None:
    """The second arm minus the first, the semantic average's difference averaged over the paired fine-tuning seeds
    (the tables' mean), with a 95% percentile interval from resampling each task's test sentences with
    replacement: one resample per task shared by every run, so the pairing holds; the seeds are held fixed, so the
    interval is the test sets' sampling error alone, the part the t interval over seeds leaves out. ``(mean, low,
    high)``, or None where a paired run lacks its rows' ``te_correct`` or no seed is paired."""
    tasks = tuple(tasks or study.conf.semantic)
    base, other = study.conf.arms[0], study.conf.arms[1]
    a = _picked(study, rows, condition, base, pooling, classifier, how, tasks)
    b = _picked(study, rows, condition, other, pooling, classifier, how, tasks)
    seeds = sorted(set(a) & set(b), key=str)
    sizes = json.loads((study.out / TASKS).read_text()) if (study.out / TASKS).is_file() else {}
    if (
        not seeds
        or any(t not in sizes for t in tasks)
        or any("te_correct" not in r for k in seeds for v in (*a[k], *b[k]) for r in v)
    ):
        return None
    rng = np.random.default_rng(0)
    total, draws = 0.0, np.zeros(resamples)
    for i, task in enumerate(tasks):
        n = sizes[task]["examples"]["te"]
        # per sentence, the difference averaged over the paired seeds
        diff = np.mean([_correct(b[k][i], n) - _correct(a[k][i], n) for k in seeds], axis=0)
        total += diff.mean()
        draws += diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(draws / len(tasks), [2.5, 97.5])
    return total / len(tasks), float(low), float(high)


def _difference_row(study, rows, label, cond, pooling, classifier, how, tasks=None) -> str | None:
    base, other = study.conf.arms[0], study.conf.arms[1]
    a = semantic_averages(study, rows, cond, base, pooling, classifier, how, tasks)
    b = semantic_averages(study, rows, cond, other, pooling, classifier, how, tasks)
    if not a and not b:
        return None
    d = [b[k] - a[k] for k in sorted(set(a) & set(b), key=str)]
    boot = sentence_interval(study, rows, cond, pooling, classifier, how, tasks) if d else None
    return (
        f"| {label} | {format_cell(list(a.values())) if a else '-'} | {format_cell(list(b.values())) if b else '-'}"
        f" | {format_cell(d, signed=True) if d else '-'} | {_format_boot(boot)} | {len(d)} |"
    )


def _format_boot(boot: tuple[float, float, float] | None) -> str:
    return "-" if boot is None else f"({boot[1]:+.4f}, {boot[2]:+.4f})"


def write_study_report(study: Study, rows: list[dict]) -> Path:
    import matplotlib  # here: selecting the Agg backend must precede pyplot's import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = study.conf
    out = study.out
    probed = json.loads((out / PROBED).read_text()) if (out / PROBED).is_file() else {}
    tasks_info = json.loads((out / TASKS).read_text()) if (out / TASKS).is_file() else {}
    base, other = conf.arms[0], conf.arms[1]
    cells = ([(PRETRAINED, PRETRAINED)] if conf.pretrained else []) + [
        (cond, arm) for cond in conf.conditions for arm in conf.arms
    ]
    lines = [
        "# Probing study: what the layers of BERT and BERMo know, before and after pruning",
        "",
        f"Written by `bermo-prune probe-study {study.path}` from `results.jsonl`, `probed.json` and `tasks.json` "
        "(`bermo_prune/probe/study_report.py`); the study probes each model of the sweep "
        f"`{conf.sweep}` on the machine where it was trained, and appends its rows.",
        "",
    ]
    done = [p for p in study.planned if p.run in probed]
    left = [p.run for p in study.planned if p.run not in probed]
    lines += [
        f"**Probed: {len(done)} of {len(study.planned)} planned models.**"
        + (f" Not yet probed: {', '.join(left)}." if left else ""),
        "",
    ]
    lines += rule_text(study)

    # the verdicts and the semantic averages
    c = conf.claim
    lines += ["## The semantic average, BERMo minus BERT", ""]
    for number, how in ((1, "reads"), (2, "best")):
        a = semantic_averages(study, rows, c.condition, base, c.pooling, c.classifier, how)
        b = semantic_averages(study, rows, c.condition, other, c.pooling, c.classifier, how)
        word, reason = verdict([b[k] - a[k] for k in sorted(set(a) & set(b), key=str)], c.size)
        boot = sentence_interval(study, rows, c.condition, c.pooling, c.classifier, how)
        beside = "" if boot is None else f"; over test sentences, seeds fixed: {_format_boot(boot)}"
        lines += [f"**Verdict {number}, read at {PICK_TEXT[how]}: {word}** ({reason}{beside}).", ""]
    lines += [
        f"Beside each difference, a 95% interval over test sentences (added after the rule was fixed, "
        f"descriptive; it decides nothing): each task's test set resampled {RESAMPLES:,} times with replacement, "
        "one resample shared by every run so the pairing holds, the fine-tuning seeds held fixed "
        "(`sentence_interval`). It is the test sets' sampling error alone, which the t interval over seeds leaves "
        "out; neither interval holds the other's source of error.",
        "",
    ]
    head = [f"| {{}} | {base} | {other} | {other} - {base} | over test sentences | seeds |", ""]
    table = []
    for how in PICKS:
        for pooling in conf.poolings:
            for classifier in CLASSIFIERS if how == "reads" else ("logreg",):
                for cond in ([PRETRAINED] if conf.pretrained else []) + list(conf.conditions):
                    label = f"{PICK_TEXT[how]} | {cond} | {pooling} | {classifier}"
                    if cond == PRETRAINED:
                        p = semantic_averages(study, rows, cond, cond, pooling, classifier, how)
                        if p:
                            table.append(f"| {label} | {format_cell(list(p.values()))} | | | | |")
                        continue
                    row = _difference_row(study, rows, label, cond, pooling, classifier, how)
                    if row:
                        table.append(row)
    lines += [
        f"Semantic averages ({other} - {base} paired by fine-tuning seed; the pretrained encoder has no "
        f"{other} column):",
        "",
        head[0].format("read at | condition | features | probe"),
        "|---|---|---|---|---|---|---|---|---|",
        *table,
        "",
    ]
    parsed = [t for t in PARSED if t in conf.tasks]
    rows_parsed = []
    for how in ("reads", "best"):
        for cond in conf.conditions:
            row = _difference_row(
                study, rows, f"{PICK_TEXT[how]} | {cond}", cond, c.pooling, c.classifier, how, tuple(parsed)
            )
            if row:
                rows_parsed.append(row)
    if rows_parsed:
        lines += [
            f"Average over the parsed tasks only ({', '.join(parsed)}; `{c.pooling}`, `{c.classifier}`):",
            "",
            head[0].format("read at | condition"),
            "|---|---|---|---|---|---|---|",
            *rows_parsed,
            "",
        ]
    lines += ["", "![per layer](fig_layers.png)", ""]

    # per task
    layers_all = sorted({r["layer"] for r in rows if r["run"] not in BASELINES}, key=_layer_key)
    cell_rows: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["run"] not in BASELINES:
            cell_rows[
                (r["task"], r["condition"], r["arm"], r["pooling"], r["classifier"], r["layer"])
            ].append(r)
    baseline = defaultdict(list)
    for r in rows:
        if r["run"] in BASELINES:
            baseline[(r["task"], r["run"])].append(r["te"])
    fig, axes = plt.subplots(2, (len(conf.tasks) + 1) // 2, figsize=(5 * ((len(conf.tasks) + 1) // 2), 8))
    for ax, task in zip(axes.flat, conf.tasks, strict=False):
        lines += [f"## {task}" + (" (semantic)" if task in conf.semantic else ""), ""]
        info = tasks_info.get(task, {})
        if info.get("examples"):
            lines.append("Examples: " + ", ".join(f"{k} {v:,}" for k, v in info["examples"].items()) + ".")
        base_text = "; ".join(
            f"{name.replace('_', ' ')} {mean_ci(baseline[(task, name)]).mean:.4f}"
            for name in BASELINES
            if baseline.get((task, name))
        )
        lines += [f"Baselines: {base_text or 'not yet computed'}.", ""]
        present = [cell for cell in cells if any(k[:3] == (task, *cell) for k in cell_rows)]
        for pooling in conf.poolings:
            table = []
            for classifier in CLASSIFIERS:
                for layer in layers_all:
                    values = []
                    for cond, arm in present:
                        runs = run_values(cell_rows.get((task, cond, arm, pooling, classifier, layer), []))
                        values.append(format_cell(list(runs.values())) if runs else "-")
                    if any(v != "-" for v in values):
                        label = layer if classifier == "logreg" else f"{classifier} at {layer}"
                        table.append(f"| {label} | " + " | ".join(values) + " |")
            if table:
                lines += [
                    f"`{pooling}` features: logistic regression per layer, then the MLP at what each classifier "
                    "reads:",
                    "",
                    "| layer | "
                    + " | ".join(f"{arm} {cond}" if cond != PRETRAINED else arm for cond, arm in present)
                    + " |",
                    "|---|" + "---|" * len(present),
                    *table,
                    "",
                ]
        # the figure: the primary features and probe, one line per cell
        xs = {layer: i for i, layer in enumerate(layers_all)}
        for cond, arm in present:
            pts = []
            for layer in layers_all:
                runs = run_values(cell_rows.get((task, cond, arm, c.pooling, c.classifier, layer), []))
                if runs:
                    pts.append((layer, sum(runs.values()) / len(runs)))
            if not pts:
                continue
            body = [(xs[x], y) for x, y in pts if x != "mix"]
            drawn = ax.plot(
                [x for x, _ in body],
                [y for _, y in body],
                marker="o",
                label=f"{arm} {cond}" if cond != PRETRAINED else arm,
            )
            mix = [(xs[x], y) for x, y in pts if x == "mix"]
            if mix:
                ax.plot(
                    [x for x, _ in mix],
                    [y for _, y in mix],
                    marker="D",
                    linestyle="none",
                    color=drawn[0].get_color(),
                )
        for name, style in zip(BASELINES, (":", "--"), strict=True):
            if baseline.get((task, name)):
                ax.axhline(
                    mean_ci(baseline[(task, name)]).mean,
                    color="gray",
                    linestyle=style,
                    label=name.replace("_", " "),
                )
        ax.set_xticks(range(len(layers_all)), layers_all)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("layer (0 = embeddings; mix = BERMo's mix)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(conf.tasks) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8)
    fig.suptitle(f"Probe accuracy per layer ({c.pooling} features, {c.classifier} probe; mean over runs)")
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(out / "fig_layers.png", dpi=110)
    plt.close(fig)

    # the probed models
    lines += [
        "## The probed models",
        "",
        "Dev accuracy, remaining weights and BERMo's mix are the sweep's row of the run.",
        "",
        "| run | arm | condition | fine-tuning seed | SST-2 dev accuracy | remaining | heaviest mix state | probed on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in study.planned:
        m = probed.get(p.run)
        if m is None:
            continue
        mix = m.get("mix") or {}
        weights = mix.get("layer_weights")
        heavy = "-"
        if weights:
            j = max(range(len(weights)), key=lambda i: weights[i])
            heavy = f"state {j} ({weights[j]:.2f})"
        dev = f"{m['dev_accuracy']:.4f}" if m.get("dev_accuracy") is not None else "-"
        if m.get("retrained"):  # the model probed is a retrained run: its recorded row's accuracy beside it
            recorded = m.get("recorded_dev_accuracy")
            dev += f" (retrained; recorded {'-' if recorded is None else f'{recorded:.4f}'})"
        rem = f"{m['remaining']:.3f}" if m.get("remaining") is not None else "-"
        lines.append(
            f"| {p.run} | {p.arm} | {p.condition} | {'-' if p.ft_seed is None else p.ft_seed} | {dev} | {rem} | "
            f"{heavy} | {m.get('probed_on', '-')} |"
        )
    lines += [
        "",
        "## How to reproduce",
        "",
        "```",
        conf.tasks_command,
        f"bermo-prune probe-study {study.path}   # on the machine that holds the sweep's runs/",
        "```",
        "",
    ]
    return finish_report(out, lines)
