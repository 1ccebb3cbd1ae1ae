"""REPORT.md of a probing study (:mod:`.study`), written from its committed files alone: ``results.jsonl``,
``probed.json``, ``tasks.json`` and the spec (and a hand-written ``notes.md``), so a test can regenerate it byte
for byte.

Numbers. A (condition, arm) cell at one task, pooling, classifier and layer is the mean over its fine-tuning seeds
of each run's test accuracy (the mean over its probe seeds); the pretrained encoder's is over probe seeds. Its
interval: a 95% t interval clipped to [0, 1] for 3 or more values, the range for 2, none for 1
(:func:`.report.format_cell`). A run's semantic average is the mean of its test accuracies over the spec's
semantic tasks, read where its classifier reads (the last layer; BERMo's mix). BERMo minus BERT pairs runs by
fine-tuning seed; the interval is over seeds only: every run is scored on the same test sentences, which the
pairing holds fixed, and the test sets' own sampling error is not in it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ..bench.stats import mean_ci
from ..rundir import atomic_write
from .report import format_cell, summarise
from .study import BASELINES, CLASSIFIERS, PRETRAINED, PROBED, TASKS, Study, read_layers

MIN_SEEDS = 3  # paired fine-tuning seeds the verdict needs


def _layer_key(layer: str) -> tuple[int, str]:
    return (10_000, layer) if not layer.isdigit() else (int(layer), "")


def run_values(rows: list[dict]) -> dict[str, float]:
    """``{run: mean test accuracy over its probe seeds}``."""
    by = defaultdict(list)
    for r in rows:
        by[r["run"]].append(r["te"])
    return {run: sum(v) / len(v) for run, v in by.items()}


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
            return "not supported", f"{where}: BERMo is ahead, by less than the claimed +{size:.4f}"
        if c.high < 0:
            return "not supported", f"{where}: BERT is ahead"
        return "not supported", f"{where}: excludes the claimed +{size:.4f}; no difference is shown"
    return "inconclusive", f"{where}: holds both 0 and the claimed +{size:.4f}"


def rule_text(study: Study) -> list[str]:
    c = study.conf.claim
    return [
        "## The rule (fixed in the spec before any model was probed)",
        "",
        f"- The claim (BERMo, arXiv 2110.15802, abstract): BERMo is better than BERT by **+{c.size:.4f}** in "
        "accuracy on average over SentEval's semantic probing tasks.",
        f"- Semantic tasks: {', '.join(study.conf.semantic)} (SentEval's semantic group as far as it is built "
        "here; the other tasks are reported, not averaged).",
        f"- Primary comparison: condition `{c.condition}`, `{c.pooling}` features, `{c.classifier}` probe, what "
        "each classifier reads: BERMo's mix against BERT's last layer. Per fine-tuning seed, BERMo's semantic "
        "average minus BERT's; the 95% t interval over the paired seeds.",
        f"- **Supported**: the interval lies above 0 and its upper end reaches +{c.size:.4f}. **Not supported**: "
        f"its upper end is below +{c.size:.4f} (the claimed size is excluded; said whether BERMo is ahead by "
        f"less, BERT is ahead, or no difference is shown). **Inconclusive**: it holds both 0 and +{c.size:.4f}. "
        f"Fewer than {MIN_SEEDS} paired seeds: not decided yet.",
        "- Every other condition, pooling and probe is descriptive: the same difference is tabled without a verdict.",
        "",
    ]


def read_layer(rows: list[dict]) -> dict[str, str]:
    """``{run: the layer its classifier reads}``: BERMo's mix where the run has one, else its last layer."""
    layers: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r["run"] not in BASELINES:
            layers[r["run"]].add(r["layer"])
    return {
        run: read_layers("mix" in ls, sorted(ls - {"mix"}, key=_layer_key))[0] for run, ls in layers.items()
    }


def semantic_averages(
    study: Study,
    rows: list[dict],
    reads: dict[str, str],
    condition: str,
    arm: str,
    pooling: str,
    classifier: str,
) -> dict:
    """``{fine-tuning seed (the run for the pretrained encoder): semantic average}`` of the runs of one cell that
    have every semantic task, each task's accuracy the mean over probe seeds at what the run's classifier reads."""
    per_run: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    key: dict[str, object] = {}
    for r in rows:
        if (
            r["run"] not in BASELINES
            and r["task"] in study.conf.semantic
            and (r["condition"], r["arm"], r["pooling"], r["classifier"])
            == (condition, arm, pooling, classifier)
            and r["layer"] == reads.get(r["run"])
        ):
            per_run[r["run"]][r["task"]].append(r["te"])
            key[r["run"]] = r["ft_seed"] if r["ft_seed"] is not None else r["run"]
    return {
        key[run]: sum(sum(v) / len(v) for v in tasks.values()) / len(study.conf.semantic)
        for run, tasks in per_run.items()
        if all(t in tasks for t in study.conf.semantic)
    }


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

    # the verdict and the semantic averages
    c = conf.claim
    lines += ["## The semantic average, BERMo minus BERT", ""]
    reads = read_layer(rows)
    a = semantic_averages(study, rows, reads, c.condition, base, c.pooling, c.classifier)
    b = semantic_averages(study, rows, reads, c.condition, other, c.pooling, c.classifier)
    diffs = [b[k] - a[k] for k in sorted(set(a) & set(b), key=str)]
    word, reason = verdict(diffs, c.size)
    lines += [f"**Verdict on the claim: {word}** ({reason}).", ""]
    lines += [
        "Every condition, pooling and probe (semantic average of each run where its classifier reads; "
        f"{other} - {base} paired by fine-tuning seed):",
        "",
        f"| condition | features | probe | {base} | {other} | {other} - {base} | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for pooling in conf.poolings:
        for classifier in CLASSIFIERS:
            if conf.pretrained:
                p = semantic_averages(study, rows, reads, PRETRAINED, PRETRAINED, pooling, classifier)
                if p:
                    lines.append(
                        f"| pretrained (no fine-tuning; last layer) | {pooling} | {classifier} | "
                        f"{format_cell(list(p.values()))} | | | |"
                    )
            for cond in conf.conditions:
                a = semantic_averages(study, rows, reads, cond, base, pooling, classifier)
                b = semantic_averages(study, rows, reads, cond, other, pooling, classifier)
                if not a and not b:
                    continue
                keys = sorted(set(a) & set(b), key=str)
                d = [b[k] - a[k] for k in keys]
                lines.append(
                    f"| {cond} | {pooling} | {classifier} | {format_cell(list(a.values())) if a else '-'} | "
                    f"{format_cell(list(b.values())) if b else '-'} | "
                    f"{format_cell(d, signed=True) if d else '-'} | {len(d)} |"
                )
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
    notes = out / "notes.md"
    if notes.is_file():
        lines += [
            "## Notes (written by hand, not generated)",
            "",
            notes.read_text(encoding="utf-8").strip(),
            "",
        ]
    path = out / "REPORT.md"
    atomic_write(path, "\n".join(lines))
    return path
