"""``bermo-prune pretrain``: packing, masking, a loadable checkpoint, falling MLM loss, exact resume, clear errors."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from bermo_prune.cli import EXIT_BAD_INPUT, main
from bermo_prune.data import train_wordpiece
from bermo_prune.data.corpus import MLMCollator, pack, read_corpus
from bermo_prune.models import load_classifier

from .conftest import PRETRAIN_RECIPE, tiny_pretrain


def test_corpus_reading_packing_and_masking(corpus):
    docs = read_corpus([str(corpus / "wiki.txt"), str(corpus / "sst.tsv")])
    assert len(docs) == 400 + 1000 and "Heading" not in docs[0]
    tok = train_wordpiece(docs, vocab_size=300)
    seqs = pack(tok, docs, 32)
    n_tokens = sum(len(ids) + 1 for ids in tok(docs, add_special_tokens=False)["input_ids"])
    assert seqs.shape == (n_tokens // 31, 32) and bool((seqs[:, 0] == tok.cls_token_id).all())
    assert int((seqs == tok.pad_token_id).sum()) == 0  # packed: no padding anywhere
    torch.manual_seed(0)
    batch = MLMCollator(tok)(list(seqs[:200]))
    chosen = batch["labels"] != -100
    share = float(chosen.sum()) / float((seqs[:200] != tok.cls_token_id).sum())
    assert 0.13 < share < 0.17  # 15% of the non-special tokens are predicted
    masked = batch["input_ids"][chosen] == tok.mask_token_id
    kept = batch["input_ids"][chosen] == batch["labels"][chosen]
    assert 0.76 < float(masked.float().mean()) < 0.84 and 0.05 < float(kept.float().mean()) < 0.16
    assert bool((batch["input_ids"][:, 0] == tok.cls_token_id).all())  # [CLS] is never masked


def test_pretrain_writes_a_loadable_checkpoint_and_the_loss_falls(corpus, tmp_path, capsys):
    out = tmp_path / "pt"
    args = tiny_pretrain(corpus, "train.max_steps=240", "train.eval_every=40")
    assert main(["pretrain", PRETRAIN_RECIPE, *args, "--output-dir", str(out), "--quiet"]) == 0
    assert "masked-token accuracy" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    losses = [h["eval"]["loss"] for h in summary["history"]]
    assert [h["step"] for h in summary["history"]] == [0, 40, 80, 120, 160, 200, 240]
    assert abs(losses[0] - math.log(300)) < 1.0 and losses[-1] < losses[0] - 1.5  # from ~ln(vocab), falling
    assert summary["final"]["masked_accuracy"] > 0.1 and summary["tokens_per_second"] > 0
    # A standard checkpoint: both architectures load it by path, as they would a hub id.
    for arch in ("bert", "bermo"):
        model = load_classifier(out / "model", arch, num_labels=2)
        w = load_file(out / "model" / "model.safetensors")
        torch.testing.assert_close(
            model.bert.encoder.layer[1].output.dense.weight, w["bert.encoder.layer.1.output.dense.weight"]
        )


def test_pretrain_resume_after_sigkill_is_exact(corpus, tmp_path):
    args = tiny_pretrain(corpus, "train.max_steps=200", "train.eval_every=50", "checkpoint.every=50")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    cmd = [
        sys.executable,
        "-m",
        "bermo_prune.cli",
        "pretrain",
        PRETRAIN_RECIPE,
        *args,
        "--quiet",
        "--output-dir",
    ]
    proc = subprocess.Popen(
        [*cmd, str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        log = killed / "metrics.jsonl"
        if log.exists() and any(
            json.loads(x)["step"] >= 120 for x in log.read_text().splitlines() if x.endswith("}")
        ):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert main(["pretrain", PRETRAIN_RECIPE, *args, "--output-dir", str(killed), "--resume", "--quiet"]) == 0
    assert main(["pretrain", PRETRAIN_RECIPE, *args, "--output-dir", str(whole), "--quiet"]) == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (killed, whole))
    assert a["history"] == b["history"]
    wa, wb = (load_file(d / "model" / "model.safetensors") for d in (killed, whole))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_bad_corpus_paths_and_empty_files(corpus, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    out = tmp_path / "never"
    base = tiny_pretrain(corpus)[1:]
    cases = [
        (
            f"corpus.files=[{tmp_path / 'missing.txt'}]",
            f"corpus.files: {tmp_path / 'missing.txt'}: no such file",
        ),
        (f"corpus.files=[{empty}]", f"{empty}: empty file: no text to pretrain on"),
    ]
    for files, message in cases:
        assert (
            main(["pretrain", PRETRAIN_RECIPE, *base, files, "--output-dir", str(out), "--quiet"])
            == EXIT_BAD_INPUT
        )
        assert capsys.readouterr().err.strip() == f"bermo-prune: error: {message}"
    tsv = f"corpus.files=[{corpus / 'sst.tsv'}]"
    code = main(
        ["pretrain", PRETRAIN_RECIPE, *base, tsv, "corpus.text_column=text", "--output-dir", str(out)]
    )
    assert code == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == (
        f"bermo-prune: error: {corpus / 'sst.tsv'}: no column 'text' (columns: sentence, label); "
        "set corpus.text_column"
    )
    assert (
        main(["pretrain", PRETRAIN_RECIPE, "mlm.mask_ratio=0.95", "--output-dir", str(out)]) == EXIT_BAD_INPUT
    )
    assert capsys.readouterr().err.strip() == (
        f"bermo-prune: error: {PRETRAIN_RECIPE}: mlm.mask_ratio + mlm.random_ratio: 0.95 + 0.1 exceeds 1"
    )
    assert not out.exists()
