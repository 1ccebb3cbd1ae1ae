"""Batching: tokenised splits, a collator that pads each batch to its own longest sequence, and a sampler that
groups sequences of similar length (so little compute goes to padding) and splits every global batch across
data-parallel processes."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch

from .files import Split


class EncodedSplit(torch.utils.data.Dataset):
    """A tokenized split: variable-length ``input_ids`` / ``token_type_ids`` and labels, padded per batch."""

    def __init__(self, split: Split, tokenizer, max_length: int) -> None:
        cols = list(zip(*split.texts, strict=True))
        enc = tokenizer(*[list(c) for c in cols], truncation=True, max_length=max_length)
        self.input_ids: list[list[int]] = enc["input_ids"]
        self.token_type_ids: list[list[int]] = enc.get("token_type_ids") or [
            [0] * len(x) for x in self.input_ids
        ]
        self.labels = list(split.labels)
        self.lengths = [len(x) for x in self.input_ids]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[list[int], list[int], float | int]:
        return self.input_ids[i], self.token_type_ids[i], self.labels[i]


class Collator:
    """Pads a batch to its longest sequence (rounded up to ``pad_to_multiple_of``).

    ``token_types=False`` leaves ``token_type_ids`` out of the batch, for models that take none (DistilBERT).
    """

    def __init__(
        self,
        pad_token_id: int,
        regression: bool = False,
        pad_to_multiple_of: int = 1,
        token_types: bool = True,
    ) -> None:
        self.pad_token_id = pad_token_id
        self.regression = regression
        self.multiple = pad_to_multiple_of
        self.token_types = token_types

    def __call__(self, batch: Sequence[tuple[list[int], list[int], float | int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _, _ in batch)
        width = -(-width // self.multiple) * self.multiple
        n = len(batch)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)  # (batch, seq)
        token_type = torch.zeros((n, width), dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, (ids, tt, _) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            token_type[i, : len(tt)] = torch.tensor(tt)
            mask[i, : len(ids)] = 1
        dtype = torch.float32 if self.regression else torch.long
        labels = torch.tensor([y for _, _, y in batch], dtype=dtype)
        out = {"input_ids": input_ids, "token_type_ids": token_type, "attention_mask": mask, "labels": labels}
        if not self.token_types:
            del out["token_type_ids"]
        return out


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of similar-length examples, in a seeded order that depends only on (seed, epoch).

    Indices are shuffled, cut into pools of ``batch_size * bucket_factor``, sorted by length inside each pool and
    cut into batches; the batches are then shuffled. ``bucket_factor=0`` turns bucketing off (plain shuffled
    batches); ``shuffle=False`` keeps file order (evaluation). ``skip`` drops the first batches of the epoch:
    exact resume in the middle of an epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        bucket_factor: int = 50,
        seed: int = 0,
        drop_last: bool = False,
        num_shards: int = 1,
        shard: int = 0,
    ) -> None:
        self.lengths = list(lengths)
        self.num_shards, self.shard = num_shards, shard
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.bucket_factor = bucket_factor
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip

    @property
    def global_batch_size(self) -> int:
        """Examples per optimizer step over all processes: ``batch_size`` per process times ``num_shards``."""
        return self.batch_size * self.num_shards

    def batches(self) -> list[list[int]]:
        """The epoch's global batches (all processes' examples of each step), in order."""
        n = len(self.lengths)
        size = self.global_batch_size
        if not self.shuffle:
            order = list(range(n))
            if self.bucket_factor:
                order.sort(key=lambda i: self.lengths[i])  # fewest pads at evaluation; order does not matter
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(n))
        rng.shuffle(order)
        if self.bucket_factor:
            pool = size * self.bucket_factor
            order = [
                i
                for s in range(0, n, pool)
                for i in sorted(order[s : s + pool], key=lambda j: self.lengths[j])
            ]
        batches = [order[i : i + size] for i in range(0, n, size)]
        if batches and len(batches[-1]) < (size if self.drop_last else self.num_shards):
            batches.pop()  # a last batch too small to give every process an example
        if self.bucket_factor:
            rng.shuffle(batches)
        return batches

    def shard_batches(self) -> list[list[int]]:
        """This process's batches of the epoch: its contiguous part of every global batch (data-parallel
        training; parts differ in size by at most one). The union of the processes' batches at a step is the
        batch a single process with ``batch_size * num_shards`` takes at that step, so a run on N processes sees
        the same global batches as one process with N times the batch size."""
        batches = self.batches()
        if self.num_shards == 1:
            return batches
        out = []
        for b in batches:
            q, r = divmod(len(b), self.num_shards)
            start = self.shard * q + min(self.shard, r)
            out.append(b[start : start + q + (self.shard < r)])
        return out

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.shard_batches()[self.skip :]

    def __len__(self) -> int:
        n = len(self.lengths)
        if not self.shuffle:
            return -(-n // self.batch_size)
        size = self.global_batch_size
        full = n // size + (n % size >= (size if self.drop_last else self.num_shards))
        return max(full - self.skip, 0)


def padding_stats(sampler: BucketBatchSampler) -> dict[str, float]:
    """Real and padded token counts of one epoch of ``sampler`` (how much compute padding costs)."""
    real = padded = 0
    for batch in sampler.batches():
        lens = [sampler.lengths[i] for i in batch]
        real += sum(lens)
        padded += max(lens) * len(lens)
    return {"real_tokens": real, "padded_tokens": padded, "efficiency": real / padded if padded else 1.0}
