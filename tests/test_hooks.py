"""The training loop's seams: a user's hook plugs in beside the standard ones, is called at every step, adds to
the loss, logs, reports, and its state goes through the checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from bermo_prune.data import load_task_data
from bermo_prune.engine import prune
from bermo_prune.hooks import MixHook, PruningHook, TrainHook
from bermo_prune.jobs import classification_job
from bermo_prune.models import ModelSpec, build_model
from bermo_prune.pruners import get_pruner
from bermo_prune.runner import feature_hooks, fine_tune
from bermo_prune.schedule import Cubic, Scheduler
from bermo_prune.train import Trainer
from bermo_prune.train_config import TrainConfig, section_hooks

from .conftest import tiny_config


class Counter(TrainHook):
    """Counts optimizer steps, adds an L2 term on the classifier's weight, logs and reports the count."""

    state_key = "counter"

    def __init__(self, weight: float = 0.0) -> None:
        self.count = 0
        self.weight = weight
        self.loss_calls = 0

    def loss(self, loss, task_loss, out, batch, extras):
        self.loss_calls += 1
        return loss + self.weight * self.classifier.pow(2).sum() if self.weight else loss

    def param_groups(self, groups, model, cfg):
        self.classifier = model.classifier.weight
        return groups

    def after_step(self):
        self.count += 1

    def log_fields(self):
        return {"counter": self.count}

    def summary_fields(self, model):
        return {"counted_steps": self.count}

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


@pytest.fixture(scope="module")
def small_task():
    return load_task_data("synthetic", "synthetic", synthetic_train_size=400, synthetic_dev_size=100)


def _trainer(small_task, out, hooks, steps=20, **train):
    torch.manual_seed(0)
    spec = ModelSpec(
        arch="bermo", num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, vocab_size=200
    )
    model, tok = build_model(spec, 2, [t[0] for t in small_task.train.texts])
    cfg = TrainConfig(
        max_steps=steps, lr=1e-3, eval_every=10, log_every=5, progress=False, threads=1, **train
    )
    job = classification_job(tok, small_task, cfg)
    return model, Trainer(model, job, cfg, [*hooks, *section_hooks(cfg, job, out)], out, checkpoint_every=10)


def test_a_users_hook_is_called_logged_reported_and_checkpointed(small_task, tmp_path):
    counter = Counter()
    model, trainer = _trainer(small_task, tmp_path, [*feature_hooks(mix_lr=1e-2), counter])
    summary = trainer.run()
    assert counter.count == 20 and counter.loss_calls == 20
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["counter"]) for r in logged if "loss" in r] == [
        (5, 5),
        (10, 10),
        (15, 15),
        (20, 20),
    ]
    assert summary["counted_steps"] == 20
    assert summary["mix"] is not None  # the standard mix hook still reports BERMo's mix
    state = torch.load(tmp_path / "checkpoint" / "state.pt", weights_only=True)
    assert state["counter"] == {"count": 10}  # the last periodic checkpoint, at step 10

    resumed = Counter()  # a fresh hook gets its state back from the checkpoint
    _, again = _trainer(small_task, tmp_path, [*feature_hooks(mix_lr=1e-2), resumed])
    assert again.run(resume=True)["counted_steps"] == 20
    assert resumed.count == 20 and resumed.loss_calls == 10


def test_a_hooks_loss_term_trains_the_model(small_task, tmp_path):
    plain, t1 = _trainer(small_task, tmp_path / "a", [MixHook(1e-2), Counter()])
    t1.run()
    decayed, t2 = _trainer(small_task, tmp_path / "b", [MixHook(1e-2), Counter(weight=1.0)])
    t2.run()
    assert decayed.classifier.weight.norm() < 0.9 * plain.classifier.weight.norm()


def test_fine_tune_is_the_trainer_with_the_feature_hooks(small_task, tmp_path):
    """``fine_tune(handle=...)`` and a Trainer given the pruning and mix hooks train the same model, step for step."""
    results = []
    for name in ("fine_tune", "hooks"):
        torch.manual_seed(0)
        spec = ModelSpec(
            arch="bert", num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, vocab_size=200
        )
        model, tok = build_model(spec, 2, [t[0] for t in small_task.train.texts])
        handle = prune(
            model, Scheduler(get_pruner("movement"), Cubic(1.0, 0.3, total=20, warmup=2, cooldown=4))
        )
        cfg = TrainConfig(max_steps=20, lr=1e-3, eval_every=10, progress=False, threads=1)
        if name == "fine_tune":
            summary = fine_tune(model, tok, small_task, cfg, handle=handle, score_lr=1e-2)
        else:
            job = classification_job(tok, small_task, cfg)
            summary = Trainer(
                model, job, cfg, [PruningHook(handle, score_lr=1e-2), MixHook(cfg.mix_lr)]
            ).run()
        results.append((summary["final"]["loss"], summary["sparsity"]["kept"], handle.state.mask.clone()))
    (loss_a, kept_a, mask_a), (loss_b, kept_b, mask_b) = results
    assert loss_a == loss_b and kept_a == kept_b and torch.equal(mask_a, mask_b)


