"""Shared fixtures: offline environment, seeded tiny BERT and BERMo, the real SST-2 location."""

from __future__ import annotations

import json
import os
from pathlib import Path

# Hub calls must fail at once, never retry: set before transformers/datasets are imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
)
from transformers.utils import logging as hf_logging  # noqa: E402

from bermo_prune.bermo import BermoForSequenceClassification, bermo_config_from_bert  # noqa: E402
from bermo_prune.engine import prune  # noqa: E402
from bermo_prune.pruners import get_pruner  # noqa: E402
from bermo_prune.schedule import Cubic, Scheduler  # noqa: E402
from bermo_prune.synthetic import generate_synthetic  # noqa: E402

hf_logging.disable_progress_bar()
torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parents[1]
# CI clones the project next to shared/; BERMO_PRUNE_SST2 points elsewhere.
SST2 = Path(os.environ.get("BERMO_PRUNE_SST2", ROOT.parent / "shared" / "data" / "sst2"))


QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# A tiny, fast version of the quick start (overrides as a user would type them).
TINY = [
    "model.num_layers=2",
    "model.hidden_size=32",
    "model.num_heads=2",
    "model.intermediate_size=64",
    "model.vocab_size=200",
    "data.synthetic_train_size=1500",
    "data.synthetic_dev_size=300",
    "train.threads=1",
]


def run_cli(*args: str) -> int:
    """``bermo-prune run ARGS --quiet``; the exit code."""
    from bermo_prune.cli import main

    return main(["run", *args, "--quiet"])


def metrics_steps(path: Path) -> int:
    """The last step a (possibly half-written) ``metrics.jsonl`` records; 0 when there is none."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line).get("step", 0) for line in lines if line.strip().endswith("}")]
    return max(steps, default=0)


def kill_run_after(args: list[str], out: Path, step: int) -> None:
    """``bermo-prune run QUICK ARGS --output-dir OUT`` in a fresh process, SIGKILLed once its metrics reach ``step``
    (the test fails if the run finishes first)."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "bermo_prune.cli", "run", QUICK, *args, "--quiet", "--output-dir", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while metrics_steps(out / "metrics.jsonl") < step and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def small_task():
    """A small synthetic task (1,500 train, 300 dev)."""
    from bermo_prune.data import load_task_data

    return load_task_data("synthetic", "synthetic", synthetic_train_size=1500, synthetic_dev_size=300)


def tiny_overrides(train_size: int, dev_size: int, *more: str) -> list[str]:
    """Overrides that shrink the quick start to a 2-layer hidden-32 model on a small synthetic task (as a user would
    type them), plus ``more``."""
    return [
        "model.num_layers=2",
        "model.hidden_size=32",
        "model.num_heads=2",
        "model.intermediate_size=64",
        "model.vocab_size=200",
        f"data.synthetic_train_size={train_size}",
        f"data.synthetic_dev_size={dev_size}",
        *more,
    ]


def tiny_config(**overrides) -> BertConfig:
    fields = dict(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    fields.update(overrides)
    return BertConfig(**fields)


@pytest.fixture
def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config()).eval()


@pytest.fixture
def tiny_bermo() -> BermoForSequenceClassification:
    torch.manual_seed(0)
    return BermoForSequenceClassification(bermo_config_from_bert(tiny_config())).eval()


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 120, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="session")
def sst2_dir() -> Path:
    if not (SST2 / "train.tsv").is_file():
        pytest.fail(f"real SST-2 not found at {SST2} (the project's shared data)")
    return SST2


# ---- a tiny pruned BERT or BERMo and a few training steps (engine and pruner tests) ----
STEPS = 30


def schedule_for(pruner, total=STEPS):
    return {
        "remaining": Cubic(1.0, 0.3, total=total, warmup=3, cooldown=5),
        "threshold": Cubic(0.0, 0.1, total=total),
        "lambda": Cubic(0.0, 2.0, total=total),
    }[pruner.schedule_key]


def pruned_tiny(method, granularity, arch="bert", seed=0, update_every=5, **kwargs):
    torch.manual_seed(seed)
    if arch == "bert":
        model = BertForSequenceClassification(tiny_config())
    else:
        model = BermoForSequenceClassification(bermo_config_from_bert(tiny_config()))
    pruner = get_pruner(method, granularity=granularity, block_rows=8, block_cols=8, **kwargs)
    handle = prune(model, Scheduler(pruner, schedule_for(pruner), update_every=update_every))
    return model, handle


def token_batch(seed=1, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, 120, (n, 10), generator=g), torch.randint(0, 2, (n,), generator=g)


def train_pruned(model, handle, steps, optimizer=None, score_lr=0.05):
    x, y = token_batch()
    optimizer = optimizer or torch.optim.AdamW(handle.param_groups(lr=1e-3, score_lr=score_lr))
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(input_ids=x, labels=y).loss + handle.penalty()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        handle.step()
        losses.append(float(loss.detach()))
    return optimizer, losses


