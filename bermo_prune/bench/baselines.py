"""``OUTPUT/baselines.json``: what every sweep report compares the pruned models with, computed once from the
sweep's own data, plus the facts of each run's recipe that results rows do not carry.

* **Majority class**: the most frequent training label, predicted for every dev example (its dev accuracy), and
  the dev majority rate (the share of the most frequent dev label: what the divergence tracker calls chance).
* **Bag of words**: scikit-learn ``LogisticRegression`` on unigram and bigram counts (settings in
  :data:`BAG_OF_WORDS`, fixed, not tuned on dev; the lbfgs solver is deterministic), trained on the run's training
  set and scored on its dev set. Its prediction for every dev example and the dev labels are kept too (strings
  of class ids, in the dev split's order), so a report can pair a run with it on the same examples.
* **Runs**: for each run of the spec, the data draw it trained on and the step at which its pruning schedule starts
  (the schedule's warm-up step; ``None`` for a dense run), so a report can tell a fine-tuning failure from a pruning
  one; and the tracker's at-chance margin (``divergence.collapse_margin``).

The data are loaded exactly as :func:`bermo_prune.runner.run_recipe` loads them (same recipe, same
:func:`~bermo_prune.data.load_task_data` call, same seed), so a subset (``data.max_train_samples``) is the subset
the run trained on; each distinct draw is computed once and identified by the SHA-256 of its examples.

``bermo-prune bench`` writes the file at the start of a sweep when it is missing, ``bermo-prune baselines SPEC``
(re)writes it for an existing results directory, and ``bermo-prune report`` only reads it: the report stays a pure
function of committed files, with no scikit-learn or data access at report time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from ..errors import InputError

BASELINES = "baselines.json"
#: The bag-of-words classifier, fixed before any number was seen (scikit-learn defaults but for the n-gram range
#: and the iteration cap, which only lets lbfgs converge on ~10^5 features).
BAG_OF_WORDS = {
    "features": "CountVectorizer(ngram_range=(1, 2), lowercase=True), fitted on the training texts",
    "classifier": "LogisticRegression(C=1.0, solver='lbfgs', max_iter=5000)",
    "pairs": "two-text tasks: the texts joined with ' [SEP] '",
}


def _fingerprint(split) -> str:
    digest = hashlib.sha256()
    for texts, label in zip(split.texts, split.labels, strict=True):
        digest.update(json.dumps([list(texts), label], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def majority_baseline(train_labels, dev_labels) -> dict:
    """The most frequent training label (ties: the smallest), its accuracy on dev, and the dev majority rate."""
    from collections import Counter

    counts = Counter(train_labels)
    label = min(counts, key=lambda y: (-counts[y], y))
    dev = Counter(dev_labels)
    return {
        "label": label,
        "dev_accuracy": dev[label] / len(dev_labels),
        "dev_majority_rate": max(dev.values()) / len(dev_labels),
    }


def bag_of_words_accuracy(train_texts, train_labels, dev_texts, dev_labels) -> float:
    """Dev accuracy of :data:`BAG_OF_WORDS` trained on the training split (texts are tuples of one or two strings)."""
    return _accuracy(bag_of_words_predictions(train_texts, train_labels, dev_texts), dev_labels)


def _accuracy(predicted, labels) -> float:
    return float(sum(int(p == y) for p, y in zip(predicted, labels, strict=True)) / len(labels))


def bag_of_words_predictions(train_texts, train_labels, dev_texts) -> list[int]:
    """The dev labels :data:`BAG_OF_WORDS`, trained on the training split, predicts, in the dev split's order."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    def join(texts):
        return [" [SEP] ".join(t for t in pair if t) for pair in texts]

    vectorizer = CountVectorizer(ngram_range=(1, 2), lowercase=True)
    x_train = vectorizer.fit_transform(join(train_texts))
    classifier = LogisticRegression(C=1.0, solver="lbfgs", max_iter=5000)
    classifier.fit(x_train, list(train_labels))
    return [int(p) for p in classifier.predict(vectorizer.transform(join(dev_texts)))]


def pruning_start(recipe, run_steps: int) -> int | None:
    """The first step at which the recipe's pruning schedule may remove anything (None for a dense run): the
    warm-up of a cubic or linear schedule, the step of a one-shot one, 0 for a constant one."""
    if not recipe.pruned:
        return None
    schedule = recipe.pruning.schedule.build(run_steps)
    for name in ("warmup", "at"):
        if hasattr(schedule, name):
            return int(getattr(schedule, name))
    return 0


