"""compact(): pruned heads and FFN neurons removed physically; outputs, reload and counts exact."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from bermo_prune.bermo import BermoForSequenceClassification, bermo_config_from_bert
from bermo_prune.cli import main
from bermo_prune.compact import compact, count_parameters, encoder_macs
from bermo_prune.engine import prune
from bermo_prune.models import load_compact
from bermo_prune.pruners import get_pruner
from bermo_prune.schedule import Constant, Scheduler

from .conftest import ROOT, tiny_config

ARCHS = {
    "bert": lambda: BertForSequenceClassification(tiny_config(num_attention_heads=4)),
    "bermo": lambda: BermoForSequenceClassification(
        bermo_config_from_bert(tiny_config(num_attention_heads=4))
    ),
}


def pruned(arch: str, granularity: str, remaining: float, seed: int = 0):
    torch.manual_seed(seed)
    model = ARCHS[arch]().eval()
    with torch.no_grad():  # biases matter for the folding rules: make them non-zero
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m.bias is not None:
                m.bias.normal_(0, 0.5)
    handle = prune(model, Scheduler(get_pruner("magnitude", granularity=granularity), Constant(remaining)))
    return model, handle


def logits(model, batch):
    return model(**batch).logits


@pytest.mark.parametrize("arch", ["bert", "bermo"])
@pytest.mark.parametrize("remaining", [0.75, 0.5, 0.25])
def test_compacted_equals_masked_for_heads(arch, remaining, batch):
    model, handle = pruned(arch, "head", remaining)
    masked = logits(model, batch)
    handle.harden()
    kept = compact(model)
    heads = round(remaining * 4)
    assert kept == {"heads": [heads, heads], "intermediate": [round(remaining * 64)] * 2}
    torch.testing.assert_close(logits(model, batch), masked, rtol=1e-5, atol=1e-6)
    assert model.config.layer_heads == [heads, heads]
    assert model.bert.encoder.layer[0].attention.self.query.weight.shape == (heads * 8, 32)


def test_compacted_equals_masked_for_rows_and_mixed_folds(batch):
    """Rows pruned per matrix: neurons whose FFN-in row is gone are folded into the FFN-out bias, heads whose value
    rows are gone into the attention-out bias; both are exact."""
    model, handle = pruned("bert", "row", 0.5)
    masked = logits(model, batch)
    handle.harden()
    layer = model.bert.encoder.layer[0]
    d = layer.attention.self.attention_head_size
    with torch.no_grad():  # a head with zero value rows but live output columns: folded, not dropped silently
        layer.attention.self.value.weight[:d] = 0
        layer.attention.output.dense.weight[:, :d] = torch.randn(32, d)
    masked = logits(model, batch)
    w1_zero = int((model.bert.encoder.layer[1].intermediate.dense.weight == 0).all(dim=1).sum())
    w2_zero = int((model.bert.encoder.layer[1].output.dense.weight == 0).all(dim=0).sum())
    both = int(
        (
            (model.bert.encoder.layer[1].intermediate.dense.weight == 0).all(dim=1)
            & (model.bert.encoder.layer[1].output.dense.weight == 0).all(dim=0)
        ).sum()
    )
    kept = compact(model)
    assert kept["intermediate"][1] == 64 - (w1_zero + w2_zero - both)
    assert kept["heads"][0] <= 3
    torch.testing.assert_close(logits(model, batch), masked, rtol=1e-5, atol=1e-5)


def test_a_fully_pruned_layer_keeps_one_silent_head_and_neuron(batch):
    model, handle = pruned("bert", "head", 1.0)
    handle.harden()
    layer = model.bert.encoder.layer[1]
    with torch.no_grad():
        layer.attention.output.dense.weight.zero_()
        layer.output.dense.weight.zero_()
    before = logits(model, batch)
    kept = compact(model)
    assert kept["heads"][1] == 0 and kept["intermediate"][1] == 0
    assert model.config.layer_heads[1] == 1 and model.config.layer_intermediate_sizes[1] == 1
    torch.testing.assert_close(logits(model, batch), before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["bert", "bermo"])
def test_save_reload_round_trip_gives_identical_logits(arch, batch, tmp_path):
    model, handle = pruned(arch, "head", 0.5)
    handle.harden()
    compact(model)
    expected = logits(model, batch)
    model.save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))  # safetensors, no pickles
    again = load_compact(tmp_path)
    assert torch.equal(logits(again, batch), expected)
    if arch == "bermo":  # natively: the Auto classes rebuild the per-layer shapes from the config
        native = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
        assert torch.equal(logits(native, batch), expected)


def test_parameter_and_mac_counts_match_hand_computation():
    model, handle = pruned("bert", "head", 0.5)
    hidden, inter, layers, seq = 32, 64, 2, 10
    dense_linear = layers * (4 * hidden * hidden + 2 * hidden * inter)
    assert encoder_macs(model, seq) == seq * dense_linear + layers * 2 * seq * seq * hidden
    total = count_parameters(model)  # magnitude has no scores; masks are buffers, not parameters
    handle.harden()
    assert count_parameters(model) == total
    compact(model)  # 2 of 4 heads (d=8) and 32 of 64 neurons per layer remain
    kept_linear = layers * (4 * hidden * 16 + 2 * hidden * 32)
    assert encoder_macs(model, seq) == seq * kept_linear + layers * 2 * seq * seq * 16
    removed = layers * ((3 * 16 * hidden + 3 * 16) + hidden * 16 + (32 * hidden + 32) + hidden * 32)
    assert count_parameters(model) == total - removed


def test_compact_refuses_a_model_with_masks_attached():
    model, _ = pruned("bert", "head", 0.5)
    with pytest.raises(ValueError, match=r"call handle.harden\(\) before compact\(\)"):
        compact(model)


def test_cli_compact_on_a_model_pruned_on_real_sst2(sst2_dir, tmp_path, capsys):
    """End to end: head-prune a tiny BERMo on an SST-2 subset with the shipped recipe, then compact the run."""
    run = tmp_path / "run"
    code = main(
        [
            "run",
            str(ROOT / "recipes" / "sst2_movement.yaml"),
            f"data.path={sst2_dir}",
            "data.max_train_samples=2000",
            "data.max_dev_samples=200",
            "model.arch=bermo",
            "model.name=null",
            "model.num_layers=2",
            "model.hidden_size=64",
            "model.num_heads=4",
            "model.intermediate_size=128",
            "model.vocab_size=1000",
            "pruning.granularity=head",
            "pruning.schedule.final=0.5",
            "train.max_steps=60",
            "train.max_length=48",
            "train.lr=1e-3",
            "checkpoint.every=0",
            "--quiet",
            "--output-dir",
            str(run),
        ]
    )
    assert code == 0
    capsys.readouterr()
    assert main(["compact", str(run), "--batch", "4", "--length", "32", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "heads per layer" in out and "[2, 2]" in out and "max |logit difference|" in out
    report = json.loads((run / "compact" / "compact.json").read_text())
    assert report["after"]["parameters"] < report["before"]["parameters"]
    assert (
        report["after"]["encoder_macs"] * 2 == report["before"]["encoder_macs"]
    )  # half the heads and neurons
    assert report["max_abs_logit_difference"] < 1e-4
    again = load_compact(run / "compact")
    assert again.config.layer_heads == [2, 2]


def test_block_pruning_that_empties_whole_heads_and_neurons_compacts_exactly(batch):
    """Blocks of 32 rows x 8 columns: in attention-out a block is a whole head's columns, in FFN-out 8 whole neurons."""
    torch.manual_seed(0)
    model = ARCHS["bert"]().eval()
    pruner = get_pruner("magnitude", granularity="block", block_rows=32, block_cols=8)
    handle = prune(model, Scheduler(pruner, Constant(0.5)))
    masked = logits(model, batch)
    handle.harden()
    kept = compact(model)
    assert kept["heads"] == [2, 2] and kept["intermediate"] == [32, 32]  # 2 of 4 column blocks, 4 of 8
    torch.testing.assert_close(logits(model, batch), masked, rtol=1e-5, atol=1e-6)
