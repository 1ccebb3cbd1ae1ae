"""Sweeps: the grid, validation of every cell, parallel workers, results rows, resume without redoing runs."""

import json

import pytest

from bermo_prune.bench.sweep import load_spec, run_sweep
from bermo_prune.cli import main
from bermo_prune.errors import RecipeError
from bermo_prune.recipe import load_recipe

from .conftest import ROOT

# Big enough to leave the majority plateau in 240 steps (dev accuracy 0.72-0.77 measured), so that a clean sweep
# has no `no_learning` events; at hidden 32 and 120 steps every run stays at the majority rate.
TINY = [
    "model.num_layers=2",
    "model.hidden_size=64",
    "model.num_heads=2",
    "model.intermediate_size=128",
    "model.vocab_size=200",
    "data.synthetic_train_size=1000",
    "data.synthetic_dev_size=200",
    "train.max_steps=240",
    "train.eval_every=120",
    "train.lr=3e-3",
]


def write_spec(tmp_path, **changes):
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = {
        "base": str(ROOT / "recipes" / "quickstart.yaml"),
        "overrides": TINY,
        "models": ["bert", "bermo"],
        "methods": {"none": {}, "movement": {"targets": [0.5]}},
        "seeds": [0],
        "workers": 2,
        "output_dir": str(tmp_path / "bench"),
        **changes,
    }
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def test_spec_grid_and_validation(tmp_path):
    spec = load_spec(write_spec(tmp_path, seeds=[0, 1]))
    assert [c.name for c in spec.cells] == [
        "bert_none_dense_s0",
        "bert_none_dense_s1",
        "bermo_none_dense_s0",
        "bermo_none_dense_s1",
        "bert_movement_0.5_s0",
        "bert_movement_0.5_s1",
        "bermo_movement_0.5_s0",
        "bermo_movement_0.5_s1",
    ]
    with pytest.raises(RecipeError) as info:
        load_spec(write_spec(tmp_path, models=["gpt"], methods={"movment": {"targets": [0.5]}}, extra=1))
    assert info.value.problems == [
        "extra: unknown key",
        "models: unknown 'gpt'; name any of bert, bermo, bermo_last, or give a mapping of labels to sections",
        "methods.movment: unknown method; use none, l0, magnitude, movement, soft_movement",
    ]
    with pytest.raises(RecipeError) as info:  # each cell's recipe is validated before anything runs
        load_spec(write_spec(tmp_path, methods={"movement": {"targets": [1.5]}}, models=["bert"]))
    assert info.value.problems == [
        "bert_movement_1.5_s0: pruning.schedule.final: a remaining fraction must be in (0, 1], got 1.5"
    ]


def test_a_spec_names_model_variants_and_defines_its_own(tmp_path):
    spec = load_spec(write_spec(tmp_path, models=["bert", "bermo_last"], methods={"none": {}}))
    assert [c.name for c in spec.cells] == ["bert_none_dense_s0", "bermo_last_none_dense_s0"]
    last = spec.cells[1]
    assert last.overrides()[:2] == ["model.arch=bermo", "model.mix_init=last"]
    assert spec.cells[0].overrides()[0] == "model.arch=bert" and spec.cells[0].arch is None  # names unchanged
    assert load_recipe(spec.base, [*spec.overrides, *last.overrides()]).model.mix_init == "last"
    own = {"bert": None, "bermo_ln": {"arch": "bermo", "overrides": ["model.mix_layer_norm=true"]}}
    spec = load_spec(write_spec(tmp_path, models=own, methods={"none": {}}))
    assert [c.overrides()[:2] for c in spec.cells] == [
        ["model.arch=bert", "pruning.method=none"],
        ["model.arch=bermo", "model.mix_layer_norm=true"],
    ]
    bad = {"bermo_x": None, "bermo_y": {"arch": "gpt"}, "bermo_z": {"arch": "bermo", "overrides": "x"}}
    with pytest.raises(RecipeError) as info:
        load_spec(write_spec(tmp_path, models=bad))
    assert info.value.problems == [
        "models.bermo_y.arch: unknown value 'gpt'; use one of bert, bermo",
        "models.bermo_z.overrides: expected a list of strings, got 'x'",
        "models.bermo_x: not a named variant (bert, bermo, bermo_last): give its arch",
    ]
    with pytest.raises(RecipeError) as info:  # an arm's overrides are validated with every cell's recipe
        load_spec(
            write_spec(tmp_path, models={"b": {"arch": "bermo", "overrides": ["model.mix_init=first"]}})
        )
    assert info.value.problems[0] == (
        "b_none_dense_s0: model.mix_init: unknown value 'first'; use one of uniform, last"
    )


