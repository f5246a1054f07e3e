"""Tests for `--buckets auto` (seq2seq.data.auto_buckets)."""

import pytest
from test_batching import examples_dataset

from seq2seq.configurable import ModeKeys
from seq2seq.data import auto_buckets, batching
from seq2seq.data.input_pipeline import ParallelTextInputPipeline
from seq2seq.errors import ConfigError


def test_dense_lengths_get_width_two_buckets():
    # Lengths 2..7, 10 examples each; any bucket holds 1% of 60.
    counts = [0, 0] + [10] * 6
    # Buckets 2-3, 4-5 and the open one from 6.
    assert auto_buckets.boundaries_from_histogram(counts) == [4, 6]


def test_sparse_tail_joins_the_last_full_bucket():
    counts = {3: 50, 4: 30, 5: 10, 6: 5, 10: 3, 20: 2}
    # 10% of 100 per bucket: 3-4 (80), 5-6 (15); 10 and 20 (5) join 5-6.
    assert auto_buckets.boundaries_from_histogram(counts, min_fraction=0.1) == [5]
    # 1%: every width-2 range that holds anything closes a bucket.
    assert auto_buckets.boundaries_from_histogram(counts, min_fraction=0.01) == [
        5,
        7,
        11,
    ]


def test_wider_minimum_and_one_bucket():
    counts = [0] + [5] * 9  # lengths 1..9
    # 1-4, 5-8, and 9 alone is not 4 wide: it joins 5-8.
    assert auto_buckets.boundaries_from_histogram(counts, min_width=4) == [5]
    # Everything needs to be in one bucket: no boundary.
    assert auto_buckets.boundaries_from_histogram(counts, min_fraction=1.0) == []
    assert auto_buckets.boundaries_from_histogram([0, 0, 0]) == []


def test_bad_histogram_arguments():
    with pytest.raises(ValueError, match="must not be negative"):
        auto_buckets.boundaries_from_histogram([1, -1])
    with pytest.raises(ValueError, match="min_width"):
        auto_buckets.boundaries_from_histogram([1], min_width=0)


def test_length_histogram_counts_every_example():
    dataset = examples_dataset([1, 3, 3, 2, 5])
    counts = auto_buckets.length_histogram(dataset, lambda e: e["source_len"])
    assert counts == [0, 1, 1, 2, 0, 1]
    assert auto_buckets.length_histogram(
        dataset, lambda e: e["source_len"], max_examples=2
    ) == [0, 1, 0, 1]


def test_parse_auto():
    assert batching.parse_buckets("auto") == "auto"
    assert batching.parse_buckets(" Auto ") == "auto"


def test_auto_buckets_batch_by_derived_boundaries():
    # 40 examples of each length 1..6: boundaries 3 and 5.
    lengths = [length for _ in range(40) for length in range(1, 7)]
    dataset = batching.make_batched_dataset(
        examples_dataset(lengths), 8, bucket_boundaries="auto"
    )
    batches = [b["source_len"].numpy().tolist() for b in dataset]
    assert sum(len(b) for b in batches) == len(lengths)
    buckets = {(min(b) + 1) // 2 for b in batches}
    assert buckets == {1, 2, 3}
    for batch in batches:
        assert (min(batch) + 1) // 2 == (max(batch) + 1) // 2, batch


def test_auto_buckets_from_pipeline_files(tmp_path):
    source, target = tmp_path / "s.txt", tmp_path / "t.txt"
    # Sources of 1..4 words (+ SEQUENCE_END: lengths 2..5), 25 of each.
    source.write_text("".join(" ".join(["w"] * (i % 4 + 1)) + "\n" for i in range(100)))
    target.write_text("x\n" * 100)
    pipeline = ParallelTextInputPipeline(
        {"source_files": [str(source)], "target_files": [str(target)]},
        ModeKeys.TRAIN,
    )
    dataset = batching.make_batched_dataset(pipeline, 5, bucket_boundaries="auto")
    for batch in dataset.take(20):
        lengths = batch["source_len"].numpy()
        # Buckets 2-3 and 4-5.
        assert (lengths.min() >= 4) == (lengths.max() >= 4), lengths


def test_auto_buckets_without_examples():
    with pytest.raises(ConfigError, match="--buckets auto: .* no examples"):
        batching.make_batched_dataset(examples_dataset([]), 2, bucket_boundaries="auto")
