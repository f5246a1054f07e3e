"""bin/infer.py never writes over what it reads, nor decodes with a changed
vocabulary (run as a user runs it, on a model with random weights)."""

import hashlib
import os
import re
import shutil

import pytest
import yaml
from conftest import tiny_model_params, write_toy_corpus
from test_export import _train_dir
from test_infer_cli import assert_user_error, run_infer

from seq2seq.errors import UserError
from seq2seq.inference import inference, safe_paths
from seq2seq.tasks.dump_attention import PLOT_PATTERN
from seq2seq.training.utils import TrainOptions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def run(tmp_path):
    """A model directory with random weights and the corpus it reads."""
    paths = write_toy_corpus(str(tmp_path / "data"), num_examples=20)
    model_dir = _train_dir(str(tmp_path), tiny_model_params(paths["vocab"]))
    return dict(paths, model_dir=model_dir, root=tmp_path)


def _sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _hashes(directory):
    return {
        os.path.join(root, name): _sha(os.path.join(root, name))
        for root, _, files in os.walk(directory)
        for name in files
    }


def test_a_task_never_writes_over_an_input(run):
    before = _hashes(run["root"])
    sources = run["sources"]
    link = str(run["root"] / "link.txt")
    os.symlink(sources, link)
    parallel = yaml.safe_dump(
        {
            "class": "ParallelTextInputPipeline",
            "params": {"source_files": [sources], "target_files": [run["targets"]]},
        }
    )
    cases = [
        # The reported case, spelled relative to the working directory.
        (
            {
                "class": "DecodeText",
                "params": {"output": os.path.relpath(sources, REPO)},
            },
            ["--input_pipeline", parallel],
            sources,
        ),
        # A symbolic link to the source file.
        (
            {"class": "DecodeText", "params": {"output": link}},
            ["--input_pipeline", parallel],
            sources,
        ),
        # The target file the scores are computed from.
        (
            {"class": "ScoreText", "params": {"output": run["targets"]}},
            ["--input_pipeline", parallel],
            run["targets"],
        ),
        # The vocabulary the model reads.
        (
            {"class": "DumpBeams", "params": {"file": run["vocab"]}},
            [
                "--input_pipeline",
                parallel,
                "--model_params",
                "inference.beam_search.beam_width: 2",
            ],
            run["vocab"],
        ),
        # A file of the training run.
        (
            {
                "class": "DecodeText",
                "params": {
                    "output": os.path.join(run["model_dir"], "train_options.json")
                },
            },
            ["--input_pipeline", parallel],
            "a file of the training run",
        ),
    ]
    for task, args, named in cases:
        result = run_infer(
            "--model_dir", run["model_dir"], *args, tasks=yaml.safe_dump([task])
        )
        assert_user_error(result, "would overwrite", named, "another path")
        assert _hashes(run["root"]) == {**before, link: before[sources]}


def test_check_outputs_compares_resolved_paths(tmp_path):
    model_dir = tmp_path / "model"
    (model_dir / "best").mkdir(parents=True)
    (model_dir / "train_options.json").write_text("{}")
    (model_dir / "best" / "checkpoint").write_text("")
    source = tmp_path / "in.txt"
    source.write_text("a b\n")
    os.link(source, tmp_path / "hard.txt")
    (tmp_path / "00007.png").write_bytes(b"png")
    inputs = [str(source), str(tmp_path / "00007.png"), "", str(tmp_path / "gone")]

    def refused(output):
        with pytest.raises(UserError, match="would overwrite") as caught:
            safe_paths.check_outputs([("T: output", str(output))], inputs)
        return str(caught.value)

    assert str(source) in refused(tmp_path / "hard.txt")
    assert str(source) in refused(tmp_path / "sub" / ".." / "in.txt")
    assert "00007.png" in refused(tmp_path / PLOT_PATTERN)
    assert "training run" in refused(model_dir / "ckpt-3.index")
    assert re.search("training run in .*best", refused(model_dir / "best" / "x.index"))
    # New files, also next to a training run's, are fine.
    for output in ("out.txt", "model/predictions.txt", "model/best/out.txt"):
        safe_paths.check_outputs([("T: output", str(tmp_path / output))], inputs)
    safe_paths.check_outputs([("T: output", "")], inputs)


def test_a_changed_vocabulary_is_refused(run):
    vocab = run["vocab"]
    with open(vocab, encoding="utf-8") as handle:
        tokens = handle.read().splitlines()
    reordered = str(run["root"] / "reordered.txt")
    with open(reordered, "w", encoding="utf-8") as handle:
        handle.write("\n".join(reversed(tokens)) + "\n")
    sources = [run["sources"]]

    # A vocabulary given in --model_params in place of the recorded one.
    result = run_infer(
        "--model_dir",
        run["model_dir"],
        "--model_params",
        f"vocab_target: {reordered}",
        input_files=sources,
    )
    assert_user_error(result, "vocabularies differ", reordered, "--allow_vocab_change")

    # The recorded file itself reordered.
    shutil.copy(reordered, vocab)
    result = run_infer("--model_dir", run["model_dir"], input_files=sources)
    assert_user_error(result, f"vocabulary {vocab} changed", "--allow_vocab_change")
    assert result.stdout == ""
    result = run_infer(
        "--model_dir", run["model_dir"], "--allow_vocab_change", input_files=sources
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 20
    assert f"vocabulary {vocab} changed" in result.stderr  # the warning


def test_a_moved_vocabulary_is_accepted(run):
    options = TrainOptions.load(run["model_dir"])
    moved = str(run["root"] / "moved.txt")
    shutil.move(run["vocab"], moved)
    params = {"vocab_source": moved, "vocab_target": moved}
    inference.check_vocabularies(options, params)
    with open(moved, "a", encoding="utf-8") as handle:
        handle.write("extra\n")
    with pytest.raises(UserError, match="vocabularies differ"):
        inference.check_vocabularies(options, params)
    inference.check_vocabularies(options, params, allow_change=True)
