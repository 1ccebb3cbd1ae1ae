"""Effect of dynamic padding and length bucketing on an SST-2 training epoch.

Three batchings of the full SST-2 train set (67,349 sentences), for a 4-layer hidden-256 BERT, batch 32, length
cap 64, 2 threads: padded to 64 (fixed), padded per batch (dynamic), and per batch with length bucketing. Padding
efficiency is counted over the whole epoch; step time is measured on the same sampled batches, interleaved, and
the epoch time is extrapolated from it.

    .venv/bin/python benchmarks/bucketing.py --data ../shared/data/sst2
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from transformers import BertConfig, BertForSequenceClassification

from bermo_prune.data import BucketBatchSampler, Collator, EncodedSplit, load_task_data, train_wordpiece


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/sst2")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per batching")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_task_data("sst2", "local", path=args.data)
    tok = train_wordpiece([t[0] for t in data.train.texts], vocab_size=8000)
    enc = EncodedSplit(data.train, tok, max_length=64)
    collate = Collator(tok.pad_token_id)
    variants = {
        "fixed 64": (BucketBatchSampler(enc.lengths, 32, bucket_factor=0, seed=0), 64),
        "dynamic": (BucketBatchSampler(enc.lengths, 32, bucket_factor=0, seed=0), None),
        "dynamic+bucketing": (BucketBatchSampler(enc.lengths, 32, bucket_factor=50, seed=0), None),
    }
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        num_labels=2,
    )
    model = BertForSequenceClassification(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rng = random.Random(0)
    picks = {}
    widths = {}
    for name, (sampler, fixed) in variants.items():
        batches = sampler.batches()
        lens = [[enc.lengths[i] for i in b] for b in batches]
        real = sum(map(sum, lens))
        padded = sum((fixed or max(x)) * len(x) for x in lens)
        widths[name] = (len(batches), real / padded)
        picks[name] = [batches[rng.randrange(len(batches))] for _ in range(args.steps)]
    times = {name: [] for name in variants}
    for i in range(args.steps):
        for name, (_, fixed) in variants.items():
            batch = collate([enc[j] for j in picks[name][i]])
            if fixed:
                pad = fixed - batch["input_ids"].shape[1]
                batch["input_ids"] = torch.nn.functional.pad(
                    batch["input_ids"], (0, pad), value=tok.pad_token_id
                )
                batch["attention_mask"] = torch.nn.functional.pad(batch["attention_mask"], (0, pad))
                batch["token_type_ids"] = torch.nn.functional.pad(batch["token_type_ids"], (0, pad))
            t0 = time.perf_counter()
            model(**batch).loss.backward()
            opt.step()
            opt.zero_grad()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["fixed 64"])
    print(f"SST-2 train: {len(enc)} sentences, batch 32, 4-layer hidden-256 BERT, {args.threads} threads")
    print(f"{'batching':<20} {'pad efficiency':>14} {'step ms':>8} {'epoch min':>9} {'speedup':>8}")
    for name in variants:
        n_batches, eff = widths[name]
        step = statistics.median(times[name])
        print(
            f"{name:<20} {eff:>14.2f} {step * 1000:>8.0f} {step * n_batches / 60:>9.1f} {base / step:>7.2f}x"
        )


if __name__ == "__main__":
    main()