def test_freeze_embeddings_keeps_the_word_embeddings_and_trains_the_rest(small_task, tmp_path):
    model, trainer = _trainer(
        small_task, tmp_path / "frozen", feature_hooks(mix_lr=1e-2), freeze_embeddings=True
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    words = model.get_input_embeddings().weight
    name = next(n for n, p in model.named_parameters() if p is words)
    summary = trainer.run()
    assert torch.equal(words.detach(), before[name])
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert any("position_embeddings" in n for n in changed) and any("encoder.layer.1." in n for n in changed)
    assert summary["frozen_embeddings"] == words.numel() == 200 * 32
    assert not any(p is words for g in trainer.optimizer.param_groups for p in g["params"])  # no AdamW state

    plain, again = _trainer(small_task, tmp_path / "plain", feature_hooks(mix_lr=1e-2))
    assert "frozen_embeddings" not in again.run()
    assert not torch.equal(plain.get_input_embeddings().weight.detach(), before[name])  # it would have moved


def test_freeze_embeddings_refuses_embeddings_tied_to_the_output_and_pretraining_has_no_such_key():
    from transformers import BertForMaskedLM

    from bermo_prune.errors import InputError
    from bermo_prune.hooks import FreezeEmbeddingsHook
    from bermo_prune.pretrain import PRETRAIN_SECTIONS

    model = BertForMaskedLM(tiny_config())  # its decoder is the word-embedding matrix
    groups = [{"params": list(model.parameters())}]
    with pytest.raises(InputError, match="tied to its output layer"):
        FreezeEmbeddingsHook().param_groups(groups, model, TrainConfig())
    assert model.get_input_embeddings().weight.requires_grad
    assert "freeze_embeddings" not in PRETRAIN_SECTIONS["train"]


def test_bf16_mixed_precision_autocasts_the_encoder_on_cpu(small_task, tmp_path):
    """``train.mixed_precision=bf16`` reaches the matmuls through Accelerate on a CPU-only machine too."""
    from accelerate.state import AcceleratorState

    # Accelerate keeps one precision per process: this test sets bf16 and puts back a fresh state for the others.
    AcceleratorState._reset_state()
    try:
        model, trainer = _trainer(small_task, tmp_path, feature_hooks(mix_lr=1e-2), mixed_precision="bf16")
        seen = []
        query = next(
            m for n, m in model.named_modules() if n.endswith("encoder.layer.0.attention.self.query")
        )
        query.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
        summary = trainer.run()
    finally:
        AcceleratorState._reset_state()
    assert set(seen) == {torch.bfloat16} and summary["final"]["loss"] == summary["final"]["loss"]  # not NaN


def test_the_trainer_takes_its_hooks_fourth_and_says_so_when_given_a_directory(small_task, tmp_path):
    cfg = TrainConfig(max_steps=2, progress=False)
    with pytest.raises(
        TypeError, match="the 4th argument is the list of hooks; pass the run directory as output_dir"
    ):
        Trainer(None, None, cfg, str(tmp_path))


def test_fp16_without_a_gpu_is_refused_before_anything_is_written(tmp_path, capsys):
    """On the CPU Accelerate leaves fp16 without autocast or scaler (the premise, pinned: if a later Accelerate
    autocasts it, this fails and the refusal can go); so ``train.precision=fp16`` there is a one-line error naming
    the recipe, exit 2, no files; the loop refuses it too."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from bermo_prune.cli import EXIT_BAD_INPUT
    from bermo_prune.errors import InputError
    from bermo_prune.train import Trainer
    from bermo_prune.train_config import TrainConfig, precision_problem

    from .conftest import QUICK, TINY, run_cli

    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        acc = Accelerator(mixed_precision="fp16", cpu=True)
        layer = acc.prepare(torch.nn.Linear(4, 4))
        with acc.autocast():
            assert layer(torch.randn(2, 4)).dtype == torch.float32
        assert acc.scaler is None
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert precision_problem("fp16", "cuda") is None and precision_problem("bf16", "cpu") is None
    problem = precision_problem("fp16", "cpu")
    assert problem == (
        "train.precision (train.mixed_precision): fp16 needs a CUDA GPU; on the CPU Accelerate does not autocast "
        "fp16, so the run would be fp32: use bf16 or fp32 here (a run begun in fp16: start it again with "
        "--overwrite)"
    )
    if torch.cuda.is_available():
        return
    out = tmp_path / "run"
    assert run_cli(QUICK, *TINY, "train.precision=fp16", "--output-dir", str(out)) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().splitlines() == [f"bermo-prune: error: {QUICK}: {problem}"]
    assert not out.exists()
    with pytest.raises(InputError, match="fp16 needs a CUDA GPU"):
        Trainer(None, None, TrainConfig(mixed_precision="fp16"))