def test_a_series_can_have_seeds_of_its_own(tmp_path):
    methods = {"none": {}, "movement": {"targets": [0.5], "seeds": [0, 1, 2]}}
    spec = load_spec(write_spec(tmp_path, models=["bert"], methods=methods))
    assert [c.name for c in spec.cells] == [
        "bert_none_dense_s0",
        "bert_movement_0.5_s0",
        "bert_movement_0.5_s1",
        "bert_movement_0.5_s2",
    ]
    bad = {
        "none": {},
        "movement": {"targets": [0.5], "seeds": [-1]},
        "kd": {"method": "movement", "targets": [0.5], "distill": True, "seeds": [0, 3]},
    }
    with pytest.raises(RecipeError) as info:
        load_spec(write_spec(tmp_path, models=["bert"], methods=bad))
    assert info.value.problems == [
        "methods.movement.seeds: expected a list of non-negative integers, got [-1]",
        "methods.kd.seeds: a distilled series needs the dense run of each of its seeds (dense seeds: [0])",
    ]


def test_sweep_runs_in_parallel_and_resumes_without_redoing_finished_runs(tmp_path, capsys):
    path = write_spec(tmp_path)
    assert main(["bench", str(path)]) == 0
    assert "results: 4 ok" in capsys.readouterr().out
    out = tmp_path / "bench"
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["model"], r["method"], r["target"]) for r in rows] == [
        ("bert", "none", None),
        ("bermo", "none", None),
        ("bert", "movement", 0.5),
        ("bermo", "movement", 0.5),
    ]
    assert [r["remaining"] for r in rows] == [
        1.0,
        1.0,
        pytest.approx(0.5, abs=1e-3),
        pytest.approx(0.5, abs=1e-3),
    ]
    assert all(r["status"] == "ok" and r["diverged"] is False and len(r["curve"]) == 2 for r in rows)
    assert rows[1]["mix"] is not None and rows[0]["mix"] is None
    # Each row keeps its final model's prediction for every dev example, in the dev split's order: scored against
    # the labels baselines.json keeps, they give exactly the run's final accuracy.
    (draw,) = json.loads((out / "baselines.json").read_text())["draws"]
    gold = draw["dev_labels"]
    for r in rows:
        assert len(r["dev_predictions"]) == len(gold) == 200 and set(r["dev_predictions"]) <= {"0", "1"}
        assert sum(p == g for p, g in zip(r["dev_predictions"], gold, strict=True)) / 200 == r["final"]
    # Each row says where it trained: this machine's CPU, the run's torch threads and the library versions.
    import os
    import platform

    import accelerate
    import tokenizers
    import torch
    import transformers

    assert all(
        r["environment"]
        == {
            "device": f"cpu: {platform.machine()}, {os.cpu_count()} cores",
            "threads": max(1, os.cpu_count() // 2),  # the worker's share of the cores (2 workers)
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "accelerate": accelerate.__version__,
            "tokenizers": tokenizers.__version__,
            "python": platform.python_version(),
        }
        for r in rows
    )
    # Interrupted sweep: one run was killed before it finished (no summary, no row); a rerun redoes only that one.
    stamps = {r["run"]: (out / "runs" / r["run"] / "summary.json").stat().st_mtime_ns for r in rows}
    (out / "runs" / "bermo_movement_0.5_s0" / "summary.json").unlink()
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    spec = load_spec(path)
    messages = []
    again = run_sweep(spec, log=messages.append)
    assert sorted(messages) == sorted(
        [
            "bert_none_dense_s0: skipped (finished)",
            "bermo_none_dense_s0: skipped (finished)",
            "bert_movement_0.5_s0: skipped (finished)",
            "bermo_movement_0.5_s0: ok",
        ]
    )
    for r in again[:3]:
        assert (out / "runs" / r["run"] / "summary.json").stat().st_mtime_ns == stamps[r["run"]]
    assert again[3]["final"] == rows[3]["final"]  # same seed, same result
    # Each sitting is logged: spec, runs finished and skipped, elapsed time summed over sittings.
    meta = json.loads((out / "sweep.json").read_text())
    assert (
        meta["spec"] == str(path) and meta["spec_text"] == path.read_text() and meta["output_dir"] == str(out)
    )
    assert (
        meta["cells"] == [c.name for c in spec.cells] == [r["run"] for r in rows]
    )  # the runs the spec plans
    assert [(s["ran"], s["skipped"]) for s in meta["sittings"]] == [(4, 0), (1, 3)]
    assert meta["elapsed_s"] == pytest.approx(sum(s["elapsed_s"] for s in meta["sittings"]), abs=0.2)
    assert all(s["workers"] == spec.workers and s["elapsed_s"] > 0 for s in meta["sittings"])
    assert all(s["device"].startswith("cpu: ") for s in meta["sittings"])


def test_distilled_cells_resume_on_a_fresh_machine_from_committed_results(tmp_path):
    """Only results.jsonl and sweep.json survive (committed); the run directories are gone. Finished runs are not
    redone, a distilled cell added to the spec runs after its teacher, and the teacher, known only from its row,
    is run again first because its model is needed (same seed: the same result)."""
    methods = {"none": {}, "movement": {"targets": [0.5]}}
    path = write_spec(tmp_path, models=["bert"], seeds=[0, 1], methods=methods, workers=1)
    spec = load_spec(path)
    messages = []
    first = run_sweep(spec, log=messages.append)
    # seed by seed: every cell of seed 0 first, results in grid order
    assert messages == [
        "bert_none_dense_s0: ok",
        "bert_movement_0.5_s0: ok",
        "bert_none_dense_s1: ok",
        "bert_movement_0.5_s1: ok",
    ]
    assert [r["run"] for r in first] == [
        "bert_none_dense_s0",
        "bert_none_dense_s1",
        "bert_movement_0.5_s0",
        "bert_movement_0.5_s1",
    ]
    out = tmp_path / "bench"
    import shutil

    shutil.rmtree(out / "runs")  # a fresh machine with the committed files only
    methods["movement_kd"] = {"method": "movement", "targets": [0.5], "distill": True}
    path = write_spec(tmp_path, models=["bert"], seeds=[0], methods=methods, workers=1)
    spec = load_spec(path)
    student = spec.cells[-1]
    assert student.name == "bert_movement_kd_0.5_s0" and student.teacher == "bert_none_dense_s0"
    assert student.overrides()[-2:] == [
        f"distill.teacher={out / 'runs' / 'bert_none_dense_s0'}",
        "pruning.schedule.final=0.5",
    ]
    messages = []

    def log(message):
        messages.append(message)
        # when the teacher's run is reported its new row is not written yet: the old row must still be there
        if message == "bert_none_dense_s0: ok":
            on_disk = [json.loads(x)["run"] for x in (out / "results.jsonl").read_text().splitlines()]
            assert on_disk == ["bert_none_dense_s0", "bert_movement_0.5_s0"]

    rows = run_sweep(spec, log=log)
    assert messages == [
        "bert_movement_0.5_s0: skipped (finished)",
        "bert_none_dense_s0: ok",  # the teacher again: its model is needed
        "bert_movement_kd_0.5_s0: ok",
    ]
    by_run = {r["run"]: r for r in rows}
    assert [r["run"] for r in rows] == [
        "bert_none_dense_s0",
        "bert_movement_0.5_s0",
        "bert_movement_kd_0.5_s0",
    ]
    assert by_run["bert_none_dense_s0"]["final"] == first[0]["final"]
    kd = by_run["bert_movement_kd_0.5_s0"]
    assert (kd["method"], kd["pruning_method"], kd["teacher"]) == (
        "movement_kd",
        "movement",
        "bert_none_dense_s0",
    )
    assert kd["status"] == "ok" and kd["remaining"] == pytest.approx(0.5, abs=1e-3)
    recipe = (out / "runs" / "bert_movement_kd_0.5_s0" / "recipe.yaml").read_text()
    assert f"teacher: {out / 'runs' / 'bert_none_dense_s0'}" in recipe
    # the student's metrics log the distillation term
    assert "distill_loss" in (out / "runs" / "bert_movement_kd_0.5_s0" / "metrics.jsonl").read_text()
    meta = json.loads((out / "sweep.json").read_text())
    assert [(s["ran"], s["skipped"]) for s in meta["sittings"]] == [(4, 0), (2, 1)]


def test_cells_runs_only_the_matching_runs_and_a_later_sitting_runs_the_rest(tmp_path, capsys):
    """``bench --cells``: a sitting limited to the runs matching a pattern (the rest wait, exit 0, and the sitting
    lists its runs); the next sitting without it runs the rest; a distilled run brings its teacher; a pattern that
    matches nothing is one line, exit 2, before any run."""
    from bermo_prune.bench.sweep import plan, select_cells

    path = write_spec(tmp_path, workers=1)
    assert main(["bench", str(path), "--cells", "bermo_*"]) == 0
    out = capsys.readouterr().out
    assert "4 runs (--cells: 2 of them)" in out and "results: 2 ok" in out
    assert "2 of 4 runs not in --cells wait for a later sitting" in out
    bench = tmp_path / "bench"
    rows = [json.loads(x)["run"] for x in (bench / "results.jsonl").read_text().splitlines()]
    assert rows == ["bermo_none_dense_s0", "bermo_movement_0.5_s0"]
    assert not (bench / "runs" / "bert_none_dense_s0").exists()
    assert main(["bench", str(path)]) == 0
    assert "results: 4 ok" in capsys.readouterr().out
    meta = json.loads((bench / "sweep.json").read_text())
    assert [(s["ran"], s["skipped"], s.get("cells")) for s in meta["sittings"]] == [
        (2, 0, ["bermo_none_dense_s0", "bermo_movement_0.5_s0"]),
        (2, 2, None),
    ]
    # a distilled run chosen alone brings the teacher it needs; the order is the plan's
    methods = {
        "none": {},
        "movement": {"targets": [0.5]},
        "movement_kd": {"method": "movement", "targets": [0.5], "distill": True},
    }
    spec = load_spec(write_spec(tmp_path / "kd", models=["bert"], methods=methods))
    only = select_cells([spec], ["*_kd_*"])[0]
    assert only == {"bert_movement_kd_0.5_s0", "bert_none_dense_s0"}
    _, first, students = plan(spec, {}, only)
    assert [c.name for c in first] == ["bert_none_dense_s0"] and [c.name for c in students] == [
        "bert_movement_kd_0.5_s0"
    ]
    assert main(["bench", str(path), "--cells", "bert_movment_*"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"bermo-prune: error: --cells: 'bert_movment_*' matches no run of {path} (its runs: bert_none_dense_s0, "
        "bermo_none_dense_s0, bert_movement_0.5_s0, ...)"
    )


def test_retrain_trains_a_finished_run_again_for_its_model_and_keeps_its_recorded_row(
    tmp_path, capsys, monkeypatch
):
    """``bench --cells PATTERN --retrain`` on a fresh machine (committed results only): the named finished run is
    trained again into its run directory; results.jsonl and sweep.json are never written (a row a running sitting
    adds meanwhile survives); retrained.jsonl gets the new row beside the recorded one (same seed, same machine:
    every evaluation equal). A run whose model is here is kept; a named run without a finished row, a run directory
    with a summary but no model, or --retrain without --cells is one line, exit 2."""
    import shutil

    from bermo_prune.bench import sweep as sweep_module

    methods = {"none": {}, "movement": {"targets": [0.5]}}
    path = write_spec(tmp_path, models=["bert"], methods={"movement": methods["movement"]}, workers=1)
    assert main(["bench", str(path)]) == 0
    bench = tmp_path / "bench"
    # a dense cell added to the spec, not run yet
    path = write_spec(tmp_path, models=["bert"], methods=methods, workers=1)
    results, log = (bench / "results.jsonl").read_bytes(), (bench / "sweep.json").read_bytes()
    recorded = {json.loads(x)["run"]: json.loads(x) for x in results.decode().splitlines()}
    shutil.rmtree(bench / "runs")  # a fresh machine with the committed files only
    other = json.dumps({"run": "bert_none_dense_s0", "status": "ok"}) + "\n"
    original = sweep_module.retrained_row

    def meanwhile(row, old):  # a sitting of the sweep writes a row while the retrain runs
        with open(bench / "results.jsonl", "a") as f:
            f.write(other)
        return original(row, old)

    monkeypatch.setattr(sweep_module, "retrained_row", meanwhile)
    capsys.readouterr()
    assert main(["bench", str(path), "--cells", "bert_movement_*", "--retrain"]) == 0
    out = capsys.readouterr().out
    run = "bert_movement_0.5_s0"
    final = recorded[run]["final"]
    assert f"{run}: retrained: final {final:.4f} (recorded {final:.4f}), 2 of 2 evaluations equal" in out
    assert "retrained: 1 trained again, 0 failed, 0 kept (model here); new rows in " in out
    assert (bench / "results.jsonl").read_bytes() == results + other.encode()
    assert (bench / "sweep.json").read_bytes() == log
    (bench / "results.jsonl").write_bytes(results)
    assert (bench / "runs" / run / "model" / "config.json").is_file()
    assert not (bench / "runs" / "bert_none_dense_s0").exists()  # not named (and not finished): not trained
    (entry,) = [json.loads(x) for x in (bench / "retrained.jsonl").read_text().splitlines()]
    assert entry["run"] == run and entry["curve"] == recorded[run]["curve"]
    assert entry["recorded"] == {"final": final, "best": recorded[run]["best"]}
    assert (entry["final_minus_recorded"], entry["same_evaluations"], entry["evaluations"]) == (0.0, 2, 2)
    assert entry["max_abs_curve_difference"] == 0.0
    # again: its model is here now, so nothing is trained and nothing appended
    assert main(["bench", str(path), "--cells", "bert_movement_*", "--retrain"]) == 0
    out = capsys.readouterr().out
    assert f"{run}: kept (its model is here; --retrain trains only runs whose model is missing)" in out
    assert "retrained: 0 trained again, 0 failed, 1 kept (model here)" in out
    assert len((bench / "retrained.jsonl").read_text().splitlines()) == 1
    # bad uses: one line, exit 2, nothing trained
    assert main(["bench", str(path), "--cells", "bert_none_*", "--retrain"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"bermo-prune: error: --retrain: bert_none_dense_s0 has no finished row in {bench / 'results.jsonl'} "
        "(run it without --retrain)"
    )
    assert main(["bench", str(path), "--retrain"]) == 2
    assert capsys.readouterr().err.strip() == (
        "bermo-prune: error: --retrain: name the finished runs to train again with --cells"
    )
    shutil.rmtree(bench / "runs" / run / "model")  # its summary stays: training there would only read it back
    assert main(["bench", str(path), "--cells", "bert_movement_*", "--retrain"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"bermo-prune: error: --retrain: {bench / 'runs' / run} holds a finished run's summary.json but no "
        "model/: move the directory away to train the run again"
    )
    assert len((bench / "retrained.jsonl").read_text().splitlines()) == 1
    assert (bench / "results.jsonl").read_bytes() == results


def test_retrain_brings_a_teacher_only_where_a_run_it_retrains_needs_its_model(tmp_path):
    """``retrain_plan``: a named distilled run whose model is missing brings its teacher when the teacher's model
    is missing too, not otherwise; a named run whose model is here brings nothing; a needed teacher without a
    finished row is refused."""
    from bermo_prune.bench.sweep import retrain_plan
    from bermo_prune.errors import InputError

    methods = {"none": {}, "movement_kd": {"method": "movement", "targets": [0.5], "distill": True}}
    spec = load_spec(write_spec(tmp_path, models=["bert"], seeds=[0, 1], methods=methods, workers=1))
    bench = tmp_path / "bench"
    names = [c.name for c in spec.cells]
    assert names == [
        "bert_none_dense_s0",
        "bert_none_dense_s1",
        "bert_movement_kd_0.5_s0",
        "bert_movement_kd_0.5_s1",
    ]
    bench.mkdir()
    (bench / "results.jsonl").write_text(
        "".join(json.dumps({"run": n, "status": "ok"}) + "\n" for n in names)
    )

    def model(name):
        (bench / "runs" / name / "model").mkdir(parents=True)
        (bench / "runs" / name / "model" / "config.json").write_text("{}")

    model("bert_none_dense_s1")  # seed 1's teacher is here, seed 0's is not
    model("bert_movement_kd_0.5_s1")
    students = {"bert_movement_kd_0.5_s0", "bert_movement_kd_0.5_s1"}
    assert retrain_plan(spec, students) == (
        {"bert_movement_kd_0.5_s0", "bert_none_dense_s0"},
        ["bert_movement_kd_0.5_s1"],
    )
    assert retrain_plan(spec, {"bert_movement_kd_0.5_s1"}) == (set(), ["bert_movement_kd_0.5_s1"])
    (bench / "results.jsonl").write_text(
        "".join(json.dumps({"run": n, "status": "ok"}) + "\n" for n in names if n != "bert_none_dense_s0")
    )
    with pytest.raises(
        InputError, match="bert_none_dense_s0 has no finished row in .*a run to retrain distills"
    ):
        retrain_plan(spec, students)


def test_spec_method_entries_are_checked(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_spec(
            write_spec(
                tmp_path,
                methods={
                    "movement": {"targets": [0.5], "distill": True},
                    "magnitude": {"method": "movement", "targets": [0.5]},
                    "kd": {"method": "movment", "targets": [0.5]},
                    "l0": {"targets": [0.5], "teacher": "x"},
                    "m2": {"method": "movement", "targets": [0.5], "distill": "yes"},
                },
            )
        )
    assert info.value.problems == [
        "methods.l0.teacher: unknown key",  # the checker's problems first, then the rules across keys
        "methods.m2.distill: expected true or false, got 'yes'",
        "methods.movement.distill: the teacher is the dense run of the same model and seed: add `none: {}` to methods",
        "methods.magnitude.method: a label that names a method must run that method",
        "methods.kd: unknown method; use none, l0, magnitude, movement, soft_movement",
    ]


def test_paper_scale_spec_validates_without_running():
    spec = load_spec(ROOT / "benchmarks" / "paper_scale.yaml")
    assert len(spec.cells) == 3 * 2 * (1 + 2 + 2 + 2 + 2) * 3 == 162
    names = {c.name for c in spec.cells}
    assert {
        "mnli_bermo_movement_0.03_s2",
        "qqp_bert_none_dense_s0",
        "sst2_bermo_soft_movement_100_s1",
    } <= names
    recipe_overrides = next(c for c in spec.cells if c.name == "qqp_bermo_l0_5_s1").overrides()
    assert recipe_overrides == [
        "model.arch=bermo",
        "pruning.method=l0",
        "seed=1",
        "task=qqp",
        "pruning.schedule.initial=0",
        "pruning.score_lr=5e-2",
        "pruning.schedule.final=5.0",
    ]
    assert spec.workers == 1 and spec.base.name == "sst2_movement.yaml"
    assert main(["validate", str(ROOT / "benchmarks" / "paper_scale.yaml")]) == 0
    assert len(load_spec(ROOT / "benchmarks" / "sst2_tiny" / "spec.yaml").cells) == 2 * (1 + 4 * 4) * 3


def test_the_same_sweep_on_a_local_ray_instance_gives_the_same_results(tmp_path, capsys):
    """4 cells as Ray tasks (a local instance started here) against the local backend: the same rows."""
    ray = pytest.importorskip("ray")
    local = load_spec(write_spec(tmp_path / "a"))
    rows_local = run_sweep(local, log=lambda _: None)
    path = write_spec(tmp_path / "b")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        assert main(["bench", str(path), "--backend", "ray"]) == 0
    finally:
        ray.shutdown()
    assert "4 runs, 2 workers (ray)" in capsys.readouterr().out
    out = tmp_path / "b" / "bench"
    rows_ray = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]

    def comparable(row):
        return {k: v for k, v in row.items() if k != "wall_time_s"}

    assert [comparable(r) for r in rows_ray] == [comparable(r) for r in rows_local]
    assert all(r["status"] == "ok" for r in rows_ray) and len(rows_ray) == 4
    [sitting] = json.loads((out / "sweep.json").read_text())["sittings"]
    assert sitting["device"].startswith("ray (local instance): 2 CPUs, 0 GPUs") and sitting["ran"] == 4
    assert sitting["threads_per_worker"] == 1  # 2 CPUs shared by 2 concurrent runs


def test_ray_backend_errors_are_one_line(tmp_path, capsys):
    path = write_spec(tmp_path)
    assert main(["bench", str(path), "--address", "127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.strip() == "bermo-prune: error: --address is for --backend ray"


def test_a_sigterm_stops_the_sweep_its_run_checkpoints_and_the_next_sitting_resumes_it(tmp_path):
    """Preemption of a sweep: the signal reaches the running worker, which checkpoints; the sweep records no row
    for it and exits 4; the next sitting resumes that run from its checkpoint and finishes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    overrides = [*TINY, "train.max_steps=600", "train.eval_every=300", "checkpoint.every=50"]
    methods = {"none": {}, "magnitude": {"targets": [0.5]}}
    path = write_spec(tmp_path, overrides=overrides, models=["bert"], methods=methods, workers=1)
    out = tmp_path / "bench"
    metrics = out / "runs" / "bert_none_dense_s0" / "metrics.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bermo_prune.cli", "bench", str(path)]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # wait until the run is past its first checkpoint
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        if any(json.loads(x).get("step", 0) >= 100 for x in lines):
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0]
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode == 4, text
    assert "bert_none_dense_s0: interrupted" in text
    # the next cell, already handed to the worker by the process pool, did not start
    assert "bert_magnitude_0.5_s0: interrupted (not started: the sweep was stopped)" in text
    assert not (out / "runs" / "bert_magnitude_0.5_s0" / "metrics.jsonl").exists()
    assert not (out / "results.jsonl").exists() or not (out / "results.jsonl").read_text().strip()
    (sitting,) = json.loads((out / "sweep.json").read_text())["sittings"]
    assert (
        sitting["ran"] == 0 and sitting["elapsed_s"] >= 0.5
    )  # logged to its stop, the cut-off run's time in it
    state = out / "runs" / "bert_none_dense_s0" / "checkpoint" / "state.pt"
    import torch

    stopped_at = torch.load(state, weights_only=True)["position"]["step"]
    assert 100 <= stopped_at < 600  # written at the step boundary after the signal, not only the periodic one

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["run"], r["status"], r["steps"]) for r in rows] == [
        ("bert_none_dense_s0", "ok", 600),
        ("bert_magnitude_0.5_s0", "ok", 600),
    ]
    logged = [json.loads(x)["step"] for x in metrics.read_text().splitlines() if "loss" in json.loads(x)]
    assert logged == sorted(set(logged)) and logged[-1] == 600  # one log, continued where the checkpoint was


def test_order_series_runs_every_seed_of_a_series_before_the_next(tmp_path):
    """The reference-pace study's shape: movement on 3 seeds, magnitude and dense on 2; seed order interleaves
    the series, series order finishes movement first; finished cells are skipped either way; a bad value is one line."""
    from bermo_prune.bench.sweep import plan

    methods = {
        "movement": {"targets": [0.1], "seeds": [0, 1, 2]},
        "magnitude": {"targets": [0.1]},
        "none": {},
    }
    by_seed = load_spec(write_spec(tmp_path, models=["bert", "bermo"], methods=methods, seeds=[0, 1]))
    by_series = load_spec(
        write_spec(tmp_path, models=["bert", "bermo"], methods=methods, seeds=[0, 1], order="series")
    )
    assert (by_seed.order, by_series.order) == ("seed", "series")
    assert [c.name for c in by_seed.cells] == [c.name for c in by_series.cells]  # the same grid
    done = {"bert_movement_0.1_s0": {"status": "ok"}}
    assert [c.name for c in plan(by_seed, done)[1]] == [
        "bermo_movement_0.1_s0", "bert_magnitude_0.1_s0", "bermo_magnitude_0.1_s0", "bert_none_dense_s0",
        "bermo_none_dense_s0", "bert_movement_0.1_s1", "bermo_movement_0.1_s1", "bert_magnitude_0.1_s1",
        "bermo_magnitude_0.1_s1", "bert_none_dense_s1", "bermo_none_dense_s1", "bert_movement_0.1_s2",
        "bermo_movement_0.1_s2",
    ]  # fmt: skip
    assert [c.name for c in plan(by_series, done)[1]] == [
        "bermo_movement_0.1_s0", "bert_movement_0.1_s1", "bermo_movement_0.1_s1", "bert_movement_0.1_s2",
        "bermo_movement_0.1_s2", "bert_magnitude_0.1_s0", "bermo_magnitude_0.1_s0", "bert_magnitude_0.1_s1",
        "bermo_magnitude_0.1_s1", "bert_none_dense_s0", "bermo_none_dense_s0", "bert_none_dense_s1",
        "bermo_none_dense_s1",
    ]  # fmt: skip
    with pytest.raises(RecipeError) as info:
        load_spec(write_spec(tmp_path, models=["bert"], methods=methods, order="method"))
    assert info.value.problems == ["order: unknown value 'method'; use one of seed, series"]


def test_primary_names_an_undistilled_pruning_series_and_reaches_the_sweep_log(tmp_path):
    from bermo_prune.bench.sweep import SweepLog

    spec = tmp_path / "spec.yaml"
    body = (
        f"base: {ROOT / 'recipes' / 'sst2_movement.yaml'}\nmodels: [bert, bermo]\nseeds: [0]\n"
        f"output_dir: {tmp_path / 'out'}\nmethods:\n  none: {{}}\n  movement: {{targets: [0.5]}}\n"
        "  movement_kd: {method: movement, distill: true, targets: [0.5]}\n"
    )
    for wrong in ("magnitude", "none", "movement_kd"):
        spec.write_text(body + f"primary: {wrong}\n")
        with pytest.raises(RecipeError) as err:
            load_spec(spec)
        assert err.value.problems == [
            f"primary: {wrong} is not an undistilled pruning series of methods; use one of movement"
        ]
    spec.write_text(body + "primary: movement\n")
    loaded = load_spec(spec)
    assert loaded.primary == "movement"
    log = SweepLog(loaded, threads=2, device="cpu")
    assert log.meta["primary"] == "movement"
    spec.write_text(body)
    assert "primary" not in SweepLog(load_spec(spec), threads=2, device="cpu").meta


def test_a_run_whose_predictions_fail_stays_ok_and_its_row_says_why(tmp_path, monkeypatch):
    """The dev predictions are computed after the run: if that fails, the finished run is still a result (not a
    failed row), and the row records the error instead of predictions."""
    import bermo_prune.predict as predict
    from bermo_prune.bench.sweep import _row, _run_cell, load_spec

    spec = load_spec(write_spec(tmp_path, overrides=[*TINY, "train.max_steps=20", "train.eval_every=10"]))
    cell = next(c for c in spec.cells if c.model == "bert" and c.method == "none")

    def broken(path, split="dev", device="auto"):
        raise OSError("disk gone")

    monkeypatch.setattr(predict, "split_predictions", broken)
    out = tmp_path / "run"
    outcome = _run_cell(spec.base, [*spec.overrides, *cell.overrides()], str(out), 1)
    row = _row(cell, outcome)
    assert row["status"] == "ok" and row["steps"] == 20 and (out / "summary.json").is_file()
    assert row["dev_predictions_error"] == "OSError: disk gone" and "dev_predictions" not in row
    monkeypatch.undo()
    again = _row(
        cell, _run_cell(spec.base, [*spec.overrides, *cell.overrides()], str(out), 1)
    )  # finished: skipped
    assert "dev_predictions_error" not in again and len(again["dev_predictions"]) == 200


def test_a_local_sweep_refuses_fp16_without_a_gpu_before_anything_starts(tmp_path):
    """``train.precision=fp16`` validates (a spec may be meant for a GPU machine), but a local sweep on a machine
    without CUDA, where every worker would train in fp32, stops before any cell starts or anything is written."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine takes fp16")
    path = write_spec(tmp_path, overrides=[*TINY, "train.precision=fp16"])
    spec = load_spec(path)
    with pytest.raises(RecipeError) as info:
        run_sweep(spec, log=lambda *_: None)
    assert str(info.value).startswith(
        f"{path}: bert_none_dense_s0: train.precision (train.mixed_precision): fp16 needs"
    )
    assert not (tmp_path / "bench").exists()
