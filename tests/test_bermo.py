import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    BertForSequenceClassification,
    pipeline,
)

from bermo_prune.bermo import (
    BermoConfig,
    BermoForSequenceClassification,
    BermoModel,
    ScalarMix,
    bermo_config_from_bert,
    mix_weights,
)
from bermo_prune.data import train_wordpiece

from .conftest import tiny_config


def test_one_hot_mix_on_last_layer_equals_bert(tiny_bert, batch):
    cfg = bermo_config_from_bert(tiny_bert.config, mix_trainable=False)
    bermo = BermoForSequenceClassification(cfg).eval()
    missing, unexpected = bermo.load_state_dict(tiny_bert.state_dict(), strict=False)
    assert set(missing) == {"bert.scalar_mix.weights", "bert.scalar_mix.gamma"}
    assert not unexpected
    with torch.no_grad():
        bermo.bert.scalar_mix.weights.copy_(torch.tensor([-float("inf"), -float("inf"), 0.0]))
        bermo.bert.scalar_mix.gamma.fill_(1.0)
        got = bermo(**batch).logits
        want = tiny_bert(**batch).logits
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_parameter_overhead_is_exactly_the_mix_scalars(tiny_bert):
    n_bert = sum(p.numel() for p in tiny_bert.parameters())
    for layers, extra in (("all", 3 + 1), ("encoder", 2 + 1)):
        bermo = BermoForSequenceClassification(bermo_config_from_bert(tiny_bert.config, mix_layers=layers))
        assert sum(p.numel() for p in bermo.parameters()) - n_bert == extra


def test_fresh_mix_is_uniform_with_gamma_one(tiny_bermo):
    mix = tiny_bermo.mix_weights()
    assert mix["layer_weights"] == pytest.approx([1 / 3] * 3)
    assert mix["gamma"] == 1.0
    assert mix_weights(tiny_bermo) == mix
    assert mix_weights(BertForSequenceClassification(tiny_config())) is None


def test_mix_is_gamma_times_softmax_weighted_sum():
    mix = ScalarMix(3, init=[0.5, -1.0, 2.0], gamma_init=1.7)
    states = tuple(torch.randn(2, 4, 8) for _ in range(3))
    p = torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0)
    want = 1.7 * (p[0] * states[0] + p[1] * states[1] + p[2] * states[2])
    torch.testing.assert_close(mix(states), want)


def test_layer_norm_follows_allennlp_semantics():
    # One mean/variance per layer over all unmasked positions and features (not per token).
    mix = ScalarMix(2, layer_norm=True)
    states = (torch.randn(2, 5, 4) * 3 + 1, torch.randn(2, 5, 4) * 0.5 - 2)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    normed = []
    for h in states:
        sel = h[mask.bool()]  # (tokens, hidden)
        mean = sel.mean()
        var = ((sel - mean) ** 2).mean()
        normed.append((h - mean) / torch.sqrt(var + 1e-12))
    want = 0.5 * normed[0] + 0.5 * normed[1]
    torch.testing.assert_close(mix(states, mask), want)


def test_frozen_mix_has_no_trainable_scalars():
    bermo = BermoForSequenceClassification(bermo_config_from_bert(tiny_config(), mix_trainable=False))
    assert not bermo.bert.scalar_mix.weights.requires_grad
    assert not bermo.bert.scalar_mix.gamma.requires_grad


def test_a_frozen_gamma_keeps_its_value_while_the_layer_weights_learn(batch):
    cfg = bermo_config_from_bert(tiny_config(), mix_gamma_trainable=False, mix_gamma_init=2.0)
    bermo = BermoForSequenceClassification(cfg)
    mix = bermo.bert.scalar_mix
    assert not mix.gamma.requires_grad and mix.weights.requires_grad
    opt = torch.optim.AdamW([p for p in bermo.parameters() if p.requires_grad], lr=0.1)
    bermo(**batch, labels=torch.tensor([0, 1, 1])).loss.backward()
    opt.step()
    assert mix.gamma.item() == 2.0 and mix.weights.abs().sum() > 0


@pytest.mark.parametrize(
    "options, frozen",
    [({"mix_gamma_trainable": False}, ("gamma",)), ({"mix_trainable": False}, ("gamma", "weights"))],
)
def test_frozen_mix_scalars_stay_frozen_when_loaded_from_a_checkpoint(
    tmp_path, tiny_bert, batch, options, frozen
):
    """transformers 5's from_pretrained materialises the fresh mix with requires_grad=True; a recipe's
    model.mix_gamma_trainable=false once trained gamma anyway (measured on MiniLM: gamma 1.46, not 1.0)."""
    from bermo_prune.models import load_classifier

    tiny_bert.save_pretrained(tmp_path)
    bermo = load_classifier(tmp_path, "bermo", 2, None, options)
    mix = bermo.bert.scalar_mix
    assert {n for n in ("gamma", "weights") if not getattr(mix, n).requires_grad} == set(frozen)
    before = {n: getattr(mix, n).detach().clone() for n in ("gamma", "weights")}
    opt = torch.optim.AdamW(bermo.parameters(), lr=0.1)  # every parameter, as a careless custom loop would
    for _ in range(2):
        opt.zero_grad()
        bermo(**batch, labels=torch.tensor([0, 1, 1])).loss.backward()
        opt.step()
    for n in ("gamma", "weights"):
        moved = not torch.equal(getattr(mix, n), before[n])
        assert moved == (n not in frozen), n


