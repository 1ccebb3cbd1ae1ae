"""Recipe validation: every shipped recipe validates; bad recipes give pinned, complete, one-line errors."""

from pathlib import Path

import pytest

from bermo_prune.cli import EXIT_BAD_INPUT, main
from bermo_prune.errors import RecipeError
from bermo_prune.pretrain import load_pretrain_recipe
from bermo_prune.pruners.config import PruningConfig
from bermo_prune.recipe import load_recipe, parse_recipe
from bermo_prune.schedule import ScheduleConfig

from .conftest import ROOT

RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_the_shipped_recipes_exist():
    names = {p.name for p in RECIPES}
    assert {
        "quickstart.yaml",
        "sst2_magnitude.yaml",
        "sst2_movement.yaml",
        "sst2_soft_movement.yaml",
        "sst2_l0.yaml",
        "pretrain_tiny.yaml",
    } <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_validates_and_opens_with_its_command(path):
    if path.name.startswith("pretrain"):
        assert path.read_text().splitlines()[0] == f"# bermo-prune pretrain recipes/{path.name}"
        assert load_pretrain_recipe(path)["model"]["num_layers"] == 4
        assert main(["validate", str(path)]) == 0
        return
    recipe = load_recipe(path)
    assert path.read_text().splitlines()[0] == f"# bermo-prune run recipes/{path.name}"
    if recipe.pruned:
        recipe.pruning.build_pruner()
        recipe.pruning.schedule.build(1000)
    for arch in ("bert", "bermo"):
        assert load_recipe(path, [f"model.arch={arch}"]).model.arch == arch


def test_sst2_recipes_follow_movement_pruning_hyperparameters():
    r = load_recipe(ROOT / "recipes" / "sst2_movement.yaml")
    assert (r.task, r.model.name, r.train.lr, r.train.batch_size) == (
        "sst2",
        "bert-base-uncased",
        3e-5,
        32,
    )
    assert r.pruning.score_lr == 1e-2 and r.pruning.schedule.final == 0.10
    assert r.data_source == "hub"
    assert (
        load_recipe(ROOT / "recipes" / "sst2_movement.yaml", ["data.path=/data/sst2"]).data_source == "local"
    )
    schedule = r.pruning.schedule.build(12000)
    assert schedule(0) == 1.0 and schedule(12000 - 4000) == pytest.approx(0.10)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def problems(tmp_path, text, overrides=None) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, text), overrides)
    return info.value.problems


def test_unknown_keys_get_did_you_mean(tmp_path):
    assert problems(tmp_path, "task: sst2\ntrain:\n  lr: 1.0e-3\n  bach_size: 8\n") == [
        "train.bach_size: unknown key (did you mean 'batch_size'?)"
    ]
    assert problems(tmp_path, "task: sst2\ntrian:\n  lr: 1\n") == [
        "trian: unknown key (did you mean 'train'?)"
    ]
    assert problems(tmp_path, "task: sst22\n") == [
        "task: unknown value 'sst22' (did you mean 'sst2'?); use one of cola, sst2, mrpc, qqp, stsb, mnli, qnli, "
        "rte, wnli, synthetic"
    ]


def test_all_problems_are_reported_at_once(tmp_path):
    text = (
        "task: sst2\ntrain:\n  lr: fast\n  batch_size: 0\n  max_length: 12.5\n"
        "pruning:\n  method: movment\n  granularity: rows\n"
    )
    assert problems(tmp_path, text) == [
        "pruning.method: unknown value 'movment' (did you mean 'movement'?); use one of none, l0, magnitude, "
        "movement, soft_movement",
        "pruning.granularity: unknown value 'rows' (did you mean 'row'?); use one of weight, block, row, head",
        "train.batch_size: must be >= 1, got 0",
        "train.lr: expected a number, got 'fast'",
        "train.max_length: expected an integer, got 12.5",
    ]


def test_types_ranges_and_yaml_scientific_notation(tmp_path):
    # YAML 1.1 reads 3e-5 as a string: it is still a number here.
    r = load_recipe(write(tmp_path, "task: sst2\ntrain:\n  lr: 3e-5\n"))
    assert r.train.lr == 3e-5
    assert problems(tmp_path, "task: sst2\ntrain:\n  warmup_ratio: 1.5\n  mixed_precision: fp8\n") == [
        "train.warmup_ratio: must be <= 1, got 1.5",
        "train.mixed_precision: unknown value 'fp8'; use one of no, fp16, bf16",
    ]
    assert problems(tmp_path, "task: sst2\nmodel:\n  mix_trainable: yes please\n") == [
        "model.mix_trainable: expected true or false, got 'yes please'"
    ]


