"""End-to-end fine-tuning of tiny models on a subset of the real SST-2."""

import json

import pytest
import torch

from bermo_prune.data import load_task_data
from bermo_prune.models import ModelSpec, build_model
from bermo_prune.runner import fine_tune
from bermo_prune.train_config import TrainConfig


@pytest.mark.parametrize("arch", ["bert", "bermo"])
def test_tiny_model_learns_real_sst2(sst2_dir, tmp_path, arch):
    torch.manual_seed(0)
    data = load_task_data("sst2", "local", path=sst2_dir, max_train_samples=4000, seed=0)
    spec = ModelSpec(
        arch=arch, num_layers=2, hidden_size=64, num_heads=2, intermediate_size=128, vocab_size=3000
    )
    model, tok = build_model(spec, 2, [t[0] for t in data.train.texts])
    cfg = TrainConfig(epochs=2, lr=1e-3, max_length=64, eval_every=100, progress=False)
    summary = fine_tune(model, tok, data, cfg, output_dir=tmp_path)
    majority = max(data.dev.labels.count(0), data.dev.labels.count(1)) / len(data.dev)
    assert summary["steps"] == 250  # 2 epochs of ceil(4000 / 32) batches
    assert summary["final"]["accuracy"] > majority + 0.1
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval" in r] == [100, 200, 250]
    if arch == "bermo":
        assert len(summary["mix"]["layer_weights"]) == 3
        assert summary["mix"]["layer_weights"] != pytest.approx([1 / 3] * 3)  # the mix was learned
        assert "mix" in records[-1]
    else:
        assert summary["mix"] is None
