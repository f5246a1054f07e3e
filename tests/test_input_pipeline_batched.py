"""Tests for the vectorized parsing and caching of seq2seq.data.input_pipeline."""

import os

import pytest
import tensorflow as tf

from seq2seq.configurable import ModeKeys
from seq2seq.data import input_pipeline as ip

# Lines that exercise every rule of `split_tokens`: blank lines, runs of
# delimiters, leading/trailing delimiters, a Windows line ending, invalid
# UTF-8, multi-byte characters, a backslash.
TRICKY_LINES = [
    b"a b c",
    b"",
    b"  lead  and   trail  ",
    b"windows line\r",
    b"bad \xff\xfe bytes",
    "笑 顔 ok".encode(),
    b"x,y;z w,,;",
    b"back\\slash \\ end",
    b" ",
]


class PerRecordPipeline(ip.ParallelTextInputPipeline):
    """The same pipeline with its vectorized parser turned off."""

    parses_batches = False


def as_lists(dataset):
    examples = []
    for item in dataset:
        examples.append(
            {
                key: (
                    value.numpy().tolist()
                    if value.dtype == tf.string
                    else int(value.numpy())
                )
                for key, value in item.items()
            }
        )
    return examples


def write_lines(tmp_path, name, lines):
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


@pytest.mark.parametrize("delimiter", [" ", ",; ", "", "\\"])
def test_batch_parsing_equals_record_parsing(tmp_path, delimiter):
    # More lines than PARSE_BATCH_SIZE, so that several parse batches and a
    # partial last one are used.
    lines = TRICKY_LINES * 40
    assert len(lines) > ip.PARSE_BATCH_SIZE
    params = {
        "source_files": [write_lines(tmp_path, "s.txt", lines)],
        "target_files": [write_lines(tmp_path, "t.txt", lines[::-1])],
        "source_delimiter": delimiter,
        "target_delimiter": delimiter,
    }
    vectorized = ip.ParallelTextInputPipeline(params, ModeKeys.EVAL)
    reference = PerRecordPipeline(params, ModeKeys.EVAL)
    assert vectorized.parses_batches and not reference.parses_batches
    got = as_lists(vectorized.make_dataset())
    want = as_lists(reference.make_dataset())
    assert len(got) == len(lines)
    assert got == want
    assert got[1]["source_tokens"] == [b"SEQUENCE_END"]


def test_split_tokens_batch_matches_split_tokens():
    texts = tf.constant(TRICKY_LINES)
    tokens, lengths = ip.split_tokens_batch(texts, " ", "<s>", "</s>")
    assert isinstance(tokens, tf.RaggedTensor)
    for index, line in enumerate(TRICKY_LINES):
        want, want_len = ip.split_tokens(tf.constant(line), " ", "<s>", "</s>")
        assert tokens[index].numpy().tolist() == want.numpy().tolist()
        assert int(lengths[index]) == int(want_len)
    assert tokens[0].numpy().tolist() == [b"<s>", b"a", b"b", b"c", b"</s>"]


def test_element_spec_is_dense(tmp_path):
    src = write_lines(tmp_path, "s.txt", [b"a b", b"c"])
    pipeline = ip.ParallelTextInputPipeline(
        {"source_files": [src], "target_files": [src]}, ModeKeys.EVAL
    )
    spec = pipeline.make_dataset().element_spec
    for key in ("source_tokens", "target_tokens"):
        assert isinstance(spec[key], tf.TensorSpec)
        assert spec[key].shape.as_list() == [None]
        assert spec[key].dtype == tf.string
    assert spec["source_len"] == tf.TensorSpec([], tf.int32)


def test_tfrecord_batch_parsing_equals_record_parsing(tmp_path):
    path = str(tmp_path / "data.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for index, line in enumerate(TRICKY_LINES * 20):
            feature = {
                "source": tf.train.Feature(bytes_list=tf.train.BytesList(value=[line]))
            }
            if index % 5 != 1:  # Some lack the target: it defaults to "".
                feature["target"] = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[line[::-1]])
                )
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())

    class PerRecordTFRecord(ip.TFRecordInputPipeline):
        parses_batches = False

    params = {"files": [path]}
    got = as_lists(ip.TFRecordInputPipeline(params, ModeKeys.EVAL).make_dataset())
    want = as_lists(PerRecordTFRecord(params, ModeKeys.EVAL).make_dataset())
    assert len(got) == len(TRICKY_LINES) * 20
    assert got == want


def test_corpus_bytes(tmp_path):
    src = write_lines(tmp_path, "s.txt", [b"a b", b"c"])
    tgt = write_lines(tmp_path, "t.txt", [b"x", b"y z w"])
    pipeline = ip.ParallelTextInputPipeline(
        {"source_files": [src], "target_files": [tgt]}, ModeKeys.TRAIN
    )
    assert pipeline.corpus_bytes() == os.path.getsize(src) + os.path.getsize(tgt)
    assert pipeline.corpus_bytes() == len(b"a b\nc\n") + len(b"x\ny z w\n")


def sources(examples):
    return [tuple(e["source_tokens"]) for e in examples]


def test_cache_gives_the_same_examples(tmp_path):
    lines = [f"w{i} " * (i % 4 + 1) for i in range(50)]
    lines = [line.encode() for line in lines]
    params = {
        "source_files": [write_lines(tmp_path, "s.txt", lines)],
        "target_files": [write_lines(tmp_path, "t.txt", lines)],
        "num_epochs": 3,
        "shuffle": False,
    }
    pipeline = ip.ParallelTextInputPipeline(params, ModeKeys.TRAIN)
    plain = as_lists(pipeline.make_dataset())
    cached = as_lists(pipeline.make_dataset(cache=True))
    assert len(plain) == 150
    assert cached == plain


def test_cache_then_shuffle_reshuffles_every_epoch(tmp_path):
    lines = [f"w{i}".encode() for i in range(60)]
    params = {
        "source_files": [write_lines(tmp_path, "s.txt", lines)],
        "target_files": [write_lines(tmp_path, "t.txt", lines)],
        "num_epochs": 3,
    }
    pipeline = ip.ParallelTextInputPipeline(params, ModeKeys.TRAIN)
    order = sources(as_lists(pipeline.make_dataset(cache=True)))
    epochs = [order[i * 60 : (i + 1) * 60] for i in range(3)]
    for epoch in epochs:
        # The cache holds one whole epoch: each epoch is a permutation of it.
        assert sorted(epoch) == sorted((line, b"SEQUENCE_END") for line in lines)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    assert epochs[0] != sorted(epochs[0])
