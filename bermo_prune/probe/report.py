"""``bermo-prune probe``'s output: ``results.jsonl`` (one row per task, model, layer and probe seed), REPORT.md and
one figure per task (layers on x, test accuracy on y, one line per model, the majority and bag-of-words baselines).

BERT-vs-BERMo differences are paired for model names that differ only in a leading ``bert`` / ``bermo``
(``bert_dense`` with ``bermo_dense``, ``bert_10`` with ``bermo_10``), per layer and for the last layer against
BERMo's mix (what each classifier reads).

Intervals. A model given with several fine-tuned runs (``--model bert_dense=RUN_S0 --model bert_dense=RUN_S1 ...``,
rows with ``run`` 0, 1, ...) is summarised over its runs, each run the mean over its probe seeds: the interval is
over fine-tuning seeds, and differences pair run ``i`` with run ``i``. A model with one run is summarised over
probe seeds, and differences pair probe seeds. With 3 or more values the interval is the 95% Student-t interval,
clipped to [0, 1] for an accuracy and to [-1, 1] for a difference; with 2 values it is their range
(``[min, max]``: a t interval from 2 values is 12.7 standard errors wide and leaves [0, 1]); with 1, none.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ..bench.stats import Interval, mean_ci
from ..rundir import atomic_write

BASELINES = ("majority", "bag_of_words")
MIN_T_VALUES = 3  # fewer values: their range, not a t interval


def summarise(values: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[Interval, str]:
    """``(interval, kind)``: kind ``t`` (95% t interval clipped to ``bounds``) for 3 or more values, ``range``
    (minimum and maximum) for 2, ``none`` for 1 (NaN bounds)."""
    if len(values) >= MIN_T_VALUES:
        return mean_ci(values, bounds=bounds), "t"
    c = mean_ci(values)
    if len(values) == 2:
        return Interval(c.mean, min(values), max(values), 2), "range"
    return c, "none"


def format_cell(values: list[float], signed: bool = False) -> str:
    """``mean (low, high)`` for a t interval, ``mean [min, max]`` for a range, ``mean`` alone for one value."""
    c, kind = summarise(values, (-1.0, 1.0) if signed else (0.0, 1.0))
    f = "{:+.4f}" if signed else "{:.4f}"
    text = f.format(c.mean)
    if kind == "t":
        text += f" ({f.format(c.low)}, {f.format(c.high)})"
    elif kind == "range":
        text += f" [{f.format(c.low)}, {f.format(c.high)}]"
    return text


def model_values(runs: list[dict]) -> tuple[list[float], str]:
    """The values a model's cell summarises: per fine-tuned run the mean over probe seeds when the rows hold
    several runs (``over`` = ``fine-tuning seeds``), else the probe seeds' test accuracies."""
    by_run: dict[int, list[float]] = defaultdict(list)
    for r in runs:
        by_run[r.get("run", 0)].append(r["te"])
    if len(by_run) > 1:
        return [sum(v) / len(v) for _, v in sorted(by_run.items())], "fine-tuning seeds"
    return [r["te"] for r in runs], "probe seeds"


def paired_differences(a_rows: list[dict], b_rows: list[dict]) -> tuple[list[float], str]:
    """``b - a`` paired by fine-tuned run (each the mean over probe seeds) when both have several runs, else by
    probe seed."""
    a_runs = {r.get("run", 0) for r in a_rows}
    b_runs = {r.get("run", 0) for r in b_rows}
    if len(a_runs) > 1 and len(b_runs) > 1:
        a = dict(zip(sorted(a_runs), model_values(a_rows)[0], strict=True))
        b = dict(zip(sorted(b_runs), model_values(b_rows)[0], strict=True))
        return [b[k] - a[k] for k in sorted(set(a) & set(b))], "fine-tuned run"
    a = {r["seed"]: r["te"] for r in a_rows}
    b = {r["seed"]: r["te"] for r in b_rows}
    return [b[k] - a[k] for k in sorted(set(a) & set(b))], "probe seed"


def _layer_key(layer: str) -> tuple[int, str]:
    return (10_000, layer) if not layer.isdigit() else (int(layer), "")


def _pairs(models: list[str]) -> list[tuple[str, str]]:
    return [
        (m, "bermo" + m[4:])
        for m in models
        if m.startswith("bert") and not m.startswith("bermo") and "bermo" + m[4:] in models
    ]


