"""SentEval's parsed probing tasks (Tense, SubjNum, ObjNum, SOMO, dependency-tree depth) on hand-labelled
sentences, their splits and balance, the missing-extra error, and the probe report's interval rules."""

from __future__ import annotations

import json
import math
import random

import pytest

from bermo_prune.cli import EXIT_BAD_INPUT, main
from bermo_prune.errors import InputError
from bermo_prune.probe import semantic
from bermo_prune.probe.report import format_cell, model_values, paired_differences, summarise
from bermo_prune.probe.semantic import (
    Parsed,
    generate_semantic,
    lexical_split,
    normalise,
    object_number,
    odd_man_out_rows,
    subject_number,
    tense,
)
from bermo_prune.probe.tasks import read_senteval


@pytest.fixture(scope="module")
def nlp():
    pytest.importorskip("spacy", reason="the probe extra: pip install 'bermo-prune[probe]'")
    return semantic.load_parser()


def _parse(nlp, sentence: str) -> Parsed:
    return semantic.parse([("hand", sentence)], nlp)[0]


# (sentence, Tense, SubjNum, ObjNum): labels by hand, as SentEval defines them (main clause only)
HAND = [
    ("The dogs were barking at the postman .", ("PAST", "were"), ("NNS", "dogs"), None),
    ("She likes the new cars that he bought .", ("PRES", "likes"), None, ("NNS", "cars")),  # pronoun subject
    ("The company sold two factories in 1990 .", ("PAST", "sold"), ("NN", "company"), ("NNS", "factories")),
    ("The boy kicked the ball over the fence .", ("PAST", "kicked"), ("NN", "boy"), ("NN", "ball")),
    ("The report says that the prices rose sharply .", ("PRES", "says"), ("NN", "report"), None),
    (
        "The teachers have read every book in the library .",
        ("PRES", "have"),
        ("NNS", "teachers"),
        ("NN", "book"),
    ),
    (
        "The bridge was built by the army in 1850 .",
        ("PAST", "was"),
        ("NN", "bridge"),
        None,
    ),  # passive subject
    (
        "John Smith wrote three novels about the war .",
        ("PAST", "wrote"),
        None,
        ("NNS", "novels"),
    ),  # NNP subject
    ("The students will finish their projects tomorrow .", None, ("NNS", "students"), ("NNS", "projects")),
    ("Please close the door when you leave .", None, None, ("NN", "door")),  # imperative: no tense
]


@pytest.mark.parametrize("sentence, tense_label, subj, obj", HAND, ids=[h[0] for h in HAND])
def test_labels_of_hand_written_sentences(nlp, sentence, tense_label, subj, obj):
    p = _parse(nlp, sentence)
    assert p.sentence == sentence  # the written tokens are the parsed tokens
    assert tense(p) == tense_label
    assert subject_number(p) == subj
    assert object_number(p) == obj


def test_dependency_tree_depth_counts_arcs_from_the_root(nlp):
    # The(2) dogs(1) were(1) barking(0) .(1): two arcs from the root to "The"
    assert _parse(nlp, "The dogs were barking .").depth() == 2
    by_hand = Parsed(("a", "b", "c", "d", "e"), ("NN",) * 5, ("x",) * 5, (1, 1, 1, 2, 3))
    assert by_hand.root == 1 and by_hand.depth() == 3  # e -> d -> c -> b (the root): 3 arcs
    assert Parsed(("a", "b", "c", "d"), ("NN",) * 4, ("x",) * 4, (0, 0, 1, 2)).depth() == 3


def test_normalise_undoes_wikitext_joins_and_keeps_senteval_lengths():
    assert normalise("a well @-@ known 1 @,@ 000 km @.@ road .") == "a well-known 1,000 km.road ."
    assert normalise("one two three four") is None  # 4 tokens
    assert normalise(" ".join(["w"] * 28)) is not None and normalise(" ".join(["w"] * 29)) is None
    assert normalise("the <unk> sat on a mat") is not None
    assert normalise("the <unk> sat on a mat", drop_unk=True) is None