def test_cross_field_rules(tmp_path):
    base = "task: sst2\npruning:\n  method: movement\n  schedule:\n    final: 0.1\n"
    # The schedule must end before training does.
    assert problems(tmp_path, base + "    total: 500\ntrain:\n  max_steps: 100\n") == [
        "pruning.schedule.total: 500 steps, but training runs 100: the schedule would not reach its final value "
        "before training ends"
    ]
    assert problems(tmp_path, base + "    warmup: 60\n    cooldown: 40\ntrain:\n  max_steps: 100\n") == [
        "pruning.schedule.warmup + cooldown: 60 + 40 steps leave no room to prune in a 100-step schedule"
    ]
    assert problems(tmp_path, "task: sst2\npruning:\n  method: movement\n") == [
        "pruning.schedule.final: required: the final remaining of method 'movement'"
    ]
    assert problems(tmp_path, "task: sst2\npruning:\n  method: movement\n  schedule:\n    final: 1.5\n") == [
        "pruning.schedule.final: a remaining fraction must be in (0, 1], got 1.5"
    ]
    assert problems(tmp_path, "task: sst2\ndivergence:\n  policy: rollback\n") == [
        "divergence.policy: 'rollback' needs checkpoints to roll back to; set checkpoint.every"
    ]
    assert problems(tmp_path, "task: sst2\nmodel:\n  hidden_size: 100\n  num_heads: 3\n") == [
        "model.hidden_size (100) must be divisible by model.num_heads (3)"
    ]
    assert problems(
        tmp_path,
        "task: sst2\npruning:\n  method: l0\n  options:\n    temprature: 0.5\n  schedule:\n    final: 1\n",
    ) == [
        "pruning.options.temprature: unknown option of method 'l0' (did you mean 'temperature'?); valid: "
        "stretch_left, stretch_right, temperature, init_log_alpha, target_control, lagrange_rho, lagrange_lr"
    ]


def test_overrides(tmp_path):
    path = write(tmp_path, "task: sst2\npruning:\n  method: movement\n  schedule:\n    final: 0.1\n")
    r = load_recipe(path, ["train.lr=1e-4", "pruning.schedule.final=0.05", "model.arch=bermo"])
    assert (r.train.lr, r.pruning.schedule.final, r.model.arch) == (1e-4, 0.05, "bermo")
    with pytest.raises(RecipeError) as info:
        load_recipe(path, ["train.lrr=1", "trainn.lr=1", "nonsense"])
    assert info.value.problems == [
        "override trainn.lr: unknown section 'trainn' (did you mean 'train'?)",
        "override 'nonsense': expected key=value, e.g. train.lr=3e-5",
        "train.lrr: unknown key (did you mean 'lr'?)",
    ]


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    assert problems(tmp_path, "task: sst2\ntrain:\n  lr: [1\n") == [
        "line 4, column 1: YAML syntax error: expected ',' or ']', but got '<stream end>'"
    ]
    assert problems(tmp_path, "- a\n- b\n") == ["expected a mapping of sections at the top level, got list"]
    # a key given twice is an error, not a silent override by the last one
    assert problems(tmp_path, "task: sst2\ntrain:\n  lr: 1e-4\n  epochs: 2\n  lr: 3e-5\n") == [
        "line 5, column 3: YAML syntax error: key 'lr' given twice (first on line 3)"
    ]


