"""``bermo-prune pretrain``: masked-language-model pretraining of a small BERT encoder from local text.

Pruning during fine-tuning is studied on *pretrained* encoders; with the hub out of reach this makes one offline.

    corpus   text files: ``.txt`` (one document or paragraph per line; WikiText ``= Heading =`` lines dropped),
             ``.tsv``/``.csv`` (the ``text_column``), ``.jsonl`` (the ``text_column`` field)
    tokenizer  a WordPiece vocabulary trained on the same text (deterministic, :func:`~.data.wordpiece.train_wordpiece`)
    packing  every document's tokens, each followed by [SEP], concatenated and cut into full sequences
             ``[CLS] + (seq_length - 1) tokens``: no padding, every position trains
    masking  BERT's: ``mlm.probability`` of the non-special tokens are predicted; of those, ``mask_ratio`` become
             [MASK], ``random_ratio`` a random token, the rest stay (80/10/10 by default)
    loop     the same :class:`~.train.Trainer` as ``run``: Accelerate, AdamW, warmup and decay, metrics.jsonl,
             atomic checkpoints, exact ``--resume``, divergence records (NaN loss, loss spikes)

The output directory's ``model/`` is a standard Hugging Face BERT checkpoint (config, safetensors weights,
tokenizer); ``model.name=RUN/model`` in any ``run`` recipe fine-tunes a ``bert`` or ``bermo`` from it.

The corpus reader, packing and masking are :mod:`.data.corpus`; this module holds the pretraining recipe, the MLM
job and its evaluation, and the command; the loop itself is :class:`~.train.Trainer`, shared with ``run``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM

from .data import train_wordpiece
from .data.corpus import CorpusConfig, MaskingConfig, MLMCollator, pack, read_corpus
from .errors import DataError, RecipeError
from .fields import F, check_sections, key, read_yaml, section
from .jobs import Job
from .models import load_tokenizer, shape_problems
from .rundir import CheckpointConfig, RunDirectory, finish_run_dir
from .train import Trainer
from .train_config import TrainConfig, refuse_unusable_precision, resolve_precision, section_hooks


# ---- the recipe: one dataclass per section (fields.section derives the checks) -----------------------------------
@dataclass
class PretrainTop:
    """The top-level keys of a pretraining recipe."""

    seed: int = key(0, min=0)
    output_dir: str | None = key(None)


@dataclass
class EncoderShape:
    """``model``: the BERT encoder to pretrain (the vocabulary is trained on the corpus). Its keys are a subset of
    :class:`~bermo_prune.models.ModelSpec`'s but with pretraining's defaults and tighter bounds (hidden and FFN
    sizes >= 8), so it is its own section rather than ``section(ModelSpec, ...)``."""

    num_layers: int = key(4, min=1)
    hidden_size: int = key(256, min=8)
    num_heads: int = key(4, min=1)
    intermediate_size: int = key(1024, min=8)
    vocab_size: int = key(8000, min=50)
    dropout: float = key(0.1, min=0.0, max=1.0)


PRETRAIN_SECTIONS: dict[str, dict[str, F]] = {
    "": {
        **section(PretrainTop),
        **{name: F("section") for name in ("corpus", "model", "mlm", "train", "checkpoint")},
    },
    "corpus": section(CorpusConfig),
    "model": section(EncoderShape),
    "mlm": section(MaskingConfig),
    # the fine-tuning loop's settings (TrainConfig's keys and bounds), with pretraining's defaults
    "train": section(
        TrainConfig,
        defaults={
            "batch_size": 64,
            "eval_batch_size": 64,
            "lr": 5e-4,
            "weight_decay": 0.01,
            "warmup_ratio": 0.05,
        },
        exclude=("mix_lr", "bucket_factor", "freeze_embeddings", "early_eval"),
        rename={"max_length": "seq_length"},
    ),
    "checkpoint": section(CheckpointConfig),
}


@dataclass
class PretrainRecipe:
    source: str
    values: dict

    def __getitem__(self, key):
        return self.values[key]

    def to_dict(self) -> dict:
        return json.loads(json.dumps(self.values))


def parse_pretrain_recipe(
    raw, source: str = "<recipe>", overrides: list[str] | None = None
) -> PretrainRecipe:
    problems: list[str] = []
    values, given = check_sections(raw, source, overrides, PRETRAIN_SECTIONS, problems)
    if not problems:
        m, mlm = values["model"], values["mlm"]
        problems += shape_problems(m["hidden_size"], m["num_heads"])
        resolve_precision(values["train"], given, overrides, problems)
        if mlm["mask_ratio"] + mlm["random_ratio"] > 1:
            problems.append(
                f"mlm.mask_ratio + mlm.random_ratio: {mlm['mask_ratio']:g} + {mlm['random_ratio']:g} exceeds 1"
            )
        if not values["corpus"]["files"]:
            problems.append("corpus.files: give at least one text file")
    if problems:
        raise RecipeError(source, problems)
    return PretrainRecipe(source, values)


def load_pretrain_recipe(path: str | Path, overrides: list[str] | None = None) -> PretrainRecipe:
    return parse_pretrain_recipe(read_yaml(path), str(path), overrides)


def is_pretrain_recipe(raw) -> bool:
    return isinstance(raw, dict) and "corpus" in raw


class _Rows(torch.utils.data.Dataset):
    def __init__(self, data: torch.Tensor) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


@torch.no_grad()
def evaluate_mlm(model, loader, accelerator=None) -> dict[str, float]:
    """Masked-token loss, accuracy and perplexity on fixed (pre-masked) evaluation batches. Under data
    parallelism each process scores its share; per-sequence sums are gathered (``gather_for_metrics`` drops the
    sequences repeated to even out the last batch), so every validation sequence counts exactly once."""
    was = model.training
    model.eval()
    total_loss, correct, count, sequences = 0.0, 0, 0, 0
    for batch in loader:
        batch = {k: v.to(accelerator.device if accelerator else "cpu") for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"]
        sel = labels != -100  # (batch, seq)
        token_loss = torch.nn.functional.cross_entropy(
            logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none"
        )  # (batch, seq), 0 where not masked
        stats = torch.stack(
            [
                token_loss.sum(1),
                ((logits.argmax(-1) == labels) & sel).sum(1).float(),
                sel.sum(1).float(),
            ],
            dim=1,
        )  # (batch, 3): loss sum, correct, masked tokens per sequence
        if accelerator is not None:
            stats = accelerator.gather_for_metrics(stats)
        total_loss += float(stats[:, 0].sum())
        correct += int(stats[:, 1].sum())
        count += int(stats[:, 2].sum())
        sequences += len(stats)
    model.train(was)
    loss = total_loss / max(count, 1)
    return {
        "loss": loss,
        "masked_accuracy": correct / max(count, 1),
        "perplexity": math.exp(min(loss, 50.0)),
        "examples": sequences,
    }


def mlm_job(tokenizer, sequences: torch.Tensor, recipe: PretrainRecipe, seed: int) -> Job:
    """Split the packed sequences (seeded), mask the evaluation split once, and build the MLM job."""
    n = len(sequences)
    n_valid = max(1, int(round(recipe["corpus"]["valid_fraction"] * n)))
    if n - n_valid < 1:
        raise DataError(f"corpus: only {n} sequences; need more text for a training and a validation split")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train, valid = sequences[order[n_valid:]], sequences[order[:n_valid]]
    mlm = recipe["mlm"]
    collate = MLMCollator(tokenizer, mlm["probability"], mlm["mask_ratio"], mlm["random_ratio"])
    fixed = MLMCollator(
        tokenizer,
        mlm["probability"],
        mlm["mask_ratio"],
        mlm["random_ratio"],
        generator=torch.Generator().manual_seed(seed + 1),
    )
    masked = fixed(list(valid))
    dev_rows = [{k: v[i] for k, v in masked.items()} for i in range(n_valid)]
    seq = sequences.shape[1]
    return Job(
        name="mlm",
        train_set=_Rows(train),
        train_lengths=[seq] * len(train),
        collate=collate,
        dev_set=dev_rows,
        dev_lengths=[seq] * n_valid,
        dev_collate=lambda rows: {k: torch.stack([r[k] for r in rows]) for k in rows[0]},
        evaluate=evaluate_mlm,
        main_metric="masked_accuracy",
        majority_rate=None,
        learned_metric=None,
        progress_label="pretrain",
    )


# ---- the command -------------------------------------------------------------------------------------------------
def run_pretrain(
    recipe: PretrainRecipe,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Pretrain as the recipe says; returns the summary (also written to ``summary.json``)."""

    out = Path(output_dir or recipe["output_dir"] or Path("runs") / Path(recipe.source).stem)
    parse_saved = lambda raw, src: parse_pretrain_recipe(raw, src).to_dict()  # noqa: E731
    rundir = RunDirectory(out, resume, overwrite, recipe.to_dict(), parse_saved, recipe.source)
    if rundir.state == "finished":
        return {**rundir.summary(), "skipped": True}
    state = rundir.state

    c, m, t = recipe["corpus"], recipe["model"], recipe["train"]
    refuse_unusable_precision(t["mixed_precision"], recipe.source)  # fp16 where it would train in fp32
    docs = read_corpus(c["files"], c["text_column"])
    if c["max_documents"]:
        docs = docs[: c["max_documents"]]
    if state == "resume":
        tokenizer = load_tokenizer(str(out / "tokenizer"))
    else:
        tokenizer = train_wordpiece(docs, vocab_size=m["vocab_size"])
    sequences = pack(tokenizer, docs, t["seq_length"])
    seed = recipe["seed"]
    job = mlm_job(tokenizer, sequences, recipe, seed)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=m["hidden_size"],
        num_hidden_layers=m["num_layers"],
        num_attention_heads=m["num_heads"],
        intermediate_size=m["intermediate_size"],
        max_position_embeddings=max(512, t["seq_length"]),
        hidden_dropout_prob=m["dropout"],
        attention_probs_dropout_prob=m["dropout"],
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForMaskedLM(config)
    cfg = TrainConfig.from_section(
        t,
        rename={"seq_length": "max_length"},
        bucket_factor=1,
        eval_at_start=True,
        seed=seed,
        progress=progress,
    )
    with rundir.started(tokenizer) as started:
        if started == "finished":  # another process finished it while this one was loading
            return {**rundir.summary(), "skipped": True}
        trainer = Trainer(
            model, job, cfg, section_hooks(cfg, job, out), out, checkpoint_every=recipe["checkpoint"]["every"]
        )
        summary = trainer.run(resume=state == "resume")
        return _finish(recipe, out, trainer, tokenizer, docs, sequences, job, cfg, summary)