def test_encoder_only_mix_excludes_embeddings(tiny_bert, batch):
    cfg = bermo_config_from_bert(tiny_bert.config, mix_layers="encoder", mix_init=[-float("inf"), 0.0])
    bermo = BermoForSequenceClassification(cfg).eval()
    bermo.load_state_dict(tiny_bert.state_dict(), strict=False)
    assert bermo.bert.scalar_mix.num_states == 2
    with torch.no_grad():
        torch.testing.assert_close(bermo(**batch).logits, tiny_bert(**batch).logits, rtol=0, atol=0)


def test_bad_mix_layers_is_rejected():
    with pytest.raises(ValueError, match="mix_layers must be one of"):
        BermoModel(bermo_config_from_bert(tiny_config(), mix_layers="last"))


def test_gradients_reach_the_mix(tiny_bermo, batch):
    tiny_bermo.train()
    out = tiny_bermo(**batch, labels=torch.tensor([0, 1, 1]))
    out.loss.backward()
    assert tiny_bermo.bert.scalar_mix.weights.grad.abs().sum() > 0
    assert tiny_bermo.bert.scalar_mix.gamma.grad.abs().sum() > 0


def test_mix_lr_puts_the_mix_in_its_own_group(tiny_bermo, tiny_bert, batch):
    from bermo_prune.optim import decay_groups, make_optimizer, split_mix_group

    groups = split_mix_group(decay_groups(tiny_bermo.parameters(), 1e-4, 0.01), tiny_bermo, 1e-2)
    mix = groups[-1]
    assert mix["name"] == "scalar_mix" and mix["lr"] == 1e-2 and mix["weight_decay"] == 0.0
    assert {id(p) for p in mix["params"]} == {id(p) for p in tiny_bermo.bert.scalar_mix.parameters()}
    others = [id(p) for g in groups[:-1] for p in g["params"]]
    assert len(others) + 2 == sum(1 for _ in tiny_bermo.parameters()) and len(set(others)) == len(others)
    assert all(g["lr"] == 1e-4 for g in groups[:-1])
    # one Adam step moves each mix logit by about its lr, the encoder weights by theirs
    opt = make_optimizer(groups, 1e-4)
    before = tiny_bermo.bert.scalar_mix.weights.detach().clone()
    tiny_bermo.train()
    tiny_bermo(**batch, labels=torch.tensor([0, 1, 1])).loss.backward()
    opt.step()
    moved = (tiny_bermo.bert.scalar_mix.weights.detach() - before).abs()
    assert torch.allclose(moved[moved > 0], torch.full_like(moved[moved > 0], 1e-2), rtol=1e-3)
    # a model without a mix is unchanged
    plain = decay_groups(tiny_bert.parameters(), 1e-4, 0.0)
    assert split_mix_group(plain, tiny_bert, 1e-2) is plain


@pytest.mark.parametrize(
    "num_labels,labels,problem",
    [
        (1, torch.tensor([0.5, 1.0, 2.0]), "regression"),
        (3, torch.tensor([0, 2, 1]), "single_label_classification"),
    ],
)
def test_losses_match_bert_head(tiny_bert, batch, num_labels, labels, problem):
    torch.manual_seed(0)
    bert = BertForSequenceClassification(tiny_config(num_labels=num_labels)).eval()
    bermo = BermoForSequenceClassification(
        bermo_config_from_bert(bert.config, mix_init=[-float("inf"), -float("inf"), 0.0])
    ).eval()
    bermo.load_state_dict(bert.state_dict(), strict=False)
    with torch.no_grad():
        a = bert(**batch, labels=labels)
        b = bermo(**batch, labels=labels)
    assert bermo.config.problem_type == problem
    torch.testing.assert_close(a.loss, b.loss)


def test_save_and_reload_through_auto_classes(tiny_bermo, batch, tmp_path):
    with torch.no_grad():
        tiny_bermo.bert.scalar_mix.weights.copy_(torch.tensor([0.3, -0.2, 1.1]))
        tiny_bermo.bert.scalar_mix.gamma.fill_(0.8)
    tiny_bermo.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), BermoConfig)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, BermoForSequenceClassification)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, tiny_bermo(**batch).logits, rtol=0, atol=0)
    base = AutoModel.from_pretrained(tmp_path)
    assert isinstance(base, BermoModel)
    assert base.mix_weights()["gamma"] == pytest.approx(0.8)


