"""Tests for bin/tools/plot_curves.py."""

import os

import pytest
import tensorflow as tf

from bin.tools import plot_curves


def _write_run(directory, scale):
    train = tf.summary.create_file_writer(str(directory))
    dev = tf.summary.create_file_writer(str(directory / "eval"))
    with train.as_default():
        for step in range(1, 11):
            tf.summary.scalar("loss", scale / step, step=step)
            tf.summary.histogram("source_len", [1, 2, 3], step=step)
    with dev.as_default():
        for step in (5, 10):
            tf.summary.scalar("bleu/greedy", 10.0 * step * scale, step=step)
    # A resumed run writes step 10 again: the last value wins.
    with dev.as_default():
        tf.summary.scalar("bleu/greedy", 1.0, step=10)
    train.flush()
    dev.flush()


def test_reads_scalars_and_writes_a_png(tmp_path):
    _write_run(tmp_path / "a", 1.0)
    _write_run(tmp_path / "b", 2.0)
    loss = plot_curves.read_scalars(str(tmp_path / "a"), ["loss", "source_len"])
    assert [s for s, _ in loss["loss"]] == list(range(1, 11))
    assert loss["loss"][1] == (2, pytest.approx(0.5))
    assert loss["source_len"] == []  # histograms are not scalars
    bleu = plot_curves.read_scalars(str(tmp_path / "b" / "eval"), ["bleu/greedy"])
    assert bleu["bleu/greedy"] == [(5, pytest.approx(100.0)), (10, pytest.approx(1.0))]

    output = tmp_path / "out" / "curves.png"
    code = plot_curves.main(
        [
            "--runs",
            f"first={tmp_path / 'a'},{tmp_path / 'b'}",
            "--tags",
            "loss,eval:bleu/greedy,eval:missing",
            "--output",
            str(output),
            "--smoothing",
            "0.5",
        ]
    )
    assert code == 0
    with open(output, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(output) < 100_000


def test_helpers_and_errors(tmp_path, capsys):
    assert plot_curves.parse_runs("x=/a, /b/c/") == [("x", "/a"), ("c", "/b/c/")]
    assert plot_curves.parse_runs("k=100=/a") == [("k=100", "/a")]
    assert plot_curves.parse_tag("eval:bleu/greedy") == ("eval", "bleu/greedy")
    assert plot_curves.parse_tag("train:loss") == ("train", "loss")
    assert plot_curves.parse_tag("global_norm/clipped") == (
        "train",
        "global_norm/clipped",
    )
    assert plot_curves.smooth([1.0, 3.0], 0.5) == [1.0, 2.0]
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--runs", str(empty), "--tags", "loss", "--output", str(tmp_path / "x.png")]
    assert plot_curves.main(args) == 2
    assert "none of the tags" in capsys.readouterr().err
    args[1] = str(tmp_path / "nowhere")
    assert plot_curves.main(args) == 2
