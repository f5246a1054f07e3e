"""Very long lines: only their first `max_seq_len` tokens are ever split.

The pipelines cut each side to the model's `*.max_seq_len` while splitting
the lines, reading a bounded prefix of a long line, so that a line of
hundreds of thousands of tokens trains in the memory a short one needs.
"""

import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import yaml
from conftest import tiny_model_params
from test_input_pipeline_batched import TRICKY_LINES, as_lists, write_lines

from seq2seq.configurable import ModeKeys
from seq2seq.data import batching, text_tokens
from seq2seq.data import input_pipeline as ip
from seq2seq.models import AttentionSeq2Seq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Lines longer than the prefix a few tokens need, with long tokens, long
# runs of delimiters, multi-byte characters cut anywhere and a final \r.
LONG_LINES = [
    b" ".join(b"w%d" % i for i in range(3000)),
    b"x" * 500 + b" short " + b"y" * 700 + b" tail",
    b" " * 900 + b"late start here",
    ("\u7b11 \u00e9" * 400).encode() + b"\r",
    b",; ,;" * 300 + b"a,b;c d",
    b"\xff\xfe" * 200 + b" after bad bytes",
]


class PerRecordPipeline(ip.ParallelTextInputPipeline):
    parses_batches = False


@pytest.mark.parametrize("prefix_bytes", [2, ip.PREFIX_BYTES_PER_TOKEN])
@pytest.mark.parametrize("delimiter", [" ", ",; ", "", "\u7b11"])
def test_limited_split_is_the_prefix_of_the_full_split(
    monkeypatch, delimiter, prefix_bytes
):
    # A tiny prefix sends most lines through the whole-line fallback; the
    # default one reads the short lines whole and the long ones in part.
    monkeypatch.setattr(text_tokens, "PREFIX_BYTES_PER_TOKEN", prefix_bytes)
    texts = tf.constant(TRICKY_LINES + LONG_LINES)
    for prepend, append in [(None, "END"), ("START", "END"), (None, None)]:
        full, _ = ip.split_tokens_batch(texts, delimiter, prepend, append)
        full = full.to_list()
        for limit in [1, 2, 3, 7, 40]:
            tokens, lengths = ip.split_tokens_batch(
                texts, delimiter, prepend, append, max_tokens=limit
            )
            assert tokens.to_list() == [row[:limit] for row in full]
            assert lengths.numpy().tolist() == [min(len(r), limit) for r in full]


def _rules_in_python(line, delimiter, prepend, append, limit):
    """The tokens of one line by the rules of `text_tokens`, in plain
    Python: invalid UTF-8 replaced, a final carriage return dropped, split
    at every character of the delimiter (into characters if it is empty),
    empty tokens dropped, the special tokens added, the first `limit` kept."""
    text = line.decode("utf-8", errors="replace")
    if text.endswith("\r"):
        text = text[:-1]
    if delimiter:
        for other in delimiter[1:]:
            text = text.replace(other, delimiter[0])
        tokens = [token for token in text.split(delimiter[0]) if token]
    else:
        tokens = list(text)
    tokens = [prepend] * bool(prepend) + tokens + [append] * bool(append)
    return [token.encode() for token in tokens[:limit]]


@pytest.mark.parametrize("delimiter", [" ", ",; ", "", "\\", "\u7b11"])
def test_split_follows_the_rules(monkeypatch, delimiter):
    rng = random.Random(7)
    pieces = ["a", "bc", " ", "  ", ",", ";", "\\", "\u7b11", "\u00e9", "\r"]
    lines = (
        TRICKY_LINES
        + LONG_LINES
        + [
            "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))).encode()
            for _ in range(40)
        ]
    )
    texts = tf.constant(lines)
    for prefix_bytes in (2, ip.PREFIX_BYTES_PER_TOKEN):
        monkeypatch.setattr(text_tokens, "PREFIX_BYTES_PER_TOKEN", prefix_bytes)
        for prepend, append in [(None, None), (None, "END"), ("START", "END")]:
            for limit in [None, 1, 2, 3, 7, 40]:
                tokens, lengths = ip.split_tokens_batch(
                    texts, delimiter, prepend, append, max_tokens=limit
                )
                want = [
                    _rules_in_python(line, delimiter, prepend, append, limit)
                    for line in lines
                ]
                assert tokens.to_list() == want, (prepend, append, limit)
                assert lengths.numpy().tolist() == [len(row) for row in want]


