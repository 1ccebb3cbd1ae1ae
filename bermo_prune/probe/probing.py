"""Probe what each layer of a model knows: frozen features of every layer (and BERMo's mix), a simple classifier.

Features (:func:`layer_features`): the encoder's hidden state after the embeddings (layer 0) and after each layer
(1..L), pooled per sentence as the ``[CLS]`` position (``cls``) or the mean over real tokens (``mean``); for a BERMo
model also the mix, ``gamma * sum_j softmax(w)_j h_j``, that its classifier reads. Any run directory or model
directory loads: dense or pruned (hardened zeros), plain or BERMo, compacted.

Classifier (:func:`fit_probe`), after SentEval's: standardised features, logistic regression (``logreg``) or an MLP
with one sigmoid hidden layer (``mlp``), Adam on batches of 64, early stopping on the validation split (5 epochs
without a gain in accuracy, or in loss at equal accuracy), the L2 weight (and for the MLP the hidden size and dropout) chosen on the validation split; the
reported number is test accuracy. The probe's seed sets the initialisation and the batch order, so seeds give the
intervals of the report.

Baselines: the majority label, and a bag-of-words logistic regression (counts of the training split's words that
occur at least twice, at most 5,000) through the same classifier.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig

from ..bermo import is_bermo_config
from ..errors import InputError
from ..models import load_classifier, load_tokenizer
from ..rundir import find_model
from .tasks import SPLITS, ProbeTask

L2_GRID = (0.0, 1e-4, 1e-3, 1e-2)
MLP_GRID = ((50, 0.0), (100, 0.1), (200, 0.2))  # (hidden units, dropout)


def layer_features(
    path: str | Path, sentences: list[str], pooling: str = "cls", batch_size: int = 64, max_length: int = 128
) -> dict[str, np.ndarray]:
    """``{"0": (n, hidden), ..., "L": ..., ["mix": ...]}`` for the sentences (see the module docstring)."""
    return pooled_features(path, sentences, (pooling,), batch_size, max_length)[pooling]


@torch.no_grad()
def pooled_features(
    path: str | Path,
    sentences: list[str],
    poolings: tuple[str, ...] = ("cls", "mean"),
    batch_size: int = 64,
    max_length: int = 128,
) -> dict[str, dict[str, np.ndarray]]:
    """``{pooling: {layer: (n, hidden)}}`` from one forward pass per batch. Sentences are batched in order of
    length (less padding: 26 s against 35 s for Tense's 4,302 sentences on 2 cores, in one ad hoc measurement)
    and returned in their own order."""
    for pooling in poolings:
        if pooling not in ("cls", "mean"):
            raise InputError(f"pooling {pooling!r}: use cls or mean")
    d, _ = find_model(path)
    config = AutoConfig.from_pretrained(d)
    bermo = is_bermo_config(config)
    model = load_classifier(d, "bermo" if bermo else "bert", config.num_labels or 2).eval()
    base = model.base_model
    tokenizer = load_tokenizer(str(d))
    order = sorted(range(len(sentences)), key=lambda i: (len(sentences[i]), i))
    chunks: dict[str, dict[str, list[np.ndarray]]] = {p: {} for p in poolings}
    for start in range(0, len(order), batch_size):
        enc = tokenizer(
            [sentences[i] for i in order[start : start + batch_size]],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        out = base(**enc, output_hidden_states=True)
        states = {str(j): h for j, h in enumerate(out.hidden_states)}
        if bermo:
            states["mix"] = out.last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        for name, h in states.items():
            for pooling in poolings:
                pooled = h[:, 0] if pooling == "cls" else (h * mask).sum(1) / mask.sum(1)
                chunks[pooling].setdefault(name, []).append(pooled.float().numpy())
    back = np.argsort(
        np.array(order, dtype=np.int64), kind="stable"
    )  # position of sentence i in the sorted order
    return {
        pooling: {name: np.concatenate(parts)[back] for name, parts in layers.items()}
        for pooling, layers in chunks.items()
    }


def _standardise(x: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    mean, std = x["tr"].mean(0), x["tr"].std(0) + 1e-6
    return {k: torch.from_numpy((v - mean) / std).float() for k, v in x.items()}


def _train_one(
    xs, ys, n_classes, seed, hidden, dropout, l2, max_epochs=100, patience=5
) -> tuple[float, nn.Module]:
    """Train on tr with early stopping on va; returns (best validation accuracy, the model at that point)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dim = xs["tr"].shape[1]
    if hidden:
        net = nn.Sequential(
            nn.Linear(dim, hidden), nn.Dropout(dropout), nn.Sigmoid(), nn.Linear(hidden, n_classes)
        )
    else:
        net = nn.Linear(dim, n_classes)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=l2)
    best, best_state, waited = (-1.0, 0.0), None, 0
    n = len(ys["tr"])
    for _ in range(max_epochs):
        net.train()
        for idx in torch.randperm(n, generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xs["tr"][idx]), ys["tr"][idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            logits = net(xs["va"])
            acc = float((logits.argmax(1) == ys["va"]).float().mean())
            score = (
                acc,
                -float(nn.functional.cross_entropy(logits, ys["va"])),
            )  # accuracy, then loss breaks ties
        if score > best:
            best, best_state, waited = score, {k: v.clone() for k, v in net.state_dict().items()}, 0
        else:
            waited += 1
            if waited >= patience:
                break
    net.load_state_dict(best_state)
    return best[0], net


def fit_probe(
    features: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    kind: str = "logreg",
    seed: int = 0,
    correct: bool = False,
) -> dict:
    """Fit on ``tr``, select on ``va``, score on ``te``: ``{"va": ..., "te": ..., "config": ...}``; with
    ``correct``, also ``te_correct``: which test examples it got right, a bit per example in file order, packed
    big-endian into bytes and written as hex (so a bootstrap over test sentences can be run later)."""
    if kind not in ("logreg", "mlp"):
        raise InputError(f"classifier {kind!r}: use logreg or mlp")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is fastest, and several thrash on a busy machine
    try:
        return _fit(features, labels, kind, seed, correct)
    finally:
        torch.set_num_threads(threads)


def _fit(
    features: dict[str, np.ndarray], labels: dict[str, np.ndarray], kind: str, seed: int, correct: bool
) -> dict:
    xs = _standardise(features)
    ys = {k: torch.from_numpy(v).long() for k, v in labels.items()}
    n_classes = int(max(int(v.max()) for v in labels.values())) + 1
    grid = [(h, d, l2) for h, d in (MLP_GRID if kind == "mlp" else ((0, 0.0),)) for l2 in L2_GRID]
    best = None
    for hidden, dropout, l2 in grid:
        va, net = _train_one(xs, ys, n_classes, seed, hidden, dropout, l2)
        if best is None or va > best[0]:
            best = (va, net, {"hidden": hidden, "dropout": dropout, "l2": l2})
    va, net, config = best
    with torch.no_grad():
        right = (net(xs["te"]).argmax(1) == ys["te"]).numpy()
    out = {"va": va, "te": float(right.mean(dtype=np.float32)), "config": config}
    if correct:
        out["te_correct"] = np.packbits(right).tobytes().hex()
    return out


def encode_labels(task: ProbeTask) -> dict[str, np.ndarray]:
    index = {label: i for i, label in enumerate(task.labels)}
    return {s: np.array([index[label] for label, _ in task.examples[s]]) for s in SPLITS}


def bag_of_words(task: ProbeTask, max_words: int = 5000) -> dict[str, np.ndarray]:
    """Word-count features over the training split's words seen at least twice (at most ``max_words``)."""
    counts = Counter(w for _, s in task.examples["tr"] for w in s.lower().split())
    vocab = {w: i for i, (w, c) in enumerate(counts.most_common(max_words)) if c >= 2}
    out = {}
    for split in SPLITS:
        x = np.zeros((len(task.examples[split]), max(len(vocab), 1)), dtype=np.float32)
        for row, (_, s) in enumerate(task.examples[split]):
            for w in s.lower().split():
                j = vocab.get(w)
                if j is not None:
                    x[row, j] += 1
        out[split] = x
    return out


def baseline_rows(task: ProbeTask, seeds, ident) -> list[dict]:
    """The task's majority-class row (with its ``examples`` per split) and a bag-of-words row per probe seed;
    ``ident(name)`` gives the fields that name the baseline in the caller's rows (``{"model": name}``)."""
    labels = encode_labels(task)
    rows = [
        {
            "task": task.name,
            **ident("majority"),
            "layer": None,
            "seed": None,
            "va": task.majority_rate("va"),
            "te": task.majority_rate("te"),
            "examples": {s: len(task.examples[s]) for s in SPLITS},
        }
    ]
    bow = bag_of_words(task)
    for seed in seeds:
        r = fit_probe(bow, labels, "logreg", seed)
        rows.append({"task": task.name, **ident("bag_of_words"), "layer": None, "seed": seed, **r})
    return rows


def probe_task(
    task: ProbeTask,
    models: dict[str, str | list[str]],
    pooling: str = "cls",
    kind: str = "logreg",
    seeds: tuple[int, ...] = (0, 1, 2),
    log=print,
) -> list[dict]:
    """Rows ``{task, model, run, layer, seed, va, te}`` for every model's every layer and probe seed, plus the
    baselines (``model`` = ``majority`` and ``bag_of_words``, ``layer`` = None; the majority row holds the task's
    ``examples`` per split). A model given as a list of directories is several fine-tuned runs of it (fine-tuning
    seeds), ``run`` 0, 1, ... in that order; the report's intervals are then over the runs."""
    labels = encode_labels(task)
    rows = baseline_rows(task, seeds, lambda name: {"model": name})
    for name, paths in models.items():
        for run, path in enumerate([paths] if isinstance(paths, str | Path) else paths):
            per_split = {s: layer_features(path, [x for _, x in task.examples[s]], pooling) for s in SPLITS}
            for layer in per_split["tr"]:
                feats = {s: per_split[s][layer] for s in SPLITS}
                for seed in seeds:
                    r = fit_probe(feats, labels, kind, seed)
                    rows.append(
                        {"task": task.name, "model": name, "run": run, "layer": layer, "seed": seed, **r}
                    )
                mean = np.mean([r["te"] for r in rows[-len(seeds) :]])
                log(f"{task.name} {name} run {run} layer {layer}: test {mean:.4f}")
    return rows
