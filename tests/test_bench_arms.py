"""The report's "Control arms" section on hand-made rows: claim 1's unit counts for each extra arm, one-sided Fisher
p-values equal to scipy's, each reading of the stated rule, "cannot decide" at 3 units against 3, the accuracy
against the bag-of-words line, and no section without an extra arm."""

import json

import numpy as np
import pytest
from scipy import stats

from bermo_prune.bench.arms import BETWEEN, LIKE_BERMO, LIKE_BERT, place, placements
from bermo_prune.bench.report import COLORS, EXTRA_COLORS
from bermo_prune.bench.stats import fisher_greater
from bermo_prune.bench.verdicts import Study, against_bag_of_words
from bermo_prune.cli import main

from .conftest import FALL, LEARN, hand_made_study, write_baselines_json
from .conftest import study_row as _row


def greater(table) -> float:
    return float(stats.fisher_exact(table, alternative="greater")[1])


def arms_rows(falls: dict[str, dict[str, set]], seeds: dict[str, int]) -> list[dict]:
    """``falls[model][series]``: the seeds whose unit ends at chance (its run at 0.1 does, its run at 0.3 learns,
    so a unit counts once for 2 runs); ``seeds[series]``: how many seeds the series has. Every model has dense runs."""
    rows = []
    for model, by_series in falls.items():
        for seed in range(max(seeds.values())):
            rows.append(_row(model, "none", None, seed, LEARN))
        for series, n in seeds.items():
            for seed in range(n):
                for target in (0.3, 0.1):
                    fell = seed in by_series.get(series, set()) and target == 0.1
                    rows.append(
                        _row(
                            model,
                            series,
                            target,
                            seed,
                            FALL if fell else [[s, v + 0.01 * seed] for s, v in LEARN],
                        )
                    )
    return rows


def write(tmp_path, rows, bag_of_words=0.82):
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_baselines_json(tmp_path, rows, start=100, majority=0.5, bag_of_words=bag_of_words)


FIVE = {0, 1, 2, 3, 4}
SEEDS = {"movement": 6, "soft_movement": 3}


def test_claim_two_keeps_its_place_and_says_why_when_the_sweep_has_no_dense_runs(tmp_path):
    rows = [r for r in arms_rows({"bert": {}, "bermo": {}}, {"movement": 3}) if r["method"] != "none"]
    write(tmp_path, rows)
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    claims = report[report.index("## The paper's claims") : report.index("## 1.")]
    assert (
        "2. *BERMo converges faster (1.67x on MNLI, 1.15x on QQP).* Not measured: the level each model is timed to "
        "is taken from its dense (`none`) runs, and this sweep lacks them for BERT, BERMo or both: **inconclusive**."
    ) in claims
    assert claims.index("1. *BERMo prunes stably") < claims.index("2. *BERMo") < claims.index("3. *BERMo")


