"""Tests for `--buckets auto` (seq2seq.data.auto_buckets)."""

import collections
import random

import pytest
import tensorflow as tf
from test_batching import examples_dataset

from seq2seq.configurable import ModeKeys
from seq2seq.data import auto_buckets, batching
from seq2seq.data.input_pipeline import InputPipeline, ParallelTextInputPipeline
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
    lengths = tf.data.Dataset.from_tensor_slices([1, 3, 3, 2, 5]).batch(2)
    assert auto_buckets.length_histogram(lengths) == [0, 1, 1, 2, 0, 1]
    # The first examples only, also within a batch: 1, 3 and 3.
    assert auto_buckets.length_histogram(lengths, max_examples=3) == [0, 1, 0, 2]
    assert auto_buckets.length_histogram(lengths, max_examples=2) == [0, 1, 0, 1]


def _histogram(pipeline, key_fn, max_source_len=None, max_target_len=None):
    lengths = batching._lengths_in_file_order(
        pipeline, key_fn, max_source_len, max_target_len
    )
    assert lengths.options().autotune.enabled is False
    return auto_buckets.length_histogram(lengths)


def _by_hand(pairs, key_fn, max_source_len, max_target_len):
    counts = collections.Counter()
    for source, target in pairs:
        # Sequence ends on both sides and a start on the target, then the cuts.
        source_len = min(len(source.split()) + 1, max_source_len)
        target_len = min(len(target.split()) + 2, max_target_len)
        counts[key_fn(source_len, target_len)] += 1
    return [counts[length] for length in range(max(counts) + 1)]


@pytest.mark.parametrize("by_example_length", [False, True])
def test_pipelines_are_counted_with_their_cuts(tmp_path, by_example_length):
    rng = random.Random(3)
    pairs = [
        (
            " ".join(["w"] * rng.randint(1, 9)),
            " ".join(["x"] * rng.randint(1, 9)),
        )
        for _ in range(300)  # more than one parse batch
    ]
    source, target = tmp_path / "s.txt", tmp_path / "t.txt"
    source.write_text("".join(s + "\n" for s, _ in pairs))
    target.write_text("".join(t + "\n" for _, t in pairs))
    pipeline = ParallelTextInputPipeline(
        {"source_files": [str(source)], "target_files": [str(target)]},
        ModeKeys.TRAIN,
    )
    pipeline.check()  # as make_dataset does before reading the files
    assert pipeline.parses_batches
    if by_example_length:
        key_fn, by_hand = batching.example_length, max
    else:
        key_fn, by_hand = (lambda e: e["source_len"]), (lambda s, t: s)
    expected = _by_hand(pairs, by_hand, 6, 8)
    # Parsed in batches, parsed record by record, and a dataset of examples.
    assert _histogram(pipeline, key_fn, 6, 8) == expected
    one_by_one = _RecordByRecord(pipeline.params, ModeKeys.TRAIN)
    one_by_one.check()
    assert not one_by_one.parses_batches
    assert _histogram(one_by_one, key_fn, 6, 8) == expected
    examples = pipeline._parse_dataset(pipeline.read_records())
    assert _histogram(examples, key_fn, 6, 8) == expected
    # No cuts: the longest length is 10 (9 words and the end) or 11.
    uncut = _histogram(pipeline, key_fn)
    assert uncut == _by_hand(pairs, by_hand, 99, 99)
    assert len(uncut) == (12 if by_example_length else 11)


class _RecordByRecord(ParallelTextInputPipeline):
    """The same pipeline without its vectorized parser."""

    parse_batch = InputPipeline.parse_batch


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
