"""`seq2seq.atomic_write.replace_file`: a file holds its old or its new
contents, never a mix, and a failed write leaves no temporary file."""

import os

import pytest

from bin import train as train_cli
from seq2seq.atomic_write import TEMPORARY_SUFFIX, WRITE_ERRORS, replace_file


def _listing(directory):
    return sorted(os.listdir(directory))


def test_writes_text_and_bytes_creating_the_directory(tmp_path):
    text_path = str(tmp_path / "new" / "deeper" / "options.json")
    replace_file(text_path, '{\n  "é": 1\n}\n')
    with open(text_path, "rb") as handle:
        assert handle.read() == '{\n  "é": 1\n}\n'.encode()

    bytes_path = str(tmp_path / "new" / "raw.bin")
    replace_file(bytes_path, b"\x00\xff\n")
    with open(bytes_path, "rb") as handle:
        assert handle.read() == b"\x00\xff\n"
    assert _listing(tmp_path / "new") == ["deeper", "raw.bin"]
    assert _listing(tmp_path / "new" / "deeper") == ["options.json"]


def test_replaces_a_longer_file_whole(tmp_path):
    path = str(tmp_path / "best.json")
    replace_file(path, "x" * 1000)
    replace_file(path, "short\n")
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == "short\n"
    assert _listing(tmp_path) == ["best.json"]


def test_a_failed_open_leaves_the_file(tmp_path):
    path = str(tmp_path / "train_options.json")
    replace_file(path, "old\n")
    # The temporary name is taken by a directory: nothing can be written.
    os.mkdir(path + TEMPORARY_SUFFIX)
    with pytest.raises(WRITE_ERRORS):
        replace_file(path, "new\n")
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == "old\n"
    assert os.path.isdir(path + TEMPORARY_SUFFIX)  # not ours to remove


def test_a_write_that_fails_midway_leaves_the_file(tmp_path):
    path = str(tmp_path / "train_options.json")
    replace_file(path, "old\n")
    # Neither str nor bytes: the write raises once the file is open.
    with pytest.raises(TypeError):
        replace_file(path, ["not", "text"])
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == "old\n"
    assert _listing(tmp_path) == ["train_options.json"]


def test_a_failed_rename_leaves_the_target_and_no_temporary(tmp_path):
    target = tmp_path / "best.json"
    target.mkdir()
    (target / "kept").write_text("kept\n")
    with pytest.raises(WRITE_ERRORS):
        replace_file(str(target), "new\n")
    assert (target / "kept").read_text() == "kept\n"
    assert _listing(tmp_path) == ["best.json"]


def test_train_cli_restore_swallows_a_failed_write(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way\n")
    # The "directory" of the file to restore is a file: the write fails and
    # bin/train.py goes on to report the error it was handling.
    train_cli._write_if_possible(str(blocker / "train_options.json"), b"{}\n")
    assert blocker.read_text() == "in the way\n"
    assert _listing(tmp_path) == ["a_file"]

    path = tmp_path / "train_options.json"
    train_cli._write_if_possible(str(path), b'{"model_class": "X"}\n')
    assert path.read_bytes() == b'{"model_class": "X"}\n'
