"""Report generation on a small synthetic results set: figures written, numbers equal direct scipy calls."""

import json
import re

import numpy as np
import pytest
from scipy import stats

from bermo_prune.bench.verdicts import steps_to
from bermo_prune.cli import EXIT_BAD_INPUT, main

from .conftest import FALL, LEARN, hand_made_study, study_row, write_baselines_json


def synthetic_results(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for model, shift in (("bert", 0.0), ("bermo", 0.01)):
        for method, targets in (("none", [None]), ("movement", [0.5, 0.1]), ("l0", [1.0])):
            for target in targets:
                for seed in range(3):
                    final = (
                        0.85
                        + shift
                        - (0.5 - (target or 0.5)) * 0.1 * (method != "none")
                        + rng.normal(0, 0.005)
                    )
                    speed = 100 if model == "bermo" else 150
                    rows.append(
                        {
                            "run": f"{model}_{method}_{target}_s{seed}",
                            "model": model,
                            "method": method,
                            "target": target,
                            "seed": seed,
                            "status": "ok",
                            "remaining": 1.0 if target is None else (target if method == "movement" else 0.3),
                            "metric": "accuracy",
                            "final": final,
                            "best": final + 0.002,
                            "diverged": model == "bert" and seed == 0 and target == 0.1,
                            "divergence_kind": "collapse"
                            if model == "bert" and seed == 0 and target == 0.1
                            else None,
                            "divergence_step": 300
                            if model == "bert" and seed == 0 and target == 0.1
                            else None,
                            "curve": [[speed * k, final * min(1.0, 0.7 + 0.1 * k)] for k in range(1, 6)],
                            "mix": {"layer_weights": [0.2, 0.3, 0.5], "gamma": 1.1}
                            if model == "bermo"
                            else None,
                            "wall_time_s": 10.0,
                        }
                    )
    rows.append(
        {
            "run": "bermo_l0_3_s0",
            "model": "bermo",
            "method": "l0",
            "target": 3.0,
            "seed": 0,
            "status": "failed",
            "error": "RuntimeError: boom",
        }
    )
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_baselines_json(tmp_path, rows)
    return rows


def finals(rows, model, method, target):
    return [r["final"] for r in rows if (r["model"], r["method"], r.get("target")) == (model, method, target)]


def test_report_figures_and_numbers(tmp_path, capsys):
    rows = synthetic_results(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    for png in ("fig_pareto.png", "fig_mix.png"):
        assert (tmp_path / png).stat().st_size > 10_000 and f"]({png})" in report
    # Paired comparison of movement at 0.1 equals scipy's; 3 pairs cannot reach p < 0.05 in a Wilcoxon test.
    bert, bermo = finals(rows, "bert", "movement", 0.1), finals(rows, "bermo", "movement", 0.1)
    p = stats.ttest_rel(bermo, bert).pvalue
    assert (
        f"| movement | 0.1 | 0.100 / 0.100 | 3 | 0 / 0 | {np.mean(np.subtract(bermo, bert)):+.4f}" in report
        and f"| {p:.3g} | cannot decide (min p 0.25 at n=3) |" in report
    )
    assert (
        "| l0 | 1 | 0.300 / 0.300 | 3 | 0 / 0 |" in report
    )  # a penalty row shows both models' reached shares
    # Section 1: the median and range over the runs that did not end at chance, against the bag of words.
    b = finals(rows, "bert", "movement", 0.5)
    assert (
        f"| bert | movement | 0.5 | 3 | 0.500 | 0 of 3 | {np.median(b):.4f} ({min(b):.4f} to {max(b):.4f}) | "
        f"{np.median(b) - 0.8:+.4f} |" in report
    )
    assert "majority class 0.5000; bag of words 0.8000" in report
    # The failed run is reported, not dropped; the tracker's flag stays in section 2 for reference.
    assert "| bert | movement | 0.1 | 3 | not seen | 0 | 0 | 1 (collapse) |" in report
    assert "- bermo_l0_3_s0: RuntimeError: boom" in report
    # Convergence: BERMo reaches the level in 2/3 of BERT's steps in this set -> ratio 1.5.
    assert "| 1.50 (" in report
    assert "Versions: torch" in report
    assert "Time: no sweep.json" in report and "the runs' own wall times sum to 4 min" in report
    # Findings: the counts of significant cells equal direct scipy calls on every pruned (method, level) cell.
    higher = lower = 0
    for method, target in (("movement", 0.5), ("movement", 0.1), ("l0", 1.0)):
        res = stats.ttest_rel(finals(rows, "bermo", method, target), finals(rows, "bert", method, target))
        higher += res.pvalue < 0.05 and res.statistic > 0
        lower += res.pvalue < 0.05 and res.statistic < 0
    assert report.index("## Findings") < report.index("## 1.")
    assert (
        "of 3 pruned (method, level) cells at equal remaining weights, 0 hold a run that ended at chance"
        in report
    )
    assert f"BERMo is significantly higher in {higher}" in report
    assert f"significantly lower in {lower}" in report
    assert "- Pruned runs that ended at chance (primary outcome, section 2): BERT 0 of 6 units" in report
    # Claim 1: nobody ended at chance.
    # The premise did not occur, and the verdict says so, with how high a BERT rate 0 of 6 units leaves open:
    # 1 - 0.05^(1/6) = 0.393 (the one-sided Clopper-Pearson bound at k = 0).
    assert f"{1 - 0.05 ** (1 / 6):.0%}" == "39%"
    assert (
        "Verdict: **not supported**: its premise did not occur: no pruned unit of either model ended at chance (BERT "
        "0 of 6 units; a true BERT rate up to 39% is not excluded, one-sided 95% Clopper-Pearson), so the claim's "
        "contrast was not tested here." in report
    )
    # BERT's seed-2 movement-0.1 run ends lower (its own noise) and never reaches 95% of BERT's dense mean. The
    # 8 pairs are 6 units (method, seed): the two movement levels of a seed share their warm-up, and their log
    # ratios are averaged before the t-interval (every crossing here is at or after pruning starts, step 100).
    ok = [r for r in rows if r["status"] == "ok"]
    level = {
        m: 0.95 * np.mean([r["final"] for r in ok if (r["model"], r["method"]) == (m, "none")])
        for m in ("bert", "bermo")
    }
    cells = {(r["model"], r["method"], r["target"], r["seed"]): r for r in ok if r["method"] != "none"}
    units = {}
    for (model, method, target, seed), r in cells.items():
        other = cells.get(("bermo", method, target, seed))
        if model == "bert" and other:
            a, b = steps_to(r["curve"], level["bert"]), steps_to(other["curve"], level["bermo"])
            if a and b:
                assert min(a, b) >= 100
                units.setdefault((method, seed), []).append(np.log(a / b))
    logs = np.array([np.mean(v) for v in units.values()])
    assert sum(map(len, units.values())) == 8 and len(logs) == 6 and max(map(len, units.values())) == 2
    low, high = stats.t.interval(0.95, 5, loc=logs.mean(), scale=stats.sem(logs))
    assert (
        "over 8 pruned (method, level, seed) pairs reached by both, in 6 unit(s), counted as independent (series "
        "and seed: the levels of one series and seed share their warm-up steps, so their log ratios are averaged; "
        "a seed's series whose crossings all fall before pruning starts timed that seed's shared dense warm-up and "
        f"are one unit; 0 of the 6 are such warm-up units): BERT/BERMo ratio {np.exp(logs.mean()):.2f} (95% CI "
        "over units "
        f"{np.exp(low):.2f} to {np.exp(high):.2f})" in report
    )
    assert "reached by BERMo only in 1 pair, by BERT only in 0 pairs." in report
    assert "lies below 1.15. Verdict: **supported**." in report
    # Claim 3: 3 l0 pairs, one per seed, so 3 units; a t-interval over units equal to scipy's.
    diff = np.subtract(finals(rows, "bermo", "l0", 1.0), finals(rows, "bert", "l0", 1.0))
    low, high = stats.t.interval(0.95, 2, loc=diff.mean(), scale=stats.sem(diff))
    assert (
        f"3 pairs in 3 independent units (method, seed: the levels of one unit share their warm-up steps, so their "
        f"differences are averaged), BERMo - BERT {diff.mean():+.4f} (95% t-interval over units {low:+.4f} to "
        f"{high:+.4f}, 2 degrees of freedom; t-test p = {stats.ttest_1samp(diff, 0).pvalue:.3g}; Wilcoxon "
        "signed-rank cannot decide at 3 units (minimum attainable p 0.25))" in report
    )
    assert report.index("## The paper's claims") < report.index("## 1.")
    assert "- Best BERT at <= 10% remaining, over cells where no run ended at chance:" in report
    # section 4: the mean mix over runs, how many, and each run's heaviest state with its weight
    assert (
        "| bermo | movement | 0.5 | 3 | 0.200, 0.300, 0.500 | 1.100 | 0: 2 (0.50); 1: 2 (0.50); 2: 2 (0.50) |"
        in report
    )
    assert "(movement 0.1, 10.0% remaining; " in report
    # ... and how far below dense it is (item 6 of issue #26): the cell's median minus the dense runs' median
    for model, label in (("bert", "BERT"), ("bermo", "BERMo")):
        gap = np.median(finals(rows, model, "movement", 0.1)) - np.median(finals(rows, model, "none", None))
        line = next(x for x in report.splitlines() if x.startswith(f"- Best {label} at <= 10%"))
        assert line.endswith(
            f"; {gap:+.4f} against the median of its 3 dense runs that did not end at chance)."
        )


def test_a_cell_with_two_paired_seeds_is_not_tested_even_when_its_two_differences_agree(tmp_path):
    rows = [r for r in synthetic_results(tmp_path) if not (r["method"] == "movement" and r["seed"] == 2)]
    for r in rows:  # two nearly equal differences: a 1-df t-test would call them significant
        if r["method"] == "movement" and r["model"] == "bermo" and r["status"] == "ok":
            r["final"] = next(
                b["final"]
                for b in rows
                if b["model"] == "bert" and b["run"] == r["run"].replace("bermo", "bert")
            ) + (0.011 if r["seed"] == 0 else 0.012)
    assert stats.ttest_rel([0.011, 0.012], [0.0, 0.0]).pvalue < 0.05
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    for cell in ("| movement | 0.1 | 0.100 / 0.100 |", "| movement | 0.5 | 0.500 / 0.500 |"):
        assert f"{cell} 2 | 0 / 0 | - | - | - | - | not tested: fewer than 3 paired seeds |" in report
    assert "of 1 pruned (method, level) cells at equal remaining weights" in report  # only l0, with 3 seeds
    paired = next(line for line in report.splitlines() if line.startswith("- BERMo vs BERT, paired by seed"))
    assert "movement" not in paired


def test_a_collapse_counts_as_recovered_only_when_the_run_ends_learned_again():
    """`recovered`: a collapse whose final evaluation lies at least the tracker's learned margin (0.1) above the
    evaluation that counted it; other kinds, or a collapse step without an evaluation, never count."""
    from bermo_prune.bench.verdicts import recovered

    curve = [[100, 0.80], [200, 0.51], [300, 0.55], [400, 0.70]]
    row = {"divergence_kind": "collapse", "divergence_step": 200, "curve": curve}
    assert recovered({**row, "final": 0.70}) and recovered({**row, "final": 0.62})
    assert not recovered({**row, "final": 0.60}) and not recovered({**row, "final": 0.51})
    assert not recovered({**row, "divergence_step": 250, "final": 0.70})  # no evaluation at that step
    assert not recovered({**row, "divergence_kind": "no_learning", "final": 0.70})
    assert not recovered({**row, "divergence_kind": None, "divergence_step": None, "final": 0.70})


def test_divergence_is_one_definition_counted_per_independent_unit_with_distilled_series_apart(tmp_path):
    """Claim 1 on the primary outcome (ended at chance) counted per (model, series, seed) unit, with a Fisher test
    on unit counts equal to scipy's; the secondary outcome counts BERMo's dips the tracker never flagged; the
    distilled series are their own family, whose 3 units against 3 cannot reach p < 0.05."""
    hand_made_study(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    p = stats.fisher_exact([[2, 1], [0, 3]], alternative="greater")[1]
    assert (
        "Undistilled series: BERT 2 of 3 units (4 of 9 runs), BERMo 0 of 3 units (0 of 9 runs); "
        "cannot decide: 3 units against 3 cannot reach p < 0.05 (minimum attainable one-sided Fisher p 0.05)"
        in report
    )
    assert p == pytest.approx(
        0.2
    )  # what a per-run count would hide: 4 of 9 runs against 0 of 9 gives p < 0.05
    assert stats.fisher_exact([[4, 5], [0, 9]], alternative="greater")[1] < 0.05
    assert "Verdict: **inconclusive**: cannot decide: 3 units against 3" in report
    assert (
        "Distilled series (their own family: movement_kd): BERT 3 of 3 units (3 of 3 runs), BERMo 0 of 3 units "
        "(0 of 3 runs); cannot decide: 3 units against 3 cannot reach p < 0.05" in report
    )
    # Secondary: one definition for both models, BERMo's dips at step 100 count like BERT's falls.
    p2 = stats.fisher_exact([[2, 1], [1, 2]], alternative="greater")[1]
    assert "undistilled series BERT 2 of 3 units (4 of 9 runs), BERMo 1 of 3 units (3 of 9 runs)" in report
    assert p2 > 0.05
    assert "| bermo | movement | 0.5 | 3 | not seen | 1 (100) | 0 | 0 (-) |" in report
    # the coarse steps-to-level finding counts only cells whose interval has width: at 0.1 one seed reached the
    # level in both models (no interval); the dense seeds all reached it at the same evaluation (1.00 to 1.00)
    assert "| movement | 0.1 | 1 / 3 | 300 | 200 | 1.50 (n/a, n/a) |" in report
    assert "| none | dense | 3 / 3 | 300 | 300 | 1.00 (1.00, 1.00) |" in report
    assert (
        "- Steps to 95% of the dense accuracy (section 3): of 4 cells, 2 have an interval of nonzero width, BERMo "
        "significantly faster in 0 of them, slower in 0 (2 without: fewer than 2 seeds reached the level in both "
        "models, or every seed gives the same ratio on the evaluation grid)" in report
    )
    assert "| bert | movement | 0.1 | 3 | not seen | 2 (200) | 2 | 2 (no_learning) |" in report
    assert (
        "the dense runs, which never prune, were at chance at an evaluation at or after step 100 in 0 of 6"
        in report
    )


def test_a_larger_study_reaches_a_verdict_from_unit_counts(tmp_path):
    """Six seeds: BERT's units end at chance in 4 of 6, BERMo's in none; Fisher p on units equals scipy's."""
    rows = []
    for model in ("bert", "bermo"):
        for seed in range(6):
            rows.append(study_row(model, "none", None, seed, LEARN))
            for target in (0.5, 0.1):
                curve = FALL if model == "bert" and seed < 4 else LEARN
                rows.append(study_row(model, "movement", target, seed, curve))
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_baselines_json(tmp_path, rows)
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    p = stats.fisher_exact([[4, 2], [0, 6]], alternative="greater")[1]
    assert (
        "BERT 4 of 6 units (8 of 12 runs), BERMo 0 of 6 units (0 of 12 runs); one-sided Fisher exact test that "
        f"BERT's units have it more often: p = {p:.3g}." in report
    )
    assert p < 0.05 and "Verdict: **supported**." in report


def test_no_t_interval_over_a_mix_of_collapsed_and_learned_runs(tmp_path):
    """A cell holding a run that ended at chance gets counts and the median of the others, never a mean with a
    Student-t interval (which on such a mix can leave [0, 1]), and is not t-tested."""
    hand_made_study(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "| bert | movement | 0.1 | 3 | 0.100 | 2 of 3 | 0.8000 (one run) |" in report
    assert "| bert | movement | 0.5 | 3 | 0.500 | 1 of 3 | 0.8000 (0.8000 to 0.8000) |" in report
    assert "| bert | movement_kd | 0.1 | 3 | 0.100 | 3 of 3 | - | - |" in report
    assert (
        "| movement | 0.1 | 0.100 / 0.100 | 3 | 2 / 0 | - | - | - | - | not tested: 2 of 6 runs ended at chance "
        "(a mix; see section 2) |" in report
    )
    assert "Student-t over seeds" not in report and "final (95% CI)" not in report


def test_claim_three_needs_the_lower_bound_at_plus_one_point_over_pairs_where_neither_run_ended_at_chance(
    tmp_path,
):
    """Claim 3's rule on a t-interval over units (method, seed): supported only when its lower bound reaches
    +0.01; a pair whose BERT run ended at chance is left out (it is claim 1's), and a subset chosen by the
    transient outcome is labelled exploratory."""
    from bermo_prune.bench.verdicts import MIN_GAIN

    def study(gains, bert_fall_seed=None):
        rows = []
        for seed, gain in enumerate(gains):
            for model in ("bert", "bermo"):
                rows.append(study_row(model, "none", None, seed, LEARN))
                for target in (0.3, 0.1):
                    curve = [[s, v + (gain if model == "bermo" else 0)] for s, v in LEARN]
                    if model == "bert" and seed == bert_fall_seed:
                        curve = FALL
                    if model == "bert" and seed == 0 and target == 0.1:
                        curve = [[100, 0.70], [200, 0.51], [300, 0.78], [400, 0.80]]  # a dip, then learned
                    rows.append(study_row(model, "l0", target, seed, curve))
        (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        write_baselines_json(tmp_path, rows)
        assert main(["report", str(tmp_path)]) == 0
        return (tmp_path / "REPORT.md").read_text()

    report = study([0.03, 0.04, 0.035, 0.03])
    d = np.array([0.03, 0.04, 0.035, 0.03])
    low, high = stats.t.interval(0.95, 3, loc=d.mean(), scale=stats.sem(d))
    assert low >= MIN_GAIN
    assert (
        "8 pairs in 4 independent units" in report
        and f"{low:+.4f} to {high:+.4f}, 3 degrees of freedom" in report
    )
    assert "otherwise inconclusive. Verdict: **supported**." in report
    assert "Exploratory (a subset chosen by outcome, not a test of the claim)" in report
    # A mean gain of 0.02 whose interval reaches below +0.01: not supported, not refuted.
    d = np.array([0.0, 0.04, 0.0, 0.04])
    assert stats.t.interval(0.95, 3, loc=d.mean(), scale=stats.sem(d))[0] < MIN_GAIN
    assert "Verdict: **inconclusive**." in study(list(d))
    # A unit whose BERT runs ended at chance is left out of the rule's pairs.
    report = study([0.03, 0.04, 0.035, 0.03], bert_fall_seed=3)
    assert "3. *BERMo" in report and "2 pairs hold a run that ended at chance" in report
    assert "6 pairs in 3 independent units" in report


def test_report_needs_the_baselines_and_names_the_command_that_writes_them(tmp_path, capsys):
    synthetic_results(tmp_path)
    (tmp_path / "baselines.json").unlink()
    assert main(["report", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "bermo-prune baselines SPEC.yaml --output" in capsys.readouterr().err


def test_a_further_model_arm_is_shown_beside_the_paired_comparison(tmp_path):
    """A third arm (bermo_last) gets its table rows, divergence counts and a colour; the claims still compare
    BERT with BERMo."""
    hand_made_study(tmp_path, extra=("bermo_last",))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "| bermo_last | movement | 0.5 | 3 | 0.500 | 0 of 3 |" in report
    assert (
        "Other arms (shown, not part of the BERT-BERMo test): bermo_last ended at chance in 0 of 6 units"
        in report
    )
    assert "Undistilled series: BERT 2 of 3 units (4 of 9 runs), BERMo 0 of 3 units" in report
    assert "| bermo_last | movement | 0.1 | " in report and "| bermo_last | none | dense |" in report


def test_report_states_the_sweep_time_from_its_log(tmp_path):
    synthetic_results(tmp_path)
    sittings = [
        {
            "started": "2026-01-01T10:00:00+0000",
            "finished": "2026-01-01T10:10:00+0000",
            "elapsed_s": 600.0,
            "workers": 2,
            "threads_per_worker": 1,
            "ran": 10,
            "skipped": 0,
        },
        {
            "started": "2026-01-02T09:00:00+0000",
            "finished": "2026-01-02T10:06:40+0000",
            "elapsed_s": 4000.0,
            "workers": 2,
            "threads_per_worker": 1,
            "ran": 15,
            "skipped": 10,
        },
    ]
    meta = {
        "spec": "benchmarks/x/spec.yaml",
        "spec_text": "base: r.yaml\n",
        "sittings": sittings,
        "elapsed_s": 4600.0,
    }
    (tmp_path / "sweep.json").write_text(json.dumps(meta))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert (
        "Time: the sweep took 1 h 17 min of wall-clock time in 2 sitting(s) (2026-01-01T10:00:00+0000 to "
        "2026-01-02T10:06:40+0000), 2 parallel workers of 1 torch thread(s)" in report
    )
    assert ".venv/bin/bermo-prune bench benchmarks/x/spec.yaml" in report
    assert "```yaml\nbase: r.yaml\n```" in report


def test_report_names_the_machines_when_rows_trained_on_more_than_one(tmp_path):
    synthetic_results(tmp_path)
    path = tmp_path / "results.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    gpu = {
        "device": "cuda: NVIDIA H200",
        "torch": "2.11.0+cu130",
        "transformers": "5.17.0",
        "python": "3.12.3",
    }
    for r in rows[:2]:
        r["environment"] = gpu
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sitting = {
        "started": "a",
        "finished": "b",
        "elapsed_s": 60.0,
        "workers": 1,
        "threads_per_worker": 2,
        "ran": 1,
    }
    meta = {
        "sittings": [
            {**sitting, "device": "cpu: x86_64, 2 cores"},
            {**sitting, "device": "cpu: x86_64, 2 cores"},
            {**sitting, "device": "cuda: NVIDIA H200 x1"},
        ],
        "elapsed_s": 180.0,
    }
    (tmp_path / "sweep.json").write_text(json.dumps(meta))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert (
        "Machines: the sittings ran on cpu: x86_64, 2 cores (2), cuda: NVIDIA H200 x1 (1). Rows that finished on "
        f"cuda: NVIDIA H200 (torch 2.11.0+cu130, transformers 5.17.0): {rows[0]['run']}, {rows[1]['run']}. Rows "
        f"that do not record their machine (no `environment` field): {len(rows) - 2}. A row records the machine its "
        "run finished on" in report
    )
    # the by-seed table marks the GPU runs
    by_seed = report[report.index("### Every run, by seed") :]
    assert "**g**: trained on a GPU, the other runs on CPUs" in by_seed
    assert len(re.findall(r"\d \*\*[a-z]*g\*\* \|", by_seed)) == 2
    # sittings with times: the second began before the first had finished
    timed = [
        {**sitting, "started": "2026-01-01T10:00:00+0000", "finished": "2026-01-01T11:00:00+0000"},
        {**sitting, "started": "2026-01-01T10:30:00+0000", "finished": "2026-01-01T10:40:00+0000"},
        {**sitting, "started": "2026-01-01T12:00:00+0000", "finished": "2026-01-01T12:10:00+0000"},
    ]
    (tmp_path / "sweep.json").write_text(json.dumps({**meta, "sittings": timed}))
    assert main(["report", str(tmp_path)]) == 0
    assert (
        "1 sitting(s) overlapped an earlier one (run beside it on another machine), so the first figure, a sum over "
        "sittings, counts their shared time twice." in (tmp_path / "REPORT.md").read_text()
    )
    # one machine throughout: no such line
    meta["sittings"] = meta["sittings"][:2]
    (tmp_path / "sweep.json").write_text(json.dumps(meta))
    path.write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "environment"}) + "\n" for r in rows)
    )
    assert main(["report", str(tmp_path)]) == 0
    assert "Machines:" not in (tmp_path / "REPORT.md").read_text()


def test_steps_to_and_missing_results(tmp_path, capsys):
    assert steps_to([[100, 0.5], [200, 0.8], [300, 0.9]], 0.8) == 200
    assert steps_to([[100, 0.5]], 0.8) is None
    # 90% of the mean of 700/1000 and 840/1000 is 693/1000 exactly, but it rounds one ulp above 0.693: a tie is reached
    level = 0.9 * float(np.mean([0.700, 0.840]))
    assert level > 0.693
    assert steps_to([[100, 0.692], [200, 0.693], [300, 0.7]], level) == 200
    assert steps_to([[100, 0.692], [200, 0.6929999]], level) is None
    assert steps_to([[100, 0.693 - 2e-9]], level) is None  # past the slack: a near miss is no tie
    assert main(["report", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "no results.jsonl" in capsys.readouterr().err


def _regenerate(committed, tmp_path) -> str:
    """REPORT.md as `bermo-prune report` writes it from a copy of the committed results, sweep log, notes and retrain log, after
    checking that it equals the committed one (bar the lines naming the directory and the versions)."""
    import shutil

    for name in (
        "results.jsonl",
        "sweep.json",
        "baselines.json",
        "REPORT.md",
        "fig_pareto.png",
        "fig_mix.png",
    ):
        assert (committed / name).is_file(), name
    again = tmp_path / committed.name
    again.mkdir()
    for name in ("results.jsonl", "sweep.json", "baselines.json", "notes.md", "retrained.jsonl"):
        if name != "retrained.jsonl" or (committed / name).is_file():  # retrains lend predictions
            shutil.copy(committed / name, again / name)
    assert main(["report", str(again)]) == 0

    def comparable(text):
        skip = ("Versions:", "This report was generated with")
        return [line for line in text.splitlines() if not line.startswith(skip)]

    text = (again / "REPORT.md").read_text()
    assert comparable(text) == comparable((committed / "REPORT.md").read_text())
    return text


def test_committed_sst2_report_is_what_report_writes_from_its_results(tmp_path):
    """benchmarks/sst2_tiny/REPORT.md is generated, not edited: the same command on the committed results and
    sweep log writes the same report (bar the line naming the directory and the versions line)."""
    from .conftest import ROOT

    committed = ROOT / "benchmarks" / "sst2_tiny"
    rows = [json.loads(x) for x in (committed / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 102 and {r["model"] for r in rows} == {"bert", "bermo"}
    assert {r["method"] for r in rows} == {"none", "magnitude", "movement", "soft_movement", "l0"}
    report = _regenerate(committed, tmp_path)
    # Penalty cells whose two models ended far apart in remaining weights are not counted as paired findings.
    assert "- Left out of that count: 8 penalty cells" in report
    # It says what it is: a smoke test of the tooling (hand-written notes.md, under a heading that says so).
    assert "## Notes (written by hand, not generated)\n\n**A tooling smoke test" in report


def test_the_committed_real_encoder_report_is_what_report_writes_from_its_results(tmp_path):
    """benchmarks/sst2_minilm (all-MiniLM-L6-v2, full SST-2) is the headline study and it is complete: every cell of
    its spec has its row (in the spec's order; failed runs would stay in as rows), the dense baselines reach 0.85 on
    every seed, and REPORT.md is exactly what `bermo-prune report` writes from the committed results, sweep log and
    hand-written notes."""
    from bermo_prune.bench.sweep import load_spec

    from .conftest import ROOT

    committed = ROOT / "benchmarks" / "sst2_minilm"
    spec = load_spec(committed / "spec.yaml")
    assert len(spec.cells) == 90
    rows = [json.loads(x) for x in (committed / "results.jsonl").read_text().splitlines()]
    assert [r["run"] for r in rows] == [c.name for c in spec.cells]  # every cell, once, in the spec's order
    assert all(r["steps"] == 1000 for r in rows if r["status"] == "ok")
    dense = {(r["model"], r["seed"]): r["final"] for r in rows if r["method"] == "none"}
    assert {model for model, _ in dense} == {"bert", "bermo"} and min(dense.values()) >= 0.85, dense
    report = _regenerate(committed, tmp_path)
    failed = sum(r["status"] != "ok" for r in rows)
    assert f"{len(rows)} runs ({failed} failed)" in report
    assert "## Notes (written by hand, not generated)" in report


def _sweep_in_sittings(name: str, planned: int):
    """A committed study that runs in sittings: its spec plans ``planned`` cells and every committed row is one of
    them, once. Returns the study's directory and its rows."""
    from bermo_prune.bench.sweep import load_spec

    from .conftest import ROOT

    committed = ROOT / "benchmarks" / name
    spec = load_spec(committed / "spec.yaml")
    assert len(spec.cells) == planned
    rows = [json.loads(x) for x in (committed / "results.jsonl").read_text().splitlines()]
    names = [r["run"] for r in rows]
    assert len(names) == len(set(names)) and set(names) <= {c.name for c in spec.cells}
    return committed, rows


def test_the_reference_pace_report_is_what_report_writes_from_its_results_so_far(tmp_path):
    """benchmarks/sst2_minilm_ref (issue #26) runs in sittings: every committed row is a cell of its spec, once, and
    ran the full 3 epochs; soft-movement rows are within 0.01 of their target; and REPORT.md is what `bermo-prune
    report` writes from the committed rows, sweep log and notes (regenerated with every row committed)."""
    committed, rows = _sweep_in_sittings("sst2_minilm_ref", 45)
    assert all(r["steps"] == 6315 for r in rows if r["status"] == "ok")
    for r in rows:
        if r["method"] == "soft_movement" and r["status"] == "ok":
            assert abs(r["remaining"] - r["target"]) <= 0.01, r["run"]
    report = _regenerate(committed, tmp_path)
    assert f"{len(rows)} runs (" in report
    assert "## Notes (written by hand, not generated)" in report


def test_the_convergence_report_is_what_report_writes_from_its_results_so_far(tmp_path):
    """benchmarks/sst2_convergence (issue #31) runs in sittings: every committed row is a cell of its spec, once,
    stopped at step 1,500 with its subset curve to that step; REPORT.md is what `bermo-prune report` writes from the
    committed rows, sweep log and notes, and it states claim 2's rule, the ratio over the counted units and the power
    calculation."""
    committed, rows = _sweep_in_sittings("sst2_convergence", 14)
    for r in rows:
        assert r["steps"] == 1500, r["run"]
        assert [p[0] for p in r["fine_curve"]] == list(range(0, 1501, 10)), r["run"]
    report = _regenerate(committed, tmp_path)
    assert f"{len(rows)} runs (" in report
    assert "Rule (fixed before the numbers): supported only if the 95% t-interval" in report
    assert "BERT/BERMo ratio of crossing steps over " in report and "Power (criterion fixed before" in report
    assert "## Notes (written by hand, not generated)" in report
    # complete: six dense pairs counted, the verdict by the rule, and the exploratory table beside it
    assert "Unfinished sweep" not in report and "over 6 counted units" in report
    assert "Verdict: **not supported**: the interval excludes a 1.15x speed-up at 95% confidence" in report
    assert "### How the ratio depends on the level (exploratory)" in report


def test_claim_two_is_inconclusive_when_every_pair_gives_the_same_ratio(tmp_path):
    """Steps to the level are multiples of the evaluation interval, so a few pairs can all give the same ratio; their
    Student-t interval then has no width and must not rule out the paper's speed-up."""
    rows = synthetic_results(tmp_path)
    for r in rows:
        if r["status"] == "ok":  # every run reaches 95% of its dense accuracy at its second evaluation
            r["curve"] = [[100, 0.5], [200, 0.95], [300, 0.95]]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "BERT/BERMo ratio 1.00 (95% CI over units 1.00 to 1.00)" in report
    assert (
        "Verdict: **inconclusive**: every unit gives the same ratio, so the interval has no width and bounds "
        "nothing; more units, or finer evaluation, are needed." in report
    )
    # BERT one evaluation later in every pair: six units all at 1.5, whose t-interval is 1.5 to 1.5000000000000002
    # in floats; a zero-width interval "above 1" must not read supported
    for r in rows:
        if r["status"] == "ok" and r["model"] == "bert":
            r["curve"] = [[100, 0.5], [200, 0.5], [300, 0.95]]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "in 6 unit(s), counted as independent" in report
    assert "BERT/BERMo ratio 1.50 (95% CI over units 1.50 to 1.50)" in report
    assert "Verdict: **inconclusive**: every unit gives the same ratio" in report


class _Starts:
    """A study whose runs start pruning where ``starts`` says (by run name)."""

    def __init__(self, starts):
        self.starts = starts

    def start(self, row):
        return self.starts[row["run"]]


def _pair(method, target, seed, bert_steps, bermo_steps, start, teacher=None):
    rows = [
        {
            "run": f"{m}_{method}_{target}_s{seed}",
            "model": m,
            "method": method,
            "seed": seed,
            "teacher": teacher,
        }
        for m in ("bert", "bermo")
    ]
    return tuple(rows), (bert_steps, bermo_steps), {r["run"]: start for r in rows}


def test_claim_two_units_group_a_series_and_seed_and_fold_only_whole_warm_up_groups():
    """The levels of one (series, seed) are one unit even where one level crossed before pruning started and another
    after; a seed's undistilled series that all crossed before pruning are one warm-up unit; a distilled series
    (taught from step 0) is not folded into the undistilled warm-up unit."""
    from bermo_prune.bench.verdicts import BEFORE_PRUNING, step_units

    made = [
        _pair("movement", 0.5, 0, 750, 500, 1000),  # before pruning
        _pair("movement", 0.1, 0, 1250, 1000, 1000),  # after: the (movement, 0) group stays whole
        _pair("magnitude", 0.1, 0, 750, 750, 1000),  # before, alone in its group: seed 0's warm-up unit
        _pair("soft_movement", 0.1, 0, 500, 500, 1000),  # before too: the same warm-up unit
        _pair("movement_kd", 0.1, 0, 500, 250, 1000, teacher="bert_none_s0"),  # before, distilled: its own
        _pair("movement", 0.5, 1, 900, 1200, 1000),  # one crossing after pruning started: not a warm-up unit
    ]
    starts = {k: v for *_, s in made for k, v in s.items()}
    units = step_units([p for p, _, _ in made], [st for _, st, _ in made], _Starts(starts))
    assert units == {
        ("movement", 0): [pytest.approx(np.log(1.5)), pytest.approx(np.log(1.25))],
        (BEFORE_PRUNING, "undistilled", 0): [0.0, 0.0],
        (BEFORE_PRUNING, "distilled", 0): [pytest.approx(np.log(2.0))],
        ("movement", 1): [pytest.approx(np.log(0.75))],
    }


def test_the_report_opens_with_the_plain_answer_read_from_its_sections(tmp_path):
    """Issue #26 item 6: per model and series, the units that ended at chance with their seeds (BERT's seed 0 at
    every target, seed 1 at 0.1; BERMo's seed 0 dips after pruning starts and learns again), the control arm's
    reading with its reason, each model's cells against the bag-of-words line and its dense median, and each
    claim's verdict exactly as the claims section gives it."""
    hand_made_study(tmp_path, extra=("bermo_last",))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    answer = report[report.index("## The answer, plainly") : report.index("## Findings")]
    assert (
        "   - BERT: movement, seeds 0-2: ended at chance in 2 of 3 (seeds 0, 1), at chance after pruning started "
        "in 2 (seeds 0, 1)." in answer
    )
    assert (
        "   - BERMo: movement, seeds 0-2: ended at chance in 0 of 3, at chance after pruning started in 1 (seed 0)."
        in answer
    )
    assert (
        "2. **Do the control arms (`bermo_last`) behave like BERT or like BERMo?** `bermo_last` under movement: "
        "**in between or undecided** (undecided: BERT vs BERMo, vs BERT, vs BERMo cannot decide at these numbers "
        "of units)" in answer
    )
    # BERT's learned runs end at 0.80 (LEARN), BERMo's at 0.80 + 0.01 * seed; the line is 0.79, dense 0.80
    assert (
        "   - BERMo: 3 pruned cells; above the line: 3 of 3; best movement 0.5, 0.8100 (+0.0200 against the line); "
        "against its dense median (0.8000): +0.0100 for the best, +0.0100 to +0.0100 over the cells."
        in answer
    )
    claims = report[report.index("## The paper's claims") :]
    verdicts = [
        line.split("Verdict: **")[1].split("**")[0]
        for line in claims.splitlines()[:12]
        if "Verdict: **" in line
    ]
    assert (
        "4. **What remains of the paper's claims?** BERMo prunes stably where BERT diverges (claim 1): "
        in answer
    )
    assert (
        f"(claim 1): **{verdicts[0]}**: cannot decide: 3 units against 3 cannot reach p < 0.05" in answer
        and "converges faster (claim 2): **inconclusive**" in answer
    )
    assert (
        report.index("## The answer, plainly")
        < report.index("## Findings")
        < report.index("## The paper's claims")
    )


def test_claim_two_is_not_addressed_under_pruning_when_every_crossing_falls_before_pruning_starts(tmp_path):
    """Where every paired run reaches its level before its own pruning starts (every mask still at one), the
    rule's reading is kept beside why it does not answer the claim: the crossing steps, the pruning start, each
    model's own level and the ratio at one level for both. One crossing at or after its run's start, or a pair
    reached by one model only, gives the rule's verdict alone."""
    # movement at 0.1 ends lowest, and BERT's runs there do not all reach BERT's level: those pairs are left out
    rows = [r for r in synthetic_results(tmp_path) if r.get("target") != 0.1]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_baselines_json(tmp_path, rows, start=1000)
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    ok = [r for r in rows if r["status"] == "ok"]
    dense = {
        m: np.mean([r["final"] for r in ok if r["model"] == m and r["method"] == "none"])
        for m in ("bert", "bermo")
    }
    cells = {(r["model"], r["method"], r["target"], r["seed"]): r for r in ok if r["method"] != "none"}
    paired = [
        (r, cells[("bermo", *k[1:])])
        for k, r in cells.items()
        if k[0] == "bert" and ("bermo", *k[1:]) in cells
    ]
    own = [
        (steps_to(a["curve"], 0.95 * dense["bert"]), steps_to(b["curve"], 0.95 * dense["bermo"]))
        for a, b in paired
    ]
    common = 0.95 * min(dense.values())  # BERT's (its runs end 0.01 lower in this set)
    one = [(steps_to(a["curve"], common), steps_to(b["curve"], common)) for a, b in paired]
    steps = [x for p in own for x in p]
    assert len(paired) == 6 and (min(steps), max(steps)) == (200, 450)
    # every crossing falls before pruning starts: the two methods' pairs of a seed timed the same dense warm-up,
    # so they are one unit a seed (their log ratios averaged), 3 units
    by_seed = {}
    for (a, b), (r, _) in zip(one, paired, strict=True):
        by_seed.setdefault(r["seed"], []).append(np.log(a / b))
    logs = np.array([np.mean(v) for v in by_seed.values()])
    assert len(logs) == 3 and all(len(v) == 2 for v in by_seed.values())
    half = stats.t.ppf(0.975, len(logs) - 1) * stats.sem(logs)
    ratio = (
        f"{np.exp(logs.mean()):.2f} ({np.exp(logs.mean() - half):.2f} to {np.exp(logs.mean() + half):.2f})"
    )
    reading = (
        "**not addressed under pruning**: the rule reads supported, but every paired crossing (steps 200 to 450) "
        "falls before its run's pruning starts (step 1,000), while every mask is at one (the dense forward and data "
        "order of its seed; trained scores can still change the weights' steps through a shared gradient-norm "
        "clip), so the ratio times fine-tuning before pruning, on the evaluation grid, not convergence under "
        f"pruning; each model is timed to its own dense mean (levels BERT {0.95 * dense['bert']:.4f}, BERMo "
        f"{0.95 * dense['bermo']:.4f}), and at one level for both (BERT's, accuracy {common:.4f}) the same pairs "
        f"give {ratio} over 3 units"
    )
    assert "lies below 1.15. Verdict: " + reading + "." in report
    # the rule's own line: the same 3 warm-up units, at each model's own level
    own_by_seed = {}
    for (a, b), (r, _) in zip(own, paired, strict=True):
        own_by_seed.setdefault(r["seed"], []).append(np.log(a / b))
    own_logs = np.array([np.mean(v) for v in own_by_seed.values()])
    assert (
        "over 6 pruned (method, level, seed) pairs reached by both, in 3 unit(s), counted as independent"
        in report
        and f"3 of the 3 are such warm-up units): BERT/BERMo ratio {np.exp(own_logs.mean()):.2f}" in report
    )
    assert "converges faster (claim 2): " + reading + "; is more parameter-efficient" in report  # the answer
    # per-run starts: "or later" where they differ; BERMo's own start at its latest crossing drops the reading
    baselines = json.loads((tmp_path / "baselines.json").read_text())
    for name, run in baselines["runs"].items():
        if run["pruning_start"] is not None and name.startswith("bert_l0"):
            run["pruning_start"] = 1200
    (tmp_path / "baselines.json").write_text(json.dumps(baselines))
    assert main(["report", str(tmp_path)]) == 0
    assert (
        "falls before its run's pruning starts (step 1,000 or later)" in (tmp_path / "REPORT.md").read_text()
    )
    latest = max(steps_to(b["curve"], 0.95 * dense["bermo"]) for _, b in paired)
    for _, b in paired:
        baselines["runs"][b["run"]]["pruning_start"] = latest
    (tmp_path / "baselines.json").write_text(json.dumps(baselines))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert (
        "lies below 1.15. Verdict: **supported**." in report and "not addressed under pruning" not in report
    )
    # the full synthetic set: one pair reached by BERMo only, so the rule's verdict stands alone
    rows = synthetic_results(tmp_path)
    write_baselines_json(tmp_path, rows, start=1000)
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "reached by BERMo only in 1 pair" in report and "not addressed under pruning" not in report


def test_narrow_log_axis_labels_each_level_once():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bermo_prune.bench.report import _label_narrow_log_axis

    fig, ax = plt.subplots()
    ax.set_xscale("log")
    # a target of 0.1, a run that ended at 0.1008 and the dense runs at 1: two labels, not three overlapping ones
    _label_narrow_log_axis(ax, [0.1000005, 0.1008, 1.0, 0.3])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.3", "1"]
    assert ax.get_xlim() == pytest.approx((0.05000025, 2.0))
    plt.close(fig)


def test_plain_answer_does_not_rank_a_cell_of_fewer_than_three_runs(tmp_path):
    """A cell of one run (an exploratory arm, or a sweep still running) is listed beside a model's best pruned cell,
    not ranked as it: one run's draw is not set against cells of three seeds."""
    hand_made_study(tmp_path, extra=("bermo_last",))
    path = tmp_path / "results.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    one = next(r for r in rows if r["model"] == "bermo" and r["method"] == "movement" and r["seed"] == 0)
    path.write_text(
        path.read_text()
        + json.dumps({**one, "run": "bermo_soft_movement_0.5_s0", "method": "soft_movement", "final": 0.95})
        + "\n"
    )
    baselines = json.loads((tmp_path / "baselines.json").read_text())
    baselines["runs"]["bermo_soft_movement_0.5_s0"] = baselines["runs"][one["run"]]
    (tmp_path / "baselines.json").write_text(json.dumps(baselines))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    answer = report[report.index("## The answer, plainly") : report.index("## Findings")]
    assert (
        "best movement 0.5, 0.8100 (+0.0200 against the line); against its dense median (0.8000): +0.0100 for the "
        "best, +0.0100 to +0.0100 over the ranked cells; not ranked (fewer than 3 runs): soft_movement 0.5 (1 run, "
        "median 0.9500)." in answer
    )