def test_control_arms_section_counts_tests_and_reads_each_arm(tmp_path):
    """bermo_last ends at chance as often as BERT under movement (6 seeds): like BERT; bermo_first as rarely as
    BERMo: like BERMo; soft movement has 3 units a model, where no test can reach p < 0.05."""
    falls = {
        "bert": {"movement": FIVE, "soft_movement": {0, 1, 2}},
        "bermo": {},
        "bermo_last": {"movement": FIVE, "soft_movement": {0, 1, 2}},
        "bermo_first": {},
    }
    rows = arms_rows(falls, SEEDS)
    write(tmp_path, rows)
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    section = report[report.index("## Control arms") : report.index("## 1.")]
    assert report.index("## The paper's claims") < report.index("## Control arms")
    assert "(`bermo_first`, `bermo_last`)" in section
    # the rule comes before the numbers
    assert section.index("Rule: undecided unless") < section.index("- `bermo_")

    pair = greater([[5, 1], [0, 6]])
    last_vs_bert, last_vs_bermo = greater([[5, 1], [5, 1]]), greater([[5, 1], [0, 6]])
    first_vs_bert, first_vs_bermo = greater([[5, 1], [0, 6]]), greater([[0, 6], [0, 6]])
    assert pair < 0.05 and last_vs_bert >= 0.05 and first_vs_bermo == 1.0
    # bermo_last: 5 units of 6 (one run each of their 2), accuracy at 0.3 over all 6 runs, at 0.1 over seed 5 only
    at_03 = np.median([0.80 + 0.01 * s for s in range(6)])
    assert (
        "- `bermo_last`, movement: ended at chance in 5 of 6 units (5 of 12 runs); BERT 5 of 6 units, BERMo 0 of 6 "
        f"units. BERT vs BERMo: p = {pair:.3g}; vs BERT: p = {last_vs_bert:.3g}; vs BERMo: p = {last_vs_bermo:.3g}. "
        f"Accuracy of its runs not at chance: at 0.3, median {at_03:.4f} over 6 of 6 runs (range 0.8000 to 0.8500), "
        f"{at_03 - 0.82:+.4f} against the bag of words: median above the line; the 96.9% interval of the median, "
        "0.8000 to 0.8500 (order statistics 1 and 6 of 6), holds the line: not separable from it; no paired test "
        "against the bag of words on the same examples: none of the 6 runs' rows has dev predictions; at 0.1, median 0.8500 over 1 of 6 runs (one run), +0.0300 against the bag of "
        "words: median above the line; one run: no interval of the median; no paired test against the bag of words "
        "on the same examples: the run's row has no dev predictions. Reading for `bermo_last` under movement: "
        f"**{LIKE_BERT}** (its units ended at chance significantly more often than BERMo's, not significantly less often than BERT's)."
        in section
    )
    assert (
        "- `bermo_first`, movement: ended at chance in 0 of 6 units (0 of 12 runs); BERT 5 of 6 units, BERMo 0 of 6 "
        f"units. BERT vs BERMo: p = {pair:.3g}; vs BERT: p = {first_vs_bert:.3g}; vs BERMo: p = {first_vs_bermo:.3g}."
        in section
    )
    assert (
        f"Reading for `bermo_first` under movement: **{LIKE_BERMO}** (its units ended at chance significantly less "
        "often than BERT's, not significantly more often than BERMo's)." in section
    )
    # 3 units against 3: the smallest attainable one-sided p is 1/C(6,3) = 0.05, so no test decides
    cannot = "cannot decide (3 units against 3, minimum attainable p 0.05)"
    assert (
        "- `bermo_last`, soft_movement: ended at chance in 3 of 3 units (3 of 6 runs); BERT 3 of 3 units, BERMo 0 "
        f"of 3 units. BERT vs BERMo: {cannot}; vs BERT: {cannot}; vs BERMo: {cannot}." in section
    )
    assert (
        f"Reading for `bermo_last` under soft_movement: **{BETWEEN}** (undecided: BERT vs BERMo, vs BERT, vs BERMo "
        "cannot decide at these numbers of units)." in section
    )
    assert greater([[3, 0], [0, 3]]) == pytest.approx(0.05)  # even the most extreme 3 against 3 is not < 0.05
    # the claims still compare BERT with BERMo only
    assert "Other arms (shown, not part of the BERT-BERMo test)" in report


