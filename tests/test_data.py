import numpy as np
import pytest
import torch
from scipy import stats

from bermo_prune.data import (
    TASKS,
    BucketBatchSampler,
    Collator,
    EncodedSplit,
    compute_metrics,
    get_task,
    load_task_data,
    padding_stats,
    read_split,
    train_wordpiece,
)
from bermo_prune.errors import DataError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_glue_task_specs():
    assert set(TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli", "synthetic"}
    assert get_task("mnli").num_labels == 3 and get_task("stsb").is_regression
    assert get_task("cola").main_metric == "matthews"
    with pytest.raises(DataError, match="unknown task 'sst3'; known tasks: cola, sst2"):
        get_task("sst3")


def test_real_sst2_directory(sst2_dir):
    data = load_task_data("sst2", "local", path=sst2_dir)
    assert len(data.train) == 67349 and len(data.dev) == 872
    assert set(data.train.labels) == {0, 1}
    assert data.dev.texts[0] == ("one long string of cliches .",)


def test_subsets_are_seeded(sst2_dir):
    a = load_task_data("sst2", "local", path=sst2_dir, max_train_samples=100, max_dev_samples=10, seed=3)
    b = load_task_data("sst2", "local", path=sst2_dir, max_train_samples=100, max_dev_samples=10, seed=3)
    c = load_task_data("sst2", "local", path=sst2_dir, max_train_samples=100, seed=4)
    assert a.train.texts == b.train.texts != c.train.texts
    assert len(a.train) == 100 and len(a.dev) == 10


def test_csv_and_jsonl_with_column_mapping(tmp_path):
    write(tmp_path / "train.csv", 'text,y\n"good, really",positive\nbad,0\n')
    write(tmp_path / "dev.jsonl", '{"text": "fine", "y": 1}\n\n{"text": "meh", "y": "negative"}\n')
    data = load_task_data("sst2", "local", path=tmp_path, columns={"sentence": "text", "label": "y"})
    assert data.train.texts == [("good, really",), ("bad",)] and data.train.labels == [1, 0]
    assert data.dev.labels == [1, 0]


def test_glue_original_column_names_and_string_labels(tmp_path):
    write(
        tmp_path / "train.tsv",
        "index\tsentence1\tsentence2\tgold_label\n0\ta\tb\tneutral\n1\tc\td\tentailment\n",
    )
    write(tmp_path / "dev_matched.tsv", "index\tsentence1\tsentence2\tgold_label\n0\te\tf\tcontradiction\n")
    data = load_task_data("mnli", "local", path=tmp_path)
    assert data.train.texts == [("a", "b"), ("c", "d")] and data.train.labels == [1, 0]
    assert data.dev.labels == [2]


def test_cola_tsv_has_no_header(tmp_path):
    f = write(
        tmp_path / "dev.tsv",
        "gj04\t1\t\tOur friends won't buy this analysis.\nclc95\t0\t*\tThey drank the pub.\n",
    )
    split = read_split(get_task("cola"), f)
    assert split.labels == [1, 0] and split.texts[1] == ("They drank the pub.",)


def test_stsb_labels_are_floats(tmp_path):
    f = write(tmp_path / "dev.tsv", "sentence1\tsentence2\tscore\na\tb\t3.8\n")
    assert read_split(get_task("stsb"), f).labels == [3.8]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("train.tsv", "", r"train.tsv: empty file"),
        ("train.tsv", "sentence\tlabel\n", r"train.tsv: no data rows after the header"),
        (
            "train.tsv",
            "text\tlabel\nfine\t1\n",
            r"train.tsv: line 1: missing column 'sentence' \(found: text, label\); map it with data.columns.sentence=NAME",
        ),
        (
            "train.tsv",
            "sentence\tlabel\nfine\t1\nbad\t3\n",
            r"train.tsv: line 3: label '3' is not one of the task's labels \(0, 1, negative, positive\)",
        ),
        (
            "train.tsv",
            "sentence\tlabel\nfine\t1\nbad\t0\textra\n",
            r"train.tsv: line 3: expected 2 tab-separated fields, found 3",
        ),
        (
            "train.csv",
            'sentence,label\nfine,1\n"a,b",0,9\n',
            r"train.csv: line 3: expected 2 comma-separated fields, found 3",
        ),
        (
            "train.jsonl",
            '{"sentence": "a", "label": 1}\n{"sentence": "b", "label": \n',
            r"train.jsonl: line 2: invalid JSON",
        ),
        ("train.txt", "x", r"train.txt: unsupported file type '.txt'"),
    ],
)
def test_bad_data_names_file_and_line(tmp_path, name, content, message):
    f = write(tmp_path / name, content)
    with pytest.raises(DataError, match=message):
        read_split(get_task("sst2"), f)


def test_missing_local_files(tmp_path):
    with pytest.raises(DataError, match=r"no-dir: data directory not found"):
        load_task_data("sst2", "local", path=tmp_path / "no-dir")
    write(tmp_path / "train.tsv", "sentence\tlabel\na\t1\n")
    with pytest.raises(DataError, match=r"no dev.tsv, dev.csv or dev.jsonl in this directory"):
        load_task_data("sst2", "local", path=tmp_path)


