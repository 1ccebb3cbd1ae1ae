"""``bermo-prune probe``'s output: ``results.jsonl`` (one row per task, model, layer and probe seed), REPORT.md and
one figure per task (layers on x, test accuracy on y, one line per model, the majority and bag-of-words baselines).

BERT-vs-BERMo differences are paired by probe seed for model names that differ only in a leading ``bert`` /
``bermo`` (``bert_dense`` with ``bermo_dense``, ``bert_10`` with ``bermo_10``), per layer and for the last layer
against BERMo's mix (what each classifier reads).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ..bench.stats import mean_ci
from ..rundir import atomic_write

BASELINES = ("majority", "bag_of_words")


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    atomic_write(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    by = defaultdict(list)
    for r in rows:
        by[(r["task"], r["model"], r["layer"])].append(r)
    lines = ["# Probing: what each layer knows", ""]
    lines += [
        "Test accuracy of a probe trained on frozen features (mean over probe seeds, 95% t interval). Layer 0 is the "
        "embedding output, `mix` BERMo's learned mix (what its classifier reads). Generated from `results.jsonl` "
        "by `bermo_prune/probe/report.py`.",
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
                (layer, mean_ci([r["te"] for r in by[(task, model, layer)]]))
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
                    ],
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
        lines += ["| layer | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for layer in layers:
            cells = []
            for model in models:
                runs = by.get((task, model, layer))
                if not runs:
                    cells.append("-")
                    continue
                c = mean_ci([r["te"] for r in runs])
                cells.append(f"{c.mean:.4f}" + (f" ({c.low:.4f}, {c.high:.4f})" if c.n > 1 else ""))
            lines.append(f"| {layer} | " + " | ".join(cells) + " |")
        lines.append("")
        for bert, bermo in _pairs(models):
            lines += [
                f"BERMo - BERT ({bermo} - {bert}), paired by probe seed:",
                "",
                "| layer | difference (95% CI) |",
                "|---|---|",
            ]
            for layer in layers:
                a = {r["seed"]: r["te"] for r in by.get((task, bert, layer), [])}
                b = {
                    r["seed"]: r["te"] for r in by.get((task, bermo, "mix" if layer == "mix" else layer), [])
                }
                if layer == "mix":  # BERMo's mix against BERT's last layer: what each classifier reads
                    last = max((x for x in layers if x.isdigit()), key=int)
                    a = {r["seed"]: r["te"] for r in by.get((task, bert, last), [])}
                seeds = sorted(set(a) & set(b))
                if not seeds:
                    continue
                c = mean_ci([b[s] - a[s] for s in seeds])
                ci = f" ({c.low:+.4f}, {c.high:+.4f})" if c.n > 1 else ""
                label = f"mix vs BERT's layer {last}" if layer == "mix" else layer
                lines.append(f"| {label} | {c.mean:+.4f}{ci} |")
            lines.append("")
    if command:
        lines += ["## How to reproduce", "", "```", command, "```", ""]
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
