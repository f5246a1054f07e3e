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


def _event_file(directory):
    (name,) = [n for n in os.listdir(directory) if n.startswith("events.out")]
    return directory / name


def test_cut_off_event_file_is_plotted_up_to_the_cut(tmp_path, capsys):
    _write_run(tmp_path / "a", 1.0)
    path = _event_file(tmp_path / "a")
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # The last record (step 10) is cut off.
    output = tmp_path / "curves.png"
    args = ["--runs", str(tmp_path / "a"), "--tags", "loss,source_len"]
    assert plot_curves.main(args + ["--output", str(output)]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "cut-off record" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {path}")
    assert output.exists()
    loss = plot_curves.read_scalars(str(tmp_path / "a"), ["loss"])["loss"]
    assert [step for step, _ in loss] == list(range(1, 11))  # 10 in an earlier record

    # A record damaged before the end: one error line, exit 2.
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    assert plot_curves.main(args + ["--output", str(output)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(
        f"plot_curves: error: {path} is damaged (corrupted record at"
    )


def test_unwritable_output_is_one_error_line(tmp_path, capsys):
    _write_run(tmp_path / "a", 1.0)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for output in (blocker / "curves.png", tmp_path):
        args = ["--runs", str(tmp_path / "a"), "--tags", "loss"]
        assert plot_curves.main(args + ["--output", str(output)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(
            f"plot_curves: error: cannot write --output {output}: "
        ), err
        assert "Traceback" not in "\n".join(err)
