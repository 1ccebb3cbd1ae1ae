"""PruningCallback in a plain transformers.Trainer: the same masks and losses as the project's own loop."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

from bermo_prune.bermo import BermoForSequenceClassification, bermo_config_from_bert
from bermo_prune.data import load_task_data, train_wordpiece
from bermo_prune.engine import MaskedLinear
from bermo_prune.hooks import TrainHook
from bermo_prune.integrations.transformers import PruningCallback
from bermo_prune.jobs import classification_job
from bermo_prune.pruners import get_pruner
from bermo_prune.runner import feature_hooks
from bermo_prune.schedule import Cubic, Scheduler
from bermo_prune.train import Trainer as LoopTrainer
from bermo_prune.train_config import TrainConfig

from .conftest import tiny_config

STEPS, WARMUP, LR = 24, 3, 1e-3
SCORE_LR = {"movement": 0.1, "l0": 1.0}  # L0's gates at 1.0: they close within the run


@pytest.fixture(scope="module")
def setup():
    data = load_task_data("synthetic", "synthetic", synthetic_train_size=160, synthetic_dev_size=40)
    tokenizer = train_wordpiece([t[0] for t in data.train.texts], vocab_size=120)
    cfg = TrainConfig(
        max_steps=STEPS,
        batch_size=16,
        lr=LR,
        mix_lr=None,
        warmup_ratio=WARMUP / STEPS,
        max_length=32,
        log_every=1,
        seed=0,
        progress=False,
    )
    return data, tokenizer, cfg


def _scheduler(method: str) -> Scheduler:
    if method == "movement":
        return Scheduler(
            get_pruner("movement"), Cubic(1.0, 0.3, total=STEPS, warmup=3, cooldown=6), update_every=2
        )
    return Scheduler(get_pruner("l0"), Cubic(0.0, 1.0, total=STEPS, warmup=3, cooldown=6), update_every=2)


def _model(tokenizer) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config(vocab_size=len(tokenizer)))


class _Record(TrainHook):
    """The project's loop: the task loss and penalty of every step, the masks after it; reseeds before each batch."""

    def __init__(self, pruning_hook):
        self.pruning_hook, self.handle, self.rows, self.calls = pruning_hook, pruning_hook.handle, [], 0

    def wrap_data(self, dataset, collate):
        def seeded(items):
            torch.manual_seed(1000 + self.calls)  # the batch is collated just before its forward
            self.calls += 1
            return collate(items)

        return dataset, seeded

    def loss(self, loss, task_loss, out, batch, extras):
        self._losses = (float(task_loss.detach()), float(self.pruning_hook._penalty.detach()))
        return loss

    def after_step(self):
        self.rows.append((*self._losses, self.handle.state.mask.clone()))


class _RecordHF(TrainerCallback):
    """The Trainer: the same, read from the PruningCallback; reseeds before each step's forward."""

    def __init__(self, pruning: PruningCallback):
        self.pruning, self.rows = pruning, []

    def on_step_begin(self, args, state, control, **kwargs):
        torch.manual_seed(1000 + state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        p = self.pruning
        self.rows.append((float(p.last_task_loss), float(p.last_penalty), p.handle.state.mask.clone()))


class _Batches(torch.utils.data.IterableDataset):
    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(copy.deepcopy(self.batches))


@pytest.mark.parametrize("method", ["movement", "l0"])
def test_trainer_callback_equals_the_run_loop(method, setup, tmp_path):
    data, tokenizer, cfg = setup
    job = classification_job(tokenizer, data, cfg)

    # The project's loop (what `bermo-prune run` drives).
    from bermo_prune.engine import prune

    loop_model = _model(tokenizer)
    hf_model = copy.deepcopy(loop_model)
    handle = prune(loop_model, _scheduler(method))
    hooks = feature_hooks(handle, SCORE_LR[method], mix_lr=cfg.mix_lr)
    record = _Record(hooks[0])
    loop = LoopTrainer(loop_model, job, cfg, [*hooks, record])
    # The loop's batches, in its order, for the Trainer to take one by one.
    batches = []
    for epoch in range(3):
        loop.sampler.set_epoch(epoch)
        batches += [job.collate([job.train_set[i] for i in b]) for b in loop.sampler]
    loop.run()
    loop_final = handle.state.mask.clone()

    # A plain transformers.Trainer with the callback.
    pruning = PruningCallback(_scheduler(method), score_lr=SCORE_LR[method])
    recorder = _RecordHF(pruning)
    args = TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        max_steps=STEPS,
        per_device_train_batch_size=1,
        learning_rate=LR,
        lr_scheduler_type="linear",
        warmup_steps=WARMUP,
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch_fused",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    trainer = Trainer(
        model=hf_model,
        args=args,
        train_dataset=_Batches(batches[:STEPS]),
        data_collator=lambda items: items[0],
        callbacks=[pruning, recorder],
    )
    trainer.train()

    assert len(record.rows) == len(recorder.rows) == STEPS
    for step, (ours, theirs) in enumerate(zip(record.rows[:-1], recorder.rows[:-1], strict=True)):
        assert ours[0] == theirs[0], f"step {step + 1}: task loss {ours[0]} != {theirs[0]}"
        assert ours[1] == theirs[1], f"step {step + 1}: penalty {ours[1]} != {theirs[1]}"
        assert torch.equal(ours[2], theirs[2]), f"step {step + 1}: masks differ"
    assert record.rows[-1][:2] == recorder.rows[-1][:2]
    assert torch.equal(loop_final, recorder.rows[-1][2])  # the final masks
    assert not torch.equal(record.rows[0][2], loop_final)  # the masks moved
    assert (method == "l0") == any(r[1] > 0 for r in record.rows)  # L0's penalty took part
    # The Trainer's model came back hardened: a plain BERT whose weights equal the loop's after hardening.
    assert not any(isinstance(m, MaskedLinear) for m in hf_model.modules())
    handle.harden()
    theirs = hf_model.state_dict()
    for name, value in loop_model.state_dict().items():
        assert torch.equal(value, theirs[name]), name
    logged = [r for r in trainer.state.log_history if "loss" in r]
    assert len(logged) == STEPS and {"remaining", pruning.handle.pruner.schedule_key} <= set(logged[0])