def compute_baselines(spec, log=print) -> dict:
    """Baselines and per-run facts for every cell of a sweep spec (:class:`~.sweep.Spec`)."""
    # here for start-up time: these import torch, which `report` (a reader of baselines.json) does not need
    from ..data import load_task_data
    from ..recipe import load_recipe
    from ..train_config import total_steps

    draws: list[dict] = []
    by_key: dict[str, int] = {}
    runs: dict[str, dict] = {}
    margins = set()
    cache: dict[str, object] = {}
    for cell in spec.cells:
        recipe = load_recipe(spec.base, [*spec.overrides, *cell.overrides()])
        where = recipe.data.where()
        # the seed matters only where it draws something: a subset, or the synthetic generator
        seeded = recipe.data_source == "synthetic" or where.get("max_train_samples") is not None
        key = json.dumps(
            [recipe.task, recipe.data_source, where, recipe.seed if seeded else None], sort_keys=True
        )
        if key not in by_key:
            data = load_task_data(recipe.task, recipe.data_source, seed=recipe.seed, **where)
            cache[key] = data
            draw = {
                "task": recipe.task,
                "source": recipe.data_source,
                "seeds": [],
                "train_size": len(data.train),
                "dev_size": len(data.dev),
                "train_sha256": _fingerprint(data.train),
                "dev_sha256": _fingerprint(data.dev),
            }
            if data.task.is_regression:
                draw["majority"] = draw["bag_of_words"] = None  # a regression task has no class to predict
            else:
                log(f"baselines: {recipe.task}, {len(data.train)} training examples: bag of words ...")
                draw["majority"] = majority_baseline(data.train.labels, data.dev.labels)
                predicted = bag_of_words_predictions(data.train.texts, data.train.labels, data.dev.texts)
                draw["bag_of_words"] = _accuracy(predicted, data.dev.labels)
                if max(data.task.num_labels, 1) <= 10:  # one digit a class: kept for paired comparisons
                    draw["dev_labels"] = "".join(str(int(y)) for y in data.dev.labels)
                    draw["bag_of_words_predictions"] = "".join(str(p) for p in predicted)
            by_key[key] = len(draws)
            draws.append(draw)
        index = by_key[key]
        if recipe.seed not in draws[index]["seeds"]:
            draws[index]["seeds"].append(recipe.seed)
        cfg = dataclasses.replace(recipe.train, seed=recipe.seed, progress=False)
        steps = total_steps(cfg, draws[index]["train_size"])
        runs[cell.name] = {"draw": index, "steps": steps, "pruning_start": pruning_start(recipe, steps)}
        margins.add(float(recipe.divergence.collapse_margin))
    if len(margins) != 1:
        raise InputError(
            f"{spec.source}: the runs use different divergence.collapse_margin values {sorted(margins)}"
        )
    return {
        "spec": spec.source,
        "bag_of_words_settings": BAG_OF_WORDS,
        "at_chance_margin": margins.pop(),
        "draws": draws,
        "runs": runs,
    }


def write_baselines(spec, output_dir: str | Path | None = None, log=print) -> Path:
    """Compute :func:`compute_baselines` and write ``baselines.json`` to ``output_dir`` (default: the spec's)."""
    import sklearn  # here: an optional extra, needed only for the bag-of-words baseline

    out = Path(output_dir) if output_dir is not None else spec.output_dir
    out.mkdir(parents=True, exist_ok=True)
    result = {**compute_baselines(spec, log), "scikit_learn": sklearn.__version__}
    path = out / BASELINES
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return path


def load_baselines(results_dir: str | Path) -> dict:
    path = Path(results_dir) / BASELINES
    if not path.is_file():
        raise InputError(
            f"{results_dir}: no {BASELINES} (the majority-class and bag-of-words baselines, and each run's pruning "
            "start); write it with `bermo-prune baselines SPEC.yaml --output "
            f"{results_dir}` (`bermo-prune bench` writes it at the start of a sweep)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def ensure_baselines(spec, log=print) -> Path:
    """``bermo-prune bench``: write ``baselines.json`` unless it is there and covers every run of the spec."""
    path = spec.output_dir / BASELINES
    if path.is_file() and all(
        c.name in json.loads(path.read_text(encoding="utf-8"))["runs"] for c in spec.cells
    ):
        return path
    return write_baselines(spec, log=log)
