"""Tests for seq2seq.data.vocab."""

import hashlib

import pytest
import tensorflow as tf

from seq2seq.data import vocab
from seq2seq.errors import DataError


def write(tmp_path, text, name="vocab.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def test_special_vocab_follows_file_tokens():
    assert vocab.get_special_vocab(5) == vocab.SpecialVocab(5, 6, 7)
    assert vocab.get_special_vocab(0).SEQUENCE_END == 2


def test_plain_file(tmp_path):
    path = write(tmp_path, "a\nb\n笑\n")
    tokens, counts = vocab.read_vocab(path)
    assert tokens == ["a", "b", "笑"]
    assert counts == [-1.0, -1.0, -1.0]
    info = vocab.get_vocab_info(path)
    assert info.path == path
    assert info.vocab_size == 3
    assert info.special_vocab == vocab.SpecialVocab(
        UNK=3, SEQUENCE_START=4, SEQUENCE_END=5
    )
    assert info.total_size == 6


def test_counts_file_and_whitespace_tokens_kept(tmp_path):
    # A space token and a token with a trailing space are real tokens.
    path = write(tmp_path, "the\t10\n \t7\nx \t2.5\n笑\t1\n")
    tokens, counts = vocab.read_vocab(path)
    assert tokens == ["the", " ", "x ", "笑"]
    assert counts == [10.0, 7.0, 2.5, 1.0]


def test_crlf_and_missing_final_newline(tmp_path):
    path = write(tmp_path, "a\r\nb\r\nc")
    assert vocab.read_vocab(path)[0] == ["a", "b", "c"]


def test_token_with_tab_in_counts_file(tmp_path):
    path = write(tmp_path, "a\tb\t3\nc\t1\n")
    assert vocab.read_vocab(path) == (["a\tb", "c"], [3.0, 1.0])


def test_missing_file(tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="not found: .*nope.txt"):
        vocab.get_vocab_info(missing)
    with pytest.raises(DataError, match="nope.txt"):
        vocab.create_vocabulary_lookup_table(missing)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("", r"empty: .*vocab.txt"),
        ("a\nb\na\n", r"vocab.txt: token 'a' appears twice, on lines 1 and 3"),
        ("a\t3\nb\tmany\n", r"vocab.txt: line 2 'b\\tmany' is not 'token<TAB>count'"),
        ("a\t3\nb\n", r"vocab.txt: line 2 'b' is not 'token<TAB>count'"),
        ("a\n\nb\n", r"vocab.txt: line 2 has an empty token"),
        ("a\nb\n\n", r"vocab.txt: line 3 has an empty token"),
        (
            "a\nSEQUENCE_END\n",
            r"vocab.txt: line 2 lists the reserved token 'SEQUENCE_END'",
        ),
        ("UNK\t4\n", r"vocab.txt: line 1 lists the reserved token 'UNK'"),
        (b"a\n\xff\xfe\n", r"vocab.txt: line 2 is not valid UTF-8"),
    ],
)
def test_malformed_files(tmp_path, text, pattern):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=pattern) as info:
        vocab.read_vocab(path)
    assert "\n" not in str(info.value)


def test_lookup_tables(tmp_path):
    path = write(tmp_path, "a\t5\nb\t3\n笑\t1\n")
    to_id, to_token, to_count, size = vocab.create_vocabulary_lookup_table(path)
    assert size == 6  # three tokens + UNK, SEQUENCE_START, SEQUENCE_END
    ids = to_id.lookup(
        tf.constant(["a", "笑", "zzz", "UNK", "SEQUENCE_START", "SEQUENCE_END"])
    )
    assert ids.dtype == tf.int64
    assert ids.numpy().tolist() == [0, 2, 3, 3, 4, 5]
    tokens = to_token.lookup(tf.constant([1, 2, 5, 99], dtype=tf.int64))
    assert [t.decode("utf-8") for t in tokens.numpy()] == [
        "b",
        "笑",
        "SEQUENCE_END",
        "UNK",
    ]
    counts = to_count.lookup(tf.constant(["a", "b", "UNK", "zzz"]))
    assert counts.dtype == tf.float32
    assert counts.numpy().tolist() == [5.0, 3.0, -1.0, -1.0]


def test_lookup_table_default_value_and_tf_function(tmp_path):
    path = write(tmp_path, "x\ny\n")
    to_id, _, to_count, _ = vocab.create_vocabulary_lookup_table(path, default_value=-7)

    @tf.function
    def lookup(tokens):
        return to_id.lookup(tokens)

    assert lookup(tf.constant(["y", "q"])).numpy().tolist() == [1, -7]
    assert to_count.lookup(tf.constant(["x"])).numpy().tolist() == [-1.0]


def test_vocab_class(tmp_path):
    path = write(tmp_path, "a\nb\n")
    v = vocab.Vocab(path)
    assert v.vocab_size == 2 and v.total_size == 5 and len(v) == 5
    assert v.tokens == ["a", "b", "UNK", "SEQUENCE_START", "SEQUENCE_END"]
    assert v.token_to_id("b") == 1
    assert v.token_to_id("nope") == v.special_vocab.UNK == 2
    assert v.token_to_id("SEQUENCE_END") == 4
    assert v.id_to_token(0) == "a"
    assert v.id_to_token(3) == "SEQUENCE_START"
    assert v.id_to_token(42) == "UNK"
    assert v.id_to_token(-1) == "UNK"
    assert "a" in v and "c" not in v
    assert v.info == vocab.get_vocab_info(path)


def test_file_checksum(tmp_path):
    path = write(tmp_path, "a\nb\n")
    expected = hashlib.sha256(b"a\nb\n").hexdigest()
    assert vocab.file_checksum(path) == expected
    assert vocab.file_checksum(path, chunk_size=1) == expected
    write(tmp_path, "a\nc\n")
    assert vocab.file_checksum(path) != expected
    with pytest.raises(DataError, match="missing.txt"):
        vocab.file_checksum(str(tmp_path / "missing.txt"))
