import torch

from bermo_prune.data import load_task_data
from bermo_prune.models import ModelSpec, build_model
from bermo_prune.runner import fine_tune
from bermo_prune.synthetic import NEGATORS, bag_of_words_baseline, generate_synthetic
from bermo_prune.train_config import TrainConfig


def test_same_seed_same_data_other_seed_other_data():
    assert generate_synthetic(200, seed=7) == generate_synthetic(200, seed=7)
    assert generate_synthetic(200, seed=7) != generate_synthetic(200, seed=8)


def test_balanced_varied_and_uses_negation_and_contrast():
    rows = generate_synthetic(4000, seed=0)
    positives = sum(y for _, y in rows)
    assert 0.47 < positives / len(rows) < 0.53
    lengths = [len(s.split()) for s, _ in rows]
    assert min(lengths) <= 4 and max(lengths) >= 15
    assert sum(any(f" {n} " in f" {s} " for n in NEGATORS) for s, _ in rows) > 1000
    assert sum(" but " in s or " yet " in s or " though " in s for s, _ in rows) > 2000


def test_bag_of_words_stays_near_chance():
    assert (
        bag_of_words_baseline(generate_synthetic(2000, 0), generate_synthetic(500, 1), epochs=100, lr=1.0)
        < 0.62
    )


def test_a_tiny_transformer_learns_it_well_above_bag_of_words():
    torch.manual_seed(0)
    data = load_task_data("synthetic", "synthetic", synthetic_train_size=3000, synthetic_dev_size=500)
    spec = ModelSpec(
        arch="bermo", num_layers=2, hidden_size=64, num_heads=2, intermediate_size=128, vocab_size=200
    )
    model, tok = build_model(spec, 2, [t[0] for t in data.train.texts])
    summary = fine_tune(model, tok, data, TrainConfig(max_steps=800, lr=1e-3, progress=False))
    bow = bag_of_words_baseline(
        list(zip([t[0] for t in data.train.texts], data.train.labels, strict=True)),
        list(zip([t[0] for t in data.dev.texts], data.dev.labels, strict=True)),
        epochs=100,
        lr=1.0,
    )
    assert summary["final"]["accuracy"] > 0.9
    assert summary["final"]["accuracy"] > bow + 0.25