def test_lexical_split_puts_each_form_in_one_partition_and_balances():
    rng = random.Random(0)
    forms = {f"sing{i}": "NN" for i in range(40)} | {f"plur{i}": "NNS" for i in range(40)}
    candidates = [
        (label, form, f"{form} sentence {k}", "src")
        for form, label in forms.items()
        for k in range(1 + int(form[4:]) % 7)
    ]
    rows = lexical_split(candidates, rng)
    where: dict[str, set[str]] = {}
    for split, _, sentence, _ in rows:
        where.setdefault(sentence.split()[0], set()).add(split)
    assert all(len(s) == 1 for s in where.values())  # no form in two partitions
    assert {split for split, *_ in rows} == {"tr", "va", "te"}
    n = {s: sum(r[0] == s for r in rows) for s in ("tr", "va", "te")}
    assert n["tr"] > 6 * n["va"] and n["tr"] > 6 * n["te"]  # about 80/10/10
    capped = lexical_split(candidates, random.Random(0), max_per_form=2)
    assert max(sum(r[2].startswith(f + " ") for r in capped) for f in forms) == 2


def _somo_corpus() -> list[Parsed]:
    rng = random.Random(1)
    nouns = [f"noun{chr(97 + i)}" for i in range(26)]
    out = []
    for k in range(600):
        a, b = rng.choice(nouns), rng.choice(nouns)
        words = ("the", a, "chased", "a", b, "today", f"x{k}", ".")
        tags = ("DT", "NN", "VBD", "DT", "NN", "NN", "NN", ".")
        out.append(
            Parsed(
                words,
                tags,
                ("det", "nsubj", "ROOT", "det", "dobj", "npadvmod", "dep", "punct"),
                (1, 2, 2, 4, 2, 2, 2, 2),
                "src",
            )
        )
    return out


def test_odd_man_out_replaces_one_noun_with_a_same_tag_word_from_one_pool():
    parsed = _somo_corpus()
    rows = odd_man_out_rows(parsed, random.Random(0), semantic.LIMITS, somo_band=(5, 500))
    originals = {p.sentence: p for p in parsed}
    by_key = {p.words[-2]: p for p in parsed}  # x{k} is unique per sentence
    labels = {split: [label for s, label, _, _ in rows if s == split] for split in ("tr", "va", "te")}
    for split, ls in labels.items():
        assert ls.count("C") == ls.count("O") > 0, split  # balanced in every partition
    used: dict[str, set[str]] = {}
    seen = set()
    for split, label, sentence, _ in rows:
        words = sentence.split()
        original = by_key[words[-2]]
        assert original.sentence not in seen  # no sentence in both versions, none twice
        seen.add(original.sentence)
        if label == "O":
            assert sentence in originals
            continue
        diff = [i for i, (x, y) in enumerate(zip(words, original.words, strict=True)) if x != y]
        assert len(diff) == 1 and 0 < diff[0] < len(words) - 1
        i = diff[0]
        assert original.tags[i] == "NN" and words[i].startswith("noun")  # a noun by a word tagged the same
        used.setdefault(words[i], set()).add(split)
    # one pool for every partition (a pool split by partition made word identity a cue that reverses on test)
    assert used and any(len(s) > 1 for s in used.values())


def test_generate_semantic_is_deterministic_and_counts_what_it_wrote():
    parsed = _somo_corpus()
    task, counts = generate_semantic("odd_man_out", parsed, seed=3)
    again, counts2 = generate_semantic("odd_man_out", list(reversed(parsed)), seed=3)
    assert again.examples == task.examples and counts == counts2  # input order does not matter
    assert counts["splits"] == {s: len(task.examples[s]) for s in ("tr", "va", "te")}
    assert counts["labels"]["te"]["C"] == counts["labels"]["te"]["O"]
    assert counts["sentences_parsed"] == 600


def test_dependency_tree_depth_is_balanced_within_length_bins():
    rng = random.Random(0)
    parsed = []
    for k in range(3000):
        n = rng.randint(5, 20)
        depth = rng.randint(1, min(n - 1, 8))
        heads = tuple([0] + list(range(depth)) + [0] * (n - depth - 1))  # a chain of `depth` arcs
        words = tuple(f"w{k}_{j}" for j in range(n))
        parsed.append(Parsed(words, ("NN",) * n, ("dep",) * n, heads, "src"))
    task, counts = generate_semantic("dependency_tree_depth", parsed)
    assert len(task.labels) == 5 and [int(x) for x in task.labels] == list(
        range(int(task.labels[0]), int(task.labels[0]) + 5)
    )
    for split in ("tr", "va", "te"):
        per_bin: dict[tuple[int, str], int] = {}
        for label, sentence in task.examples[split]:
            n = len(sentence.split())
            b = next(i for i, (lo, hi) in enumerate(semantic.LENGTH_BINS) if lo <= n <= hi)
            per_bin[(b, label)] = per_bin.get((b, label), 0) + 1
        for b in {b for b, _ in per_bin}:
            assert (
                len({per_bin.get((b, label), 0) for label in task.labels}) == 1
            )  # depth independent of length


