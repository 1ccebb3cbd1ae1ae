"""Sparse CPU inference (``--sparse``): mostly-zero linears become CSR products with the dense model's outputs."""

from __future__ import annotations

import json

import pytest
import torch

from bermo_prune.cli import main
from bermo_prune.predict import load_scorer
from bermo_prune.sparse import SparseLinear, sparsify

from .conftest import QUICK, tiny_config, tiny_overrides


def test_a_sparse_linear_gives_the_dense_outputs():
    torch.manual_seed(0)
    lin = torch.nn.Linear(48, 40)
    with torch.no_grad():
        lin.weight.mul_((torch.rand_like(lin.weight) < 0.1).float())
    sparse = SparseLinear(lin)
    x = torch.randn(3, 5, 48)
    torch.testing.assert_close(sparse(x), lin(x), rtol=1e-5, atol=1e-6)
    assert sparse.weight.layout == torch.sparse_csr
    assert sparse.weight.values().numel() == int(torch.count_nonzero(lin.weight))
    density = int(torch.count_nonzero(lin.weight)) / lin.weight.numel()
    assert repr(sparse) == f"SparseLinear(48, 40, density={density:.3f})"
    assert set(sparse.state_dict()) == {"weight", "bias"}  # buffers: moved and cast with the module
    torch.testing.assert_close(sparse.double()(x.double()), lin.double()(x.double()))


def test_sparsify_swaps_only_the_mostly_zero_linears():
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config()).eval()
    query = model.bert.encoder.layer[0].attention.self.query
    with torch.no_grad():
        query.weight.mul_((torch.rand_like(query.weight) < 0.25).float())  # 25% nonzero: swapped
        model.bert.encoder.layer[1].output.dense.weight[:, :20] = 0.0  # about 69% nonzero: kept dense
    ids = torch.randint(1, 120, (2, 9))
    with torch.no_grad():
        before = model(input_ids=ids).logits
    assert sparsify(model) == 1
    assert isinstance(model.bert.encoder.layer[0].attention.self.query, SparseLinear)
    assert type(model.bert.encoder.layer[1].output.dense) is torch.nn.Linear
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, before, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def weight_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sparse") / "run"
    overrides = tiny_overrides(
        400, 120, "train.threads=1", "train.max_steps=30", "train.eval_batch_size=32", "checkpoint.every=0",
        "pruning.granularity=weight", "pruning.schedule.final=0.1",
    )  # fmt: skip
    assert main(["run", QUICK, *overrides, "--output-dir", str(out), "--quiet"]) == 0
    return out


def test_eval_and_predict_with_sparse_match_the_masked_model(weight_run, tmp_path, capsys):
    summary = json.loads((weight_run / "summary.json").read_text())
    assert main(["eval", str(weight_run), "--json", "--sparse", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sparse"] is True
    assert report["metrics"]["accuracy"] == summary["final"]["accuracy"]
    assert report["metrics"]["loss"] == pytest.approx(summary["final"]["loss"], abs=1e-5)
    assert main(["eval", str(weight_run), "--sparse"]) == 0  # --device auto means the CPU with --sparse
    assert "sparse CSR linears (--sparse)" in capsys.readouterr().out
    scorer = load_scorer(weight_run, sparse=True)
    swapped = [m for m in scorer.model.modules() if isinstance(m, SparseLinear)]
    assert (
        len(swapped) == 12 and scorer.device.type == "cpu"
    )  # every encoder linear of 2 layers, not the head

    texts = tmp_path / "in.tsv"
    texts.write_text("sentence\n" + "".join(f"w{i} w{i + 3} w{i * 7 % 50}\n" for i in range(40)))
    outputs = {}
    for flag in ([], ["--sparse"]):
        out = tmp_path / f"pred{len(flag)}.jsonl"
        assert main(["predict", str(weight_run), "--input", str(texts), "--output", str(out), *flag]) == 0
        outputs[bool(flag)] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in outputs[True]] == [r["label"] for r in outputs[False]]
    for a, b in zip(outputs[True], outputs[False], strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
