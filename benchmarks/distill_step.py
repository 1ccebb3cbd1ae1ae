"""Step time of a distilled training step, as a ratio to a plain one: with the teacher-logit cache (the goal is
<= 1.05: a cached step runs no teacher forward) and without it (a teacher forward every step).

Measured side by side in one run: the three variants are timed in interleaved rounds on the same batches (plain,
cached, uncached, plain, ...) so machine drift hits all alike; the ratio is median(variant) / median(plain). A
step is what :class:`~bermo_prune.train.Trainer` does: forward, task loss, the distillation term, backward, grad
clipping, fused AdamW. The student and teacher are the packaged all-MiniLM-L6-v2 encoder (``make encoder``) with a
fresh 2-class head, or a same-shaped random BERT when the package is not installed; batches come from SST-2
(``--data``) or random tokens.

    .venv/bin/python benchmarks/distill_step.py                  # batch 32, max length 64, 2 threads
    .venv/bin/python benchmarks/distill_step.py --steps 5 --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
from transformers.utils import logging as hf_logging

from bermo_prune.data import Collator
from bermo_prune.distill import DistillConfig, Distiller
from bermo_prune.models import resolve_model_name
from bermo_prune.optim import make_optimizer


def student_and_teacher():
    try:
        path = resolve_model_name("minilm-l6")
    except Exception:  # the package is not installed
        path = None
    if path is not None and Path(path).is_dir():
        make = lambda: BertForSequenceClassification.from_pretrained(path, num_labels=2)  # noqa: E731
        return make(), make().eval(), AutoTokenizer.from_pretrained(path), "all-MiniLM-L6-v2"
    cfg = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    return (
        BertForSequenceClassification(cfg),
        BertForSequenceClassification(cfg).eval(),
        None,
        "random BERT 6x384",
    )


def batches(tokenizer, data: Path, n: int, batch: int, length: int) -> list[dict]:
    collate = Collator(0)
    if tokenizer is not None and (data / "train.tsv").is_file():
        with open(data / "train.tsv", encoding="utf-8") as fh:
            rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1 : n * batch + 1]
        enc = tokenizer([r[0] for r in rows], truncation=True, max_length=length)
        items = [
            (ids, tt, int(r[1]))
            for ids, tt, r in zip(enc["input_ids"], enc["token_type_ids"], rows, strict=True)
        ]
    else:
        g = torch.Generator().manual_seed(0)
        items = [
            (torch.randint(5, 8000, (length,), generator=g).tolist(), [0] * length, i % 2)
            for i in range(n * batch)
        ]
    out = []
    for i in range(n):
        b = collate(items[i * batch : (i + 1) * batch])
        b["index"] = torch.arange(i * batch, (i + 1) * batch)
        out.append(b)
    return out


def step_timing_arguments(doc: str, steps: int) -> argparse.Namespace:
    """The command line of a MiniLM step-timing benchmark (this one and ``train_step.py``)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=steps, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/sst2"))
    return ap.parse_args()


def main() -> None:
    args = step_timing_arguments(__doc__, steps=8)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hf_logging.set_verbosity_error()  # the fresh heads' load report
    student, teacher, tokenizer, name = student_and_teacher()
    data = batches(tokenizer, args.data, args.steps, args.batch, args.length)
    n = len(data) * args.batch
    cached = Distiller(teacher, DistillConfig(teacher="bench"), n, 2)
    for b in data:  # fill the cache: the state of every step from the second epoch on
        cached.teacher_logits({k: v for k, v in b.items() if k != "index"}, b["index"])
    variants = {
        "plain": None,
        "cached": cached,
        "uncached": Distiller(teacher, DistillConfig("bench", cache=False), n, 2),
    }
    opt = make_optimizer([{"params": [p for p in student.parameters()]}], 1e-5)
    student.train()

    def step(distiller, b) -> None:
        inputs = {k: v for k, v in b.items() if k != "index"}
        out = student(**inputs)
        loss = out.loss if distiller is None else distiller.loss(out.logits, out.loss, inputs, b["index"])[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    times: dict[str, list[float]] = {k: [] for k in variants}
    for b in data[:2]:
        step(None, b)  # warm-up
    for _ in range(args.rounds):
        for key, distiller in variants.items():
            for b in data:
                t0 = time.perf_counter()
                step(distiller, b)
                times[key].append(time.perf_counter() - t0)
    base = statistics.median(times["plain"])
    print(
        f"torch {torch.__version__}, {args.threads} threads, {name}, batch {args.batch}, max length {args.length}"
    )
    for key in variants:
        med = statistics.median(times[key])
        print(f"{key:>9}: {med * 1000:7.1f} ms/step   ratio to plain {med / base:.3f}")


if __name__ == "__main__":
    main()