def write_probe_report(out: str | Path, rows: list[dict], command: str | None = None) -> Path:
    """Write ``results.jsonl``, REPORT.md and the figures into ``out``. ``command`` (the command line that made
    the rows) goes into a "How to reproduce" section; a hand-written ``notes.md`` in ``out`` is appended under a
    heading that says so."""
    import matplotlib  # here: selecting the Agg backend must precede pyplot's import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    atomic_write(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    by = defaultdict(list)
    for r in rows:
        by[(r["task"], r["model"], r["layer"])].append(r)
    lines = ["# Probing: what each layer knows", ""]
    lines += [
        "Test accuracy of a probe trained on frozen features: the mean over fine-tuning seeds for a model given "
        "with several fine-tuned runs (each run the mean over its probe seeds), else over probe seeds; `(low, high)` "
        "a 95% t interval (3 or more values, clipped to [0, 1]), `[min, max]` the range (2 values). Layer 0 is "
        "the embedding output, `mix` BERMo's learned mix (what its classifier reads). Generated from "
        "`results.jsonl` by `bermo_prune/probe/report.py`.",
        "",
    ]
    for task in dict.fromkeys(r["task"] for r in rows):
        models = list(
            dict.fromkeys(r["model"] for r in rows if r["task"] == task and r["model"] not in BASELINES)
        )
        layers = sorted(
            {r["layer"] for r in rows if r["task"] == task and r["layer"] is not None}, key=_layer_key
        )
        fig, ax = plt.subplots(figsize=(7, 4.2))
        xs = {layer: i for i, layer in enumerate(layers)}
        for model in models:
            pts = [
                (layer, summarise(model_values(by[(task, model, layer)])[0])[0])
                for layer in layers
                if by.get((task, model, layer))
            ]
            color = None
            for part, marker, line in (
                ([p for p in pts if p[0] != "mix"], "o", "-"),
                ([p for p in pts if p[0] == "mix"], "D", "none"),
            ):
                if not part:
                    continue
                drawn = ax.errorbar(
                    [xs[layer] for layer, _ in part],
                    [c.mean for _, c in part],
                    yerr=[
                        [c.mean - c.low if c.n > 1 else 0 for _, c in part],
                        [c.high - c.mean if c.n > 1 else 0 for _, c in part],
                    ],  # a t interval from 3 or more values, clipped to [0, 1]; the range from 2
                    marker=marker,
                    linestyle=line,
                    capsize=3,
                    color=color,
                    label=model if color is None else None,
                )
                color = drawn.lines[
                    0
                ].get_color()  # the mix point in its model's colour, not joined to layer L
        for base, style in zip(BASELINES, (":", "--"), strict=True):
            if by.get((task, base, None)):
                ax.axhline(
                    mean_ci([r["te"] for r in by[(task, base, None)]]).mean,
                    color="gray",
                    linestyle=style,
                    label=base.replace("_", " "),
                )
        ax.set_xticks(range(len(layers)), layers)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{task}: probe accuracy per layer")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"fig_{task}.png", dpi=120)
        plt.close(fig)
        lines += [f"## {task}", "", f"![{task}](fig_{task}.png)", ""]
        base_text = "; ".join(
            f"{b.replace('_', ' ')} {mean_ci([r['te'] for r in by[(task, b, None)]]).mean:.4f}"
            for b in BASELINES
            if by.get((task, b, None))
        )
        lines += [f"Baselines: {base_text}.", ""]
        sizes = next(
            (r.get("examples") for r in rows if r["task"] == task and r["model"] == "majority"), None
        )
        if sizes:
            lines += ["Examples: " + ", ".join(f"{k} {v}" for k, v in sizes.items()) + ".", ""]
        lines += ["| layer | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for layer in layers:
            cells = []
            for model in models:
                runs = by.get((task, model, layer))
                if not runs:
                    cells.append("-")
                    continue
                values, over = model_values(runs)
                cells.append(
                    format_cell(values) + (f" ({len(values)} runs)" if over != "probe seeds" else "")
                )
            lines.append(f"| {layer} | " + " | ".join(cells) + " |")
        lines.append("")
        for bert, bermo in _pairs(models):
            table = []
            paired = "probe seed"
            for layer in layers:
                a_rows = by.get((task, bert, layer), [])
                b_rows = by.get((task, bermo, layer), [])
                if layer == "mix":  # BERMo's mix against BERT's last layer: what each classifier reads
                    last = max((x for x in layers if x.isdigit()), key=int)
                    a_rows = by.get((task, bert, last), [])
                diffs, paired = paired_differences(a_rows, b_rows) if a_rows and b_rows else ([], paired)
                if not diffs:
                    continue
                label = f"mix vs BERT's layer {last}" if layer == "mix" else layer
                table.append(f"| {label} | {format_cell(diffs, signed=True)} |")
            lines += [
                f"BERMo - BERT ({bermo} - {bert}), paired by {paired}:",
                "",
                "| layer | difference (interval) |",
                "|---|---|",
                *table,
                "",
            ]
    if command:
        lines += ["## How to reproduce", "", "```", command, "```", ""]
    return finish_report(out, lines)


def finish_report(out: Path, lines: list[str]) -> Path:
    """Append the directory's hand-written ``notes.md`` (under a heading that says so) and write REPORT.md."""
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
