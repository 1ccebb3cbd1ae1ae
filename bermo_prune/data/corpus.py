"""Pretraining text: the corpus files, packing into full sequences, and BERT's masking.

    corpus   text files: ``.txt`` (one document or paragraph per line; WikiText ``= Heading =`` lines dropped),
             ``.tsv``/``.csv`` (the ``text_column``), ``.jsonl`` (the ``text_column`` field); read with the
             task files' row readers (:mod:`.files`), so every error names the file and line
    packing  every document's tokens, each followed by [SEP], concatenated and cut into full sequences
             ``[CLS] + (seq_length - 1) tokens``: no padding, every position trains
    masking  ``probability`` of the non-special tokens are predicted; of those, ``mask_ratio`` become [MASK],
             ``random_ratio`` a random token, the rest stay (80/10/10 by default)

:class:`CorpusConfig` and :class:`MaskingConfig` are a pretraining recipe's ``corpus`` and ``mlm`` sections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..fields import key
from .files import delimited_rows, jsonl_rows, read_text

HEADING = re.compile(r"^\s*=( =)* .* =( =)*\s*$")  # WikiText section titles


@dataclass
class CorpusConfig:
    """``corpus``: the text to pretrain on, and the share of its packed sequences held out for evaluation."""

    files: list[str] = key(None, required=True)
    text_column: str = key("sentence")  # of .tsv/.csv/.jsonl files
    max_documents: int | None = key(None, min=1)
    valid_fraction: float = key(0.02, min=0.0, max=0.5, min_open=True)


@dataclass
class MaskingConfig:
    """``mlm``: BERT's masking: ``probability`` of the tokens are predicted; of those, ``mask_ratio`` become [MASK]
    and ``random_ratio`` a random token."""

    probability: float = key(0.15, min=0.0, max=1.0, min_open=True)
    mask_ratio: float = key(0.8, min=0.0, max=1.0)
    random_ratio: float = key(0.1, min=0.0, max=1.0)


# ---- reading, packing, masking --------------------------------------------------------------------------------
def read_corpus(
    files: list[str], text_column: str = CorpusConfig.text_column, base: Path | None = None
) -> list[str]:
    """Documents (non-empty lines or rows) of every file, in order; errors name the file."""
    docs: list[str] = []
    for name in files:
        path = Path(name)
        if not path.is_absolute() and base is not None and not path.exists():
            path = base / path
        if not path.is_file():
            raise DataError(f"corpus.files: {name}: no such file")
        text = read_text(path, name)
        if not text.strip():
            raise DataError(f"{name}: empty file: no text to pretrain on")
        suffix = path.suffix.lower()
        before = len(docs)
        if suffix in (".tsv", ".csv", ".jsonl"):  # the task files' row readers: errors name the line
            rows = jsonl_rows(text) if suffix == ".jsonl" else delimited_rows(text, suffix)
            _, header = next(rows)
            if suffix != ".jsonl" and text_column not in header:
                raise DataError(
                    f"{name}: no column {text_column!r} (columns: {', '.join(header)}); set corpus.text_column"
                )
            for line, row in rows:
                if isinstance(row, str):
                    raise DataError(f"{name}: line {line}: {row}")
                value = row.get(text_column, row.get("text")) if suffix == ".jsonl" else row[text_column]
                if value is None:
                    raise DataError(f"{name}: line {line}: no text field {text_column!r}")
                if value.strip():
                    docs.append(value.strip())
        else:
            docs += [line.strip() for line in text.splitlines() if line.strip() and not HEADING.match(line)]
        if len(docs) == before:
            raise DataError(f"{name}: no text to pretrain on")
    return docs


def pack(tokenizer, docs: list[str], seq_length: int) -> torch.Tensor:
    """(sequences, seq_length) token ids: [CLS] + a window of the [SEP]-separated document stream."""
    limit = tokenizer.model_max_length
    tokenizer.model_max_length = 1 << 60  # documents are cut into sequences below, not truncated (no warning)
    try:
        ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    finally:
        tokenizer.model_max_length = limit
    sep = tokenizer.sep_token_id
    stream = np.fromiter((t for doc in ids for t in (*doc, sep)), dtype=np.int64)
    body = seq_length - 1
    n = len(stream) // body
    if n == 0:
        raise DataError(f"corpus: {len(stream)} tokens, fewer than one sequence of {seq_length}")
    seqs = stream[: n * body].reshape(n, body)
    cls = np.full((n, 1), tokenizer.cls_token_id, dtype=np.int64)
    return torch.from_numpy(np.concatenate([cls, seqs], axis=1))


class MLMCollator:
    """BERT masking of a batch of packed sequences (uses the global torch RNG, so a resume replays it)."""

    def __init__(
        self,
        tokenizer,
        probability: float = MaskingConfig.probability,
        mask_ratio: float = MaskingConfig.mask_ratio,
        random_ratio: float = MaskingConfig.random_ratio,
        generator=None,
    ) -> None:
        self.special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.mask_id = tokenizer.mask_token_id
        self.vocab = len(tokenizer)
        self.p, self.mask_ratio, self.random_ratio = probability, mask_ratio, random_ratio
        self.generator = generator

    def __call__(self, rows: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        g = self.generator
        ids = torch.stack(rows).clone()
        labels = ids.clone()
        candidates = ~torch.isin(ids, self.special)
        chosen = (torch.rand(ids.shape, generator=g) < self.p) & candidates
        labels[~chosen] = -100
        draw = torch.rand(ids.shape, generator=g)
        to_mask = chosen & (draw < self.mask_ratio)
        to_random = chosen & (draw >= self.mask_ratio) & (draw < self.mask_ratio + self.random_ratio)
        ids[to_mask] = self.mask_id
        ids[to_random] = torch.randint(self.vocab, (int(to_random.sum()),), generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
