"""Shared fixtures: offline environment, seeded tiny BERT and BERMo, the real SST-2 location."""

from __future__ import annotations

import os
from pathlib import Path

# Hub calls must fail at once, never retry: set before transformers/datasets are imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from bermo_prune.bermo import BermoForSequenceClassification, bermo_config_from_bert  # noqa: E402

hf_logging.disable_progress_bar()
torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parents[1]
# CI clones the project next to shared/; BERMO_PRUNE_SST2 points elsewhere.
SST2 = Path(os.environ.get("BERMO_PRUNE_SST2", ROOT.parent / "shared" / "data" / "sst2"))


QUICK = str(ROOT / "recipes" / "quickstart.yaml")


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
