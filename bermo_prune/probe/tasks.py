"""Probing tasks: SentEval's file format, and four tasks generated from local text whose labels come from the text.

SentEval's probing files (Conneau et al. 2018, ``data/probing/*.txt``) hold one example per line,
``split<TAB>label<TAB>sentence``, with ``split`` one of ``tr`` (train), ``va`` (validation) and ``te`` (test); the
ten original tasks run unchanged from those files. :func:`read_senteval` checks every line and names the file and
line of the first problem.

Generated tasks (:func:`generate`), deterministic for a seed, from whitespace-tokenised sentences:

- ``sentence_length``: SentEval's six bins of the number of words: 5-8, 9-12, 13-16, 17-20, 21-25, 26-28
  (labels ``0``-``5``); other lengths are not used.
- ``word_content``: ``words`` target words, the ones ranked ``word_rank`` on by frequency in the corpus (SentEval:
  1,000 words ranked 2,000-3,000 in its corpus); a sentence that contains exactly one distinct target word is an
  example, labelled with that word.
- ``bigram_shift``: half the sentences get two adjacent words swapped at a random position whose two words differ
  (label ``I``, inverted), the others are unchanged (``O``).
- ``coordination_inversion``: sentences made of two clauses joined by `` , and ``, `` , but ``, `` , or ``,
  `` , yet `` or `` , so `` (exactly one such joint, at least 3 words on each side); half get the two clauses swapped
  (``I``), the others stay (``O``). A capitalised first word moves its capital to the new first word, so case is
  no cue. (SentEval selects clauses with a parser; this rule also takes some list coordinations, a noisier task.)

Every task is balanced over its labels (as SentEval's are: each label capped at the rarest label's count), and
each label's examples are cut 80/10/10 into tr/va/te after a seeded shuffle, so every split is balanced too.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..data import read_text
from ..errors import DataError

SPLITS = ("tr", "va", "te")
LENGTH_BINS = ((5, 8), (9, 12), (13, 16), (17, 20), (21, 25), (26, 28))
CONJUNCTIONS = ("and", "but", "or", "yet", "so")
GENERATED = ("sentence_length", "word_content", "bigram_shift", "coordination_inversion")


@dataclass
class ProbeTask:
    """One probing task: ``examples[split]`` is a list of ``(label, sentence)``."""

    name: str
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return sorted({label for label, _ in self.examples["tr"]})

    def majority_rate(self, split: str = "te") -> float:
        """The test accuracy of always predicting the most frequent training label."""
        top = Counter(label for label, _ in self.examples["tr"]).most_common(1)[0][0]
        rows = self.examples[split]
        return sum(label == top for label, _ in rows) / len(rows)


def read_senteval(path: str | Path, name: str | None = None) -> ProbeTask:
    """A SentEval probing file; DataError naming the file and line on the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = read_text(path)
    task = ProbeTask(name or path.stem, {s: [] for s in SPLITS})
    first_seen: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(
                f"{path}: line {number}: expected split<TAB>label<TAB>sentence, found {len(parts)} field(s)"
            )
        split, label, sentence = (p.strip() for p in parts)
        if split not in SPLITS:
            raise DataError(f"{path}: line {number}: unknown split {split!r}; use tr, va or te")
        if not label:
            raise DataError(f"{path}: line {number}: empty label")
        if not sentence:
            raise DataError(f"{path}: line {number}: empty sentence")
        task.examples[split].append((label, sentence))
        first_seen.setdefault(f"{split}\t{label}", number)
    if not any(task.examples.values()):
        raise DataError(f"{path}: empty file: no examples")
    for split in SPLITS:
        if not task.examples[split]:
            raise DataError(f"{path}: no {split!r} examples; a probing file needs tr, va and te")
    known = set(task.labels)
    for split in ("va", "te"):
        for label in sorted({lab for lab, _ in task.examples[split]} - known):
            line = first_seen[f"{split}\t{label}"]
            raise DataError(f"{path}: line {line}: label {label!r} does not occur in the training split (tr)")
    if len(known) < 2:
        raise DataError(
            f"{path}: the training split has a single label ({task.labels[0]!r}); nothing to probe"
        )
    return task


def write_senteval(task: ProbeTask, path: str | Path) -> Path:
    """Write ``task`` in SentEval's format (atomically)."""
    from ..rundir import (
        atomic_write,  # here for start-up time: rundir imports torch, generating data needs none
    )

    lines = [
        f"{split}\t{label}\t{sentence}"
        for split in SPLITS
        for label, sentence in task.examples.get(split, [])
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "\n".join(lines) + "\n")
    return path


# ---- sentences from local text ----------------------------------------------------------------------------------
_HEADING = re.compile(r"^\s*=.*=\s*$")