def test_limited_split_of_one_line_gives_its_first_tokens():
    line = " ".join(f"t{i}" for i in range(100_000))
    tokens, length = ip.split_tokens(
        tf.constant(line), " ", "START", "END", max_tokens=4
    )
    assert tokens.numpy().tolist() == [b"START", b"t0", b"t1", b"t2"]
    assert int(length) == 4
    chars, length = ip.split_tokens(tf.constant("ab\u7b11cd"), "", max_tokens=3)
    assert [c.decode() for c in chars.numpy()] == ["a", "b", "\u7b11"]
    # Limits up to the int32 maximum are fine (no string op length overflows).
    for delimiter in (" ", ""):
        tokens, length = ip.split_tokens(
            tf.constant("a b c"), delimiter, max_tokens=2**31 - 1
        )
        assert int(length) == (3 if delimiter else 5)
    # No limit (None or less than 1) keeps every token.
    for limit in (None, 0, -5):
        tokens, length = ip.split_tokens(tf.constant("a b c"), " ", max_tokens=limit)
        assert int(length) == 3


@pytest.mark.parametrize(
    "pipeline_class", [ip.ParallelTextInputPipeline, PerRecordPipeline]
)
def test_pipeline_limits_cut_each_side(tmp_path, pipeline_class):
    lines = TRICKY_LINES + LONG_LINES
    params = {
        "source_files": [write_lines(tmp_path, "s.txt", lines)],
        "target_files": [write_lines(tmp_path, "t.txt", lines[::-1])],
    }
    pipeline = pipeline_class(params, ModeKeys.EVAL)
    full = as_lists(pipeline_class(params, ModeKeys.EVAL).make_dataset())
    cut = as_lists(pipeline.make_dataset(max_source_len=3, max_target_len=2))
    assert len(cut) == len(lines)
    for whole, part in zip(full, cut):
        assert part["source_tokens"] == whole["source_tokens"][:3]
        assert part["source_len"] == min(whole["source_len"], 3)
        assert part["target_tokens"] == whole["target_tokens"][:2]
        assert part["target_len"] == min(whole["target_len"], 2)
    # The first long line: its 3000 tokens are cut, SEQUENCE_END is gone.
    assert cut[len(TRICKY_LINES)]["source_tokens"] == [b"w0", b"w1", b"w2"]


def test_tfrecord_pipeline_limits(tmp_path):
    path = str(tmp_path / "data.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for line in LONG_LINES:
            feature = {
                key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[line]))
                for key in ("source", "target")
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    pipeline = ip.TFRecordInputPipeline({"files": [path]}, ModeKeys.EVAL)
    full = as_lists(
        ip.TFRecordInputPipeline({"files": [path]}, ModeKeys.EVAL).make_dataset()
    )
    cut = as_lists(pipeline.make_dataset(max_source_len=5, max_target_len=4))
    assert [c["source_tokens"] for c in cut] == [f["source_tokens"][:5] for f in full]
    assert [c["target_tokens"] for c in cut] == [f["target_tokens"][:4] for f in full]
    assert [c["target_len"] for c in cut] == [min(f["target_len"], 4) for f in full]


