"""A custom training loop on the public API, run by tests/test_data_parallel.py under `accelerate launch`.

    python ddp_worker.py OUT BATCH_SIZE [METHOD]

Trains a tiny BERMo on the synthetic task with pruning, then every process writes its pruning state and mix to
OUT/rank{k}.pt and the summary to OUT/summary{k}.json, so the test can compare what the processes hold.
"""

import json
import sys
from pathlib import Path

import torch

from bermo_prune import Cubic, ModelSpec, Scheduler, TrainConfig, build_model, fine_tune, get_pruner, prune
from bermo_prune.data import load_task_data
from bermo_prune.dist import process_state

out, batch = Path(sys.argv[1]), int(sys.argv[2])
method = sys.argv[3] if len(sys.argv) > 3 else "movement"
state = process_state()
data = load_task_data("synthetic", "synthetic", synthetic_train_size=1200, synthetic_dev_size=301)
torch.manual_seed(0)
spec = ModelSpec(
    arch="bermo", num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, vocab_size=200, dropout=0.0
)
model, tok = build_model(spec, 2, [t[0] for t in data.train.texts])
steps = 300
pruner = get_pruner(method, **({"target_control": True} if method == "l0" else {}))
handle = prune(
    model, Scheduler(pruner, Cubic(1.0, 0.3, total=steps, warmup=30, cooldown=90), update_every=10)
)
cfg = TrainConfig(
    max_steps=steps, batch_size=batch, lr=3e-3, eval_every=100, log_every=1, progress=False, threads=1
)
summary = fine_tune(model, tok, data, cfg, output_dir=out / "run", handle=handle, score_lr=0.05)
k = state.process_index
# everything the process holds: weights, BERMo's mix, pruning scores and masks
torch.save({"model": model.state_dict(), "world": state.num_processes}, out / f"rank{k}.pt")
(out / f"summary{k}.json").write_text(json.dumps(summary, default=str))
