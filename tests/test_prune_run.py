"""A short fine-prune run of a tiny model with every registered method: it reaches its target and still learns."""

import json

import pytest
import torch

from bermo_prune.data import load_task_data
from bermo_prune.engine import prune
from bermo_prune.models import ModelSpec, build_model
from bermo_prune.pruners import available_pruners, get_pruner
from bermo_prune.runner import fine_tune
from bermo_prune.schedule import Cubic, Scheduler
from bermo_prune.train_config import TrainConfig

STEPS = 700
SCHEDULES = {
    "remaining": Cubic(1.0, 0.3, total=STEPS, warmup=300, cooldown=100),
    "threshold": Cubic(0.0, 0.5, total=STEPS, warmup=300, cooldown=100),
    "lambda": Cubic(0.0, 0.3, total=STEPS, warmup=300, cooldown=100),
}


@pytest.fixture(scope="module")
def synthetic():
    return load_task_data("synthetic", "synthetic", synthetic_train_size=3000, synthetic_dev_size=500)


@pytest.mark.parametrize("method", available_pruners())
def test_short_run_reaches_target_and_learns(method, synthetic, tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(
        arch="bermo", num_layers=2, hidden_size=64, num_heads=2, intermediate_size=128, vocab_size=200
    )
    model, tok = build_model(spec, 2, [t[0] for t in synthetic.train.texts])
    pruner = get_pruner(method)
    handle = prune(model, Scheduler(pruner, SCHEDULES[pruner.schedule_key], update_every=10))
    cfg = TrainConfig(max_steps=STEPS, lr=1e-3, eval_every=100, progress=False)
    score_lr = (
        0.05 if method == "l0" else None
    )  # L0 gates start at log-alpha 3: a short run needs a faster rate
    summary = fine_tune(model, tok, synthetic, cfg, output_dir=tmp_path, handle=handle, score_lr=score_lr)
    remaining = summary["sparsity"]["remaining"]
    if pruner.schedule_key == "remaining":
        assert remaining == pytest.approx(0.3, abs=1e-3)  # exact per matrix: round(0.3 * units)
        assert summary["final"]["accuracy"] > 0.75
    else:
        assert remaining < 0.9  # penalty methods report what they reached (L0 at lambda 0.3: about 0.7)
        assert summary["final"]["accuracy"] > 0.7  # majority class is 0.516
    losses = [
        json.loads(line)["loss"]
        for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
        if '"loss"' in line and '"eval"' not in line
    ]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.2