@pytest.mark.parametrize("batch_type", ["examples", "tokens"])
def test_model_sees_the_same_ids_with_source_reverse(tmp_path, batch_type):
    """Cutting in the pipeline then reversing in `preprocess` gives the ids
    the model got when it cut whole lines itself: the first `max_seq_len`
    tokens, reversed."""
    rng = random.Random(3)
    words = ["a", "b", "c", "d", "zz"]
    lines = [
        " ".join(rng.choice(words) for _ in range(rng.choice([1, 4, 9, 2000])))
        for _ in range(40)
    ]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\nd\n")
    params = {
        "source_files": [write_lines(tmp_path, "s.txt", [x.encode() for x in lines])],
        "target_files": [write_lines(tmp_path, "t.txt", [x.encode() for x in lines])],
        "shuffle": False,
    }
    model = AttentionSeq2Seq(
        tiny_model_params(
            str(vocab),
            **{
                "source.reverse": True,
                "source.max_seq_len": 6,
                "target.max_seq_len": 5,
            },
        ),
        ModeKeys.TRAIN,
    )

    def ids(**limits):
        pipeline = ip.ParallelTextInputPipeline(params, ModeKeys.EVAL)
        dataset = batching.make_batched_dataset(
            pipeline.make_dataset(**limits),
            24,
            batch_type=batch_type,
            allow_smaller_final_batch=True,
        )
        keys = ("source_ids", "source_len", "target_ids", "target_len")
        rows = []
        for batch in dataset.map(model.preprocess):
            batch = {key: batch[key].numpy() for key in keys}
            for i in range(len(batch["source_len"])):
                rows.append(
                    (
                        tuple(batch["source_ids"][i, : batch["source_len"][i]]),
                        tuple(batch["target_ids"][i, : batch["target_len"][i]]),
                    )
                )
        return sorted(rows)

    cut = ids(max_source_len=6, max_target_len=5)
    assert cut == ids()
    long_line = next(line for line in lines if len(line.split()) == 2000).split()
    table = {w: i for i, w in enumerate(words[:4])}
    want = tuple(table.get(w, 4) for w in long_line[:6])[::-1]
    assert want in [source for source, _ in cut]


def _peak_rss_mb(args, cwd):
    """Runs `args`; returns (exit code, stderr, its peak resident set in MB).

    The peak is the child's own `VmHWM`, polled from /proc while it runs:
    `ru_maxrss` from `wait4` would also count the memory the child shared
    with this (large, long-running pytest) process before `exec`.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    status_path = None
    peak_kb = float("nan")
    with open(os.path.join(cwd, "stderr.txt"), "w+b") as err:
        process = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        status_path = f"/proc/{process.pid}/status"
        while process.poll() is None:
            try:
                with open(status_path) as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            value = float(line.split()[1])
                            peak_kb = (
                                value if peak_kb != peak_kb else max(peak_kb, value)
                            )
            except OSError:
                pass
            time.sleep(0.05)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return process.returncode, stderr, peak_kb / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_training_on_a_huge_line_stays_in_normal_memory(tmp_path):
    # Four short lines and one of 200k tokens: every parse batch holds about
    # 25 copies of the long line. Splitting whole lines took about 3.5 GB
    # here; cut to max_seq_len the run needs what a plain one does (~0.9 GB).
    rng = random.Random(0)
    words = [str(i) for i in range(10)]
    lines = [" ".join(rng.choice(words) for _ in range(n)) for n in (3, 5, 2, 4)]
    lines.append(" ".join(rng.choice(words) for _ in range(200_000)))
    for name in ("sources.txt", "targets.txt"):
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    model_params = tiny_model_params(
        str(tmp_path / "vocab.txt"),
        **{"source.max_seq_len": 20, "target.max_seq_len": 20},
    )
    pipeline = {
        "class": "ParallelTextInputPipeline",
        "params": {
            "source_files": [str(tmp_path / "sources.txt")],
            "target_files": [str(tmp_path / "targets.txt")],
        },
    }
    code, stderr, peak_mb = _peak_rss_mb(
        [
            sys.executable,
            "-m",
            "bin.train",
            "--model",
            "AttentionSeq2Seq",
            "--model_params",
            yaml.safe_dump(model_params),
            "--input_pipeline_train",
            yaml.safe_dump(pipeline),
            "--batch_size",
            "4",
            "--train_steps",
            "3",
            "--output_dir",
            str(tmp_path / "model"),
        ],
        str(tmp_path),
    )
    assert code == 0, stderr[-3000:]
    assert "step 3: loss" in stderr
    assert np.isfinite(peak_mb)
    assert 300 < peak_mb < 1600, f"training peaked at {peak_mb:.0f} MB"
