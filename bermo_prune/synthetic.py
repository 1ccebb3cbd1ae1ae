"""The offline quickstart task: deterministic, seedable synthetic sentiment sentences.

Each sentence holds one or two opinion clauses among distractor words. A clause is
``[negator] [intensifier] adjective`` about a subject; a negator flips the adjective's polarity. With two clauses
joined by a contrast word ("but", "yet", "though"), the clause after it decides the label, as in "the plot was
good but the acting was not great" (negative). Adjectives of both polarities occur in most sentences and
negators are as likely in either clause, so word counts alone (a bag of words) cannot tell which clause wins or
which adjective a negator binds to; a small transformer that reads order can. :func:`bag_of_words_baseline`
measures how far counts get.
"""

from __future__ import annotations

import math
import random
from collections import Counter

POSITIVE = ("good", "great", "fun", "moving", "clever", "charming", "brilliant", "warm", "sharp", "lovely")
NEGATIVE = ("bad", "dull", "boring", "clumsy", "weak", "awful", "bland", "messy", "tedious", "flat")
NEGATORS = ("not", "never", "hardly")
INTENSIFIERS = ("very", "really", "truly", "quite", "so")
SUBJECTS = (
    "the plot",
    "the acting",
    "the script",
    "the music",
    "the film",
    "the cast",
    "the ending",
    "the pacing",
)
VERBS = ("was", "is", "felt", "seemed")
CONTRASTS = ("but", "yet", "though")
FILLERS = ("honestly", "overall", "at times", "in the end", "frankly", "for me", "somehow", "again")

LABEL_NAMES = ("negative", "positive")


def _clause(rng: random.Random, polarity: int) -> str:
    """A clause whose meaning has ``polarity`` (1 positive, 0 negative)."""
    negate = rng.random() < 0.4
    surface = polarity ^ int(negate)  # the adjective's own polarity before negation
    adjective = rng.choice(POSITIVE if surface else NEGATIVE)
    words = [rng.choice(SUBJECTS), rng.choice(VERBS)]
    if negate:
        words.append(rng.choice(NEGATORS))
    if rng.random() < 0.35:
        words.append(rng.choice(INTENSIFIERS))
    words.append(adjective)
    if rng.random() < 0.3:
        words.insert(0, rng.choice(FILLERS))
    return " ".join(words)


def generate_synthetic(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` (sentence, label) pairs; the same ``seed`` always gives the same list. Labels are balanced in expectation."""
    rng = random.Random(seed)
    rows: list[tuple[str, int]] = []
    for _ in range(n):
        label = rng.randint(0, 1)
        if rng.random() < 0.3:
            sentence = _clause(rng, label)
        else:
            first = _clause(rng, rng.randint(0, 1))
            sentence = f"{first} {rng.choice(CONTRASTS)} {_clause(rng, label)}"
        if rng.random() < 0.2:
            sentence = f"{sentence} {rng.choice(FILLERS)}"
        rows.append((sentence, label))
    return rows


def bag_of_words_baseline(
    train: list[tuple[str, int]], test: list[tuple[str, int]], epochs: int = 30, lr: float = 0.5
) -> float:
    """Test accuracy of a logistic regression on word counts trained on ``train`` (full-batch gradient descent).

    The reference a model must beat to show it uses word order rather than counts.
    """
    vocab = {w: i for i, w in enumerate(sorted({w for s, _ in train for w in s.split()}))}

    def features(sentence: str) -> dict[int, float]:
        return {vocab[w]: float(c) for w, c in Counter(sentence.split()).items() if w in vocab}

    xs = [features(s) for s, _ in train]
    weights = [0.0] * len(vocab)
    bias = 0.0
    for _ in range(epochs):
        grad = [0.0] * len(vocab)
        grad_b = 0.0
        for x, (_, y) in zip(xs, train, strict=True):
            z = bias + sum(weights[i] * v for i, v in x.items())
            p = 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))
            err = p - y
            grad_b += err
            for i, v in x.items():
                grad[i] += err * v
        bias -= lr * grad_b / len(train)
        weights = [w - lr * g / len(train) for w, g in zip(weights, grad, strict=True)]
    correct = 0
    for sentence, y in test:
        z = bias + sum(weights[i] * v for i, v in features(sentence).items())
        correct += int((z > 0) == bool(y))
    return correct / len(test)