def test_each_reading_of_the_rule_and_the_fisher_p_values_equal_scipy(tmp_path):
    """Ten seeds: an arm at half of BERT's rate is apart from both (in between), BERT 5/6 vs arm 3/6 vs BERMo 0/6
    is apart from neither, and an arm beside BERT and BERMo that do not differ is undecided."""

    def read(falls, n):
        rows = arms_rows(falls, {"movement": n})
        write(tmp_path, rows)
        study = Study(json.loads((tmp_path / "baselines.json").read_text()))
        (p,) = placements(rows, study)
        return p

    p = read({"bert": {"movement": set(range(10))}, "bermo": {}, "arm": {"movement": set(range(5))}}, 10)
    assert p.counts == {"bert": (10, 10), "bermo": (0, 10), "arm": (5, 10)}
    assert p.runs["arm"] == (5, 20)
    assert p.vs_bert.p_value == pytest.approx(greater([[10, 0], [5, 5]]))
    assert p.vs_bermo.p_value == pytest.approx(greater([[5, 5], [0, 10]]))
    assert p.pair.p_value == pytest.approx(greater([[10, 0], [0, 10]]))
    assert p.vs_bert.p_value < 0.05 and p.vs_bermo.p_value < 0.05
    assert place(p.pair, p.vs_bert, p.vs_bermo) == (
        BETWEEN,
        "in between: its units ended at chance significantly less often than BERT's and more often than BERMo's",
    )

    p = read({"bert": {"movement": FIVE}, "bermo": {}, "arm": {"movement": {0, 1, 2}}}, 6)
    assert p.vs_bert.p_value == pytest.approx(greater([[5, 1], [3, 3]])) and p.vs_bert.p_value >= 0.05
    assert p.vs_bermo.p_value == pytest.approx(greater([[3, 3], [0, 6]])) and p.vs_bermo.p_value >= 0.05
    assert place(p.pair, p.vs_bert, p.vs_bermo) == (
        BETWEEN,
        "undecided: significantly different from neither model",
    )

    p = read({"bert": {"movement": {0}}, "bermo": {}, "arm": {"movement": FIVE}}, 6)
    assert p.pair.p_value == pytest.approx(greater([[1, 5], [0, 6]])) and p.pair.p_value >= 0.05
    assert (
        p.vs_bermo.p_value < 0.05
    )  # the arm is apart from BERMo, but BERT is not: there is no gap to place it in
    assert p.reading == BETWEEN
    assert place(p.pair, p.vs_bert, p.vs_bermo)[1] == (
        "undecided: BERT and BERMo themselves do not differ significantly in this series"
    )

    # the helper the report uses is scipy's one-sided test with its minimum attainable p
    f = fisher_greater(3, 3, 0, 3)
    assert f.p_value == pytest.approx(greater([[3, 0], [0, 3]])) and not f.can_decide(0.05)


