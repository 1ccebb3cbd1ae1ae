"""Knowledge distillation: the reference loss, the per-example teacher-logit cache, teacher checks, and a distilled
run that resumes bit-identically after SIGKILL (its cache travels in the checkpoint)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import BertForSequenceClassification

from bermo_prune.cli import EXIT_BAD_INPUT
from bermo_prune.distill import INDEX_KEY, DistillConfig, Distiller, IndexedCollate, IndexedSplit
from bermo_prune.recipe import parse_recipe

from .conftest import QUICK, TINY, kill_run_after, run_cli, tiny_config


class CountingTeacher(torch.nn.Module):
    """A teacher that counts the examples it is asked about."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.model = BertForSequenceClassification(tiny_config(vocab_size=100)).eval()
        self.seen = 0

    def forward(self, **inputs):
        self.seen += inputs["input_ids"].shape[0]
        return self.model(**inputs)


def test_the_loss_is_the_references_alpha_kl_at_temperature_plus_task_loss():
    teacher = CountingTeacher()
    d = Distiller(teacher, DistillConfig(teacher="x", temperature=2.0, alpha=0.9, cache=False), 8, 2)
    ids = torch.randint(1, 100, (4, 7), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 1, 0])}
    student = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    task = F.cross_entropy(student, batch["labels"])
    loss, term = d.loss(student, task, batch, torch.arange(4))
    with torch.no_grad():
        t = teacher.model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
    # sum over classes of p_t (log p_t - log p_s) at T = 2, averaged over the batch, times T^2
    pt, ps = torch.softmax(t / 2, -1), torch.log_softmax(student / 2, -1)
    kl = (pt * (pt.log() - ps)).sum(-1).mean() * 4
    assert term.item() == pytest.approx(kl.item(), rel=1e-5)
    assert loss.item() == pytest.approx(0.9 * kl.item() + 0.1 * task.item(), rel=1e-5)
    # it teaches: the KL term's gradient points the student towards the teacher's distribution
    s = student.clone().requires_grad_(True)
    d.loss(s, torch.zeros(()), batch, torch.arange(4))[0].backward()
    moved = torch.softmax((s - 0.5 * s.grad) / 2, -1)
    assert (moved - pt).abs().sum() < (torch.softmax(student / 2, -1) - pt).abs().sum()


def test_with_the_cache_each_example_costs_one_teacher_forward_and_gets_its_own_logits():
    teacher = CountingTeacher()
    d = Distiller(teacher, DistillConfig(teacher="x"), num_examples=6, num_outputs=2)
    ids = torch.randint(1, 100, (6, 5), generator=torch.Generator().manual_seed(0))
    batch = lambda rows: {"input_ids": ids[rows], "attention_mask": torch.ones_like(ids[rows])}  # noqa: E731
    first = d.teacher_logits(batch([0, 1, 2]), torch.tensor([0, 1, 2]))
    assert teacher.seen == 3
    again = d.teacher_logits(batch([2, 3, 0]), torch.tensor([2, 3, 0]))  # only example 3 is new
    assert teacher.seen == 4
    assert torch.equal(again[0], first[2]) and torch.equal(again[2], first[0])
    with torch.no_grad():
        alone = teacher.model(**batch([3])).logits
    assert torch.allclose(again[1], alone[0], atol=1e-6)
    assert d.filled.tolist() == [True, True, True, True, False, False]
    # the cache round-trips through a checkpoint's state
    e = Distiller(teacher, DistillConfig(teacher="x"), num_examples=6, num_outputs=2)
    e.load_state_dict(d.state_dict())
    assert torch.equal(e.cache, d.cache) and torch.equal(e.filled, d.filled)
    with pytest.raises(Exception, match=r"cache has shape \(6, 2\), this run's training set needs \(5, 2\)"):
        Distiller(teacher, DistillConfig(teacher="x"), num_examples=5, num_outputs=2).load_state_dict(
            d.state_dict()
        )