def test_recipe_section_and_bermo_mix_are_logged(setup, tmp_path):
    data, tokenizer, cfg = setup
    job = classification_job(tokenizer, data, cfg)
    section = {
        "method": "magnitude",
        "granularity": "head",
        "update_every": 2,
        "schedule": {"kind": "cubic", "final": 0.5, "warmup": 0.1, "cooldown": 0.25},
    }
    pruning = PruningCallback.from_recipe(section, mix_lr=1e-2)
    torch.manual_seed(0)
    model = BermoForSequenceClassification(bermo_config_from_bert(tiny_config(vocab_size=len(tokenizer))))
    examples = [
        {"input_ids": ids, "token_type_ids": tt, "labels": y}
        for ids, tt, y in (job.train_set[i] for i in range(len(job.train_set)))
    ]
    from transformers import DataCollatorWithPadding

    args = TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        max_steps=20,
        per_device_train_batch_size=16,
        learning_rate=1e-3,
        logging_steps=5,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[pruning],
    )
    trainer.train()
    logged = [r for r in trainer.state.log_history if "loss" in r]
    assert [r["step"] for r in logged] == [5, 10, 15, 20]
    assert logged[-1]["remaining"] == pytest.approx(pruning.final_sparsity["remaining"], abs=1e-6)
    assert pruning.final_sparsity["remaining"] == pytest.approx(0.5) and logged[0]["remaining"] > 0.5
    assert {"mix/layer_0", "mix/layer_2", "mix/gamma"} <= set(logged[-1])
    assert logged[-1]["mix/gamma"] != 1.0  # the mix trained, in its own group at mix_lr
    groups = {g.get("name"): g for g in trainer.optimizer.param_groups}
    assert "scalar_mix" in groups and groups["scalar_mix"]["initial_lr"] == 1e-2
    assert pruning.final_sparsity["remaining"] == pytest.approx(0.5)
    assert not any(isinstance(m, MaskedLinear) for m in model.modules())  # hardened


def test_bad_recipe_section_is_one_error():
    from bermo_prune.errors import RecipeError

    with pytest.raises(
        RecipeError, match=r"pruning.method: unknown value 'movment' \(did you mean 'movement'\?\)"
    ):
        PruningCallback.from_recipe({"method": "movment", "schedule": {"kind": "cubic", "final": 0.1}})
    # the constructor takes the section's mapping too, validated the same way
    with pytest.raises(
        RecipeError, match=r"pruning.schedule.final: a remaining fraction must be in \(0, 1\], got 2"
    ):
        PruningCallback(pruning={"method": "movement", "schedule": {"final": 2}})
    cb = PruningCallback(pruning={"method": "movement", "score_lr": 0.05, "schedule": {"final": 0.1}})
    assert (cb.pruning.method, cb.score_lr, cb.pruning.schedule.final, cb.pruning.schedule.initial) == (
        "movement",
        0.05,
        0.1,
        1.0,
    )
