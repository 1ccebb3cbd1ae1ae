"""A deterministic WordPiece vocabulary trained on local text: the tokenizer of a model built from scratch
(:mod:`bermo_prune.models`) or pretrained here (:mod:`bermo_prune.pretrain`)."""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable

from tokenizers import normalizers, pre_tokenizers
from transformers import BertTokenizer

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(texts: Iterable[str], vocab_size: int = 2000, min_frequency: int = 2) -> BertTokenizer:
    """A lower-casing BERT WordPiece tokenizer trained on ``texts``, ready to save; deterministic.

    The vocabulary is learned as HF's WordPiece trainer does (BPE merges of the most frequent adjacent pieces,
    continuation pieces marked ``##``), but with ties broken by the pieces themselves. HF's Rust trainer breaks
    ties in a per-process random order, so the same text gave a different vocabulary in every process, which
    made seeded runs irreproducible and resumed runs differ from uninterrupted ones.
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    words = sorted(counts)
    freqs = [counts[w] for w in words]
    pieces = [[w[0]] + ["##" + c for c in w[1:]] for w in words]
    vocab: dict[str, int] = {}
    for token in SPECIAL_TOKENS:
        vocab.setdefault(token, len(vocab))
    for token in sorted({p for ps in pieces for p in ps}):
        vocab.setdefault(token, len(vocab))

    pair_counts: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, ps in enumerate(pieces):
        for pair in zip(ps, ps[1:], strict=False):
            pair_counts[pair] += freqs[i]
            where[pair].add(i)
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg:
            continue  # stale entry
        if -neg < min_frequency:
            break
        merged = pair[0] + pair[1][2:]
        vocab.setdefault(merged, len(vocab))
        changed: set[tuple[str, str]] = set()
        for i in sorted(where.pop(pair, ())):
            ps, f = pieces[i], freqs[i]
            for old in zip(ps, ps[1:], strict=False):
                pair_counts[old] -= f
                changed.add(old)
            out, j = [], 0
            while j < len(ps):
                if j + 1 < len(ps) and (ps[j], ps[j + 1]) == pair:
                    out.append(merged)
                    j += 2
                else:
                    out.append(ps[j])
                    j += 1
            pieces[i] = out
            for new in zip(out, out[1:], strict=False):
                pair_counts[new] += f
                where[new].add(i)
                changed.add(new)
        pair_counts.pop(pair, None)
        for c in changed:
            if pair_counts.get(c, 0) > 0:
                heapq.heappush(heap, (-pair_counts[c], c))
            else:
                pair_counts.pop(c, None)
    # BertTokenizer(vocab=...) builds the full BERT pipeline (normaliser, [CLS] ... [SEP] template) around the
    # vocabulary; BertTokenizerFast(vocab_file=...) would silently give an all-[UNK] tokenizer in v5.
    return BertTokenizer(vocab=vocab, model_max_length=512)