def test_indexed_batches_carry_the_example_indices():
    split = IndexedSplit([("a",), ("b",), ("c",)])
    collate = IndexedCollate(lambda items: {"n": torch.tensor(len(items))})
    batch = collate([split[2], split[0]])
    assert batch[INDEX_KEY].tolist() == [2, 0] and batch["n"].item() == 2


def test_the_recipe_section():
    r = parse_recipe({"task": "sst2"})
    assert r.distill == DistillConfig(teacher=None, temperature=2.0, alpha=0.9, cache=True)
    assert r.to_dict()["distill"] == {"teacher": None, "temperature": 2.0, "alpha": 0.9, "cache": True}
    with pytest.raises(Exception, match=r"distill.alpha: must be <= 1, got 1.5"):
        parse_recipe({"task": "sst2", "distill": {"teacher": "t", "alpha": 1.5}})
    with pytest.raises(Exception, match=r"distill.temperture: unknown key \(did you mean 'temperature'\?\)"):
        parse_recipe({"task": "sst2", "distill": {"temperture": 2}})


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    assert run_cli(QUICK, *TINY, "pruning.method=none", "train.max_steps=300", "--output-dir", str(out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final"]["accuracy"] > 0.6  # a teacher worth distilling from
    return out


def test_a_bad_teacher_is_one_line_exit_2_and_writes_nothing(teacher_run, tmp_path, capsys):
    out = tmp_path / "student"
    assert (
        run_cli(QUICK, *TINY, f"distill.teacher={tmp_path / 'nowhere'}", "--output-dir", str(out))
        == EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err.strip()
    assert (
        err.endswith(f"distill.teacher: {tmp_path / 'nowhere'}: no such run or model directory")
        and "\n" not in err
    )
    assert not out.exists()
    # a directory that is neither a run nor a model
    (tmp_path / "empty").mkdir()
    assert (
        run_cli(QUICK, *TINY, f"distill.teacher={tmp_path / 'empty'}", "--output-dir", str(out))
        == EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"distill.teacher: {tmp_path / 'empty'}: not a run directory (with model/) or a model "
                        "directory (with config.json)") and "\n" not in err  # fmt: skip
    assert not out.exists()
    # a teacher whose tokenizer reads another vocabulary
    args = [*TINY, "model.vocab_size=150", f"distill.teacher={teacher_run}", "--output-dir", str(out)]
    assert run_cli(QUICK, *args) == EXIT_BAD_INPUT
    assert "its tokenizer's vocabulary differs from the student's" in capsys.readouterr().err
    assert not out.exists()


def test_a_distilled_run_is_sigkill_safe_and_bit_identical(teacher_run, tmp_path):
    """Killed after its checkpoint in the 5th epoch, the resumed run reads the cached teacher logits of the first
    epochs from the checkpoint and ends exactly where an uninterrupted run ends."""
    args = [*TINY, f"distill.teacher={teacher_run}", "train.max_steps=300", "train.eval_every=100",
            "checkpoint.every=200"]  # fmt: skip
    killed = tmp_path / "killed"
    kill_run_after(args, killed, 230)
    state = torch.load(killed / "checkpoint" / "state.pt", weights_only=True)
    assert bool(state["distill"]["filled"].all())  # 200 steps of 32 cover every one of the 1,500 examples
    assert run_cli(QUICK, *args, "--output-dir", str(killed), "--resume") == 0
    whole = tmp_path / "whole"
    assert run_cli(QUICK, *args, "--output-dir", str(whole)) == 0
    a = json.loads((killed / "summary.json").read_text())
    b = json.loads((whole / "summary.json").read_text())
    assert a["history"] == b["history"] and a["sparsity"] == b["sparsity"]
    wa, wb = (
        load_file(killed / "model" / "model.safetensors"),
        load_file(whole / "model" / "model.safetensors"),
    )
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    la = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (whole / "metrics.jsonl").read_text().splitlines()]
    assert la == lb and all("distill_loss" in r for r in la if "loss" in r)
