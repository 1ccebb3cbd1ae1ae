"""Report generation on a small synthetic results set: figures written, numbers equal direct scipy calls."""

import json

import numpy as np
from scipy import stats

from bermo_prune.bench.verdicts import steps_to
from bermo_prune.cli import EXIT_BAD_INPUT, main


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
    return rows


def finals(rows, model, method, target):
    return [r["final"] for r in rows if (r["model"], r["method"], r.get("target")) == (model, method, target)]


def test_report_figures_and_numbers(tmp_path, capsys):
    rows = synthetic_results(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    for png in ("fig_pareto.png", "fig_mix.png"):
        assert (tmp_path / png).stat().st_size > 10_000 and f"]({png})" in report
    # Paired comparison of movement at 0.1 equals scipy's.
    bert = [
        r["final"] for r in rows if (r["model"], r["method"], r.get("target")) == ("bert", "movement", 0.1)
    ]
    bermo = [
        r["final"] for r in rows if (r["model"], r["method"], r.get("target")) == ("bermo", "movement", 0.1)
    ]
    p = stats.ttest_rel(bermo, bert).pvalue
    assert (
        f"| movement | 0.1 | 0.100 / 0.100 | 3 | {np.mean(np.subtract(bermo, bert)):+.4f}" in report
        and f"| {p:.3g} |" in report
    )
    # Divergence rate and the failed run are reported, not dropped.
    assert "| l0 | 1 | 0.300 / 0.300 | 3 |" in report  # a penalty row shows both models' reached shares
    # ... and it ends 0.08 above the evaluation that counted its collapse: not recovered
    assert "| bert | movement | 0.1 | 1 / 3 | 0 | collapse |" in report
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
    assert f"over 3 pruned (method, level) cells, paired by seed: significantly higher in {higher}" in report
    assert (
        f"significantly lower in {lower}" in report
        and f"no significant difference in {3 - higher - lower}" in report
    )
    assert "- Diverged runs (section 2): BERT 1 of 12; BERMo 0 of 12." in report
    # The paper's claims, each verdict from its stated rule on numbers equal to direct scipy calls.
    p = stats.fisher_exact([[1, 8], [0, 9]], alternative="greater")[1]
    assert (
        f"Diverged pruned runs (section 2's definition): BERT 1 of 9 (11%), BERMo 0 of 9 (0%); one-sided Fisher "
        f"exact test that BERT diverges more often: p = {p:.3g}." in report
    )
    assert "Per method (BERT vs BERMo): l0 0/3 vs 0/3; movement 1/6 vs 0/6." in report
    assert "Verdict: **inconclusive**: fewer BERMo divergences, but not significantly." in report
    assert (
        "The count above includes collapses the run recovered from (section 2): BERT 0 of its 1, BERMo 0 of its 0. "
        f"Runs that ended diverged: BERT 1 of 9, BERMo 0 of 9 (one-sided Fisher exact test: p = {p:.3g})."
        in report
    )
    # BERT's seed-0 movement-0.1 run ends lower (its own noise) and never reaches 95% of BERT's dense mean
    assert "over 8 pruned (method, level, seed) pairs reached by both: BERT/BERMo ratio 1.66" in report
    assert "reached by BERMo only in 1 pair, by BERT only in 0 pairs." in report
    assert "lies below 1.15. Verdict: **supported**." in report
    diff = np.subtract(finals(rows, "bermo", "l0", 1.0), finals(rows, "bert", "l0", 1.0))
    res = stats.ttest_rel(finals(rows, "bermo", "l0", 1.0), finals(rows, "bert", "l0", 1.0))
    assert f"3 pairs, BERMo - BERT {diff.mean():+.4f}" in report and f"p = {res.pvalue:.3g}" in report
    assert (
        "No run in these pairs diverged: the comparison is one of accuracy at equal weights alone." in report
    )
    assert report.index("## The paper's claims") < report.index("## 1.")
    assert "- Best BERT at <= 10% remaining:" in report and "(movement 0.1, 10.0% remaining)" in report


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


def test_claim_one_says_how_many_divergences_the_runs_recovered_from(tmp_path):
    """Claim 1's rule counts every divergence; beside it the report counts the recovered collapses (section 2's
    column) and the runs that ended diverged, with their own Fisher test equal to a direct scipy call."""
    rows = synthetic_results(tmp_path)
    for r in rows:  # BERMo's movement 0.5 run of seed 1 collapses at step 200 (0.52) and ends learned again
        if r["run"] == "bermo_movement_0.5_s1":
            r.update(diverged=True, divergence_kind="collapse", divergence_step=200)
            r["curve"][1][1] = 0.52
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    p = stats.fisher_exact([[1, 8], [1, 8]], alternative="greater")[1]
    p_end = stats.fisher_exact([[1, 8], [0, 9]], alternative="greater")[1]
    assert (
        "BERT 1 of 9 (11%), BERMo 1 of 9 (11%); one-sided Fisher exact test that BERT diverges more often: "
        f"p = {p:.3g}." in report
    )
    assert "Verdict: **not supported**: BERMo diverged at least as often as BERT." in report
    assert (
        "The count above includes collapses the run recovered from (section 2): BERT 0 of its 1, BERMo 1 of its 1. "
        f"Runs that ended diverged: BERT 1 of 9, BERMo 0 of 9 (one-sided Fisher exact test: p = {p_end:.3g})."
        in report
    )
    assert "| bermo | movement | 0.5 | 1 / 3 | 1 | collapse |" in report
    assert "| bert | movement | 0.1 | 1 / 3 | 0 | collapse |" in report


def test_claim_three_is_restated_without_the_pairs_holding_a_diverged_run(tmp_path):
    """A penalty pair whose BERT run diverged counts in claim 3's verdict, and the report says how much of the gain
    is that divergence: the same comparison on the other pairs, equal to a direct scipy call."""
    rows = synthetic_results(tmp_path)
    for r in rows:
        if (r["model"], r["method"], r["seed"]) == ("bert", "l0", 0):
            r.update(diverged=True, divergence_kind="no_learning", final=0.509)
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    bert, bermo = finals(rows, "bert", "l0", 1.0)[1:], finals(rows, "bermo", "l0", 1.0)[1:]
    res = stats.ttest_rel(bermo, bert)
    assert (
        "1 of the 3 pairs hold a diverged run (claim 1), so the difference above mixes stability with accuracy at "
        f"equal weights. Without them: 2 pairs, BERMo - BERT {np.mean(np.subtract(bermo, bert)):+.4f}"
        in report
    )
    assert f"paired t-test p = {res.pvalue:.3g}." in report


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


def test_steps_to_and_missing_results(tmp_path, capsys):
    assert steps_to([[100, 0.5], [200, 0.8], [300, 0.9]], 0.8) == 200
    assert steps_to([[100, 0.5]], 0.8) is None
    assert main(["report", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "no results.jsonl" in capsys.readouterr().err


def _regenerate(committed, tmp_path) -> str:
    """REPORT.md as `bermo-prune report` writes it from a copy of the committed results, sweep log and notes, after
    checking that it equals the committed one (bar the lines naming the directory and the versions)."""
    import shutil

    for name in ("results.jsonl", "sweep.json", "REPORT.md", "fig_pareto.png", "fig_mix.png"):
        assert (committed / name).is_file(), name
    again = tmp_path / committed.name
    again.mkdir()
    for name in ("results.jsonl", "sweep.json", "notes.md"):
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
    assert "BERT/BERMo ratio 1.00 (95% CI 1.00 to 1.00)" in report
    assert (
        "Verdict: **inconclusive**: every pair gives the same ratio, so the interval has no width and bounds "
        "nothing; more pairs, or finer evaluation, are needed." in report
    )