def sentences_from_file(path: str | Path) -> list[str]:
    """Whitespace-tokenised sentences of a text file: WikiText-style ``.txt`` (headings dropped, paragraphs cut
    after each `` . ``), or the ``sentence`` column of a ``.tsv`` with a header (SST-2)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = read_text(path)
    out: list[str] = []
    if path.suffix.lower() == ".tsv":
        lines = text.split("\n")
        header = lines[0].rstrip("\r").split("\t")
        if "sentence" not in header:
            raise DataError(f"{path}: line 1: no 'sentence' column (found: {', '.join(header)})")
        col = header.index("sentence")
        for line in lines[1:]:
            fields = line.rstrip("\r").split("\t")
            if len(fields) > col and fields[col].strip():
                out.append(" ".join(fields[col].split()))
        return out
    for line in text.split("\n"):
        if not line.strip() or _HEADING.match(line):
            continue
        words: list[str] = []
        for word in line.split():
            words.append(word)
            if word in (".", "!", "?"):
                out.append(" ".join(words))
                words = []
        if len(words) >= 3:
            out.append(" ".join(words))
    return out


# ---- generators ------------------------------------------------------------------------------------------------------
def _length_label(words: list[str]) -> str | None:
    n = len(words)
    return next((str(i) for i, (lo, hi) in enumerate(LENGTH_BINS) if lo <= n <= hi), None)


def sentence_length(sentences: list[str], rng: random.Random, **_) -> list[tuple[str, str]]:
    out = []
    for s in sentences:
        label = _length_label(s.split())
        if label is not None:
            out.append((label, s))
    return out


def word_content(
    sentences: list[str], rng: random.Random, words: int = 100, word_rank: int = 200, **_
) -> list[tuple[str, str]]:
    counts = Counter(w for s in sentences for w in set(s.split()) if w.isalpha() and w.islower())
    ranked = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    targets = set(ranked[word_rank : word_rank + words])
    out = []
    for s in sentences:
        found = targets.intersection(s.split())
        if len(found) == 1:
            out.append((found.pop(), s))
    return out


def bigram_shift(sentences: list[str], rng: random.Random, **_) -> list[tuple[str, str]]:
    out = []
    for s in sentences:
        words = s.split()
        if len(words) < 5:
            continue
        if rng.random() < 0.5:
            out.append(("O", s))
            continue
        positions = [i for i in range(len(words) - 1) if words[i] != words[i + 1]]
        if not positions:
            continue
        i = rng.choice(positions)
        words[i], words[i + 1] = words[i + 1], words[i]
        out.append(("I", " ".join(words)))
    return out


def split_coordination(sentence: str) -> tuple[str, str, str] | None:
    """``(first clause, conjunction, second clause)`` of a sentence with exactly one `` , CONJ `` joint and at
    least 3 words on each side (a final `` .``, ``!`` or ``?`` stays with the sentence, not the clause)."""
    words = sentence.split()
    end = words[-1] if words and words[-1] in (".", "!", "?") else None
    body = words[:-1] if end else words
    joints = [i for i in range(1, len(body) - 1) if body[i] == "," and body[i + 1] in CONJUNCTIONS]
    if len(joints) != 1:
        return None
    i = joints[0]
    first, second = body[:i], body[i + 2 :]
    if len(first) < 3 or len(second) < 3:
        return None
    return " ".join(first), body[i + 1], " ".join(second) + (f" {end}" if end else "")


def invert_coordination(sentence: str) -> str | None:
    """The sentence with its two coordinate clauses swapped (None if it has no such structure)."""
    parts = split_coordination(sentence)
    if parts is None:
        return None
    first, conj, second = parts
    words = second.split()
    end = words[-1] if words[-1] in (".", "!", "?") else None
    second_body = " ".join(words[:-1]) if end else second
    if (
        first[:1].isupper() and second_body[:1].islower()
    ):  # no case cue: the sentence still starts capitalised
        first, second_body = first[:1].lower() + first[1:], second_body[:1].upper() + second_body[1:]
    return f"{second_body} , {conj} {first}" + (f" {end}" if end else "")


def coordination_inversion(sentences: list[str], rng: random.Random, **_) -> list[tuple[str, str]]:
    out = []
    for s in sentences:
        inverted = invert_coordination(s)
        if inverted is None:
            continue
        out.append(("I", inverted) if rng.random() < 0.5 else ("O", s))
    return out


GENERATORS = {
    "sentence_length": sentence_length,
    "word_content": word_content,
    "bigram_shift": bigram_shift,
    "coordination_inversion": coordination_inversion,
}


def generate(
    name: str, sentences: list[str], seed: int = 0, max_per_label: int | None = None, **options
) -> ProbeTask:
    """A generated task (see the module docstring): balanced over labels, each label split 80/10/10."""
    if name not in GENERATORS:
        raise ValueError(f"unknown probing task {name!r}; generated tasks: {', '.join(GENERATED)}")
    rng = random.Random(f"{name}:{seed}")
    unique = list(dict.fromkeys(sentences))  # no sentence twice (a test sentence seen in training)
    rows = GENERATORS[name](unique, rng, **options)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for label, sentence in rows:
        by_label.setdefault(label, []).append((label, sentence))
    if len(by_label) < 2:
        raise DataError(f"{name}: the text gives fewer than 2 labels ({len(rows)} examples); give more text")
    cap = min(len(v) for v in by_label.values())
    if max_per_label:
        cap = min(cap, max_per_label)
    splits: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    a, b = int(0.8 * cap), int(0.9 * cap)
    for label in sorted(by_label):  # each label cut 80/10/10 alike: every split is balanced too
        chosen = rng.sample(by_label[label], cap)
        splits["tr"] += chosen[:a]
        splits["va"] += chosen[a:b]
        splits["te"] += chosen[b:]
    for rows_of_split in splits.values():
        rng.shuffle(rows_of_split)
    return ProbeTask(name, splits)
