"""Tests for bin/tools/generate_vocab.py, generate_toy_data.py and bin/data/toy.sh."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.data import vocab

ROOT = Path(__file__).resolve().parents[1]
GENERATE_VOCAB = ROOT / "bin" / "tools" / "generate_vocab.py"
GENERATE_TOY = ROOT / "bin" / "tools" / "generate_toy_data.py"
TOY_SH = ROOT / "bin" / "data" / "toy.sh"


def run(args, stdin=None, env=None, cwd=None):
    return subprocess.run(
        args,
        input=stdin.encode("utf-8") if isinstance(stdin, str) else stdin,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def vocab_tool(*args, stdin=None):
    result = run([sys.executable, str(GENERATE_VOCAB), *args], stdin=stdin)
    return result, result.stdout.decode("utf-8")


def toy_tool(*args):
    return run([sys.executable, str(GENERATE_TOY), *args])


def read_lines(path):
    return Path(path).read_text(encoding="utf-8").splitlines()


def test_tools_are_executable_scripts():
    for path in (GENERATE_VOCAB, GENERATE_TOY, TOY_SH):
        assert os.access(path, os.X_OK), path


def test_generate_vocab_counts_and_order(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("b a c\na  b\n笑 b a\n\n  d\n", encoding="utf-8")
    result, out = vocab_tool(str(corpus))
    assert result.returncode == 0, result.stderr
    # Most frequent first; ties ordered by token, descending (as the original).
    assert out == "b\t3\na\t3\n笑\t1\nd\t1\nc\t1\n"


def test_generate_vocab_options(tmp_path):
    text = "A a b\nb c c\nc\n"
    _, out = vocab_tool("--min_frequency", "1", stdin=text)
    assert out == "c\t3\nb\t2\n"  # strictly more than min_frequency
    _, out = vocab_tool("--max_vocab_size", "2", stdin=text)
    assert out == "c\t3\nb\t2\n"
    _, out = vocab_tool("--downcase", stdin=text)
    assert out == "c\t3\nb\t2\na\t2\n"
    _, out = vocab_tool("--downcase=false", "-", stdin=text)
    assert out.splitlines()[-2:] == ["a\t1", "A\t1"]


def test_generate_vocab_characters_and_file_round_trip(tmp_path):
    result, out = vocab_tool("--delimiter=", stdin="ab 笑\n笑a\n")
    assert result.returncode == 0, result.stderr
    assert out == "笑\t2\na\t2\nb\t1\n \t1\n"
    path = tmp_path / "vocab.txt"
    path.write_text(out, encoding="utf-8")
    tokens, counts = vocab.read_vocab(str(path))
    assert tokens == ["笑", "a", "b", " "]
    assert counts == [2.0, 2.0, 1.0, 1.0]


def test_generate_vocab_leaves_out_reserved_tokens():
    result, out = vocab_tool(stdin="a UNK SEQUENCE_END\n")
    assert result.returncode == 0
    assert out == "a\t1\n"
    assert "reserved token(s) SEQUENCE_END, UNK" in result.stderr.decode("utf-8")


def test_generate_vocab_bad_bytes_do_not_crash():
    result, out = vocab_tool(stdin=b"ok \xff\n")
    assert result.returncode == 0
    assert out == "\ufffd\t1\nok\t1\n"


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["missing-file.txt"], "input file not found: missing-file.txt"),
        (["--min_frequency", "-1"], "--min_frequency must be >= 0"),
        (["--max_vocab_size", "0"], "--max_vocab_size must be >= 1"),
        (["--max_vocab_size", "many"], "invalid int value"),
        (["--downcase=maybe"], "expected true or false"),
        (["--no_such_flag"], "unrecognized arguments"),
    ],
)
def test_generate_vocab_user_errors(args, pattern):
    result, out = vocab_tool(*args, stdin="")
    assert result.returncode == 2
    assert out == ""
    stderr = result.stderr.decode("utf-8")
    assert stderr.startswith("generate_vocab: error:") and pattern in stderr
    assert stderr.count("\n") == 1


@pytest.mark.parametrize("kind", ["copy", "reverse"])
def test_generate_toy_data(tmp_path, kind):
    out_dir = tmp_path / kind
    args = ["--type", kind, "--num_examples", "50", "--vocab_size", "6"]
    args += [
        "--min_len",
        "2",
        "--max_len",
        "4",
        "--seed",
        "7",
        "--output_dir",
        str(out_dir),
    ]
    result = toy_tool(*args)
    assert result.returncode == 0, result.stderr
    sources = read_lines(out_dir / "sources.txt")
    targets = read_lines(out_dir / "targets.txt")
    assert len(sources) == len(targets) == 50
    allowed = {"0", "1", "2", "3", "4", "笑"}
    for source, target in zip(sources, targets):
        tokens = source.split(" ")
        assert 2 <= len(tokens) <= 4
        assert set(tokens) <= allowed
        expected = tokens[::-1] if kind == "reverse" else tokens
        assert target.split(" ") == expected
    assert "笑" in " ".join(sources)
    # Same seed, same data.
    again = tmp_path / "again"
    toy_tool(*args[:-1], str(again))
    assert read_lines(again / "sources.txt") == sources


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--type", "shuffle"], "invalid choice: 'shuffle'"),
        (
            ["--min_len", "5", "--max_len", "3"],
            "--max_len (3) must be >= --min_len (5)",
        ),
        (["--min_len", "0"], "--min_len must be >= 1"),
        (["--vocab_size", "0"], "--vocab_size must be >= 1"),
        (["--num_examples", "0"], "--num_examples must be >= 1"),
        (["--max_len", "100000000000"], "--max_len must be <= 1,000,000"),
        (["--vocab_size", "10000000"], "--vocab_size must be <= 1,000,000"),
        (["--num_examples", "1000000000"], "--num_examples must be <= 100,000,000"),
        (
            ["--num_examples", "10000000", "--max_len", "1000"],
            "times --max_len (1,000) must be <= 2,000,000,000 tokens",
        ),
    ],
)
def test_generate_toy_data_user_errors(tmp_path, args, pattern):
    result = toy_tool(*args, "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 2
    stderr = result.stderr.decode("utf-8")
    assert stderr.startswith("generate_toy_data: error:") and pattern in stderr
    assert stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_generate_toy_data_needs_output_dir():
    result = toy_tool("--type", "copy")
    assert result.returncode == 2
    assert "--output_dir" in result.stderr.decode("utf-8")


def test_toy_sh_reverse(tmp_path):
    out_dir = tmp_path / "toy"
    env = dict(
        os.environ, DATA_TYPE="reverse", OUTPUT_DIR=str(out_dir), PYTHON=sys.executable
    )
    result = run(["bash", str(TOY_SH)], env=env)
    assert result.returncode == 0, result.stderr
    for split, size in (("train", 10000), ("dev", 1000), ("test", 1000)):
        sources = read_lines(out_dir / split / "sources.txt")
        targets = read_lines(out_dir / split / "targets.txt")
        assert len(sources) == len(targets) == size
        for source, target in zip(sources[:200], targets[:200]):
            assert target.split(" ") == source.split(" ")[::-1]
    assert read_lines(out_dir / "dev" / "sources.txt") != read_lines(
        out_dir / "test" / "sources.txt"
    )
    for side in ("sources", "targets"):
        info = vocab.get_vocab_info(str(out_dir / "train" / f"vocab.{side}.txt"))
        assert info.vocab_size == 20  # "0".."18" and 笑
        tokens, counts = vocab.read_vocab(info.path)
        assert set(tokens) == {str(i) for i in range(19)} | {"笑"}
        assert counts == sorted(counts, reverse=True)


def test_toy_sh_rejects_bad_type(tmp_path):
    env = dict(
        os.environ,
        DATA_TYPE="sort",
        OUTPUT_DIR=str(tmp_path / "x"),
        PYTHON=sys.executable,
    )
    result = run(["bash", str(TOY_SH)], env=env)
    assert result.returncode == 2
    assert "DATA_TYPE must be 'copy' or 'reverse'" in result.stderr.decode("utf-8")
    assert not (tmp_path / "x").exists()
