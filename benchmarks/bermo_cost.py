"""What BERMo costs over the plain model of each family: training step, inference, and construction.

BERMo calls the family's public ``forward`` with ``output_hidden_states=True`` (transformers records the states
with hooks) and mixes L + 1 states; this measures what that adds. Measured side by side in one run, in interleaved
rounds (plain, BERMo, plain, BERMo, ...) so machine drift hits both alike; ratios are median(BERMo) /
median(plain). A training step is forward + backward + fused AdamW. Construction is ``Classifier(config)`` at the
family's base size (BERMo runs the family's own ``__init__`` and swaps in its base model, so it builds one base
model twice; ``from_pretrained`` builds on the meta device, where that costs nothing).

    .venv/bin/python benchmarks/bermo_cost.py                        # 4 layers, hidden 256, batch 32, length 64
    .venv/bin/python benchmarks/bermo_cost.py --families bert --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bermo_prune.bermo import bermo_classifier, bermo_config_from
from bermo_prune.families import get_family, scratch_config
from bermo_prune.optim import make_optimizer


def config(family: str, hidden: int, layers: int):
    return scratch_config(
        get_family(family),
        vocab_size=8000,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
        max_position_embeddings=512,
        dropout=0.1,
        pad_token_id=0,
        num_labels=2,
    )


def build(family: str, bermo: bool, cfg):
    torch.manual_seed(0)
    cls = bermo_classifier(family) if bermo else get_family(family).classifier_class
    return cls(bermo_config_from(cfg) if bermo else cfg)


def timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["bert", "roberta", "electra", "distilbert"])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 8000, (args.batch, args.length), generator=g)
    mask = torch.ones_like(ids)
    mask[: args.batch // 2, args.length // 2 :] = 0
    labels = torch.randint(0, 2, (args.batch,), generator=g)

    print(
        f"{args.layers} layers, hidden {args.hidden}, batch {args.batch}, length {args.length}, "
        f"{args.threads} threads; {args.rounds} interleaved rounds of {args.steps} steps"
    )
    print(f"{'family':<11} {'train step plain':>16} {'BERMo':>8} {'ratio':>6}   {'inference':>9} {'BERMo':>8} "
          f"{'ratio':>6}   {'build (base size)':>17} {'BERMo':>7} {'ratio':>6}")  # fmt: skip
    for family in args.families:
        cfg = config(family, args.hidden, args.layers)
        runs = {}
        for bermo in (False, True):
            model = build(family, bermo, cfg).train()
            opt = make_optimizer([{"params": list(model.parameters())}], 1e-4)

            def step(model=model, opt=opt):
                model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
                opt.step()
                opt.zero_grad()

            def infer(model=model):
                with torch.inference_mode():
                    model.eval()(input_ids=ids, attention_mask=mask)
                model.train()

            step()  # warm-up
            runs[bermo] = (step, infer)
        base = config(family, 768, 12)
        times = {(k, b): [] for k in ("train", "infer", "build") for b in (False, True)}
        for _ in range(args.rounds):
            for bermo in (False, True):
                step, infer = runs[bermo]
                times[("train", bermo)].append(timed(step, args.steps))
                times[("infer", bermo)].append(timed(infer, args.steps))
                times[("build", bermo)].append(timed(lambda b=bermo, f=family, c=base: build(f, b, c), 1))
        med = {k: statistics.median(v) for k, v in times.items()}
        cells = []
        for kind in ("train", "infer", "build"):
            plain, mixed = med[(kind, False)], med[(kind, True)]
            unit, scale = ("s", 1) if kind == "build" else ("ms", 1000)
            cells.append(
                f"{plain * scale:>13.1f} {unit:<2} {mixed * scale:>6.1f}{unit[0]} {mixed / plain:>6.2f}"
            )
        print(f"{family:<11} " + "   ".join(cells))


if __name__ == "__main__":
    main()