def test_bermo_from_a_saved_bert_directory(tiny_bert, tmp_path):
    tiny_bert.save_pretrained(tmp_path)
    cfg = bermo_config_from_bert(tiny_bert.config)
    bermo = BermoForSequenceClassification.from_pretrained(tmp_path, config=cfg)
    for name, p in tiny_bert.state_dict().items():
        torch.testing.assert_close(bermo.state_dict()[name], p, rtol=0, atol=0)
    assert bermo.mix_weights()["layer_weights"] == pytest.approx([1 / 3] * 3)
    assert bermo.mix_weights()["gamma"] == 1.0


def test_pipeline_runs_on_a_saved_bermo(tiny_bermo, tmp_path):
    tok = train_wordpiece(["a good film", "a bad film", "very good", "not bad at all"] * 5, vocab_size=60)
    cfg = bermo_config_from_bert(tiny_config(vocab_size=len(tok)))
    cfg.id2label = {0: "negative", 1: "positive"}
    cfg.label2id = {"negative": 0, "positive": 1}
    BermoForSequenceClassification(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    clf = pipeline("text-classification", model=str(tmp_path), tokenizer=str(tmp_path))
    out = clf(["a good film", "not bad"])
    assert [o["label"] in ("negative", "positive") for o in out] == [True, True]
    assert all(0.0 <= o["score"] <= 1.0 for o in out)


# ---- the layer-routing control: the mix fixed on the last layer --------------------------------------------------
def test_mix_init_last_is_a_frozen_one_hot_on_the_last_layer_while_gamma_trains(tmp_path, batch):
    from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

    torch.manual_seed(0)
    config = bermo_config_from_bert(tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    config.mix_init = "last"
    model = BermoForSequenceClassification(config).train()
    mix = model.bert.scalar_mix
    assert model.mix_weights()["layer_weights"] == [0.0, 0.0, 1.0]  # exactly one-hot (2 layers + embeddings)
    assert not mix.weights.requires_grad and mix.gamma.requires_grad
    # With gamma at 1 it is BERT's function exactly: the last layer's states feed the same pooler and classifier.
    plain = BertForSequenceClassification(
        tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    )
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if "scalar_mix" not in k})
    plain.train()
    torch.testing.assert_close(model(**batch).logits, plain(**batch).logits, rtol=0, atol=1e-6)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    y = torch.tensor([0, 1, 1])
    for _ in range(3):
        model(**batch, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
    assert model.mix_weights()["layer_weights"] == [0.0, 0.0, 1.0]
    assert model.mix_weights()["gamma"] != 1.0  # gamma trained
    model.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    model.eval()
    # transformers 5's from_pretrained sets requires_grad on every parameter; the forward still detaches the
    # frozen logits (bermo_prune's own loader also resets the flag), so no gradient can reach them
    assert again.config.mix_init == "last" and not again.bert.scalar_mix.weights_trainable
    again.train()(**batch, labels=y).loss.backward()
    assert again.bert.scalar_mix.weights.grad is None and again.bert.scalar_mix.gamma.grad is not None
    again.eval()
    assert torch.equal(again(**batch).logits, model(**batch).logits)
    assert again.mix_weights() == model.mix_weights()


def test_mix_init_takes_uniform_last_or_a_list_from_a_recipe_and_refuses_a_wrong_length():
    from bermo_prune.errors import InputError, RecipeError
    from bermo_prune.models import ModelSpec, build_model
    from bermo_prune.recipe import parse_recipe

    base = {
        "task": "synthetic",
        "model": {"arch": "bermo", "num_layers": 2, "hidden_size": 32, "num_heads": 2},
    }
    for value, weights in (("uniform", [1 / 3] * 3), ("last", [0.0, 0.0, 1.0]), ([0.0, 0.0, 50.0], None)):
        recipe = parse_recipe({**base, "model": {**base["model"], "mix_init": value}})
        model, _ = build_model(recipe.model, 2, train_texts=["a b c d"] * 20)
        got = model.mix_weights()["layer_weights"]
        if weights is not None:
            assert got == pytest.approx(weights, abs=1e-7)
        else:
            assert got[2] == pytest.approx(1.0) and model.bert.scalar_mix.weights.requires_grad
    with pytest.raises(
        InputError, match=r"^model.mix_init: 2 values, but this model mixes 3 states \(2 layers"
    ):
        build_model(
            ModelSpec(arch="bermo", num_layers=2, hidden_size=32, num_heads=2, mix_init=[0.0, 1.0]),
            2,
            train_texts=["a b c d"] * 20,
        )
    with pytest.raises(RecipeError) as info:
        parse_recipe({**base, "model": {**base["model"], "mix_init": ["a", 1]}}, source="r.yaml")
    assert info.value.problems == [
        "model.mix_init: expected a name or a non-empty list of numbers, got ['a', 1]"
    ]
