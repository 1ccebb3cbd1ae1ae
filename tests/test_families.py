"""Every encoder family (BERT, RoBERTa, ELECTRA, DistilBERT), plain and BERMo: checkpoints, the mix, exact pruning
counts at every granularity, compaction, pipelines, and a recipe run on a local RoBERTa checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    RobertaConfig,
    pipeline,
)

from bermo_prune.bermo import (
    BermoDistilBertForSequenceClassification,
    BermoElectraForSequenceClassification,
    BermoForSequenceClassification,
    BermoRobertaForSequenceClassification,
    bermo_classifier,
    bermo_config_from,
)
from bermo_prune.cli import main
from bermo_prune.compact import compact, encoder_macs
from bermo_prune.data import train_wordpiece
from bermo_prune.engine import prune
from bermo_prune.families import ROLES, available_families, family_of, get_family
from bermo_prune.models import load_classifier, load_compact
from bermo_prune.pruners import get_pruner
from bermo_prune.schedule import Constant, Scheduler

from .conftest import FAMILIES, FFN, HEADS, HIDDEN, LAYERS, ROOT, family_config


def plain_classifier(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return get_family(name).classifier_class(family_config(name)).eval()


def bermo(name: str, seed: int = 0, **mix):
    torch.manual_seed(seed)
    return bermo_classifier(name)(bermo_config_from(family_config(name), **mix)).eval()


@pytest.fixture
def ids():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(5, 120, (3, 9), generator=g)
    mask = torch.ones_like(x)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return {"input_ids": x, "attention_mask": mask}


def test_the_four_families_are_registered():
    assert set(FAMILIES) <= set(available_families())
    assert family_of(BermoForSequenceClassification(bermo_config_from(family_config("bert")))).name == "bert"
    assert bermo_classifier("roberta") is BermoRobertaForSequenceClassification
    assert bermo_classifier("electra") is BermoElectraForSequenceClassification
    assert bermo_classifier("distilbert") is BermoDistilBertForSequenceClassification


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_one_hot_mix_equals_that_hidden_state(name, layer, ids):
    """BERMo's base model with all weight on state j returns the plain model's hidden_states[j] exactly."""
    torch.manual_seed(0)
    plain = get_family(name).base_class(family_config(name)).eval()
    init = [-float("inf")] * 3
    init[layer] = 0.0
    mixed = AutoModel.from_config(bermo_config_from(family_config(name), mix_init=init)).eval()
    missing, unexpected = mixed.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["scalar_mix.gamma", "scalar_mix.weights"] and not unexpected
    with torch.no_grad():
        want = plain(**ids, output_hidden_states=True).hidden_states[layer]
        out = mixed(**ids, output_hidden_states=True)
    torch.testing.assert_close(out.last_hidden_state, want, rtol=0, atol=0)
    assert len(out.hidden_states) == LAYERS + 1  # returned only when asked for, as by the plain model
    with torch.no_grad():
        assert mixed(**ids).hidden_states is None


@pytest.mark.parametrize("name", FAMILIES)
def test_bermo_round_trip_by_path_through_auto_classes(name, ids, tmp_path):
    model = bermo(name)
    with torch.no_grad():
        model.get_parameter(f"{get_family(name).prefix}.scalar_mix.weights").copy_(
            torch.tensor([0.3, -0.2, 1.1])
        )
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == model.config.model_type
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(again) is type(model)
    with torch.no_grad():
        assert torch.equal(again(**ids).logits, model(**ids).logits)
    assert again.mix_weights() == model.mix_weights()
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is bermo_classifier(name).bermo_base_class


@pytest.mark.parametrize("name", FAMILIES)
def test_plain_checkpoint_loads_into_bermo_and_back(name, ids, tmp_path):
    """Weight names are the family's plus the mix: a plain checkpoint gives BERMo its encoder and a fresh uniform
    mix; a BERMo checkpoint loaded as plain drops the mix and keeps every other weight."""
    plain = plain_classifier(name)
    plain.save_pretrained(tmp_path / "plain")
    b = load_classifier(tmp_path / "plain", "bermo", num_labels=2)
    assert type(b) is bermo_classifier(name)
    for key, value in plain.state_dict().items():
        assert torch.equal(b.state_dict()[key], value), key
    assert b.mix_weights() == {"layer_weights": pytest.approx([1 / 3] * 3), "gamma": 1.0}
    b.save_pretrained(tmp_path / "bermo")
    back = load_classifier(tmp_path / "bermo", "bert", num_labels=2)
    assert type(back) is get_family(name).classifier_class
    assert set(back.state_dict()) == set(plain.state_dict())
    for key, value in b.state_dict().items():
        if "scalar_mix" not in key:
            assert torch.equal(back.state_dict()[key], value), key


def test_a_declared_family_must_match_the_checkpoint(tmp_path):
    from bermo_prune.errors import InputError

    plain_classifier("roberta").save_pretrained(tmp_path)
    with pytest.raises(InputError, match=r"model.family: 'bert' given, but .* is a roberta checkpoint"):
        load_classifier(tmp_path, "bermo", num_labels=2, family="bert")


@pytest.mark.parametrize("name", FAMILIES)
def test_engine_finds_the_six_matrices_of_every_layer(name):
    model = bermo(name)
    handle = prune(model, Scheduler(get_pruner("magnitude"), Constant(1.0)))
    family = get_family(name)
    assert [t.name.split(".", 1)[1] for t in handle.layout.targets] == [
        f"{family.layers}.{i}.{family.paths[r]}" for i in range(LAYERS) for r in ROLES
    ]
    assert [t.role for t in handle.layout.targets[:6]] == [
        "qkv",
        "qkv",
        "qkv",
        "attn_out",
        "ffn_in",
        "ffn_out",
    ]
    assert handle.sparsity()["total"] == LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)


def test_a_model_of_no_known_family_needs_targets():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"belongs to no known encoder family .*pass targets="):
        prune(model, Scheduler(get_pruner("magnitude"), Constant(0.5)))
    handle = prune(model, Scheduler(get_pruner("magnitude"), Constant(0.5)), targets=[r"^0$"])
    assert handle.sparsity()["kept"] == 8


def _kept(model, name: str) -> dict[str, list[int]]:
    """Non-zero weights, rows, columns, heads and neurons of the hardened model, counted from the weights."""
    family = get_family(name)
    out = {"weights": [], "heads": [], "neurons": []}
    for layer in family.layer_list(model):
        for role in ROLES:
            out["weights"].append(int((family.linear(layer, role).weight != 0).sum()))
        wo = family.linear(layer, "attn_out").weight.view(HIDDEN, HEADS, HIDDEN // HEADS)
        out["heads"].append(int((wo != 0).any(dim=2).any(dim=0).sum()))
        out["neurons"].append(int((family.linear(layer, "ffn_out").weight != 0).any(dim=0).sum()))
    return out


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("arch", ["plain", "bermo"])
def test_exact_kept_counts_at_every_granularity(name, arch):
    """Local scope keeps round(r * units) units in every matrix (heads and neurons: in every layer)."""
    make = plain_classifier if arch == "plain" else bermo
    q, ffn = HIDDEN * HIDDEN, HIDDEN * FFN
    cases = {
        # granularity: (remaining, expected non-zero weights per matrix in ROLES order)
        "weight": (0.3, [round(0.3 * q)] * 4 + [round(0.3 * ffn)] * 2),
        "row": (0.25, [8 * HIDDEN] * 4 + [16 * HIDDEN] * 2),  # 8 of 32 rows/cols; 16 of 64 neurons
        "block": (0.5, [q // 2] * 4 + [ffn // 2] * 2),  # 8x8 tiles: 8 of 16, 16 of 32
        "head": (0.5, [2 * 8 * HIDDEN] * 4 + [32 * HIDDEN] * 2),  # 2 of 4 heads, 32 of 64 neurons
    }
    for granularity, (remaining, per_matrix) in cases.items():
        model = make(name)
        pruner = get_pruner("magnitude", granularity=granularity, block_rows=8, block_cols=8)
        handle = prune(model, Scheduler(pruner, Constant(remaining)))
        assert handle.sparsity()["kept"] == LAYERS * sum(per_matrix)
        handle.harden()
        kept = _kept(model, name)
        assert kept["weights"] == per_matrix * LAYERS, granularity
        if granularity == "head":
            assert kept["heads"] == [2, 2] and kept["neurons"] == [32, 32]


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("arch", ["plain", "bermo"])
def test_compacted_equals_masked_and_reloads(name, arch, ids, tmp_path):
    model = plain_classifier(name) if arch == "plain" else bermo(name)
    with torch.no_grad():  # non-zero biases, so folding and slicing of biases is exercised
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m.bias is not None:
                m.bias.normal_(0, 0.5)
    handle = prune(model, Scheduler(get_pruner("movement", granularity="head"), Constant(0.5)))
    with torch.no_grad():  # movement scores decide: give them a non-trivial ranking
        handle.state.scores.copy_(torch.randn_like(handle.state.scores))
    handle.update_masks()
    with torch.no_grad():
        masked = model(**ids).logits
    handle.harden()
    macs = encoder_macs(model, 9)
    kept = compact(model)
    assert kept == {"heads": [2, 2], "intermediate": [32, 32]}
    assert encoder_macs(model, 9) * 2 == macs  # half of every linear and of the attention products
    with torch.no_grad():
        torch.testing.assert_close(model(**ids).logits, masked, rtol=1e-5, atol=1e-5)
    model.save_pretrained(tmp_path)
    again = load_compact(tmp_path)
    assert type(again) is type(model) and again.config.layer_heads == [2, 2]
    with torch.no_grad():
        assert torch.equal(again(**ids).logits, model(**ids).logits)
    if arch == "bermo":  # BERMo builds the recorded shapes itself: the Auto classes reload it natively
        native = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
        with torch.no_grad():
            assert torch.equal(native(**ids).logits, model(**ids).logits)


@pytest.mark.parametrize("name", FAMILIES)
def test_pipeline_runs_on_each_saved_bermo(name, tmp_path):
    tok = train_wordpiece(["a good film", "a bad film", "very good", "not bad at all"] * 5, vocab_size=60)
    pad = {"distilbert": "pad_token_id", "roberta": "pad_token_id"}.get(name)
    extra = {pad: tok.pad_token_id} if pad else {}
    config = bermo_config_from(family_config(name, **extra), id2label={0: "negative", 1: "positive"})
    config.vocab_size = len(tok)
    bermo_classifier(name)(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), type(config))
    clf = pipeline("text-classification", model=str(tmp_path), tokenizer=str(tmp_path))
    out = clf(["a good film", "not bad"])
    assert [o["label"] for o in out] != [] and all(o["label"] in ("negative", "positive") for o in out)
    assert all(0.0 <= o["score"] <= 1.0 for o in out)


def _tiny_roberta_checkpoint(path, texts):
    """A tiny random RoBERTa with a byte-level BPE tokenizer trained on ``texts``, saved as a standard directory."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaForMaskedLM, RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(
        texts, vocab_size=1000, min_frequency=2, special_tokens=specials, show_progress=False
    )
    model_dir = path / "bpe"
    model_dir.mkdir(parents=True)
    bpe.save_model(str(model_dir))
    vocab = json.loads((model_dir / "vocab.json").read_text())
    merges = [
        tuple(x.split()) for x in (model_dir / "merges.txt").read_text().splitlines() if x and x[0] != "#"
    ]
    # RobertaTokenizer(vocab_file=...) silently builds a specials-only tokenizer in transformers 5: pass the data.
    tok = RobertaTokenizer(vocab=vocab, merges=merges)
    config = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=130,
        type_vocab_size=1,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    RobertaForMaskedLM(config).save_pretrained(path)  # an encoder checkpoint with an MLM head, as on the hub
    tok.save_pretrained(path)
    return tok