def write_baselines_json(tmp_path, rows, start=100, majority=0.5, bag_of_words=0.8):
    """What `bermo-prune baselines` would write for these rows: one data draw, pruning from step ``start``."""
    baselines = {
        "spec": "spec.yaml",
        "bag_of_words_settings": {},
        "at_chance_margin": 0.02,
        "scikit_learn": "test",
        "draws": [
            {
                "task": "sst2",
                "seeds": [0, 1, 2],
                "majority": {"label": 1, "dev_accuracy": majority, "dev_majority_rate": majority},
                "bag_of_words": bag_of_words,
            }
        ],
        "runs": {
            r["run"]: {"draw": 0, "steps": 500, "pruning_start": None if r["method"] == "none" else start}
            for r in rows
        },
    }
    (tmp_path / "baselines.json").write_text(json.dumps(baselines))


def study_row(model, method, target, seed, curve, teacher=None):
    return {
        "run": f"{model}_{method}_{target}_s{seed}",
        "model": model,
        "method": method,
        "pruning_method": method.removesuffix("_kd"),
        "teacher": teacher,
        "target": target,
        "seed": seed,
        "status": "ok",
        "remaining": 1.0 if target is None else target,
        "metric": "accuracy",
        "final": curve[-1][1],
        "best": max(v for _, v in curve),
        # the training-time tracker's flags, deliberately inconsistent between the models (as in the committed
        # study): the report's outcomes must not read them
        "diverged": model == "bert" and curve[-1][1] < 0.6,
        "divergence_kind": "no_learning" if model == "bert" and curve[-1][1] < 0.6 else None,
        "divergence_step": 400 if model == "bert" and curve[-1][1] < 0.6 else None,
        "curve": curve,
        "mix": {"layer_weights": [0.5, 0.5], "gamma": 1.0} if model != "bert" else None,
        "wall_time_s": 1.0,
    }


LEARN = [[100, 0.70], [200, 0.75], [300, 0.78], [400, 0.80]]


FALL = [[100, 0.70], [200, 0.51], [300, 0.50], [400, 0.50]]  # ended at chance


DIP = [[100, 0.51], [200, 0.74], [300, 0.77], [400, 0.79]]  # at chance at the first evaluation, then learned


def hand_made_study(tmp_path, extra=()):
    """BERT and BERMo, movement at three targets and 3 seeds, dense runs, a distilled movement series at one
    target: BERT's seed-0 unit ends at chance at every target and its seed-1 unit at one; BERMo's seed-0 runs dip
    to chance at the first evaluation after pruning started and learn again (the tracker never flags them)."""
    rows = []
    for model in ("bert", "bermo", *extra):
        for seed in range(3):
            rows.append(study_row(model, "none", None, seed, LEARN))
        for target in (0.5, 0.2, 0.1):
            for seed in range(3):
                if model == "bert":
                    curve = FALL if seed == 0 or (seed == 1 and target == 0.1) else LEARN
                else:
                    curve = DIP if seed == 0 else [[s, v + 0.01 * seed] for s, v in LEARN]
                    # seed 1 is below the 0.76 level at step 200, where seed 2 reaches it: the ratios differ
                    if seed == 1:
                        curve[1][1] = 0.755
                rows.append(study_row(model, "movement", target, seed, curve))
        for seed in range(3):
            curve = FALL if model == "bert" else LEARN
            rows.append(
                study_row(model, "movement_kd", 0.1, seed, curve, teacher=f"{model}_none_dense_s{seed}")
            )
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_baselines_json(tmp_path, rows, start=100, majority=0.5, bag_of_words=0.79)
    return rows


PRETRAIN_RECIPE = str(ROOT / "recipes" / "pretrain_tiny.yaml")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small unlabelled corpus: a text file of paragraphs with a WikiText heading, and a TSV of sentences."""
    d = tmp_path_factory.mktemp("corpus")
    sentences = [s for s, _ in generate_synthetic(3000, seed=3)]
    paragraphs = [" ".join(sentences[i : i + 5]) for i in range(0, 2000, 5)]
    (d / "wiki.txt").write_text(" = A Heading = \n\n" + "\n".join(paragraphs) + "\n")
    (d / "sst.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t1\n" for s in sentences[2000:]))
    return d


def tiny_pretrain(corpus, *extra):
    """Overrides that shrink the pretraining recipe to a 2-layer hidden-32 encoder on ``corpus``, plus ``extra``."""
    return [
        f"corpus.files=[{corpus / 'wiki.txt'}, {corpus / 'sst.tsv'}]",
        "model.num_layers=2",
        "model.hidden_size=32",
        "model.num_heads=2",
        "model.intermediate_size=64",
        "model.vocab_size=300",
        "train.seq_length=32",
        "train.batch_size=16",
        "train.lr=2e-3",
        "train.threads=1",
        "corpus.valid_fraction=0.05",
        *extra,
    ]


FAMILIES = ("bert", "roberta", "electra", "distilbert")


HIDDEN, HEADS, FFN, LAYERS = 32, 4, 64, 2


def family_config(name: str, **extra):
    """A tiny random config of each family (hidden 32, 4 heads of 8, FFN 64, 2 layers)."""
    if name == "distilbert":
        return DistilBertConfig(
            vocab_size=120, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN, **extra
        )
    common = dict(
        vocab_size=120,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        max_position_embeddings=72,
        **extra,
    )
    if name == "roberta":
        return RobertaConfig(**{"pad_token_id": 1, **common})
    if name == "electra":
        return ElectraConfig(embedding_size=16, **common)  # a projection between embeddings and encoder
    return BertConfig(**common)
