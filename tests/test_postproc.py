"""Tests for seq2seq.data.postproc."""

import pytest

from seq2seq.data import postproc


@pytest.mark.parametrize(
    "text, expected",
    [
        ("lo@@ w@@ er is fine", "lower is fine"),
        ("no joins here", "no joins here"),
        ("  spaced@@ out  ", "spacedout"),
        ("dangling end@@", "dangling end"),
        ("end@@ ", "end"),
        ("", ""),
    ],
)
def test_strip_bpe(text, expected):
    assert postproc.strip_bpe(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\u2581Hel lo \u2581world", "Hello world"),
        ("\u2581a \u2581b c", "a bc"),
        ("\u2581\u7b11", "\u7b11"),
        ("", ""),
    ],
)
def test_decode_sentencepiece(text, expected):
    assert postproc.decode_sentencepiece(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("SEQUENCE_START a b SEQUENCE_END c d", "a b"),
        ("a b SEQUENCE_END SEQUENCE_END", "a b"),
        ("SEQUENCE_START a b", "a b"),
        ("a b", "a b"),
        ("SEQUENCE_END a b", ""),
        # The end token is looked for first: a start token after it is cut away.
        ("x SEQUENCE_END SEQUENCE_START y", "x"),
        ("pre SEQUENCE_START a SEQUENCE_START b", "a SEQUENCE_START b"),
    ],
)
def test_slice_text(text, expected):
    assert postproc.slice_text(text) == expected


def test_slice_text_custom_tokens():
    assert (
        postproc.slice_text("<s> a b </s> pad", eos_token="</s>", sos_token="<s>")
        == "a b"
    )
    assert postproc.slice_text(" a b ", eos_token="", sos_token="") == "a b"
