"""Behaviour snapshot for refactors: what a user sees, written to files that ``diff -r`` compares.

    PYTHONPATH=<code> HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python tests/scripts/snapshot.py OUT [--quick]

Run it from the repository root once on the code before a change (a worktree of the old commit on PYTHONPATH)
and once after, then ``diff -r OUT_BEFORE OUT_AFTER``. It writes:

- ``recipes/``: every recipe under ``recipes/`` resolved (as ``recipe.yaml`` in a run directory holds it), alone
  and under each method and architecture; ``specs/``: every sweep spec's cells, their overrides and resolved
  recipes;
- ``errors/``: the exit code, stdout and stderr of ``bermo-prune`` on a catalogue of bad recipes, overrides and
  specs (each checked before anything is written);
- ``runs/``: small runs of the quick-start recipe (dense, movement with distillation, L0 under target control, soft
  movement with rollback) and of pretraining, each run directory's files with wall times removed and the output
  path replaced by ``<OUT>``; model weights as SHA-256 of the safetensors file; ``eval --json`` of a run.
  ``--quick`` skips the runs.

Not a test (it takes minutes and compares two code versions); the closing note of a refactor quotes its diff.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import sys
from pathlib import Path

import yaml

from bermo_prune.cli import main

TIMES = ("wall_time_s", "elapsed_s", "time_s", "seconds", "tokens_per_second")


def cli(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code
    return f"exit {code}\n--- stdout\n{out.getvalue()}--- stderr\n{err.getvalue()}"


def resolved_recipes(out: Path) -> None:
    from bermo_prune.pretrain import is_pretrain_recipe, parse_pretrain_recipe
    from bermo_prune.recipe import dump_recipe, parse_recipe, read_yaml

    d = out / "recipes"
    d.mkdir(parents=True)
    variants = [
        [],
        ["model.arch=bermo"],
        ["pruning.method=none"],
        ["pruning.method=magnitude"],
        [
            "pruning.method=l0",
            "pruning.schedule.kind=constant",
            "pruning.schedule.value=0.5",
            "pruning.schedule.final=null",
            "pruning.schedule.initial=null",
        ],
        ["pruning.targets=[attention]", "pruning.method=l0", "pruning.options.target_control=true"],
        ["pruning.method=soft_movement", "pruning.schedule.final=0.2"],
        ["model.family=roberta", "train.mixed_precision=bf16"],
    ]
    for path in sorted(Path("recipes").glob("*.yaml")):
        raw = read_yaml(path)
        if is_pretrain_recipe(raw):
            r = parse_pretrain_recipe(raw, str(path), [])
            (d / f"{path.stem}.txt").write_text(yaml.safe_dump(_plain(r), sort_keys=False), encoding="utf-8")
            continue
        texts = []
        for v in variants:
            try:
                texts.append(f"## {' '.join(v)}\n{dump_recipe(parse_recipe(raw, str(path), v))}")
            except Exception as exc:  # noqa: BLE001 - the error text is part of the snapshot
                texts.append(f"## {' '.join(v)}\n{type(exc).__name__}: {exc}\n")
        (d / f"{path.stem}.txt").write_text("\n".join(texts), encoding="utf-8")


def _plain(obj):
    """A recipe object as plain data (dataclass instances or dicts)."""
    import dataclasses

    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def specs(out: Path) -> None:
    from bermo_prune.bench.sweep import load_spec
    from bermo_prune.recipe import dump_recipe, load_recipe

    d = out / "specs"
    d.mkdir(parents=True)
    for path in sorted(Path("benchmarks").glob("**/spec*.yaml")):
        spec = load_spec(path)
        lines = [f"workers {spec.workers} output {spec.output_dir} base {spec.base}", *spec.overrides]
        for cell in spec.cells:
            lines.append(f"## {cell.name} {cell.series} teacher={cell.teacher}")
            lines.append(" ".join(cell.overrides()))
            lines.append(dump_recipe(load_recipe(spec.base, [*spec.overrides, *cell.overrides()])))
        name = str(path.parent).replace("/", "_")
        (d / f"{name}_{path.stem}.txt").write_text("\n".join(lines), encoding="utf-8")


GOOD = {"task": "synthetic", "seed": 0, "data": {"source": "synthetic"}, "model": {"num_layers": 2}}

BAD_RECIPES = {
    "unknown_top": {**GOOD, "trian": {}},
    "unknown_key": {**GOOD, "train": {"lrr": 1e-3}},
    "no_task": {"seed": 0},
    "bad_task": {**GOOD, "task": "sst3"},
    "bad_types": {
        **GOOD,
        "seed": "x",
        "train": {"lr": "fast", "batch_size": 1.5, "mixed_precision": "bf17"},
        "model": {"dropout": -1, "mix_layer_norm": "yes"},
        "checkpoint": {"every": -2},
    },
    "section_not_mapping": {**GOOD, "model": [1, 2]},
    "top_not_mapping": [1, 2],
    "rollback_no_ckpt": {**GOOD, "divergence": {"policy": "rollback"}},
    "heads": {**GOOD, "model": {"hidden_size": 65, "num_heads": 2}},
    "freeze_scratch": {**GOOD, "train": {"freeze_embeddings": True}},
    "schedule_missing_final": {**GOOD, "pruning": {"method": "movement", "schedule": {"kind": "cubic"}}},
    "schedule_after_training": {
        **GOOD,
        "train": {"max_steps": 100},
        "pruning": {"method": "movement", "schedule": {"final": 0.1, "warmup": 90, "cooldown": 20}},
    },
    "schedule_value_unused": {
        **GOOD,
        "pruning": {"method": "movement", "schedule": {"final": 0.1, "value": 3}},
    },
    "bad_remaining": {**GOOD, "pruning": {"method": "movement", "schedule": {"final": 1.5}}},
    "unknown_option": {
        **GOOD,
        "pruning": {"method": "l0", "options": {"temprature": 2}, "schedule": {"final": 0.1}},
    },
    "options_no_method": {**GOOD, "pruning": {"options": {"x": 1}}},
    "unknown_method": {**GOOD, "pruning": {"method": "movment"}},
    "data_local_no_path": {**GOOD, "task": "sst2", "data": {"source": "local"}},
    "data_one_file": {**GOOD, "task": "sst2", "data": {"train_file": "a.tsv"}},
    "synthetic_source": {**GOOD, "task": "sst2", "data": {"source": "synthetic"}},
    "bad_steps_kind": {**GOOD, "pruning": {"method": "movement", "schedule": {"final": 0.1, "warmup": 1.5}}},
    "early_eval_unknown": {**GOOD, "train": {"early_eval": {"evrey": 3}}},
    "distill_bad": {**GOOD, "distill": {"temperature": 0, "alpha": 2}},
}

BAD_OVERRIDES = {
    "no_equals": ["train.lr"],
    "unknown_section": ["trian.lr=1"],
    "bad_value": ["train.max_steps=abc"],
}

BAD_PRETRAIN = {
    "unknown": {"corpus": {"files": ["x.txt"]}, "mlm": {"probabilty": 0.1}},
    "no_files": {"corpus": {}},
    "heads": {"corpus": {"files": ["x.txt"]}, "model": {"hidden_size": 30, "num_heads": 4}},
    "bad_train": {"corpus": {"files": ["x.txt"]}, "train": {"seq_length": 0, "lr": "x"}},
}

BAD_SPECS = {
    "unknown_key": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"none": {}},
        "seeds": [0],
        "wrokers": 1,
    },
    "no_base": {"models": ["bert"], "methods": {"none": {}}, "seeds": [0]},
    "missing_base": {"base": "nope.yaml", "models": ["bert"], "methods": {"none": {}}, "seeds": [0]},
    "bad_seeds": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"none": {}},
        "seeds": [-1, "a"],
    },
    "bad_models": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bret"],
        "methods": {"none": {}},
        "seeds": [0],
    },
    "model_map": {
        "base": "../../recipes/quickstart.yaml",
        "models": {"x": {"arch": "gpt"}, "y": {"foo": 1}},
        "methods": {"none": {}},
        "seeds": [0],
    },
    "bad_method": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"movment": {}},
        "seeds": [0],
    },
    "method_keys": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"movement": {"targest": [0.1]}},
        "seeds": [0],
    },
    "targets": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"movement": {"targets": "0.1"}},
        "seeds": [0],
    },
    "distill_no_dense": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"kd": {"method": "movement", "targets": [0.1], "distill": True}},
        "seeds": [0],
    },
    "distill_bad": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"none": {}, "kd": {"method": "movement", "targets": [0.1], "distill": "y"}},
        "seeds": [0],
    },
    "label_is_method": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"magnitude": {"method": "movement", "targets": [0.1]}},
        "seeds": [0],
    },
    "series_seeds": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {
            "none": {"seeds": [0]},
            "kd": {"method": "movement", "targets": [0.1], "distill": True, "seeds": [0, 1]},
        },
        "seeds": [0],
    },
    "workers": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"none": {}},
        "seeds": [0],
        "workers": 0,
    },
    "overrides": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"none": {}},
        "seeds": [0],
        "overrides": "train.lr=1",
    },
    "tasks": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"none": {}},
        "seeds": [0],
        "tasks": "sst2",
    },
    "cell_recipe": {
        "base": "../../recipes/quickstart.yaml",
        "models": ["bert"],
        "methods": {"movement": {"targets": [1.5]}},
        "seeds": [0],
        "overrides": ["train.lr=-1"],
    },
    "not_mapping": [1],
}


def errors(out: Path, tmp: Path) -> None:
    d = out / "errors"
    d.mkdir(parents=True)
    bad = tmp / "bad"
    bad.mkdir(parents=True)

    def write(name, raw):
        p = bad / f"{name}.yaml"
        p.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        return str(p)

    texts = []
    for name, raw in BAD_RECIPES.items():
        p = write(f"recipe_{name}", raw)
        texts.append(f"## validate {name}\n{cli('validate', p)}")
        texts.append(f"## run {name}\n{cli('run', p, '--quiet', '--output-dir', str(tmp / 'never'))}")
    syntax = bad / "syntax.yaml"
    syntax.write_text("task: sst2\ntrain:\n  lr: [1, 2\n", encoding="utf-8")
    texts.append(f"## syntax\n{cli('validate', str(syntax))}")
    texts.append(f"## missing file\n{cli('run', str(bad / 'nope.yaml'))}")
    good = write("good", GOOD)
    for name, ov in BAD_OVERRIDES.items():
        texts.append(
            f"## override {name}\n{cli('run', good, *ov, '--quiet', '--output-dir', str(tmp / 'never'))}"
        )
    for name, raw in BAD_PRETRAIN.items():
        p = write(f"pretrain_{name}", raw)
        texts.append(
            f"## pretrain {name}\n{cli('pretrain', p, '--quiet', '--output-dir', str(tmp / 'never'))}"
        )
        texts.append(f"## validate pretrain {name}\n{cli('validate', p)}")
    specdir = Path("tests") / "_snapshot_specs"
    specdir.mkdir(exist_ok=True)
    try:
        for name, raw in BAD_SPECS.items():
            p = specdir / f"{name}.yaml"
            p.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
            texts.append(f"## spec {name}\n{cli('validate', str(p))}")
    finally:
        shutil.rmtree(specdir)
    assert not (tmp / "never").exists(), "a bad input wrote its run directory"
    (d / "errors.txt").write_text("\n".join(texts).replace(str(tmp), "<TMP>"), encoding="utf-8")


def _normalise(value):
    if isinstance(value, dict):
        return {k: ("<time>" if k in TIMES else _normalise(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def dump_run(run: Path, dest: Path, root: Path) -> None:
    dest.mkdir(parents=True)
    for f in sorted(run.rglob("*")):
        if f.is_dir() or f.name == ".lock":
            continue
        rel = f.relative_to(run)
        target = dest / (str(rel).replace("/", "__") + ".txt")
        if f.suffix in (".safetensors", ".pt", ".bin"):
            target.write_text(hashlib.sha256(f.read_bytes()).hexdigest() + "\n")
            continue
        text = f.read_text(encoding="utf-8")
        if f.suffix == ".jsonl":
            text = "".join(json.dumps(_normalise(json.loads(line))) + "\n" for line in text.splitlines())
        elif f.suffix == ".json":
            text = json.dumps(_normalise(json.loads(text)), indent=1)
        target.write_text(text.replace(str(root), "<OUT>"), encoding="utf-8")


def runs(out: Path, tmp: Path) -> None:
    root = tmp / "runs"
    quick = [
        "recipes/quickstart.yaml",
        "--quiet",
        "train.max_steps=300",
        "train.eval_every=100",
        "checkpoint.every=100",
        "model.num_layers=2",
    ]
    plan = {
        "dense": [*quick, "model.arch=bert", "pruning.method=none"],
        "movement_kd": [*quick, f"distill.teacher={root / 'dense'}", "model.arch=bert"],
        "l0_target": [
            *quick,
            "pruning.method=l0",
            "pruning.options.target_control=true",
            "pruning.schedule.final=0.3",
        ],
        "soft_rollback": [
            *quick,
            "pruning.method=soft_movement",
            "pruning.options.target_control=true",
            "pruning.schedule.final=0.2",
            "divergence.policy=rollback",
            "divergence.spike_factor=1.01",
            "divergence.spike_min_increase=0.0",
        ],
    }
    log = []
    for name, argv in plan.items():
        log.append(f"## run {name}\n{cli('run', *argv, '--output-dir', str(root / name))}")
        dump_run(root / name, out / "runs" / name, root)
    log.append(f"## eval movement_kd\n{cli('eval', str(root / 'movement_kd'), '--json')}")
    log.append(
        "## pretrain\n"
        + cli(
            "pretrain",
            "recipes/pretrain_tiny.yaml",
            "--quiet",
            "--output-dir",
            str(root / "pretrain"),
            "train.max_steps=60",
            "train.eval_every=20",
            "checkpoint.every=20",
            "model.vocab_size=1000",
            "model.num_layers=1",
            "model.hidden_size=64",
            "model.intermediate_size=128",
            "train.seq_length=32",
            "corpus.files=[../shared/data/sst2/dev.tsv]",
        )
    )
    dump_run(root / "pretrain", out / "runs" / "pretrain", root)
    # wall times in the printed tables
    import re

    text = re.sub(r"\d+ / \d+ s", "<steps / time>", "\n".join(log))
    text = re.sub(r"\d+(\.\d+)? s\b", "<time>", text)
    text = re.sub(r"tokens per second .*", "tokens per second <rate>", text)
    (out / "runs" / "cli.txt").write_text(text.replace(str(root), "<OUT>"), encoding="utf-8")


if __name__ == "__main__":
    target = Path(sys.argv[1])
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    scratch = target.with_name(target.name + "_scratch")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    resolved_recipes(target)
    specs(target)
    errors(target, scratch)
    if "--quick" not in sys.argv:
        runs(target, scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"wrote {target}")