def test_no_control_arms_section_without_an_extra_arm(tmp_path):
    hand_made_study(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    assert "Control arms" not in (tmp_path / "REPORT.md").read_text()
    rows = arms_rows({"bert": {"movement": FIVE}, "bermo": {}}, SEEDS)
    write(tmp_path, rows)
    assert placements(rows, Study(json.loads((tmp_path / "baselines.json").read_text()))) == []


def test_an_arm_with_dense_runs_only_is_named_with_nothing_to_place(tmp_path):
    rows = arms_rows({"bert": {"movement": FIVE}, "bermo": {}}, SEEDS)
    rows += [_row("bermo_last", "none", None, seed, LEARN) for seed in range(3)]
    write(tmp_path, rows)
    assert main(["report", str(tmp_path)]) == 0
    assert (
        "- `bermo_last`: no undistilled pruned runs, nothing to place."
        in (tmp_path / "REPORT.md").read_text()
    )


def test_claim_one_tests_the_series_the_spec_fixed_and_shows_the_pool_beside_it(tmp_path):
    """With ``primary: movement`` in sweep.json (from the spec), claim 1's Fisher test and verdict use the movement
    units alone; the pool of every undistilled series is reported, not judged. Here movement alone is 5/6 vs 0/6
    (supported), while a magnitude series where BERMo falls as often as BERT would dilute a pooled test."""
    seeds = {"movement": 6, "magnitude": 6}
    rows = arms_rows({"bert": {"movement": FIVE, "magnitude": {0}}, "bermo": {"magnitude": FIVE}}, seeds)
    write(tmp_path, rows)
    primary_p, pooled_p = greater([[5, 1], [0, 6]]), greater([[6, 6], [5, 7]])
    assert primary_p < 0.05 <= pooled_p
    assert main(["report", str(tmp_path)]) == 0
    pooled = (tmp_path / "REPORT.md").read_text()
    assert "Undistilled series: BERT 6 of 12 units (6 of 24 runs), BERMo 5 of 12 units" in pooled
    assert "Verdict: **inconclusive**: fewer BERMo units ended at chance, but not significantly." in pooled

    (tmp_path / "sweep.json").write_text(json.dumps({"sittings": [], "primary": "movement"}))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert (
        "Tested series, named by the spec's `primary` key: movement: BERT 5 of 6 units (5 of 12 runs), BERMo 0 "
        f"of 6 units (0 of 12 runs); one-sided Fisher exact test that BERT's units have it more often: p = "
        f"{primary_p:.3g}. Undistilled series pooled (reported, not judged): BERT 6 of 12 units (6 of 24 runs), "
        f"BERMo 5 of 12 units (5 of 24 runs); one-sided Fisher exact test that BERT's units have it more often: "
        f"p = {pooled_p:.3g}. Per series (units, BERT vs BERMo): magnitude 1/6 vs 5/6; movement 5/6 vs 0/6."
        in report
    )
    assert "Verdict: **supported**." in report
    assert (
        "- In the series claim 1 tests (`movement`, the spec's `primary`): BERT 5 of 6 units; BERMo 0 of 6 units."
        in report
    )
    # a primary series without runs of both models yet: inconclusive, and the rest of claim 1's block stays
    (tmp_path / "sweep.json").write_text(json.dumps({"sittings": [], "primary": "soft_movement"}))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert (
        "Tested series, named by the spec's `primary` key: soft_movement: no undistilled pruned runs of both BERT "
        "and BERMo yet. Undistilled series pooled (reported, not judged): BERT 6 of 12 units" in report
    )
    assert (
        "Verdict: **inconclusive**: the series the spec names, soft_movement, has no undistilled pruned runs of both "
        "BERT and BERMo yet." in report
    )
    assert "Secondary outcome, at chance at some evaluation after pruning started" in report


def test_figures_tell_the_arms_apart_and_label_a_single_level(tmp_path, monkeypatch):
    """Every run at one level (an unfinished sweep: movement at 10% only): the Pareto plot's log axis is widened
    around it and labels it (a log axis within a decade has no major tick); the mix plot draws bermo and
    bermo_last in their Pareto colours, so two series of one method never look alike."""
    from matplotlib.figure import Figure

    rows = [
        _row(model, "movement", 0.1, seed, LEARN)
        for model in ("bert", "bermo", "bermo_last")
        for seed in range(3)
    ]
    write(tmp_path, rows)
    saved = {}
    real_savefig = Figure.savefig

    def keep(fig, path, *args, **kwargs):
        saved[str(path).rsplit("/", 1)[-1]] = fig
        return real_savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    assert main(["report", str(tmp_path)]) == 0
    (pareto,) = saved["fig_pareto.png"].axes
    assert pareto.get_xlim() == pytest.approx((0.05, 0.2))
    assert [t.get_text() for t in pareto.get_xticklabels()] == ["0.1"]
    (mix,) = saved["fig_mix.png"].axes
    series = {
        line.get_label(): (line.get_color(), line.get_linestyle(), line.get_marker())
        for line in mix.get_lines()
        if not line.get_label().startswith("_")
    }
    assert set(series) == {"bermo movement 0.1", "bermo_last movement 0.1"}
    assert len(set(series.values())) == 2, series
    # the Pareto plot's colours: bermo's, and the third model's extra colour
    assert series["bermo movement 0.1"][0] == COLORS["bermo"]
    assert series["bermo_last movement 0.1"][0] == EXTRA_COLORS[2]
    assert EXTRA_COLORS[2] in {line.get_color() for line in pareto.get_lines()}


def test_every_run_is_tabled_by_seed_with_its_outcomes(tmp_path):
    """Section 2's per-seed table: each run's final metric, C where it ended at chance, a where it was at chance
    after pruning started and recovered, f where it was at chance at its last evaluation before pruning started
    (then only f: a fine-tuning failure is counted apart, also in section 2's pruning columns), s where the tracker
    stopped it; - for a planned seed not run yet, · for a seed the spec does not plan for that cell."""
    rows = [
        _row("bert", "movement", 0.1, 0, FALL),
        _row("bert", "movement", 0.1, 1, [[100, 0.70], [200, 0.50], [300, 0.78], [400, 0.80]]),
        _row("bert", "movement", 0.1, 2, [[50, 0.50], [100, 0.70], [200, 0.75], [400, 0.81]]),
        _row("bert", "movement", 0.1, 3, [[50, 0.50], [100, 0.50], [200, 0.50], [400, 0.50]]),
        _row("bermo", "movement", 0.1, 0, LEARN),
        _row("bert", "none", None, 0, LEARN),
    ]
    rows[1]["status"] = "diverged-stopped"
    write(tmp_path, rows)
    baselines = json.loads((tmp_path / "baselines.json").read_text())
    baselines["draws"][0]["dev_size"] = (
        100  # the dev set's own error is stated beside the interval over seeds
    )
    (tmp_path / "baselines.json").write_text(json.dumps(baselines))
    planned = [r["run"] for r in rows] + ["bermo_movement_0.1_s1"]
    (tmp_path / "sweep.json").write_text(json.dumps({"sittings": [], "cells": planned}))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    table = report[report.index("### Every run, by seed") : report.index("## 3.")]
    assert "| model | method | target | seed 0 | seed 1 | seed 2 | seed 3 |" in table
    assert "| bert | movement | 0.1 | 0.500 **C** | 0.800 **as** | 0.810 **f** | 0.500 **f** |" in table
    assert "| bermo | movement | 0.1 | 0.800 | - | · | · |" in table
    assert "| bert | none | dense | 0.800 | · | · | · |" in table
    assert table.index("| bert | movement") < table.index("| bermo | movement") < table.index("| bert | none")
    # section 2's counts leave the fine-tuning failures out of the pruning outcomes: 1 ended at chance (seed 0),
    # 2 at chance after the start (seeds 0 and 1), 2 fine-tuning failures (seeds 2 and 3)
    assert "| bert | movement | 0.1 | 4 | 2 | 2 (200) | 1 | " in report
    assert "| bert | none | dense | 1 | 0 | - | - | " in report
    best = next(x for x in report.splitlines() if x.startswith("- Best BERMo at <= 10%"))
    assert (
        "one run: no interval of the median; scored on one dev set of 100 examples: one binomial SE at the line is "
        f"{(0.82 * 0.18 / 100) ** 0.5:.4f}; the margin is within 2 SE "
        f"({2 * (0.82 * 0.18 / 100) ** 0.5:.4f}): on another sample of sentences its sign could reverse"
        in best
    )
    assert (
        "**Unfinished sweep: 6 of the 7 runs its spec plans have finished**; not yet run: `bermo_movement_0.1_s1`."
        in report
    )


def test_runs_are_paired_with_the_bag_of_words_on_the_same_examples():
    """The cell's paired difference over examples (a t-interval equal to scipy's) and exact McNemar tests (scipy's
    binomial test on the discordant examples) of each run against the bag-of-words predictions baselines.json
    keeps; runs whose predictions do not give back their final accuracy are left out; what is missing is named."""
    gold = "1" * 50 + "0" * 50
    flip = lambda x: "1" if x == "0" else "0"  # noqa: E731
    bow = gold[:80] + "".join(flip(g) for g in gold[80:])  # wrong on the last 20
    above = "".join(flip(g) if i < 5 else g for i, g in enumerate(gold))  # b = 20, c = 5
    level = "".join(flip(g) if i < 30 else g for i, g in enumerate(gold))  # b = 20, c = 30
    below = "".join(flip(g) if i < 40 else g for i, g in enumerate(gold[:80])) + bow[80:]  # b = 0, c = 40
    rows = [
        {
            "run": f"r{i}",
            "final": sum(p == g for p, g in zip(pred, gold, strict=True)) / 100,
            "dev_predictions": pred,
        }
        for i, pred in enumerate((above, bow, level, below))
    ]
    baselines = {
        "draws": [{"dev_labels": gold, "bag_of_words_predictions": bow}],
        "runs": {r["run"]: {"draw": 0} for r in [*rows, {"run": "old"}]},
    }
    study = Study(baselines)
    assert stats.binomtest(20, 25, 0.5).pvalue < 0.05 < stats.binomtest(20, 50, 0.5).pvalue
    correct = np.array(
        [[p == g for p, g in zip(r["dev_predictions"], gold, strict=True)] for r in rows[:3]], float
    )
    d = correct.mean(axis=0) - np.array([w == g for w, g in zip(bow, gold, strict=True)], float)
    assert d.mean() == pytest.approx((0.95 + 0.80 + 0.70) / 3 - 0.80)
    low, high = stats.t.interval(0.95, 99, loc=d.mean(), scale=stats.sem(d))
    assert low < 0 < high
    assert against_bag_of_words(rows[:3], study) == (
        "paired with the bag of words on the same 100 dev examples: the mean over its 3 runs of each example's "
        f"correctness minus the bag of words': {d.mean():+.4f} (95% t-interval over the examples {low:+.4f} to "
        f"{high:+.4f}: not separable from the line on these examples); by run, exact "
        "McNemar tests on the examples where the run and the bag of words disagree (two-sided, 0.05, uncorrected; "
        "described: the runs share the dev set): 1 of 3 significantly above, 0 below, 2 not separable; the runs "
        "agree with the bag of words on 50.0% to 100.0% of the examples"
    )
    one = against_bag_of_words(rows[3:], study)
    d1 = np.array([p == g for p, g in zip(below, gold, strict=True)], float) - np.array(
        [w == g for w, g in zip(bow, gold, strict=True)], float
    )
    low1, high1 = stats.t.interval(0.95, 99, loc=d1.mean(), scale=stats.sem(d1))
    assert one.startswith(
        "paired with the bag of words on the same 100 dev examples: the run's correctness minus the bag of words': "
        f"-0.4000 (95% t-interval over the examples {low1:+.4f} to {high1:+.4f}: below the line); by run"
    )
    assert "0 of 1 significantly above, 1 below, 0 not separable" in one
    assert one.endswith("the run agrees with the bag of words on 60.0% of the examples")
    old = {"run": "old", "final": 0.8}
    assert against_bag_of_words([rows[1], old], study).endswith(
        "; 1 of the 2 runs' rows have no dev predictions"
    )
    assert against_bag_of_words([old], study) == (
        "no paired test against the bag of words on the same examples: the run's row has no dev predictions"
    )
    assert against_bag_of_words([old, old], study).endswith("none of the 2 runs' rows has dev predictions")
    wrong = {**rows[0], "run": "old", "final": 0.5}
    text = against_bag_of_words([wrong, rows[1]], study)
    assert "the run's correctness minus" in text and text.endswith(
        "; old: its predictions do not give back its final accuracy, left out"
    )
    assert against_bag_of_words([{**rows[0], "metric": "f1", "final": 0.5}], study).startswith("paired with")
    bare = Study({"draws": [{}], "runs": {"r0": {"draw": 0}}})
    assert "baselines.json keeps no per-example labels" in against_bag_of_words(rows[:1], bare)


def test_section_one_pairs_each_cell_with_predictions_and_says_nothing_without_them(tmp_path):
    rows = [
        _row("bert", "movement", 0.1, 0, LEARN),
        _row("bert", "movement", 0.1, 1, LEARN),
        _row("bermo", "movement", 0.1, 0, LEARN),
        _row("bert", "none", None, 0, LEARN),
    ]
    write(tmp_path, rows)
    assert main(["report", str(tmp_path)]) == 0
    assert "Paired with the bag of words on the same dev examples" not in (tmp_path / "REPORT.md").read_text()
    gold = "1" * 50 + "0" * 50
    bow = gold[:82] + "1" * 18  # 0.82, the line
    rows[0]["dev_predictions"] = gold[:80] + "1" * 20  # 0.80, the run's final
    write(tmp_path, rows)
    baselines = json.loads((tmp_path / "baselines.json").read_text())
    baselines["draws"][0].update(dev_labels=gold, bag_of_words_predictions=bow, dev_size=100)
    (tmp_path / "baselines.json").write_text(json.dumps(baselines))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    section = report[report.index("## 1.") : report.index("## 2.")]
    study = Study(baselines)
    assert (
        "Paired with the bag of words on the same dev examples, each cell whose rows keep their dev predictions "
        f"(runs not at chance):\n\n- bert movement 0.1: {against_bag_of_words(rows[:2], study)}.\n\n## 2."
        in report
    )
    assert "the run's correctness minus the bag of words': -0.0200" in section
    assert (
        section.count("- bert movement 0.1: paired") == 1
        and "bermo movement" not in section.split("(runs not")[1]
    )


def test_a_row_without_predictions_borrows_them_only_from_a_retrain_that_repeated_it_exactly(tmp_path):
    """``bench --retrain`` logs a new run of a recorded cell; where its curve equals the row's at every one of at least
    10 evaluations (with the same best, final, steps and remaining share), the report pairs the row with the bag of
    words through the retrain's predictions and says so; a retrain that differs anywhere (another draw of the
    cell), a short curve, a failed retrain, or any differing retrain of the same run lends nothing, and a row's own
    predictions are never replaced."""
    curve = [[100 * (i + 1), 0.70 + 0.01 * i] for i in range(10)]  # ends at 0.79, its best
    rows = [_row("bert", "movement", 0.1, seed, curve) for seed in (0, 1)]
    write(tmp_path, rows)
    gold = "1" * 50 + "0" * 50
    baselines = json.loads((tmp_path / "baselines.json").read_text())
    baselines["draws"][0].update(dev_labels=gold, bag_of_words_predictions=gold[:82] + "1" * 18, dev_size=100)
    (tmp_path / "baselines.json").write_text(json.dumps(baselines))
    predictions = gold[:79] + "1" * 21  # 0.79, the final

    def retrain(row, **change):
        entry = {
            **row,
            "dev_predictions": predictions,
            "recorded": {"final": row["final"], "best": row["best"]},
        }
        entry.update(change)
        return entry

    def report(*retrained):
        (tmp_path / "retrained.jsonl").write_text("".join(json.dumps(e) + "\n" for e in retrained))
        assert main(["report", str(tmp_path)]) == 0
        text = (tmp_path / "REPORT.md").read_text()
        return text[text.index("## 1.") : text.index("## 2.")]

    def lent(section):
        return "Paired with the bag of words" in section

    other = [[s, a] for s, a in curve]
    other[4][1] += 0.01  # one evaluation differs, same final and best
    section = report(retrain(rows[0]), retrain(rows[1], curve=other))
    study = Study(baselines)
    assert (
        f"- bert movement 0.1: {against_bag_of_words([{**rows[0], 'dev_predictions': predictions}, rows[1]], study)}."
        in section
    )
    assert (
        "1 of the 2 runs' rows have no dev predictions" in section
    )  # seed 1's retrain differed: nothing lent
    assert (
        "Rows recorded without predictions that take them from a retrain (`bench --retrain`, `retrained.jsonl`) "
        "that repeated the recorded run: its curve equal at every evaluation (at least 10), and the same best, "
        "final, steps and remaining share, so that its model is very probably the recorded one (not compared "
        "weight for weight): bert_movement_0.1_s0." in section
    )
    assert not lent(report(retrain(rows[0], curve=other)))
    assert not lent(report(retrain(rows[0], status="failed")))
    assert not lent(report(retrain(rows[0], remaining=0.2)))
    assert not lent(report(retrain(rows[0]), retrain(rows[0], curve=other)))  # the run does not repeat
    assert not lent(report(retrain(rows[0], dev_predictions=None)))
    short = [_row("bert", "movement", 0.1, 0, LEARN)]  # 4 evaluations: too few to call a repeat
    write(tmp_path, short)
    (tmp_path / "baselines.json").write_text(json.dumps(baselines))
    assert not lent(report(retrain(short[0])))
    own = dict(rows[0], dev_predictions="0" + gold[1:80] + "1" * 20)  # its own predictions, also 0.79
    write(tmp_path, [own])
    (tmp_path / "baselines.json").write_text(json.dumps(baselines))
    section = report(retrain(rows[0]))
    assert "Rows recorded without predictions" not in section
    assert against_bag_of_words([own], study) in section and "left out" not in section
