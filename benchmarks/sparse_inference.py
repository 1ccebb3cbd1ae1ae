"""CPU inference with unstructured sparsity: does a 10%-remaining encoder (weight granularity) run faster than the
dense one? Ratios measured side by side in one run.

Variants of the same encoder (all-MiniLM-L6-v2 when ``make encoder`` has installed it, else a same-shaped random
BERT), every encoder linear pruned to ``--remaining`` of its weights by magnitude (the pattern a weight-granularity
run leaves; speed does not depend on which weights survive, only on how many and how scattered):

* ``dense``: the masked weights stored dense (what ``bermo-prune compact`` keeps for weight granularity);
* ``csr``: each pruned linear's weight as a torch sparse CSR tensor, ``y = (W_csr @ x^T)^T + b`` (MKL's sparse
  kernels on x86 CPU builds): :func:`bermo_prune.sparse.sparsify`, what ``eval``/``predict --sparse`` use;
* ``bsr 16x16``: the same as blocked sparse rows, where torch supports them on CPU (scattered weights fill few
  16x16 blocks completely, so most blocks are stored with zeros; the row shows what that costs).

Each setting (batch, length) times the variants in interleaved rounds; a row gives the median forward, the ratio
median(dense) / median(variant) and the spread of the per-round ratios. The outputs are checked against the dense
model's (max abs logit difference).

    .venv/bin/python benchmarks/sparse_inference.py               # remaining 0.1, batch 1 and 32, length 64 and 128
    .venv/bin/python benchmarks/sparse_inference.py --rounds 3 --batches 1 --lengths 64
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch
from distill_step import student_and_teacher
from transformers.utils import logging as hf_logging

from bermo_prune.sparse import SparseLinear, sparsify


class BlockSparseLinear(SparseLinear):
    """:class:`~bermo_prune.sparse.SparseLinear` with its weight in blocked sparse rows (BSR) instead of CSR."""

    def __init__(self, linear: torch.nn.Linear, block: int = 16) -> None:
        super().__init__(linear)
        self.weight = linear.weight.detach().to_sparse_bsr((block, block))


def encoder_linears(model) -> list[tuple[torch.nn.Module, str, torch.nn.Linear]]:
    out = []
    for name, module in model.named_modules():
        if ".encoder.layer." in name:
            for child_name, child in module.named_children():
                if type(child) is torch.nn.Linear:
                    out.append((module, child_name, child))
    return out


def magnitude_prune(model, remaining: float) -> None:
    with torch.no_grad():
        for _, _, lin in encoder_linears(model):
            w = lin.weight
            k = int(round(remaining * w.numel()))
            keep = torch.zeros(w.numel(), dtype=torch.bool)
            keep[w.abs().flatten().topk(k).indices] = True
            w.mul_(keep.view_as(w))


def sparse_copy(model, layout: str):
    out = copy.deepcopy(model)
    if layout == "csr":
        sparsify(out)  # what `bermo-prune eval/predict --sparse` does
        return out
    for parent, name, lin in encoder_linears(out):
        setattr(parent, name, BlockSparseLinear(lin))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--remaining", type=float, default=0.1)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*Sparse (CSR|BSR) tensor support is in beta.*")
    model, _, _, name = student_and_teacher()
    model.eval()
    magnitude_prune(model, args.remaining)
    variants = {"dense": model}
    for layout in ("csr", "bsr 16x16"):
        try:
            variants[layout] = sparse_copy(model, layout.split()[0]).eval()
        except (RuntimeError, NotImplementedError) as exc:  # not supported by this torch build
            print(f"{layout}: not available ({str(exc).splitlines()[0]})")
    print(
        f"torch {torch.__version__}, {args.threads} threads, {name}, {args.remaining:.0%} of encoder weights kept"
    )
    print(f"{'batch':>5} {'length':>6} {'variant':<10} {'ms':>8} {'speedup':>8}  per-round  max |logit diff|")
    for batch in args.batches:
        for length in args.lengths:
            g = torch.Generator().manual_seed(0)
            ids = torch.randint(1000, 20000, (batch, length), generator=g)
            mask = torch.ones_like(ids)
            with torch.inference_mode():
                reference = model(input_ids=ids, attention_mask=mask).logits
                diffs = {
                    k: float((m(input_ids=ids, attention_mask=mask).logits - reference).abs().max())
                    for k, m in variants.items()
                }
                times: dict[str, list[float]] = {k: [] for k in variants}
                for _ in range(args.rounds):
                    for k, m in variants.items():
                        t0 = time.perf_counter()
                        m(input_ids=ids, attention_mask=mask)
                        times[k].append(time.perf_counter() - t0)
            dense = statistics.median(times["dense"])
            for k, t in times.items():
                med = statistics.median(t)
                per_round = [d / v for d, v in zip(times["dense"], t, strict=True)]
                print(
                    f"{batch:>5} {length:>6} {k:<10} {med * 1000:>8.1f} {dense / med:>7.2f}x"
                    f"  {min(per_round):.2f}-{max(per_round):.2f}  {diffs[k]:.1e}"
                )


if __name__ == "__main__":
    main()