def test_recipe_runs_bermo_movement_on_a_local_roberta_checkpoint(sst2_dir, tmp_path):
    texts = [line.split("\t")[0] for line in (sst2_dir / "train.tsv").read_text().splitlines()[1:3001]]
    ckpt = tmp_path / "tiny-roberta"
    tok = _tiny_roberta_checkpoint(ckpt, texts)
    assert tok("a good film")["input_ids"][0] == tok.bos_token_id and "token_type_ids" not in tok("a")
    run = tmp_path / "run"
    code = main(
        [
            "run",
            str(ROOT / "recipes" / "sst2_movement.yaml"),
            f"data.path={sst2_dir}",
            "data.max_train_samples=3000",
            "data.max_dev_samples=300",
            f"model.name={ckpt}",
            "model.arch=bermo",
            "pruning.schedule.final=0.25",
            "pruning.schedule.warmup=10",
            "pruning.schedule.cooldown=10",
            "train.max_steps=80",
            "train.eval_every=40",
            "train.max_length=48",
            "train.lr=1e-3",
            "checkpoint.every=0",
            "--quiet",
            "--output-dir",
            str(run),
        ]
    )
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    sparsity = summary["sparsity"]
    total = LAYERS * (4 * 64 * 64 + 2 * 64 * 128)
    assert sparsity["remaining"] == pytest.approx(0.25, abs=1e-9)
    assert sparsity["kept"] == round(0.25 * 64 * 64) * 4 * LAYERS + round(0.25 * 64 * 128) * 2 * LAYERS
    assert sparsity["total"] == total
    assert len(summary["mix"]["layer_weights"]) == 3
    model = AutoModelForSequenceClassification.from_pretrained(run / "model")
    assert type(model) is BermoRobertaForSequenceClassification
    q = model.roberta.encoder.layer[0].attention.self.query.weight
    assert int((q != 0).sum()) == round(0.25 * 64 * 64)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("arch", ["bert", "bermo"])
