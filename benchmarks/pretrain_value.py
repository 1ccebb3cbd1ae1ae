"""Does the offline pretraining help? SST-2 dev accuracy of BERT and BERMo fine-tuned (dense, no pruning) from a
``bermo-prune pretrain`` checkpoint versus from scratch, same shape, same data, same number of steps.

    .venv/bin/bermo-prune pretrain recipes/pretrain_tiny.yaml --output-dir runs/pretrain_tiny
    .venv/bin/python benchmarks/pretrain_value.py --pretrained runs/pretrain_tiny/model --sst2 ../shared/data/sst2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bermo_prune.recipe import load_recipe
from bermo_prune.runner import run_recipe

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pretrained", required=True, help="the model/ directory of a pretrain run")
    ap.add_argument("--sst2", required=True, help="directory with SST-2 train.tsv and dev.tsv")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--out", default="runs/pretrain_value")
    args = ap.parse_args()
    config = json.loads((Path(args.pretrained) / "config.json").read_text())
    shape = [
        f"model.num_layers={config['num_hidden_layers']}",
        f"model.hidden_size={config['hidden_size']}",
        f"model.num_heads={config['num_attention_heads']}",
        f"model.intermediate_size={config['intermediate_size']}",
        f"model.vocab_size={config['vocab_size']}",
    ]
    common = [
        f"data.path={args.sst2}",
        "pruning.method=none",
        f"train.max_steps={args.steps}",
        f"train.lr={args.lr}",
        "train.max_length=64",
        "train.eval_every=250",
        "train.warmup_ratio=0.1",
        "checkpoint.every=0",
    ]
    rows = []
    for start in ("pretrained", "scratch"):
        for arch in ("bert", "bermo"):
            name = f"model.name={args.pretrained}" if start == "pretrained" else "model.name=null"
            overrides = [*common, *shape, f"model.arch={arch}", name]
            recipe = load_recipe(ROOT / "recipes" / "sst2_movement.yaml", overrides)
            result = run_recipe(recipe, Path(args.out) / f"{arch}_{start}", overwrite=True, progress=False)
            s = result.summary
            curve = " ".join(f"{h['eval']['accuracy']:.3f}" for h in s["history"])
            rows.append((arch, start, s["final"]["accuracy"], s["best"]["accuracy"], curve, s["wall_time_s"]))
            print(
                f"{arch:<6} {start:<10} final {rows[-1][2]:.4f} best {rows[-1][3]:.4f}  [{curve}]", flush=True
            )
    print(f"\nSST-2 dev accuracy after {args.steps} steps (batch 32, lr {args.lr:g}, eval every 250 steps)")
    print("| model | start | final | best | curve | wall time |")
    print("|---|---|---|---|---|---|")
    for arch, start, final, best, curve, wall in rows:
        print(f"| {arch} | {start} | {final:.4f} | {best:.4f} | {curve} | {wall:.0f} s |")


if __name__ == "__main__":
    main()
