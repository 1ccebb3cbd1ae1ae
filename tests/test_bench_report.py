"""Report generation on a small synthetic results set: figures written, numbers equal direct scipy calls."""

import json

import numpy as np
from scipy import stats

from bermo_prune.bench.report import steps_to
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
        f"| movement | 0.1 | 3 | {np.mean(np.subtract(bermo, bert)):+.4f}" in report
        and f"| {p:.3g} |" in report
    )
    # Divergence rate and the failed run are reported, not dropped.
    assert "| bert | movement | 0.1 | 1 / 3 | collapse |" in report
    assert "- bermo_l0_3_s0: RuntimeError: boom" in report
    # Convergence: BERMo reaches the level in 2/3 of BERT's steps in this set -> ratio 1.5.
    assert "| 1.50 (" in report
    assert "Versions: torch" in report


def test_steps_to_and_missing_results(tmp_path, capsys):
    assert steps_to([[100, 0.5], [200, 0.8], [300, 0.9]], 0.8) == 200
    assert steps_to([[100, 0.5]], 0.8) is None
    assert main(["report", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "no results.jsonl" in capsys.readouterr().err
