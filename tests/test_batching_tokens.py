"""Tests for token batching, static-shape padding and caching in
seq2seq.data.batching."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import token_examples_dataset

from seq2seq.configurable import ModeKeys
from seq2seq.data import batching
from seq2seq.data.input_pipeline import ParallelTextInputPipeline
from seq2seq.errors import ConfigError


def pairs_dataset(lengths, with_targets=True):
    """Unbatched examples; `lengths` is a list of (source_len, target_len).

    Token `i` of example `n` is `b"n"` on both sides, so every example can be
    recognised in a batch."""
    return token_examples_dataset(
        [
            ([str(index)] * source_len, [str(index)] * target_len)
            for index, (source_len, target_len) in enumerate(lengths)
        ],
        with_targets,
    )


def random_lengths(count, longest, seed=0):
    rng = np.random.default_rng(seed)
    return [(int(s), int(t)) for s, t in rng.integers(1, longest + 1, size=(count, 2))]


def example_ids(batch):
    """The example index of each row of a batch (from its first token)."""
    return [int(row[0]) for row in batch["source_tokens"].numpy().tolist()]


def assert_all_dims_unknown(dataset):
    for key, spec in dataset.element_spec.items():
        assert all(dim is None for dim in spec.shape.as_list()), (key, spec.shape)


def test_default_bucket_boundaries():
    assert batching.default_bucket_boundaries(8) == []
    assert batching.default_bucket_boundaries(9) == [9]
    assert batching.default_bucket_boundaries(40) == [9, 17, 25, 33]
    # Width 8 up to 128, then 16 up to 256, then 32.
    boundaries = batching.default_bucket_boundaries(300)
    assert boundaries[:3] == [9, 17, 25]
    assert boundaries[14:18] == [121, 129, 145, 161]
    assert boundaries[-3:] == [241, 257, 289]
    assert len(boundaries) == 25


def test_plan_token_buckets_by_hand():
    plan = batching.plan_buckets(
        64, "10,20", "tokens", max_source_len=30, max_target_len=25
    )
    assert plan.boundaries == [10, 20]
    assert plan.max_lengths == [9, 19, 30]
    assert plan.batch_sizes == [64 // 9, 64 // 19, 64 // 30]
    assert plan.source_widths is None
    # Without maximum lengths the open last bucket is split further, up to
    # one that starts past batch_size and has batches of one example.
    plan = batching.plan_buckets(64, "10,20", "tokens")
    assert plan.boundaries == [10, 20, 25, 33, 41, 49, 57, 65]
    assert plan.max_lengths[-1] is None
    assert plan.batch_sizes == [7, 3, 2, 2, 1, 1, 1, 1, 1]


def test_plan_pad_to_bucket_widths():
    plan = batching.plan_buckets(
        100,
        "5,10,40",
        "examples",
        pad_to_bucket=True,
        max_source_len=12,
        max_target_len=8,
    )
    # 40 is past the longest allowed length (12), so its bucket is dropped.
    assert plan.boundaries == [5, 10]
    assert plan.batch_sizes == [100, 100, 100]
    assert plan.source_widths == [4, 9, 12]
    assert plan.target_widths == [4, 8, 8]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"bucket_boundaries": "6,12"},
        {"max_source_len": 20, "max_target_len": 16},
        {"bucket_boundaries": [4, 9, 30], "max_source_len": 25, "max_target_len": 25},
    ],
)
def test_token_batches_fit_and_cover_the_epoch(kwargs):
    lengths = random_lengths(200, 30)
    batch_size = 48
    dataset = batching.make_batched_dataset(
        pairs_dataset(lengths),
        batch_size,
        batch_type="tokens",
        allow_smaller_final_batch=True,
        **kwargs,
    )
    assert_all_dims_unknown(dataset)
    seen = []
    for batch in dataset:
        rows = batch["source_len"].shape[0]
        width = max(batch["source_tokens"].shape[1], batch["target_tokens"].shape[1])
        assert rows * width <= batch_size or rows == 1
        seen.extend(example_ids(batch))
    # No example lost or duplicated.
    assert sorted(seen) == list(range(len(lengths)))


def test_token_batches_use_the_longer_side():
    # Short sources, long targets: the target decides the bucket.
    lengths = [(2, 20)] * 6 + [(20, 2)] * 6
    dataset = batching.make_batched_dataset(
        pairs_dataset(lengths), 48, "8,16", batch_type="tokens"
    )
    batches = list(dataset)
    # Both kinds land in the last bucket (length 20 >= 16), whose longest
    # length is unknown: boundaries continue 17, 25, ... so 20 is in the
    # 17..24 bucket and batches hold 48 // 24 = 2 examples.
    assert [b["source_len"].shape[0] for b in batches] == [2] * 6
    for batch in batches:
        assert (
            max(batch["source_len"].numpy().max(), batch["target_len"].numpy().max())
            == 20
        )


def test_example_longer_than_batch_size_is_a_batch_of_one():
    lengths = [(3, 3)] * 4 + [(70, 5), (5, 90)]
    batches = list(
        batching.make_batched_dataset(
            pairs_dataset(lengths),
            32,
            batch_type="tokens",
            allow_smaller_final_batch=True,
        )
    )
    ids = [example_ids(b) for b in batches]
    # Examples 4 and 5 (70 and 90 tokens > 32) are batches of one; the four
    # short ones (bucket 1..8, 32 // 8 = 4 per batch) share one batch.
    assert sorted(ids) == [[0, 1, 2, 3], [4], [5]]
    for batch, batch_ids in zip(batches, ids):
        if batch_ids == [0, 1, 2, 3]:
            assert batch["source_tokens"].shape == (4, 3)


def test_token_batching_drops_partial_batches_when_training():
    # Bucket 1..8 holds 4 examples per batch of 32 tokens (32 // 8).
    lengths = [(2, 3)] * 10
    batches = list(
        batching.make_batched_dataset(pairs_dataset(lengths), 32, batch_type="tokens")
    )
    assert [b["source_len"].shape[0] for b in batches] == [4, 4]


def test_pad_to_bucket_gives_one_shape_per_bucket():
    lengths = random_lengths(300, 40, seed=1)
    dataset = batching.make_batched_dataset(
        pairs_dataset(lengths),
        64,
        batch_type="tokens",
        pad_to_bucket=True,
        max_source_len=30,
        max_target_len=20,
    )
    assert_all_dims_unknown(dataset)
    plan = batching.plan_buckets(
        64, None, "tokens", True, max_source_len=30, max_target_len=20
    )
    expected = {
        (size, source, size, target)
        for size, source, target in zip(
            plan.batch_sizes, plan.source_widths, plan.target_widths
        )
    }
    shapes = set()
    used_buckets = set()
    for batch in dataset:
        shape = (*batch["source_tokens"].shape, *batch["target_tokens"].shape)
        shapes.add(shape)
        assert shape in expected
        # Lengths were cut to the maximum lengths.
        assert batch["source_len"].numpy().max() <= 30
        assert batch["target_len"].numpy().max() <= 20
        longest = max(
            batch["source_len"].numpy().max(), batch["target_len"].numpy().max()
        )
        used_buckets.add(sum(longest >= b for b in plan.boundaries))
    assert len(shapes) == len(used_buckets)
    assert len(shapes) == len(plan.batch_sizes)  # every bucket is used here


def test_pad_to_bucket_with_examples_batches_and_truncation():
    lengths = [(2, 3), (3, 2), (9, 4), (7, 8), (15, 1), (40, 50)]
    dataset = batching.make_batched_dataset(
        pairs_dataset(lengths),
        2,
        "5",
        pad_to_bucket=True,
        max_source_len=10,
        max_target_len=6,
    )
    batches = {tuple(sorted(example_ids(b))): b for b in dataset}
    assert set(batches) == {(0, 1), (2, 3), (4, 5)}
    assert batches[(0, 1)]["source_tokens"].shape == (2, 4)
    assert batches[(0, 1)]["target_tokens"].shape == (2, 4)
    assert batches[(2, 3)]["source_tokens"].shape == (2, 10)
    assert batches[(2, 3)]["target_tokens"].shape == (2, 6)
    long = batches[(4, 5)]
    assert long["source_tokens"].shape == (2, 10)
    assert sorted(long["source_len"].numpy().tolist()) == [10, 10]
    assert sorted(long["target_len"].numpy().tolist()) == [1, 6]
    row = example_ids(long).index(5)
    assert long["target_tokens"].numpy()[row].tolist() == [b"5"] * 6


def test_pad_to_bucket_traces_once():
    dataset = batching.make_batched_dataset(
        pairs_dataset(random_lengths(60, 20)),
        4,
        "8",
        pad_to_bucket=True,
        max_source_len=20,
        max_target_len=20,
    )
    traces = []

    @tf.function(input_signature=[dataset.element_spec])
    def width(batch):
        traces.append(1)
        return tf.shape(batch["source_tokens"])[1]

    widths = {int(width(batch)) for batch in dataset}
    assert widths == {7, 20}
    assert len(traces) == 1


def test_pad_to_bucket_needs_maximum_lengths():
    with pytest.raises(ConfigError, match="pad_to_bucket .* max_target_len"):
        batching.make_batched_dataset(
            pairs_dataset([(1, 1)]), 4, pad_to_bucket=True, max_source_len=10
        )
    with pytest.raises(ConfigError, match="source.max_seq_len"):
        batching.make_batched_dataset(pairs_dataset([(1, 1)]), 4, pad_to_bucket=True)
    # Without targets only the source length is needed.
    dataset = batching.make_batched_dataset(
        pairs_dataset([(3, 0)] * 4, with_targets=False),
        4,
        pad_to_bucket=True,
        max_source_len=10,
    )
    (batch,) = list(dataset)
    assert batch["source_tokens"].shape == (4, 10)


def test_max_lengths_without_padding_truncate():
    dataset = batching.make_batched_dataset(
        pairs_dataset([(12, 3), (4, 9)]), 2, max_source_len=5, max_target_len=-1
    )
    (batch,) = list(dataset)
    assert batch["source_len"].numpy().tolist() == [5, 4]
    assert batch["target_len"].numpy().tolist() == [3, 9]
    assert batch["source_tokens"].shape == (2, 5)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"batch_type": "sentences"}, "batch_type must be one of examples, tokens"),
        ({"max_source_len": 2.5}, "max_source_len"),
        ({"max_target_len": "50"}, "max_target_len"),
        ({"cache_max_bytes": None}, "cache_max_bytes"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        batching.make_batched_dataset(pairs_dataset([(1, 1)]), 4, **kwargs)


def write_corpus(tmp_path, count=80):
    lines = "\n".join(" ".join(["w"] * (i % 9 + 1)) for i in range(count)) + "\n"
    (tmp_path / "s.txt").write_text(lines, encoding="utf-8")
    (tmp_path / "t.txt").write_text(lines, encoding="utf-8")
    return ParallelTextInputPipeline(
        {
            "source_files": [str(tmp_path / "s.txt")],
            "target_files": [str(tmp_path / "t.txt")],
        },
        ModeKeys.TRAIN,
    )


@pytest.mark.parametrize("limit, cached", [(0, False), (10, False), (1 << 20, True)])
def test_cache_only_below_the_threshold(tmp_path, monkeypatch, limit, cached):
    pipeline = write_corpus(tmp_path)
    calls = []
    original = pipeline.make_dataset

    def spy(cache=False, **limits):
        calls.append(cache)
        return original(cache=cache, **limits)

    monkeypatch.setattr(pipeline, "make_dataset", spy)
    dataset = batching.create_input_fn(pipeline, 4, cache_max_bytes=limit)
    assert calls == [cached]
    assert next(iter(dataset))["source_len"].shape == (4,)


@pytest.mark.parametrize("cache_max_bytes", [0, 1 << 20])
def test_token_batch_iterator_can_be_checkpointed(tmp_path, cache_max_bytes):
    pipeline = write_corpus(tmp_path)
    dataset = batching.create_input_fn(
        pipeline,
        24,
        "4,7",
        batch_type="tokens",
        pad_to_bucket=True,
        max_source_len=10,
        max_target_len=12,
        cache_max_bytes=cache_max_bytes,
    )
    iterator = iter(dataset)
    # Past the first epoch (80 examples), so that a cache would be complete.
    for _ in range(40):
        next(iterator)
    checkpoint = tf.train.Checkpoint(data=iterator)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    first = [next(iterator)["source_len"].numpy().tolist() for _ in range(6)]
    checkpoint.restore(path)
    again = [next(iterator)["source_len"].numpy().tolist() for _ in range(6)]
    assert first == again
