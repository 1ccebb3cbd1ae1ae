"""Why BERT collapses under movement pruning: which weights the movement scores remove, and what removing them does.

Starting from a converged dense fine-tuned classifier (a run directory of ``pruning.method=none``), the script
trains on for ``--score-steps`` steps with movement scores attached (Sanh et al.'s straight-through top-k, masks
all ones, scores under AdamW at ``--score-lr`` as in a run), then removes the same share of every encoder matrix
(local scope, exact counts) four ways and evaluates each on the dev set without retraining:

  * movement: the lowest movement scores (what a movement run's next mask update removes);
  * taylor: the lowest accumulated -sum_t g_t * W_t (the same movement quantity without Adam's normalisation);
  * magnitude: the smallest |W|;
  * random: a seeded uniform draw.

For each it reports dev accuracy and loss, the mean |W| of the removed weights relative to the matrix mean, the
share of removed weights that magnitude also removes, and the loss change on held training batches: measured
versus the first-order prediction sum_removed(-g * W) (negative: removing them should lower the loss). It also
reports the Spearman correlation of the scores with |W| (median over matrices).

    .venv/bin/python benchmarks/movement_collapse.py --model RUN_DIR [--shares 0.005 0.01 0.05 0.15]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import torch
from scipy.stats import spearmanr

from bermo_prune.data import Collator
from bermo_prune.engine import prune
from bermo_prune.models import load_classifier, load_tokenizer
from bermo_prune.optim import make_optimizer
from bermo_prune.pruners import get_pruner
from bermo_prune.rundir import find_model
from bermo_prune.schedule import Constant, Scheduler


def read_tsv(path: Path, limit: int | None = None) -> list[tuple[str, int]]:
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [(r[0], int(r[1])) for r in rows[:limit]]


def encode(tokenizer, rows, batch: int, length: int) -> list[dict]:
    enc = tokenizer([t for t, _ in rows], truncation=True, max_length=length)
    items = list(zip(enc["input_ids"], enc["token_type_ids"], [y for _, y in rows], strict=True))
    collate = Collator(tokenizer.pad_token_id)
    return [collate(items[i : i + batch]) for i in range(0, len(items), batch)]


@torch.no_grad()
def evaluate(model, batches) -> tuple[float, float]:
    model.eval()
    correct = total = 0
    loss = 0.0
    for b in batches:
        out = model(**b)
        correct += int((out.logits.argmax(-1) == b["labels"]).sum())
        total += len(b["labels"])
        loss += float(out.loss) * len(b["labels"])
    return correct / total, loss / total


def lowest(values: torch.Tensor, share: float) -> torch.Tensor:
    """Boolean mask of the round(share * n) lowest values (ties by index)."""
    k = int(round(share * values.numel()))
    out = torch.zeros(values.numel(), dtype=torch.bool)
    if k:
        out[torch.topk(values.flatten(), k, largest=False).indices] = True
    return out.view_as(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", required=True, help="run directory (or model directory) of a dense fine-tuned BERT"
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data/sst2"))
    ap.add_argument("--score-steps", type=int, default=100)
    ap.add_argument("--score-lr", type=float, default=1e-2)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--shares", type=float, nargs="+", default=[0.005, 0.01, 0.02, 0.05, 0.15])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--probe-batches", type=int, default=8, help="held training batches for the loss change")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    d, _ = find_model(args.model, "--model")
    tokenizer = load_tokenizer(str(d))
    model = load_classifier(d, "bert", 2)
    train_rows = read_tsv(args.data / "train.tsv")
    g = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(train_rows), generator=g).tolist()
    need = (args.score_steps + args.probe_batches) * args.batch
    picked = [train_rows[i] for i in order[:need]]
    batches = encode(tokenizer, picked, args.batch, args.max_length)
    train, probe = batches[: args.score_steps], batches[args.score_steps :]
    dev = encode(tokenizer, read_tsv(args.data / "dev.tsv"), 128, args.max_length)

    dense_acc, dense_loss = evaluate(model, dev)
    handle = prune(model, Scheduler(get_pruner("movement"), Constant(1.0), update_every=10**9))
    opt = make_optimizer(handle.param_groups(lr=args.lr, score_lr=args.score_lr), args.lr)
    targets = handle.layout.targets
    taylor = [torch.zeros_like(t.module.weight) for t in targets]
    model.train()
    for b in train:
        model(**b).loss.backward()
        for acc, t in zip(taylor, targets, strict=True):
            acc -= t.module.weight.grad * t.module.weight.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    scores = [handle.state.part("scores", t).detach().clone() for t in targets]
    weights = [t.module.weight.detach().clone() for t in targets]

    # mean gradient over the probe batches at the end point (for the first-order prediction)
    model.eval()
    grads = [torch.zeros_like(w) for w in weights]
    base_probe = 0.0
    for b in probe:
        out = model(**b)
        (out.loss / len(probe)).backward()
        base_probe += out.loss.item() / len(probe)
    for gr, t in zip(grads, targets, strict=True):
        gr += t.module.weight.grad
    model.zero_grad(set_to_none=True)
    acc0, loss0 = evaluate(model, dev)

    rho = [spearmanr(s.flatten()[:20000].numpy(), w.abs().flatten()[:20000].numpy()).statistic
           for s, w in zip(scores, weights, strict=True)]  # fmt: skip
    rng = torch.Generator().manual_seed(args.seed + 1)
    selectors = {
        "movement": lambda i: scores[i],
        "taylor": lambda i: taylor[i],
        "magnitude": lambda i: weights[i].abs(),
        "random": lambda i: torch.rand(weights[i].shape, generator=rng),
    }
    rows = []
    for share in args.shares:
        mag = [lowest(w.abs(), share) for w in weights]
        for name, pick in selectors.items():
            removed = [lowest(pick(i), share) for i in range(len(targets))]
            predicted = sum(
                float((-gr * w)[m].sum()) for gr, w, m in zip(grads, weights, removed, strict=True)
            )
            rel = statistics.mean(
                float(w.abs()[m].mean() / w.abs().mean())
                for w, m in zip(weights, removed, strict=True)
                if m.any()
            )
            overlap = sum(int((m & a).sum()) for m, a in zip(removed, mag, strict=True)) / max(
                1, sum(int(m.sum()) for m in removed)
            )
            with torch.no_grad():
                for t, w, m in zip(targets, weights, removed, strict=True):
                    t.module.weight.copy_(w.masked_fill(m, 0.0))
            acc, loss = evaluate(model, dev)
            probe_loss = 0.0
            with torch.no_grad():
                for b in probe:
                    probe_loss += float(model(**b).loss) / len(probe)
                for t, w in zip(targets, weights, strict=True):
                    t.module.weight.copy_(w)
            rows.append({
                "share_removed": share, "selector": name, "dev_accuracy": acc, "dev_loss": loss,
                "removed_mean_abs_w_rel": rel, "overlap_with_magnitude": overlap,
                "probe_loss_change": probe_loss - base_probe, "first_order_prediction": predicted,
            })  # fmt: skip

    print(f"model {d}: dense dev accuracy {dense_acc:.3f} (loss {dense_loss:.3f}); after {args.score_steps} "
          f"score steps {acc0:.3f} (loss {loss0:.3f})")  # fmt: skip
    print(f"Spearman(movement score, |W|) per matrix: median {statistics.median(rho):+.3f} "
          f"(range {min(rho):+.3f} to {max(rho):+.3f})")  # fmt: skip
    print(f"{'removed':>8} {'selector':>10} {'dev acc':>8} {'dev loss':>9} {'|W| rel':>8} {'~magn':>6} "
          f"{'dLoss':>8} {'1st-order':>10}")  # fmt: skip
    for r in rows:
        print(f"{r['share_removed']:>8.3f} {r['selector']:>10} {r['dev_accuracy']:>8.3f} {r['dev_loss']:>9.3f} "
              f"{r['removed_mean_abs_w_rel']:>8.2f} {r['overlap_with_magnitude']:>6.2f} "
              f"{r['probe_loss_change']:>+8.3f} {r['first_order_prediction']:>+10.3f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({
            "model": str(d), "dense": {"accuracy": dense_acc, "loss": dense_loss},
            "after_score_steps": {"accuracy": acc0, "loss": loss0}, "score_steps": args.score_steps,
            "spearman_score_abs_w": rho, "rows": rows,
        }, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
