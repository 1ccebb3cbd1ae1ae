"""Convergence speed (issue #31): train.early_eval's subset and records, and every number the report derives from them
(interpolated crossing step, AUC, the log-ratio interval over units, the power calculation, claim 2's verdict)."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from bermo_prune.bench.convergence import (
    crossing_step,
    curve_auc,
    log_ratio_interval,
    mean_loss,
    power,
    sd_upper,
    units_needed,
)
from bermo_prune.cli import main
from bermo_prune.early_eval import stratified_subset

from .conftest import ROOT, hand_made_study, write_baselines_json

# ---- single-run numbers -------------------------------------------------------------------------------------------


def test_crossing_step_is_interpolated_between_evaluations():
    curve = [[0, 0.50], [10, 0.60], [20, 0.80], [30, 0.90]]
    assert crossing_step(curve, 0.70) == pytest.approx(15.0)  # halfway from 0.60 at 10 to 0.80 at 20
    assert crossing_step(curve, 0.65) == pytest.approx(12.5)
    assert crossing_step(curve, 0.80) == 20.0  # an evaluation exactly at the level
    assert crossing_step(curve, 0.45) == 0.0  # reached at the first evaluation
    assert crossing_step(curve, 0.95) is None
    # the first crossing counts, not a later one after a dip
    assert crossing_step([[0, 0.5], [10, 0.9], [20, 0.6], [30, 0.9]], 0.8) == pytest.approx(
        0 + 0.3 / 0.4 * 10
    )
    # a tie that rounds one ulp below the level is reached at its own step, as in verdicts.steps_to
    level = 0.9 * float(np.mean([0.700, 0.840]))
    assert level > 0.693
    assert crossing_step([[0, 0.5], [10, 0.693], [20, 0.8]], level) == 10.0
    assert crossing_step([[0, 0.5], [10, 0.693 - 2e-9], [20, 0.8]], level) > 10.0


def test_auc_is_the_mean_of_the_curve_up_to_a_fixed_step():
    curve = [[0, 0.5], [10, 0.7], [20, 0.9], [30, 0.9]]
    assert curve_auc(curve, 20) == pytest.approx((6 + 8) / 20)  # trapezoids 10 * 0.6 + 10 * 0.8
    # cut at 15 by linear interpolation (0.8 there): (6 + 5 * 0.75) / 15
    assert curve_auc(curve, 15) == pytest.approx(9.75 / 15)
    grid = np.linspace(0, 25, 25001)
    dense = np.interp(grid, [s for s, _ in curve], [v for _, v in curve])
    assert curve_auc(curve, 25) == pytest.approx(np.trapezoid(dense, grid) / 25, abs=1e-9)
    assert curve_auc(curve, 40) is None  # the curve stops before the window ends
    assert mean_loss([1.0, 0.5, 0.25, 0.0], 3) == pytest.approx(1.75 / 3) and mean_loss([1.0], 3) is None


def test_the_ratio_interval_is_a_t_interval_on_log_ratios():
    bert, bermo = np.array([120.0, 150.0, 135.0, 160.0]), np.array([100.0, 140.0, 110.0, 120.0])
    logs = np.log(bert / bermo)
    r = log_ratio_interval(list(logs))
    low, high = stats.t.interval(0.95, len(logs) - 1, loc=logs.mean(), scale=stats.sem(logs))
    assert r.mean == pytest.approx(stats.gmean(bert / bermo))
    assert (r.low, r.high) == (pytest.approx(math.exp(low)), pytest.approx(math.exp(high)))


def test_power_is_the_noncentral_t_probability_that_the_interval_lies_above_one():
    sd, n = 0.2, 12
    crit = stats.t.ppf(0.975, n - 1)
    nc = math.log(1.15) * math.sqrt(n) / sd
    assert power(sd, n) == pytest.approx(1 - stats.nct.cdf(crit, n - 1, nc))
    # a simulation of the criterion itself: draw n log ratios at mean log(1.15), SD sd; how often is the 95%
    # t-interval's lower bound above 0?
    rng = np.random.default_rng(0)
    x = rng.normal(math.log(1.15), sd, size=(40_000, n))
    lower = x.mean(1) - crit * x.std(1, ddof=1) / math.sqrt(n)
    assert power(sd, n) == pytest.approx((lower > 0).mean(), abs=0.01)
    # units_needed: the smallest n reaching 80%
    need = units_needed(sd)
    assert power(sd, need) >= 0.8 > power(sd, need - 1)
    assert (
        units_needed(0.05) == 4 and units_needed(0.0) is None
    )  # a tiny spread still needs 2 degrees of freedom
    # the 80% upper confidence bound of an SD from n values: at sigma = bound, an SD as small as the one measured has
    # probability 0.2 ((n - 1) s^2 / sigma^2 is chi-square with n - 1 degrees of freedom)
    up = sd_upper(0.2, 3)
    assert up > 0.2 and stats.chi2.cdf(2 * 0.2**2 / up**2, 2) == pytest.approx(0.2)


def test_the_subset_is_stratified_fixed_by_its_seed_and_recorded():
    labels = [0] * 400 + [1] * 500 + [2] * 100
    idx = stratified_subset(labels, 256, seed=0)
    assert idx == sorted(set(idx)) and len(idx) == 256
    counts = np.bincount([labels[i] for i in idx])
    assert list(counts) == [102, 128, 26]  # 102.4, 128, 25.6: the largest remainders round up
    assert stratified_subset(labels, 256, seed=0) == idx and stratified_subset(labels, 256, seed=1) != idx
    assert stratified_subset(labels[:100], 256, seed=0) == list(range(100))  # a small dev set: all of it
    assert len(stratified_subset(np.zeros(50), 10, seed=0)) == 10  # no labels (floats): a plain random subset


# ---- a run with train.early_eval -----------------------------------------------------------------------------------

TINY = [
    "model.num_layers=2",
    "model.hidden_size=64",
    "model.num_heads=2",
    "model.intermediate_size=128",
    "model.vocab_size=200",
    "data.synthetic_train_size=1000",
    "data.synthetic_dev_size=200",
    "train.max_steps=60",
    "train.eval_every=30",
    "train.lr=3e-3",
    "train.threads=1",
    "pruning.schedule.warmup=20",
    "pruning.schedule.cooldown=10",
]


def _run(tmp_path, name, *extra):
    from bermo_prune.recipe import load_recipe
    from bermo_prune.runner import run_recipe

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", [*TINY, *extra])
    return run_recipe(recipe, tmp_path / name, overwrite=True, progress=False).summary


def test_early_eval_records_the_subset_curve_and_every_loss_without_changing_training(tmp_path):
    """Step 0 and every 10 steps to 40 on a 64-example stratified subset; a loss for each of the 60 steps; the row the
    sweep writes carries both; and the run trains exactly as without it (the evaluations draw no training RNG)."""
    from bermo_prune.bench.sweep import Cell, _row

    on = ["train.early_eval.every=10", "train.early_eval.until=40", "train.early_eval.subset=64"]
    s = _run(tmp_path, "on", *on)
    off = _run(tmp_path, "off")
    early = s["early_eval"]
    assert [p[0] for p in early["curve"]] == [0, 10, 20, 30, 40]
    assert early["size"] == 64 and sum(early["per_class"].values()) == 64 and len(early["indices"]) == 64
    assert len(s["train_loss"]) == 60
    assert s["final"] == off["final"] and [h["eval"] for h in s["history"]] == [
        h["eval"] for h in off["history"]
    ]
    assert "early_eval" not in off and "train_loss" not in off
    logged = [json.loads(x) for x in (tmp_path / "on" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "early_eval" in r] == [0, 10, 20, 30, 40]
    losses = {r["step"]: r["loss"] for r in logged if "loss" in r}
    assert all(
        float(f"{losses[k]:.4g}") == s["train_loss"][k - 1] for k in losses
    )  # the logged losses, rounded
    cell = Cell("bert", "movement", 0.1, 42, "pruning.schedule.final")
    row = _row(cell, {"status": "ok", "summary": s})
    assert row["fine_curve"] == early["curve"] and row["train_loss"] == s["train_loss"]
    assert row["fine_eval"]["indices_sha256"] == early["indices_sha256"] and "indices" not in row["fine_eval"]
    assert "fine_curve" not in _row(cell, {"status": "ok", "summary": off})  # other rows stay as they were


def test_early_eval_survives_an_interruption_and_resume_exactly(tmp_path, monkeypatch):
    """SIGTERM at step 35 checkpoints there; the resumed run's subset curve and losses equal an uninterrupted run's
    (the hook's record is checkpointed with the run)."""
    import os
    import signal

    from bermo_prune.early_eval import EarlyEvalHook
    from bermo_prune.errors import RunInterrupted
    from bermo_prune.recipe import load_recipe
    from bermo_prune.runner import run_recipe

    on = ["train.early_eval.every=10", "train.early_eval.until=50", "train.early_eval.subset=64"]
    whole = _run(tmp_path, "whole", *on)
    original = EarlyEvalHook.on_step

    def stop_at_35(self, step, loss, model):
        out = original(self, step, loss, model)
        if step == 35 and loss is not None:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(EarlyEvalHook, "on_step", stop_at_35)
    with pytest.raises(RunInterrupted):
        _run(tmp_path, "cut", *on)
    monkeypatch.undo()
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", [*TINY, *on])
    again = run_recipe(recipe, tmp_path / "cut", resume=True, progress=False).summary
    assert again["early_eval"]["curve"] == whole["early_eval"]["curve"]
    assert again["train_loss"] == whole["train_loss"] and again["final"] == whole["final"]


def test_early_eval_keys_are_validated():
    from bermo_prune.errors import RecipeError
    from bermo_prune.recipe import load_recipe

    with pytest.raises(RecipeError) as info:
        load_recipe(
            ROOT / "recipes" / "quickstart.yaml", ["train.early_eval.evry=10", "train.early_eval.subset=1"]
        )
    text = str(info.value)
    assert "train.early_eval.evry: unknown key (did you mean 'every'?)" in text
    assert "train.early_eval.subset: must be >= 2, got 1" in text


# ---- claim 2 on the early-phase curves -----------------------------------------------------------------------------


def _curve(speed, top=0.86, every=10, until=300):
    """An accuracy curve rising linearly from 0.5 at step 0 to ``top`` at step ``speed``, flat after."""
    return [[s, round(0.5 + (top - 0.5) * min(1.0, s / speed), 6)] for s in range(0, until + 1, every)]


def _rows(speeds, dense_final=(0.86, 0.87)):
    """speeds: {(series, seed): (bert steps to the top, bermo steps)}; every run ends at its dense final."""
    rows = []
    for (series, seed), pair in speeds.items():
        for model, speed, final in zip(("bert", "bermo"), pair, dense_final, strict=True):
            target = None if series == "none" else 0.1
            rows.append(
                {
                    "run": f"{model}_{series}_{target}_s{seed}",
                    "model": model,
                    "method": series,
                    "pruning_method": series,
                    "teacher": None,
                    "target": target,
                    "seed": seed,
                    "status": "ok",
                    "remaining": 1.0 if target is None else 0.1,
                    "metric": "accuracy",
                    "final": final,
                    "best": final,
                    "diverged": False,
                    "divergence_kind": None,
                    "divergence_step": None,
                    "steps": 300,
                    "curve": [[100, 0.8], [200, final], [300, final]],
                    "mix": None,
                    "wall_time_s": 1.0,
                    "fine_curve": _curve(speed),
                    "fine_eval": {
                        "every": 10,
                        "until": 300,
                        "seed": 0,
                        "size": 256,
                        "per_class": {"0": 123, "1": 133},
                        "indices_sha256": "ab" * 32,
                    },
                    "train_loss": [round(0.7 * math.exp(-k / speed), 4) for k in range(1, 301)],
                }
            )
    return rows


def _report(tmp_path, rows, start=1000):
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_baselines_json(tmp_path, rows, start=start)
    assert main(["report", str(tmp_path)]) == 0
    return (tmp_path / "REPORT.md").read_text()


def _expected(speeds_counted, level):
    """The crossing steps and log ratios of the linear curves, computed directly."""
    logs = []
    for a, b in speeds_counted:
        ca, cb = crossing_step(_curve(a), level), crossing_step(_curve(b), level)
        logs.append(math.log(ca / cb))
    return np.array(logs)


def test_claim_two_on_fine_curves_states_its_rule_then_the_interval_over_units_and_the_power(tmp_path):
    """Dense units only (the movement units cross inside their warm-up, before pruning starts at step 1000, and are
    folded into the dense unit of their seed): the ratio's interval equals scipy's on the log ratios, the verdict
    follows the rule, and the power calculation uses the measured SD."""
    speeds = {
        ("none", s): (a, b) for s, (a, b) in enumerate([(150, 120), (170, 140), (160, 125), (180, 150)])
    }
    speeds.update({("movement", s): v for (_, s), v in list(speeds.items())})
    report = _report(tmp_path, _rows(speeds))
    level = 0.9 * 0.86
    logs = _expected([speeds[("none", s)] for s in range(4)], level)
    low, high = stats.t.interval(0.95, 3, loc=logs.mean(), scale=stats.sem(logs))
    assert math.exp(low) > 1
    inside = "inside the interval" if math.exp(low) <= 1.15 <= math.exp(high) else "below the interval"
    claim = report[report.index("2. *BERMo converges faster") :]
    assert claim.index("Rule (fixed before the numbers)") < claim.index("Numbers:")
    assert (
        f"Numbers: 4 counted units, BERT/BERMo ratio {math.exp(logs.mean()):.2f} (95% t-interval "
        f"{math.exp(low):.2f} to {math.exp(high):.2f}, 3 degrees of freedom; SD of the log ratios "
        f"{logs.std(ddof=1):.3f})" in claim
    )
    assert (
        "pruned units crossed inside their warm-up and not counted again: 4 (movement s0, movement s1, movement s2, "
        "movement s3)" in claim
    )
    assert f"Verdict: **supported**; 1.15x lies {inside}" in claim
    need = units_needed(logs.std(ddof=1))
    assert f"{logs.std(ddof=1):.3f}: {need} units ({need} seeds at 1 counted unit per seed)" in claim
    assert (
        "The t-test is symmetric: at the same SD, the same number of units gives the same power for the interval to "
        "lie below 1.15 (not supported) when the true ratio is 1." in claim
    )
    # section 3: the level, one row per unit with its interpolated crossing steps, the figure
    assert f"Level: accuracy {level:.4f}, 90% of the weaker model's dense mean" in report
    a, b = crossing_step(_curve(150), level), crossing_step(_curve(120), level)
    assert f"| none s0 | 1 | {a:.1f} | {b:.1f} | {a / b:.3f} |" in report
    assert "| movement s0 | 1 |" in report and report.count("| no (warm-up) |") == 4
    assert (tmp_path / "fig_convergence.png").stat().st_size > 10_000
    assert (
        "- Convergence on the early-phase curves (section 3; claim 2 reads this, not the coarse line above): "
        in report
    )
    assert f"BERT/BERMo ratio of the steps to accuracy {level:.4f}: " in report


def test_claim_two_on_fine_curves_counts_pruned_units_that_cross_after_pruning_starts(tmp_path):
    """With pruning from step 100, the movement units cross after it: 3 dense and 3 movement units, 6 in all; the
    AUC difference is a t-interval per series (not one over both: a pruned run shares its warm-up with the dense)."""
    speeds = {("none", s): v for s, v in enumerate([(150, 140), (160, 150), (170, 165)])}
    speeds.update({("movement", s): v for s, v in enumerate([(200, 190), (220, 180), (210, 205)])})
    report = _report(tmp_path, _rows(speeds), start=100)
    logs = _expected(list(speeds.values()), 0.9 * 0.86)
    low, high = stats.t.interval(0.95, 5, loc=logs.mean(), scale=stats.sem(logs))
    assert f"Numbers: 6 counted units, BERT/BERMo ratio {math.exp(logs.mean()):.2f} (95% t-interval" in report
    assert f"{math.exp(low):.2f} to {math.exp(high):.2f}, 5 degrees of freedom" in report
    for series in (
        "none",
        "movement",
    ):  # one interval per series: a pruned run shares its warm-up with the dense
        aucs = [
            curve_auc(_curve(b), 300) - curve_auc(_curve(a), 300)
            for (s, _), (a, b) in speeds.items()
            if s == series
        ]
        alow, ahigh = stats.t.interval(0.95, 2, loc=np.mean(aucs), scale=stats.sem(aucs))
        assert (
            f"AUC, BERMo - BERT, {series} over 3 units: {np.mean(aucs):+.4f} (95% t-interval {alow:.4f} to "
            f"{ahigh:.4f}" in report
        )
    expected = "**supported**" if math.exp(low) > 1 else "**inconclusive**"
    assert f"Verdict: {expected}" in report


def test_claim_two_on_fine_curves_not_supported_and_inconclusive(tmp_path):
    slower = {("none", s): v for s, v in enumerate([(100, 150), (100, 160), (100, 140), (100, 155)])}
    text = _report(tmp_path, _rows(slower))
    assert (
        "Verdict: **not supported**: the interval excludes a 1.15x speed-up at 95% confidence, at this level."
        in text
    )
    mixed = {("none", s): v for s, v in enumerate([(150, 100), (100, 150), (130, 120)])}
    assert "Verdict: **inconclusive**." in _report(tmp_path, _rows(mixed))
    one = {("none", 0): (150, 100)}
    assert (
        "Verdict: **inconclusive**: fewer than 2 counted units reached the level in both models."
        in _report(tmp_path, _rows(one))
    )


# ---- the specs -----------------------------------------------------------------------------------------------------


def test_the_convergence_specs_validate_offline(monkeypatch, capsys):
    """The SST-2 study and the GPU specs (MNLI, QQP from the hub) validate without the hub; every cell scores the
    fixed subset early on."""
    from bermo_prune.bench.sweep import load_spec
    from bermo_prune.recipe import load_recipe

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    paths = [
        ROOT / "benchmarks" / "sst2_convergence" / "spec.yaml",
        ROOT / "benchmarks" / "paper_convergence" / "mnli.yaml",
        ROOT / "benchmarks" / "paper_convergence" / "qqp.yaml",
    ]
    assert main(["validate", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    # dense seeds 0-5 and movement seed 0, both models
    assert "sst2_convergence/spec.yaml: ok (14 runs)" in out
    assert out.count("ok (12 runs)") == 2
    for path, task, name, every in zip(
        paths,
        ("sst2", "mnli", "qqp"),
        ("minilm-l6", "bert-base-uncased", "bert-base-uncased"),
        (10, 50, 50),
        strict=True,
    ):
        spec = load_spec(path)
        assert {(c.model, c.method, c.target) for c in spec.cells} == {
            ("bert", "none", None),
            ("bermo", "none", None),
            ("bert", "movement", 0.1),
            ("bermo", "movement", 0.1),
        }
        for cell in spec.cells:
            recipe = load_recipe(spec.base, [*spec.overrides, *cell.overrides()])
            assert recipe.task == task and recipe.model.name == name
            assert recipe.train.early_eval.every == every
    sst2 = load_spec(paths[0])
    movement = next(c for c in sst2.cells if c.method == "movement")
    r = load_recipe(sst2.base, [*sst2.overrides, *movement.overrides()])
    assert r.train.epochs == 3 and r.pruning.update_every == 1 and r.pruning.score_lr == 1e-2
    assert r.pruning.schedule.warmup == pytest.approx(
        0.1667
    ) and r.pruning.schedule.cooldown == pytest.approx(0.3333)


def test_a_run_stopped_early_says_so_in_its_row_and_in_the_report(tmp_path):
    """train.stop_after: the sweep row carries where the run stopped and where its schedules end (a run that ran to
    its end carries neither), and the report says before any number that its figures are of the stopped models."""
    from bermo_prune.bench.sweep import Cell, _row

    s = _run(tmp_path, "part", "train.stop_after=40")
    cell = Cell("bert", "movement", 0.1, 42, "pruning.schedule.final")
    row = _row(cell, {"status": "ok", "summary": s})
    assert (row["steps"], row["stopped_after"], row["planned_steps"]) == (40, 40, 60)
    whole = _row(cell, {"status": "ok", "summary": _run(tmp_path, "whole")})
    assert whole["steps"] == 60 and "stopped_after" not in whole and "planned_steps" not in whole

    study = tmp_path / "study"
    study.mkdir()
    rows = hand_made_study(study)
    assert main(["report", str(study)]) == 0
    assert "Runs stopped early" not in (study / "REPORT.md").read_text()
    rows[0] = {**rows[0], "stopped_after": 1500, "planned_steps": 6315}
    (study / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(study)]) == 0
    report = (study / "REPORT.md").read_text()
    assert (
        "**Runs stopped early** (`train.stop_after`: step 1,500 of 6,315). Every accuracy, remaining share, "
        "divergence count and verdict below describes the models at the step they stopped"
    ) in report
    # one pruned run stopped early among finished ones: claims 1 and 3 are still judged on the rows
    assert "not addressed by this sweep" not in report and "1. *BERMo prunes stably" in report
    assert "a finished pruned model at or below it has failed whatever its rank (runs stopped early" in report
    # every pruned run stopped early: they never reached their levels, so claims 1 and 3 are not addressed
    rows = [{**r, "stopped_after": 1500, "planned_steps": 6315} if r["method"] != "none" else r for r in rows]
    (study / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(study)]) == 0
    report = (study / "REPORT.md").read_text()
    for claim in (
        "1. *BERMo prunes stably on small data such as SST-2, where BERT diverges.*",
        "3. *BERMo is more parameter-efficient under penalty-based pruning.*",
    ):
        assert (
            f"{claim} Verdict: **not addressed by this sweep**: every pruned run stopped early (`train.stop_after`: "
            "step 1,500 of 6,315), before the end of its schedule, and the claim is about models at the end of theirs"
            in report
        )
    assert "Rule: supported if p < 0.05" not in report  # claim 1's test is not run


def test_the_sensitivity_table_times_the_same_units_to_other_levels_and_says_it_is_exploratory(tmp_path):
    """Each row's ratio is the t-interval of the log ratios of the linear curves at that row's level, computed
    directly: shares of the weaker dense mean, one subset example (1/256) either side of the rule's level, and a
    trailing running mean of 3 evaluations (on a linear curve it lags by one evaluation, 10 steps)."""
    speeds = {("none", s): v for s, v in enumerate([(150, 140), (160, 120), (170, 165)])}
    report = _report(tmp_path, _rows(speeds))
    assert "### How the ratio depends on the level (exploratory)" in report
    assert "added after the three-seed results were seen" in report
    weaker = 0.86
    for label, level in (
        ("90.0% of dense (the rule's level)", 0.9 * weaker),
        ("97.5% of dense", 0.975 * weaker),
        ("90% of dense, one subset example lower", 0.9 * weaker - 1 / 256),
        ("90% of dense, one subset example higher", 0.9 * weaker + 1 / 256),
    ):
        logs = _expected(list(speeds.values()), level)
        low, high = stats.t.interval(0.95, 2, loc=logs.mean(), scale=stats.sem(logs))
        faster = int((logs > 0).sum())
        assert (
            f"| {label} | {level:.4f} | 3 | {math.exp(logs.mean()):.3f} ({math.exp(low):.3f} to "
            f"{math.exp(high):.3f}) | {faster} of 3 |" in report
        ), label
    # the running mean: on a linear rise the mean of the last 3 points is the value 10 steps back, so every
    # crossing comes 10 steps later
    smooth = [
        math.log(
            (crossing_step(_curve(a), 0.9 * weaker) + 10) / (crossing_step(_curve(b), 0.9 * weaker) + 10)
        )
        for a, b in speeds.values()
    ]
    row = f"| 90% of dense, running mean of 3 evaluations | {0.9 * weaker:.4f} | 3 | {math.exp(np.mean(smooth)):.3f} ("
    assert row in report


def test_a_model_at_the_level_at_step_zero_gives_no_ratio_and_is_not_counted_as_reaching_alone():
    from bermo_prune.bench.convergence import analyse

    rows = _rows({("none", 0): (150, 140), ("none", 1): (160, 150)})
    rows[0]["fine_curve"] = [[0, 0.9], *rows[0]["fine_curve"][1:]]  # BERT seed 0 at the level before training
    a = analyse(rows, 0.9 * 0.86, lambda r: None)
    s0 = next(u for u in a.units if u.seed == 0)
    assert (s0.at_start, s0.only, s0.log_ratios) == (1, None, [])
    assert [u.seed for u in a.counted] == [1]