def test_from_scratch_model_of_each_family_trains(name, arch):
    """``model.family`` builds a from-scratch config of that family; a few steps on the synthetic task run, and
    DistilBERT, which takes no token types, gets batches without them."""
    from bermo_prune import ModelSpec, TrainConfig, build_model, fine_tune, load_task_data

    data = load_task_data("synthetic", "synthetic", synthetic_train_size=200, synthetic_dev_size=50)
    spec = ModelSpec(arch=arch, family=name, num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64)
    model, tok = build_model(spec, num_labels=2, train_texts=[t[0] for t in data.train.texts])
    assert family_of(model).name == name
    assert type(model) is (bermo_classifier(name) if arch == "bermo" else get_family(name).classifier_class)
    assert ("token_type_ids" in tok.model_input_names) == (name != "distilbert")
    summary = fine_tune(model, tok, data, TrainConfig(max_steps=6, eval_every=6, progress=False))
    assert summary["final"]["accuracy"] >= 0.0 and (summary["mix"] is not None) == (arch == "bermo")


def test_recipe_model_family_is_validated(tmp_path):
    from bermo_prune.errors import RecipeError
    from bermo_prune.recipe import parse_recipe

    assert parse_recipe({"task": "synthetic", "model": {"family": "roberta"}}).model.family == "roberta"
    assert parse_recipe({"task": "synthetic"}).model.family is None
    with pytest.raises(
        RecipeError, match=r"model.family: unknown value 'robert' \(did you mean 'roberta'\?\)"
    ):
        parse_recipe({"task": "synthetic", "model": {"family": "robert"}})
