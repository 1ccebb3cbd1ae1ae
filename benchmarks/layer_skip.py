"""Which encoder layers does a fine-tuned classifier still use? Dev accuracy with its top layers removed.

For each run directory, the final model is scored on its recipe's dev split (as ``bermo-prune eval`` scores it:
the run's batches, length cap and precision) once whole and then, for every number of layers kept, ``k`` = L-1
down to 0, with layers k+1..L removed in two ways:

* ``skip``: each removed layer hands its input hidden state on unchanged. BERT's pooler then reads the ``[CLS]``
  of layer k (0: the embeddings), and BERMo's mix reads layer k's state in place of each removed one, with its
  learned weights as they are (the mix's weight on a removed state goes to layer k). In a post-LN encoder
  (every family here) this also removes the removed layers' layer norms and biases, which rescale and shift
  the state even where every weight is pruned.
* ``zero``: every weight of the removed layers' six prunable linears (Q, K, V, attention-out, FFN in and out)
  is set to zero, their biases and layer norms kept: the layers as if pruned to nothing, so what is lost is what
  their surviving weights wrote.

Each row also gives how many dev sentences change class against the whole model and the share of the most
predicted class (1.0: one class for every sentence). For the whole model, each layer's relative update at
``[CLS]``: the median over the dev sentences of ||h_j - h_(j-1)|| / ||h_(j-1)||, which includes what the layer
norms and biases do.

This is an ablation, not a probe: the model never trained without those layers, so an accuracy lost to the
removal bounds from above what the lower layers cannot do alone (a new head on layer k could do better).

    .venv/bin/python benchmarks/layer_skip.py benchmarks/sst2_minilm_ref/runs/bert_soft_movement_0.1_s0
    .venv/bin/python benchmarks/layer_skip.py RUN_A RUN_B --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import numpy as np
import torch

from bermo_prune.errors import InputError
from bermo_prune.families import ROLES, family_of
from bermo_prune.predict import _recipe_split, _scores, load_scorer


@contextlib.contextmanager
def skipped(model, first: int):
    """Layers ``first``.. of ``model``'s encoder (0-based) return their input hidden state unchanged. The layer
    modules stay in place (so the output recorders that collect hidden states, which BERMo's mix reads, see one
    state per layer) and only their ``forward`` is replaced."""
    layers = list(family_of(model).layer_list(model))[first:]
    # a forward set on the instance (a wrapper), if any, is put back after
    own = [layer.__dict__.get("forward") for layer in layers]
    for layer in layers:
        layer.forward = _identity
    try:
        yield
    finally:
        for layer, forward in zip(layers, own, strict=True):
            if forward is None:
                del layer.forward  # the class's forward again
            else:
                layer.forward = forward


def _identity(hidden_states, *args, **kwargs):
    return hidden_states


@contextlib.contextmanager
def zeroed(model, first: int):
    """Every weight of the prunable linears of layers ``first``.. set to zero (biases and layer norms kept), and
    put back after."""
    family = family_of(model)
    weights = [
        family.linear(layer, role).weight for layer in family.layer_list(model)[first:] for role in ROLES
    ]
    saved = [w.detach().clone() for w in weights]
    with torch.no_grad():
        for w in weights:
            w.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for w, s in zip(weights, saved, strict=True):
                w.copy_(s)


REMOVALS = {"skip": skipped, "zero": zeroed}


def cls_updates(scorer, examples) -> list[float]:
    """Per layer j = 1..L, the median over the examples of ||h_j - h_(j-1)|| / ||h_(j-1)|| at position 0."""
    encoded, collate, sampler = scorer.batches(examples, labelled=False)
    ratios = []
    for indices in sampler:
        batch = collate([encoded[i] for i in indices])
        batch.pop("labels")
        with torch.no_grad(), scorer.precision():
            out = scorer.model(
                **{k: v.to(scorer.device) for k, v in batch.items()}, output_hidden_states=True
            )
        cls = torch.stack([h[:, 0].float() for h in out.hidden_states])  # (L + 1, batch, hidden)
        ratios.append(((cls[1:] - cls[:-1]).norm(dim=-1) / cls[:-1].norm(dim=-1)).cpu().numpy())
    return [float(v) for v in np.median(np.concatenate(ratios, axis=1), axis=1)]


def ablate(path: str, device: str = "cpu", modes=tuple(REMOVALS)) -> dict:
    scorer = load_scorer(path, device=device)
    if scorer.task.is_regression:
        raise InputError(f"{path}: task {scorer.task.name!r} is a regression; this ablation scores classes")
    examples = _recipe_split(scorer, "dev")
    labels = np.asarray(examples.labels)
    n_layers = len(family_of(scorer.model).layer_list(scorer.model))
    with torch.no_grad():
        whole = _scores(scorer, examples, classes=True)
        rows = []
        for mode in modes:
            for kept in range(n_layers - 1, -1, -1):
                with REMOVALS[mode](scorer.model, kept):
                    pred = _scores(scorer, examples, classes=True)
                rows.append(
                    {
                        "mode": mode,
                        "layers_kept": kept,
                        "correct": int((pred == labels).sum()),
                        "accuracy": float((pred == labels).mean()),
                        "changed": int((pred != whole).sum()),
                        "majority_share": float(
                            np.bincount(pred, minlength=scorer.task.num_labels).max() / len(pred)
                        ),
                    }
                )
    return {
        "run": str(path),
        "examples": len(labels),
        "layers": n_layers,
        "whole": {"correct": int((whole == labels).sum()), "accuracy": float((whole == labels).mean())},
        "cls_relative_update": cls_updates(scorer, examples),
        "removed": rows,
    }


def print_result(r: dict) -> None:
    print(f"{r['run']}: {r['layers']} layers, {r['examples']} dev examples")
    updates = "  ".join(f"{j + 1}: {v:.3f}" for j, v in enumerate(r["cls_relative_update"]))
    print(f"  [CLS] relative update per layer (median): {updates}")
    head = f"  {'removal':>7}  {'layers kept':>11}  {'accuracy':>8}  {'correct':>7}  {'changed':>7}"
    print(f"{head}  {'top class share':>15}")
    w = r["whole"]
    print(f"  {'none':>7}  {r['layers']:>11}  {w['accuracy']:>8.4f}  {w['correct']:>7}  {0:>7}")
    for row in r["removed"]:
        print(
            f"  {row['mode']:>7}  {row['layers_kept']:>11}  {row['accuracy']:>8.4f}  {row['correct']:>7}"
            f"  {row['changed']:>7}  {row['majority_share']:>15.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories (their model/ and recipe.yaml)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--modes", nargs="+", choices=tuple(REMOVALS), default=list(REMOVALS))
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        results = [ablate(run, args.device, args.modes) for run in args.runs]
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print_result(r)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
