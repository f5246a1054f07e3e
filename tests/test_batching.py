"""Tests for seq2seq.data.batching."""

import pytest
import tensorflow as tf
from conftest import token_examples_dataset

from seq2seq.configurable import ModeKeys
from seq2seq.data import batching
from seq2seq.data.input_pipeline import ParallelTextInputPipeline
from seq2seq.errors import ConfigError


def examples_dataset(source_lengths, with_targets=True):
    """Unbatched examples whose tokens spell their index and position."""
    return token_examples_dataset(
        [
            ([f"s{index}_{i}" for i in range(length)], [f"t{index}"] * (index % 3 + 2))
            for index, length in enumerate(source_lengths)
        ],
        with_targets,
    )


def assert_all_dims_unknown(dataset):
    for key, spec in dataset.element_spec.items():
        assert all(dim is None for dim in spec.shape.as_list()), (key, spec.shape)
        rank = 2 if key.endswith("tokens") else 1
        assert spec.shape.rank == rank


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10,20,30", [10, 20, 30]),
        (" 5, 7 ", [5, 7]),
        ("12", [12]),
        ([3, 9], [3, 9]),
        (None, None),
        ("", None),
        ([], None),
    ],
)
def test_parse_buckets(text, expected):
    assert batching.parse_buckets(text) == expected


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("10,a,30", r"'a' in '10,a,30' is not an integer"),
        ("10,,20", r"'' in '10,,20' is not an integer"),
        ("1.5", r"'1.5' .* is not an integer"),
        ("20,10", r"must be strictly increasing"),
        ("10,10", r"must be strictly increasing"),
        ("0,5", r"boundary 0 .* must be a positive integer"),
        ("-3", r"boundary -3"),
    ],
)
def test_parse_buckets_errors(text, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        batching.parse_buckets(text)
    assert "\n" not in str(info.value)


def test_padded_batches():
    dataset = batching.make_batched_dataset(
        examples_dataset([3, 1, 2]), batch_size=3, allow_smaller_final_batch=True
    )
    assert_all_dims_unknown(dataset)
    (batch,) = list(dataset)
    assert batch["source_len"].dtype == tf.int32
    assert batch["source_len"].numpy().tolist() == [3, 1, 2]
    assert batch["target_len"].numpy().tolist() == [2, 3, 4]
    tokens = batch["source_tokens"].numpy().tolist()
    assert tokens == [
        [b"s0_0", b"s0_1", b"s0_2"],
        [b"s1_0", b"", b""],
        [b"s2_0", b"s2_1", b""],
    ]
    assert batch["target_tokens"].shape == (3, 4)
    assert batch["target_tokens"].numpy()[0].tolist() == [b"t0", b"t0", b"", b""]


def test_smaller_final_batch_dropped_or_kept():
    lengths = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    dropped = list(batching.make_batched_dataset(examples_dataset(lengths), 4))
    assert [b["source_len"].numpy().tolist() for b in dropped] == [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
    ]
    kept = list(
        batching.make_batched_dataset(
            examples_dataset(lengths), 4, allow_smaller_final_batch=True
        )
    )
    assert [len(b["source_len"]) for b in kept] == [4, 4, 2]
    assert kept[-1]["source_len"].numpy().tolist() == [9, 10]


def test_bucketing_groups_by_source_length():
    # "3,5": buckets len < 3, 3 <= len < 5, len >= 5.
    lengths = [1, 5, 3, 2, 9, 4, 1, 6, 3, 2, 7, 4]
    dataset = batching.make_batched_dataset(
        examples_dataset(lengths),
        2,
        bucket_boundaries="3,5",
        allow_smaller_final_batch=True,
    )
    assert_all_dims_unknown(dataset)
    batches = [sorted(b["source_len"].numpy().tolist()) for b in dataset]
    assert sorted(batches) == sorted([[1, 2], [1, 2], [3, 4], [3, 4], [5, 9], [6, 7]])
    for batch in dataset:
        width = batch["source_tokens"].shape[1]
        assert width == max(batch["source_len"].numpy())


def test_bucketing_drops_partial_bucket_batches():
    lengths = [1, 1, 1, 8, 8]
    dataset = batching.make_batched_dataset(examples_dataset(lengths), 2, [4])
    batches = [b["source_len"].numpy().tolist() for b in dataset]
    assert sorted(batches) == [[1, 1], [8, 8]]


def test_without_targets():
    dataset = batching.make_batched_dataset(
        examples_dataset([2, 3], with_targets=False), 2
    )
    assert set(dataset.element_spec) == {"source_tokens", "source_len"}
    assert_all_dims_unknown(dataset)


def test_one_trace_for_batches_of_different_shapes():
    dataset = batching.make_batched_dataset(
        examples_dataset([1, 2, 7, 8, 3]), 2, allow_smaller_final_batch=True
    )
    traces = []

    @tf.function(input_signature=[dataset.element_spec])
    def total_length(batch):
        traces.append(1)
        return tf.reduce_sum(batch["source_len"])

    sums = [int(total_length(batch)) for batch in dataset]
    assert sums == [3, 15, 3]
    assert len(traces) == 1


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "8"])
def test_bad_batch_size(batch_size):
    with pytest.raises(ConfigError, match="batch_size"):
        batching.make_batched_dataset(examples_dataset([1]), batch_size)


def test_create_input_fn_with_pipeline(tmp_path):
    src = tmp_path / "s.txt"
    tgt = tmp_path / "t.txt"
    src.write_text("a\nb c\nd e f\ng\nh i\n", encoding="utf-8")
    tgt.write_text("1\n2\n3\n4\n5\n", encoding="utf-8")
    pipeline = ParallelTextInputPipeline(
        {"source_files": [str(src)], "target_files": [str(tgt)]}, ModeKeys.EVAL
    )
    with pytest.raises(ConfigError, match="buckets"):
        batching.create_input_fn(pipeline, 2, bucket_boundaries="x")
    dataset = batching.create_input_fn(pipeline, 2, allow_smaller_final_batch=True)
    assert isinstance(dataset, tf.data.Dataset)
    batches = list(dataset)
    assert [b["source_len"].numpy().tolist() for b in batches] == [[2, 3], [4, 2], [3]]
    assert batches[0]["source_tokens"].numpy().tolist() == [
        [b"a", b"SEQUENCE_END", b""],
        [b"b", b"c", b"SEQUENCE_END"],
    ]
    assert batches[2]["target_tokens"].numpy().tolist() == [
        [b"SEQUENCE_START", b"5", b"SEQUENCE_END"]
    ]


def test_iterator_can_be_checkpointed(tmp_path):
    # The trainer saves the data iterator with its checkpoints.
    lines = "\n".join(" ".join(["w"] * (i % 7 + 1)) for i in range(60)) + "\n"
    (tmp_path / "s.txt").write_text(lines, encoding="utf-8")
    (tmp_path / "t.txt").write_text(lines, encoding="utf-8")
    pipeline = ParallelTextInputPipeline(
        {
            "source_files": [str(tmp_path / "s.txt")],
            "target_files": [str(tmp_path / "t.txt")],
        },
        ModeKeys.TRAIN,
    )
    iterator = iter(batching.make_batched_dataset(pipeline, 4, "3,6"))
    next(iterator)
    checkpoint = tf.train.Checkpoint(data=iterator)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    first = [next(iterator)["source_len"].numpy().tolist() for _ in range(4)]
    checkpoint.restore(path)
    again = [next(iterator)["source_len"].numpy().tolist() for _ in range(4)]
    assert first == again
