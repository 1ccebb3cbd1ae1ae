"""Model cards: the ``README.md`` saved with every model (``RUN_DIR/model/``, ``RUN_DIR/compact/``).

The card opens with the Hugging Face metadata header (YAML between ``---`` lines: library, pipeline tag, tags, base
model where it is a hub id, metrics and a ``model-index`` entry with the dev result), then says in prose what the
model is: the encoder (family, plain or BERMo, size, where it started), the task, the pruning method and schedule,
the remaining weights, the dev metric (final and best), BERMo's learned mix, whether training diverged, the recipe
that made it (the resolved ``recipe.yaml``) and how to load it. A compacted model's card adds its size and speed
before and after compaction (parameters, encoder MACs, measured latency) and how to load it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .models import PACKAGED_ENCODERS

CARD = "README.md"

#: GLUE task names as the hub's dataset cards call them
_GLUE_NAMES = {
    "cola": "GLUE CoLA",
    "sst2": "GLUE SST-2",
    "mrpc": "GLUE MRPC",
    "qqp": "GLUE QQP",
    "stsb": "GLUE STS-B",
    "mnli": "GLUE MNLI",
    "qnli": "GLUE QNLI",
    "rte": "GLUE RTE",
    "wnli": "GLUE WNLI",
}


def _hub_id(name: str | None) -> str | None:
    """``name`` when it looks like a hub id (not a local path, not a packaged encoder's short name)."""
    if not name or name in PACKAGED_ENCODERS or Path(name).exists() or name.startswith((".", "/", "~")):
        return None
    return name


def _header(meta: dict) -> str:
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def split_card(text: str) -> tuple[dict, str]:
    """``(metadata, body)`` of a card; empty metadata when it has no header."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return yaml.safe_load(text[4:end]) or {}, text[end + 5 :]
    return {}, text


def run_card(summary: dict, recipe_yaml: str, config) -> str:
    """The card of a run's final model, from its summary, its resolved recipe and the model's config."""
    task, main = summary["task"], summary["main_metric"]
    m = summary["model"]
    bermo = m["arch"] == "bermo"
    family = m.get("family", "bert")
    method = summary["method"] or "none"
    recipe = yaml.safe_load(recipe_yaml.split("\n", 1)[1] if recipe_yaml.startswith("#") else recipe_yaml)
    pruning = recipe.get("pruning", {})
    final, best = summary["final"], summary["best"]
    sp = summary["sparsity"]
    metrics = [k for k in final if k not in ("loss", "examples", "majority_prediction_share")]
    tags = ["bermo-prune", "text-classification", family, "bermo" if bermo else "plain"]
    tags += ["pruned", f"{method.replace('_', '-')}-pruning"] if method != "none" else ["dense"]
    dataset = {"name": _GLUE_NAMES.get(task, task), "type": "glue" if task in _GLUE_NAMES else task}
    if task in _GLUE_NAMES:
        dataset.update({"config": task, "split": "validation"})
    meta: dict = {"library_name": "transformers", "pipeline_tag": "text-classification", "tags": tags}
    base = _hub_id(m.get("name"))
    if base:
        meta["base_model"] = base
    if task in _GLUE_NAMES:
        meta["datasets"] = ["nyu-mll/glue"]
    meta["metrics"] = metrics
    meta["model-index"] = [
        {
            "name": Path(summary["run_dir"]).name,
            "results": [
                {
                    "task": {"type": "text-classification", "name": "Text Classification"},
                    "dataset": dataset,
                    "metrics": [
                        {"type": k, "value": round(float(final[k]), 4), "name": f"dev {k}"} for k in metrics
                    ],
                }
            ],
        }
    ]
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None)
    start = (
        f"`{m['name']}`"
        if m.get("name")
        else "scratch (no pretrained weights; WordPiece vocabulary trained on the task)"
    )
    kind = (
        f"BERMo ({family}: the classifier reads a learned mix of all layers)" if bermo else f"plain {family}"
    )
    lines = [
        f"# {Path(summary['run_dir']).name}",
        "",
        f"A {kind} sequence classifier for **{task}**, fine-tuned"
        + (f" and pruned with **{method}** pruning" if method != "none" else " densely (no pruning)")
        + " by bermo-prune (`bermo-prune run`).",
        "",
        "| | |",
        "|---|---|",
        f"| encoder | {family}, {layers} layers, hidden {hidden}, {heads} heads; from {start} |",
        f"| architecture | {'BERMo' if bermo else 'plain'} (`{config.model_type}`) |",
        f"| task | {task} ({', '.join(metrics)}) |",
    ]
    if method != "none":
        sched = pruning.get("schedule", {})
        final_value = sched.get("final", sched.get("value"))
        lines.append(
            f"| method | {method}, granularity {pruning.get('granularity')}, {sched.get('kind')} schedule to "
            f"{final_value} |"
        )
        lines.append(
            f"| remaining weights | **{sp['remaining']:.4f}** of the encoder's linear weights ({sp['kept']:,} of "
            f"{sp['total']:,}; {sp['nonzero_parameters']:,} of {sp['total_parameters']:,} parameters non-zero) |"
        )
    else:
        lines.append("| remaining weights | 1.0 (dense) |")
    lines.append(
        f"| dev {main} | **{final[main]:.4f}** at the end ({final['examples']:,} examples); best {best[main]:.4f} at "
        f"step {best['step']} |"
    )
    if summary.get("mix"):
        weights = ", ".join(f"{w:.3f}" for w in summary["mix"]["layer_weights"])
        lines.append(f"| BERMo mix | layer weights [{weights}], gamma {summary['mix']['gamma']:.3f} |")
    div = summary["divergence"]
    if div["diverged"]:
        first = div["events"][0]
        lines.append(f"| diverged | yes: {first['kind']} at step {first['step']} (see `summary.json`) |")
    else:
        lines.append("| diverged | no |")
    lines.append(f"| training | {summary['steps']} steps, seed {summary['seed']} |")
    lines += ["", "## How to load", "", "```python"]
    if bermo:
        lines.append("import bermo_prune  # registers the BERMo model types with the Auto classes")
    lines += [
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline",
        "",
        'model = AutoModelForSequenceClassification.from_pretrained("PATH/TO/THIS/DIRECTORY")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH/TO/THIS/DIRECTORY")',
        'classify = pipeline("text-classification", model=model, tokenizer=tokenizer)',
        "```",
        "",
        "The pruned weights are zeros in the saved matrices (a standard checkpoint). From the command line:",
        "`bermo-prune eval RUN_DIR` scores the dev split again, `bermo-prune predict RUN_DIR --input FILE --output "
        "OUT.tsv` labels text, and `bermo-prune compact RUN_DIR` removes pruned heads and neurons (head, row or "
        "block pruning).",
        "",
        "## Recipe",
        "",
        "The resolved recipe that trained this model (`bermo-prune run` it to reproduce):",
        "",
        "```yaml",
        recipe_yaml.rstrip("\n"),
        "```",
        "",
    ]
    return _header(meta) + "\n" + "\n".join(lines)


def compact_card(report: dict, source_card: str | None, bermo: bool) -> str:
    """The card of a compacted model: its size and speed, how to load it, then the source model's card."""
    meta, body = split_card(source_card or "")
    meta = dict(meta) or {"library_name": "transformers", "pipeline_tag": "text-classification"}
    meta["tags"] = [*meta.get("tags", []), "compacted"]
    b, a, s = report["before"], report["after"], report["setting"]
    lines = [
        "# Compacted model",
        "",
        "Pruned attention heads and FFN neurons removed physically (`bermo-prune compact`): a smaller dense "
        "model whose outputs equal the pruned model's "
        f"(max |logit difference| {report['max_abs_logit_difference']:.1e}).",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| parameters | {b['parameters']:,} | {a['parameters']:,} ({a['parameters'] / b['parameters']:.2f}x) |",
        f"| encoder MACs (length {s['length']}) | {b['encoder_macs']:,} | {a['encoder_macs']:,} "
        f"({a['encoder_macs'] / b['encoder_macs']:.2f}x) |",
        f"| latency (batch {s['batch']}, length {s['length']}, {s['threads']} threads) | "
        f"{b['latency_s'] * 1000:.1f} ms | {a['latency_s'] * 1000:.1f} ms (**{report['speedup']:.2f}x faster**) |",
        f"| heads per layer | | {report['kept']['heads']} |",
        f"| FFN neurons per layer | | {report['kept']['intermediate']} |",
        "",
        "## How to load the compacted model",
        "",
        "```python",
        "from bermo_prune import load_compact",
        "",
        'model = load_compact("PATH/TO/THIS/DIRECTORY")  # per-layer shapes from the config',
        "```",
        "",
    ]
    if bermo:
        lines[-2:-2] = [
            "# or, after `import bermo_prune`, AutoModelForSequenceClassification.from_pretrained(...)"
        ]
    text = _header(meta) + "\n" + "\n".join(lines)
    if body.strip():
        text += "\n## The model before compaction\n\n" + body.replace("\n# ", "\n### ").replace(
            "\n## ", "\n### "
        )
    return text