def test_a_missing_spacy_model_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    spacy = pytest.importorskip("spacy")

    def missing(*_, **__):
        raise OSError("[E050] Can't find model")

    monkeypatch.setattr(spacy, "load", missing)
    with pytest.raises(InputError, match=r"pip install 'bermo-prune\[probe\]'"):
        semantic.load_parser()
    text = tmp_path / "t.txt"
    text.write_text("The dogs were barking at the man .\n")
    assert (
        main(["probe-data", str(tmp_path / "out"), "--text", str(text), "--tasks", "past_present"])
        == EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bermo-prune[probe]" in err and "en_core_web_sm" in err


def test_probe_data_cli_writes_parsed_tasks_and_counts(nlp, tmp_path):
    rng = random.Random(0)
    singular = "dog cat teacher farmer doctor student driver singer baker pilot".split()
    plural = [f"{w}s" for w in singular]
    objects = "apple apples letter letters house houses car cars book books".split()
    verbs = "like want visit paint watch clean open close help call push pull".split()
    past = {v: v + ("d" if v.endswith("e") else "ed") for v in verbs}
    present = {v: v + ("es" if v.endswith(("sh", "ch")) else "s") for v in verbs}
    lines = []
    for _ in range(800):
        plural_subject = rng.random() < 0.5
        subject = rng.choice(plural if plural_subject else singular)
        verb = rng.choice(verbs)
        form = past[verb] if rng.random() < 0.5 else (verb if plural_subject else present[verb])
        lines.append(f"The {subject} {form} the {rng.choice(objects)} near the old river today .")
    text = tmp_path / "text.txt"
    text.write_text("\n".join(lines) + "\n")
    out = tmp_path / "tasks"
    assert main(["probe-data", str(out), "--text", str(text), "--tasks", "past_present", "subj_number"]) == 0
    for name in ("past_present", "subj_number"):
        task = read_senteval(out / f"{name}.txt")
        counts = json.loads((out / f"{name}.counts.json").read_text())
        assert counts["splits"] == {s: len(task.examples[s]) for s in ("tr", "va", "te")}
        at = 1 if name == "subj_number" else 2  # the subject noun / the main verb
        forms = {s: {sentence.split()[at] for _, sentence in task.examples[s]} for s in ("tr", "va", "te")}
        assert (
            not (forms["tr"] & forms["te"])
            and not (forms["tr"] & forms["va"])
            and not (forms["va"] & forms["te"])
        )


# ---- the probe report's intervals -------------------------------------------------------------------------------
def test_two_seeds_give_the_range_not_a_t_interval_that_leaves_0_1():
    c, kind = summarise([0.70, 0.96])
    assert kind == "range" and (c.low, c.high) == (0.70, 0.96)
    assert format_cell([0.70, 0.96]) == "0.8300 [0.7000, 0.9600]"
    assert format_cell([0.5]) == "0.5000"
    # three seeds: a t interval, clipped to [0, 1]
    c, kind = summarise([0.99, 1.0, 0.9])
    assert kind == "t" and c.high == 1.0 and c.low >= 0.0
    c, _ = summarise([0.0, 0.001, 0.03])
    assert c.low == 0.0
    assert format_cell([-0.9, -0.99, -0.5], signed=True).startswith("-0.7967 (-1.0000,")


def test_intervals_are_over_fine_tuning_runs_when_a_model_has_several():
    rows = [
        {"run": run, "seed": seed, "te": 0.5 + 0.1 * run + 0.01 * seed}
        for run in range(3)
        for seed in range(2)
    ]
    values, over = model_values(rows)
    assert over == "fine-tuning seeds" and values == pytest.approx([0.505, 0.605, 0.705])
    one_run = [{"seed": s, "te": 0.5 + 0.01 * s} for s in range(3)]  # older rows: no "run"
    assert model_values(one_run) == ([0.5, 0.51, 0.52], "probe seeds")
    bermo = [dict(r, te=r["te"] + 0.02) for r in rows]
    diffs, paired = paired_differences(rows, bermo)
    assert paired == "fine-tuned run" and diffs == pytest.approx([0.02] * 3)
    assert not any(math.isnan(x) for x in diffs)