def test_validate_cli_exit_codes_and_one_line_errors(tmp_path, capsys):
    good = ROOT / "recipes" / "quickstart.yaml"
    bad = write(tmp_path, "task: sst2\ntrain:\n  epochs: -1\n")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bermo-prune: error: {bad}: train.epochs: must be > 0, got -1"]
    assert main(["validate", str(tmp_path / "missing.yaml")]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == f"bermo-prune: error: {tmp_path / 'missing.yaml'}: no such file"


def test_parse_recipe_fills_defaults():
    r = parse_recipe({"task": "synthetic"})
    assert r.data_source == "synthetic" and not r.pruned
    assert r.divergence.policy == "record" and r.checkpoint.every == 0


def test_a_method_registered_after_import_owns_its_recipe_rules():
    """A user's method, registered with the public decorator after the package was imported: recipes accept it,
    its schedule-set field and its own rule come from the class, and the built-ins' rules are untouched."""
    from dataclasses import dataclass

    from bermo_prune import pruners
    from bermo_prune.pruners import Pruner, register_pruner
    from bermo_prune.pruners.base import topk_mask, unit_mean_abs

    @register_pruner("scaled_magnitude")
    @dataclass
    class ScaledMagnitude(Pruner):
        scale: float = 1.0  # set from pruning.schedule.final (remaining * 1), not an option
        exponent: float = 1.0

        @classmethod
        def schedule_fields(cls, options):
            return ("scale",)

        @classmethod
        def options_from_schedule(cls, options, schedule):
            return {"scale": schedule["final"]}

        @classmethod
        def recipe_problems(cls, options, schedule):
            return [] if options.get("exponent", 1.0) > 0 else ["pruning.options.exponent: must be > 0"]

        def compute_mask(self, layout, state, value):
            return topk_mask(layout, unit_mean_abs(layout) ** self.exponent, value, self.scope)

    try:
        base = {"task": "synthetic", "pruning": {"method": "scaled_magnitude", "schedule": {"final": 0.25}}}
        recipe = parse_recipe(base, overrides=["pruning.options.exponent=2"])
        pruner = recipe.pruning.build_pruner()
        assert isinstance(pruner, ScaledMagnitude) and pruner.scale == 0.25 and pruner.exponent == 2.0
        assert recipe.pruning.schedule.initial == 1.0  # a remaining-fraction method starts dense
        with pytest.raises(RecipeError) as err:
            parse_recipe(base, overrides=["pruning.options.exponent=0", "pruning.options.scale=3"])
        assert err.value.problems == [
            "pruning.options.scale: unknown option of method 'scaled_magnitude'; valid: exponent"
        ]  # the schedule sets scale; the type problem stops before the method's own rule runs
        with pytest.raises(RecipeError) as err:
            parse_recipe(base, overrides=["pruning.options.exponent=0"])
        assert err.value.problems == ["pruning.options.exponent: must be > 0"]
    finally:
        pruners._REGISTRY.pop("scaled_magnitude", None)
    with pytest.raises(RecipeError, match="unknown value 'scaled_magnitude'"):
        parse_recipe(base)


def test_typed_sections_are_their_dataclasses():
    """Every section's keys and defaults are its dataclass's own (one source), and a field's bounds come with it."""
    from bermo_prune.data import DataConfig
    from bermo_prune.data.corpus import CorpusConfig, MaskingConfig
    from bermo_prune.distill import DistillConfig
    from bermo_prune.fields import build, section, values_of
    from bermo_prune.models import ModelSpec
    from bermo_prune.pretrain import EncoderShape, PretrainTop
    from bermo_prune.recipe import Recipe
    from bermo_prune.rundir import CheckpointConfig
    from bermo_prune.schedule import ScheduleConfig
    from bermo_prune.tracking import DivergenceConfig
    from bermo_prune.train import TrainConfig

    r = parse_recipe({"task": "synthetic"})
    # every section is its dataclass's instance, at the dataclass's defaults
    assert r.train == TrainConfig() and TrainConfig.from_section(values_of(r.train)) == TrainConfig()
    assert r.divergence == DivergenceConfig() and r.distill == DistillConfig()
    assert r.model == ModelSpec() and r.data == DataConfig() and r.checkpoint == CheckpointConfig()
    # validation resolves the method's options (none here: {}); the schedule section is checked on its own
    assert r.pruning == PruningConfig(options={}) and r.pruning.schedule == ScheduleConfig()
    # the resolved recipe is the instances' keys as plain data, and builds the same instances again
    assert parse_recipe(r.to_dict()) == r and build(Recipe, r.to_dict(), source="<recipe>") == r
    assert (r.seed, r.output_dir) == (42, None)
    # the shipped recipes' sections are their dataclasses' keys, no more, no fewer
    for path in RECIPES:
        if path.stem.startswith("pretrain"):
            p = load_pretrain_recipe(path)
            for cls, name in ((CorpusConfig, "corpus"), (EncoderShape, "model"), (MaskingConfig, "mlm")):
                assert list(section(cls)) == list(p[name]) and cls(**p[name])
            assert list(section(PretrainTop)) == ["seed", "output_dir"]
            continue
        recipe = load_recipe(path)
        resolved = recipe.to_dict()
        assert (
            list(section(PruningConfig)) == list(resolved["pruning"])
            and section(PruningConfig)["schedule"].kind == "section"
        )
        assert list(section(ScheduleConfig)) == list(resolved["pruning"]["schedule"])
        assert list(section(DataConfig)) == list(resolved["data"])
    bounds = section(DataConfig)["max_train_samples"]
    assert (bounds.kind, bounds.min, bounds.nullable) == ("int", 1, True)
    assert (
        section(PruningConfig)["targets"].kind == "list_str"
        and section(DataConfig)["columns"].kind == "dict_str"
    )
    assert section(ScheduleConfig)["warmup"].kind == "steps" and section(CorpusConfig)["files"].required
    lr = section(TrainConfig)["lr"]
    assert (lr.kind, lr.default, lr.min, lr.min_open, lr.nullable) == ("float", 3e-5, 0.0, True, False)
    assert section(TrainConfig)["max_steps"].nullable and "seed" not in section(TrainConfig)
    with pytest.raises(RecipeError) as err:
        parse_recipe(
            {"task": "synthetic"}, overrides=["train.lr=0", "divergence.policy=retry", "model.family=gpt"]
        )
    assert err.value.problems == [
        "model.family: unknown value 'gpt'; use one of bert, roberta, electra, distilbert",
        "train.lr: must be > 0, got 0",
        "divergence.policy: unknown value 'retry'; use one of record, stop, rollback",
    ]


def test_a_schedule_section_builds_its_schedule_and_checks_the_run_length():
    """Step arguments given as fractions are rounded shares of the schedule's length; a kind's values and step
    arguments are its class's fields; the rules that need the run's length name their key."""
    from bermo_prune.schedule import Cubic, OneShot

    cfg = ScheduleConfig(initial=1.0, final=0.1, warmup=0.1, cooldown=0.2)
    assert cfg.build(1000) == Cubic(1.0, 0.1, total=1000, warmup=100, cooldown=200)
    assert ScheduleConfig(initial=1.0, final=0.1, warmup=30, total=500).build(1000) == Cubic(
        1.0, 0.1, total=500, warmup=30
    )
    assert ScheduleConfig(kind="one_shot", initial=1.0, final=0.3, at=0.5).build(80) == OneShot(
        1.0, 0.3, at=40
    )
    assert cfg.value_args() == ("initial", "final")
    assert ScheduleConfig(kind="constant", value=0.2).value_args() == ("value",)
    assert cfg.problems(1000) == []
    assert ScheduleConfig(kind="one_shot", final=0.3, at=80).problems(80) == [
        "pruning.schedule.at: step 80 is not before the run ends (80 steps)"
    ]
    assert ScheduleConfig(final=0.1, warmup=0.5, cooldown=0.5, total=200).problems(100) == [
        "pruning.schedule.total: 200 steps, but training runs 100: the schedule would not reach its final value "
        "before training ends",
        "pruning.schedule.warmup + cooldown: 100 + 100 steps leave no room to prune in a 200-step schedule",
    ]


def test_freeze_embeddings_needs_a_pretrained_encoder(tmp_path):
    assert problems(tmp_path, "task: sst2\ntrain:\n  freeze_embeddings: true\nmodel:\n  name: null\n") == [
        "train.freeze_embeddings: the model is built from scratch (model.name is null), so its word "
        "embeddings are random; freeze only a pretrained encoder's"
    ]
    pretrained = "task: sst2\ntrain:\n  freeze_embeddings: true\nmodel:\n  name: some/dir\n"
    assert load_recipe(write(tmp_path, pretrained)).train.freeze_embeddings is True


def test_train_precision_and_mixed_precision_are_one_setting(tmp_path):
    """``train.precision`` (fp32, bf16, fp16) is ``train.mixed_precision`` (no, bf16, fp16) by another name: the
    one given fills the other, an override wins over the file, and two that disagree are an error."""
    from bermo_prune.recipe import dump_recipe
    from bermo_prune.runner import train_config

    def both(text, overrides=None):
        t = load_recipe(write(tmp_path, text), overrides).train
        return t.precision, t.mixed_precision

    assert both("task: sst2\n") == ("fp32", "no")
    assert both("task: sst2\ntrain:\n  precision: bf16\n") == ("bf16", "bf16")
    assert both("task: sst2\ntrain:\n  precision: fp32\n") == ("fp32", "no")
    assert both("task: sst2\ntrain:\n  mixed_precision: fp16\n") == ("fp16", "fp16")
    assert both("task: sst2\n", ["train.precision=bf16"]) == ("bf16", "bf16")
    assert both("task: sst2\ntrain:\n  precision: bf16\n  mixed_precision: bf16\n") == ("bf16", "bf16")
    # what the training loop hands to Accelerate
    recipe = load_recipe(write(tmp_path, "task: sst2\n"), ["train.precision=bf16"])
    assert train_config(recipe, progress=False).mixed_precision == "bf16"
    # a resolved recipe holds both names; an override of either one wins over the file's pair
    saved = dump_recipe(recipe)
    assert "  mixed_precision: bf16\n" in saved and "  precision: bf16\n" in saved
    assert both(saved) == ("bf16", "bf16")
    assert both(saved, ["train.precision=fp32"]) == ("fp32", "no")
    assert both(saved, ["train.mixed_precision=fp16"]) == ("fp16", "fp16")
    msg = (
        "train.precision: 'fp32' disagrees with train.mixed_precision 'bf16' (one setting, two names: set one; "
        "precision fp32 is mixed_precision no)"
    )
    assert problems(tmp_path, "task: sst2\ntrain:\n  precision: fp32\n  mixed_precision: bf16\n") == [msg]
    # of two overrides the later one wins, as for one key given twice (a sweep joins spec and cell overrides)
    assert both("task: sst2\n", ["train.precision=fp32", "train.mixed_precision=bf16"]) == ("bf16", "bf16")
    assert both("task: sst2\n", ["train.mixed_precision=bf16", "train.precision=fp32"]) == ("fp32", "no")
    assert both("task: sst2\ntrain:\n", ["train.precision=bf16"]) == ("bf16", "bf16")  # train: null
    with pytest.raises(
        RecipeError, match="train.precision: 'fp16' disagrees with train.mixed_precision 'bf16'"
    ):
        load_pretrain_recipe(
            ROOT / "recipes" / "pretrain_tiny.yaml", ["train={precision: fp16, mixed_precision: bf16}"]
        )
    # a config built in code sets mixed_precision; precision follows it, and a disagreement is an error
    from bermo_prune.train_config import TrainConfig

    assert TrainConfig(mixed_precision="bf16").precision == "bf16" and TrainConfig().precision == "fp32"
    with pytest.raises(ValueError, match="precision 'bf16' disagrees with mixed_precision 'no'"):
        TrainConfig(precision="bf16")
    # pretraining's train section is the same keys, resolved the same way
    pre = load_pretrain_recipe(ROOT / "recipes" / "pretrain_tiny.yaml", ["train.precision=bf16"])["train"]
    assert (pre["precision"], pre["mixed_precision"]) == ("bf16", "bf16")
    assert problems(tmp_path, "task: sst2\ntrain:\n  precision: fp8\n") == [
        "train.precision: unknown value 'fp8'; use one of fp32, bf16, fp16"
    ]


def test_an_unquoted_no_is_the_allowed_value_so_spelled(tmp_path):
    """YAML 1.1 reads an unquoted ``no`` as false: ``mixed_precision: no`` (file or override) still means 'no'."""
    assert (
        load_recipe(write(tmp_path, "task: sst2\ntrain:\n  mixed_precision: no\n")).train.mixed_precision
        == "no"
    )
    r = load_recipe(write(tmp_path, "task: sst2\ntrain:\n  precision: bf16\n"), ["train.mixed_precision=no"])
    assert (r.train.precision, r.train.mixed_precision) == ("fp32", "no")
    assert problems(tmp_path, "task: sst2\ntrain:\n  precision: true\n") == [
        "train.precision: expected a string, got True"
    ]
