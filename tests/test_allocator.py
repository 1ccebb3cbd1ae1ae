"""Keeping freed memory (bermo_prune.allocator): it takes effect on glibc, can be refused, and changes no result."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from .conftest import ROOT

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _python(code: str, malloc: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "BERMO_PRUNE_MALLOC"}
    if malloc is not None:
        env["BERMO_PRUNE_MALLOC"] = malloc
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_it_takes_effect_once_and_the_environment_can_refuse_it():
    code = """
        from bermo_prune.allocator import retain_freed_memory
        print(retain_freed_memory(), retain_freed_memory())
    """
    assert _python(code) == "True True"
    assert _python(code, malloc="system") == "False False"
    assert _python(code, malloc=" System ") == "False False"


# A few pruned training steps with tensors above the 32 MiB that glibc's default may still serve from its heap (a
# word embedding of 40,000 x 256 = 10.2M floats, 41 MB, and its gradient), in a fresh process each: the weights and
# scores must come out bit for bit the same.
TRAIN = """
    import hashlib, torch
    from transformers import BertConfig, BertForSequenceClassification
    from bermo_prune.allocator import retain_freed_memory
    from bermo_prune.engine import prune
    from bermo_prune.optim import make_optimizer
    from bermo_prune.pruners import get_pruner
    from bermo_prune.schedule import Cubic, Scheduler
    retain_freed_memory()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=40000, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=2048, num_labels=2)
    model = BertForSequenceClassification(cfg).train()
    handle = prune(model, Scheduler(get_pruner("l0", target_control=True), Cubic(1.0, 0.1, total=20)))
    opt = make_optimizer(handle.param_groups(lr=1e-3), 1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        x = torch.randint(5, 40000, (8, 32), generator=g)
        loss = model(input_ids=x, labels=torch.randint(0, 2, (8,), generator=g)).loss + handle.penalty()
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); handle.step()
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode()); h.update(t.detach().contiguous().numpy().tobytes())
    print(h.hexdigest())
"""


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_training_is_bit_identical_with_and_without_it():
    retained = _python(TRAIN)
    system = _python(TRAIN, malloc="system")
    assert retained == system
    assert len(retained) == len(hashlib.sha256().hexdigest())


TINY_RUN = ["train.max_steps=2", "model.num_layers=1", "model.hidden_size=32", "model.num_heads=2",
            "model.intermediate_size=64", "model.vocab_size=200", "data.synthetic_train_size=64",
            "data.synthetic_dev_size=32", "train.threads=1"]  # fmt: skip


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_library_leaves_malloc_alone_and_the_training_commands_apply_it(tmp_path):
    """A run through the Python API (as a notebook would) does not touch malloc; ``bermo-prune run`` does."""
    recipe = str(ROOT / "recipes" / "quickstart.yaml")
    library = f"""
        import bermo_prune.allocator as allocator
        from bermo_prune.recipe import load_recipe
        from bermo_prune.runner import run_recipe
        run_recipe(load_recipe({recipe!r}, {TINY_RUN!r}), {str(tmp_path / "api")!r}, progress=False)
        print(allocator._applied)
    """
    command = f"""
        import bermo_prune.allocator as allocator
        from bermo_prune.cli import main
        rc = main(["run", {recipe!r}, *{TINY_RUN!r}, "--quiet", "--output-dir", {str(tmp_path / "cli")!r}])
        print(rc, allocator._applied)
    """
    assert _python(library).splitlines()[-1] == "None"
    assert (tmp_path / "api" / "summary.json").is_file()
    assert _python(command).splitlines()[-1] == "0 True"