def test_hub_fails_at_once_offline_and_says_how_to_go_local():
    with pytest.raises(
        DataError,
        match=r"could not load GLUE 'sst2' from the Hugging Face hub .* set data.source=local and data.path=DIR",
    ):
        load_task_data("sst2", "hub")


def test_synthetic_source():
    data = load_task_data("synthetic", "synthetic", synthetic_train_size=50, synthetic_dev_size=20)
    assert len(data.train) == 50 and len(data.dev) == 20
    assert data.train.texts != data.dev.texts


def test_bucket_sampler_covers_every_example_once_and_is_deterministic():
    lengths = [int(x) for x in np.random.default_rng(0).integers(3, 60, 1000)]
    s = BucketBatchSampler(lengths, 32, seed=5)
    batches = s.batches()
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    assert batches == BucketBatchSampler(lengths, 32, seed=5).batches()
    s.set_epoch(1)
    assert s.batches() != batches
    s.set_epoch(1, skip=7)
    assert list(iter(s)) == s.batches()[7:] and len(s) == len(batches) - 7
    bucketed = padding_stats(BucketBatchSampler(lengths, 32, seed=5))
    plain = padding_stats(BucketBatchSampler(lengths, 32, seed=5, bucket_factor=0))
    assert bucketed["real_tokens"] == plain["real_tokens"] == sum(lengths)
    assert bucketed["efficiency"] > 0.9 > 0.7 > plain["efficiency"]


def test_collator_pads_to_the_batch_maximum():
    tok = train_wordpiece(["a good film", "a bad one"] * 4, vocab_size=40)
    split = load_task_data("synthetic", "synthetic", synthetic_train_size=4).train
    enc = EncodedSplit(split, tok, max_length=8)
    assert max(enc.lengths) <= 8
    batch = Collator(tok.pad_token_id)([enc[0], enc[1]])
    width = max(enc.lengths[0], enc.lengths[1])
    assert batch["input_ids"].shape == (2, width)
    assert batch["attention_mask"].sum(1).tolist() == [enc.lengths[0], enc.lengths[1]]
    assert batch["labels"].dtype == torch.long
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tok.pad_token_id).all()


def test_metrics_against_direct_computations():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.8, gold, 1 - gold)
    m = compute_metrics(get_task("mrpc"), pred, gold)
    tp = ((pred == 1) & (gold == 1)).sum()
    assert m["f1"] == pytest.approx(
        2 * tp / (2 * tp + ((pred == 1) & (gold == 0)).sum() + ((pred == 0) & (gold == 1)).sum())
    )
    assert m["accuracy"] == pytest.approx((pred == gold).mean())
    mcc = compute_metrics(get_task("cola"), pred, gold)["matthews"]
    assert mcc == pytest.approx(np.corrcoef(pred, gold)[0, 1])  # MCC is Pearson's r on binary labels
    x, y = rng.random(50), rng.random(50)
    s = compute_metrics(get_task("stsb"), x, y)
    assert s["pearson"] == pytest.approx(stats.pearsonr(x, y)[0])
    assert s["spearman"] == pytest.approx(stats.spearmanr(x, y)[0])
    assert compute_metrics(get_task("stsb"), np.ones(5), y[:5])["pearson"] == 0.0


def test_bucket_sampler_shards_batches_for_data_parallel_processes():
    """Three processes of batch 32 take, at every step, the three parts of the batch one process of 96 takes."""
    from bermo_prune.train import TrainConfig, total_steps

    lengths = [5 + (i * 7) % 40 for i in range(1000)]
    whole = BucketBatchSampler(lengths, 96, seed=3)
    shards = [BucketBatchSampler(lengths, 32, seed=3, num_shards=3, shard=k) for k in range(3)]
    for s in [whole, *shards]:
        s.set_epoch(2)
    per = [list(s) for s in shards]
    # 1000 = 10 x 96 + 40: 11 steps; the last global batch of 40 splits 14/13/13
    assert [len(p) for p in per] == [len(s) for s in shards] == [11, 11, 11] == [len(whole)] * 3
    assert [per[0][k] + per[1][k] + per[2][k] for k in range(11)] == list(whole)
    assert sorted(len(p[k]) for p in per for k in range(11) if len(p[k]) != 32) == [13, 13, 14]
    shards[1].set_epoch(2, skip=4)  # resume mid-epoch in one process
    assert list(shards[1]) == per[1][4:] and len(shards[1]) == 7
    assert total_steps(TrainConfig(epochs=2, batch_size=32), 1000, processes=3) == 22
    # a last global batch smaller than the number of processes is dropped (one process would get nothing)
    tiny = [BucketBatchSampler([5] * 97, 32, seed=0, num_shards=3, shard=k) for k in range(3)]
    assert [len(list(s)) for s in tiny] == [len(s) for s in tiny] == [1, 1, 1]
    assert total_steps(TrainConfig(epochs=1, batch_size=32), 97, processes=3) == 1
    assert total_steps(TrainConfig(epochs=2, batch_size=32), 1000) == 64