def _finish(recipe, out: Path, trainer, tokenizer, docs, sequences, job, cfg, summary: dict) -> dict:
    """The summary of a pretraining run and the final model (see :func:`bermo_prune.rundir.finish_run_dir`)."""
    t = recipe["train"]
    model = trainer.accelerator.unwrap_model(trainer.model)
    tokens = summary["steps"] * cfg.batch_size * t["seq_length"] * trainer.accelerator.num_processes
    summary = {
        "run_dir": str(out),
        "recipe": recipe.source,
        "model_dir": str(out / "model"),
        "corpus": {
            "documents": len(docs),
            "sequences": len(sequences),
            "tokens": int(sequences.numel()),
            "train_sequences": len(job.train_set),
            "valid_sequences": len(job.dev_set),
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_second": tokens / summary["wall_time_s"] if summary["wall_time_s"] else None,
        **summary,
    }
    finish_run_dir(out, model, tokenizer, summary, trainer.accelerator.is_main_process)
    return summary


def format_pretrain(summary: dict) -> str:
    f = summary["final"]
    rows = [
        (
            "model",
            summary["model_dir"] + ("  (already finished; not run again)" if summary.get("skipped") else ""),
        ),
        (
            "corpus",
            f"{summary['corpus']['documents']:,} documents, {summary['corpus']['tokens']:,} tokens "
            f"in {summary['corpus']['sequences']:,} sequences",
        ),
        ("parameters", f"{summary['parameters']:,}"),
        ("MLM loss (valid)", f"{f['loss']:.3f} (perplexity {f['perplexity']:.1f})"),
        ("masked-token accuracy", f"{f['masked_accuracy']:.3f}"),
        ("steps / wall time", f"{summary['steps']} / {summary['wall_time_s']:.0f} s"),
        ("tokens per second", f"{summary['tokens_per_second']:,.0f}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
