"""Bad inputs, run through the real command lines as a user types them.

Every row of `ROWS` is one mistake: the command line (built from the paths of
a tiny trained model, its corpus and configs) and the fragments the error
must name. For every row the command must exit with status 2, end stderr with
one `error: ` line (`<tool>: error: ` for `bin/tools`) holding the fragments,
print no traceback, leave every file that existed byte-identical and add no
file, except under the row's own fresh output directory when it says so.

To add a case, append a `Row`; `<name>` in its argv and fragments is replaced
by the entry of that name of the `paths` fixture, or by the row's own new
directory for `<fresh>`.
"""

import dataclasses
import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import text_pipeline, tiny_model_params, write_toy_corpus

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRAIN = ["-m", "bin.train", "--config_paths", "<base_config>"]
INFER = ["-m", "bin.infer", "--tasks", "- class: DecodeText"]
INFER_TEXT = INFER + ["--input_pipeline", "<infer_pipeline>"]
EXPORT = ["-m", "bin.export"]
VOCAB_TOOL = ["bin/tools/generate_vocab.py"]
TOY_TOOL = ["bin/tools/generate_toy_data.py"]
PLOT_TOOL = ["bin/tools/plot_curves.py"]
BEAM_TOOL = ["bin/tools/generate_beam_viz.py"]
CAPTION_TOOL = ["bin/tools/make_image_captioning_data.py"]


@dataclasses.dataclass
class Row:
    """One bad command line.

    Attributes:
      id: The test id.
      argv: Arguments after `python`; `<name>` is replaced by `paths[name]`.
      fragments: What the error line must contain (formatted the same way).
      creates: True when the command may write files, only under `<fresh>`
        (a directory of this row's own that does not exist before).
    """

    id: str
    argv: list
    fragments: tuple
    creates: bool = False


ROWS = [
    # bin.train resuming a trained model: a bad flag found while building the
    # input, after train_options.json was rewritten, puts the earlier run's
    # file back.
    Row(
        "train-batch-type-unknown-resuming",
        TRAIN + ["--batch_type", "sentences", "--output_dir", "<model>"],
        ("batch_type", "'sentences'"),
    ),
    # bin.train: configs, YAML and flags (fail before TensorFlow loads).
    Row(
        "train-model-params-bad-yaml",
        TRAIN + ["--model_params", "vocab_source: [unclosed"],
        ("--model_params", "invalid YAML", "line 1"),
    ),
    Row(
        "train-pipeline-bad-yaml",
        TRAIN + ["--input_pipeline_train", "class: {ParallelTextInputPipeline"],
        ("--input_pipeline_train", "invalid YAML"),
    ),
    Row(
        "train-hooks-tab-yaml",
        TRAIN + ["--hooks", "- class: MetadataCaptureHook\n\tparams: {}"],
        ("--hooks", "invalid YAML", "tabs"),
    ),
    Row(
        "train-config-missing",
        ["-m", "bin.train", "--config_paths", "<missing>/train.yml"],
        ("<missing>/train.yml", "--config_paths"),
    ),
    Row(
        "train-config-is-directory",
        ["-m", "bin.train", "--config_paths", "<configs>"],
        ("<configs>", "--config_paths"),
    ),
    Row(
        "train-config-bad-yaml",
        TRAIN + ["--config_paths", "<base_config>,<bad_yaml>"],
        ("<bad_yaml>", "invalid YAML"),
    ),
    Row(
        "train-config-tab-indent",
        ["-m", "bin.train", "--config_paths", "<tab_yaml>"],
        ("<tab_yaml>", "'\\t'", "not tabs"),
    ),
    Row(
        "train-config-not-mapping",
        ["-m", "bin.train", "--config_paths", "<list_yaml>"],
        ("<list_yaml>", "mapping"),
    ),
    Row(
        "train-config-int-flag-not-int",
        ["-m", "bin.train", "--config_paths", "<base_config>,<steps_abc_yaml>"],
        ("train_steps", "'abc'", "int"),
    ),
    Row(
        "train-flag-not-int",
        TRAIN + ["--batch_size", "abc"],
        ("--batch_size=abc",),
    ),
    Row(
        "train-unknown-flag-suggests",
        TRAIN + ["--output_dirr", "<fresh>"],
        ("'output_dirr'", "output_dir", "--helpshort"),
    ),
    Row("train-flag-without-value", TRAIN + ["--train_steps"], ("--train_steps",)),
    Row(
        "train-bool-flag-bad-value",
        TRAIN + ["--jit_compile=maybe"],
        ("--jit_compile=maybe",),
    ),
    Row(
        "train-unquoted-flag-value",
        TRAIN + ["--model_params", "embedding.dim:", "8", "--output_dir", "<fresh>"],
        ("unexpected argument '8'", "quote"),
    ),
    Row(
        "train-negative-train-steps",
        TRAIN + ["--train_steps", "-5", "--output_dir", "<fresh>"],
        ("--train_steps=-5", ">= 0"),
    ),
    Row(
        "train-zero-log-every",
        TRAIN + ["--log_every_n_steps", "0", "--output_dir", "<fresh>"],
        ("--log_every_n_steps=0", ">= 1"),
    ),
    Row(
        "train-negative-keep-checkpoint-max",
        TRAIN + ["--keep_checkpoint_max", "-2", "--output_dir", "<fresh>"],
        ("--keep_checkpoint_max=-2",),
    ),
    Row(
        "train-negative-save-steps",
        TRAIN + ["--save_checkpoints_steps", "-1", "--output_dir", "<fresh>"],
        ("--save_checkpoints_steps=-1",),
    ),
    Row(
        "train-negative-eval-every",
        TRAIN + ["--eval_every_n_steps", "-1", "--output_dir", "<fresh>"],
        ("--eval_every_n_steps=-1",),
    ),
    Row(
        "train-negative-batch-size",
        TRAIN + ["--batch_size", "-1", "--output_dir", "<fresh>"],
        ("--batch_size=-1", ">= 1"),
    ),
    # bin.train: model, data and model directory (TensorFlow loaded).
    Row(
        "train-no-model",
        ["-m", "bin.train", "--input_pipeline_train", "<train_pipeline>"],
        ("no model given", "--model"),
    ),
    Row(
        "train-unknown-schedule",
        TRAIN + ["--schedule", "nightly"],
        ("--schedule=nightly", "train_and_evaluate"),
    ),
    Row(
        "train-unknown-model-class",
        TRAIN + ["--model", "AttentionSeq2Seqq", "--output_dir", "<fresh>"],
        ("'AttentionSeq2Seqq'", "AttentionSeq2Seq"),
    ),
    Row(
        "train-model-param-typo-suggests",
        TRAIN + ["--model_params", "embeding.dim: 4", "--output_dir", "<fresh>"],
        ("'embeding.dim'", "Did you mean 'embedding.dim'"),
    ),
    Row(
        "train-model-param-wrong-type",
        TRAIN + ["--model_params", "embedding.dim: abc", "--output_dir", "<fresh>"],
        ("'embedding.dim'", "int", "'abc'"),
    ),
    Row(
        "train-missing-vocab",
        TRAIN
        + ["--model_params", "vocab_source: <missing>/vocab.txt"]
        + ["--output_dir", "<fresh>"],
        ("vocab_source", "<missing>/vocab.txt", "generate_vocab.py"),
    ),
    Row(
        "train-mismatched-parallel-files",
        TRAIN
        + ["--input_pipeline_train", "params: {target_files: [<short_targets>]}"]
        + ["--output_dir", "<fresh>"],
        ("<sources>", "<short_targets>", "40 lines", "5 lines"),
    ),
    Row(
        "train-empty-corpus",
        TRAIN
        + ["--input_pipeline_train"]
        + ["params: {source_files: [<empty>], target_files: [<empty>]}"]
        + ["--output_dir", "<fresh>"],
        ("<empty>", "no lines"),
    ),
    Row(
        "train-buckets-not-increasing",
        TRAIN + ["--buckets", "20,10", "--output_dir", "<fresh>"],
        ("buckets", "[20, 10]", "increasing"),
    ),
    Row(
        "train-unknown-encoder-class",
        TRAIN
        + ["--model_params", "encoder.class: RNNEncoder"]
        + ["--output_dir", "<fresh>"],
        ("encoder.class", "'RNNEncoder'", "BidirectionalRNNEncoder"),
    ),
    Row(
        "train-nested-param-found-at-model-build",
        TRAIN
        + ["--model_params", "decoder.params: {copy_attention: true}"]
        + ["--output_dir", "<fresh>"],
        ("copy_attention", "CopyAttentionDecoder"),
    ),
    Row(
        "train-output-dir-is-a-file",
        TRAIN + ["--output_dir", "<vocab>"],
        ("--output_dir=<vocab>", "is a file"),
    ),
    Row(
        "train-restart-with-other-params",
        TRAIN
        + ["--model_params", "embedding.dim: 16", "--output_dir", "<model>"]
        + ["--train_steps", "4"],
        ("<model>", "embedding.dim", "8 (saved) != 16 (now)"),
    ),
    # bin.infer.
    Row(
        "infer-tasks-bad-yaml",
        ["-m", "bin.infer", "--tasks", "- class: [DecodeText"],
        ("--tasks", "invalid YAML"),
    ),
    Row(
        "infer-config-missing",
        INFER_TEXT + ["--model_dir", "<model>", "--config_path", "<missing>/i.yml"],
        ("<missing>/i.yml",),
    ),
    Row(
        "infer-flag-not-int",
        INFER_TEXT + ["--model_dir", "<model>", "--batch_size", "1.5"],
        ("--batch_size=1.5",),
    ),
    Row(
        "infer-config-int-flag-not-int",
        INFER_TEXT + ["--model_dir", "<model>", "--config_path", "<batch_abc_yaml>"],
        ("batch_size", "'abc'", "int"),
    ),
    Row(
        "infer-config-negative-sort-window",
        INFER_TEXT
        + ["--model_dir", "<model>", "--config_path", "<sort_window_negative_yaml>"],
        ("--sort_window=-1", ">= 0"),
    ),
    Row("infer-no-model-dir", INFER_TEXT, ("--model_dir is not set",)),
    Row(
        "infer-missing-model-dir",
        INFER_TEXT + ["--model_dir", "<missing>/model"],
        ("--model_dir=<missing>/model", "does not exist"),
    ),
    Row(
        "infer-model-dir-not-a-training-run",
        INFER_TEXT + ["--model_dir", "<data>"],
        ("<data>/train_options.json", "--output_dir"),
    ),
    Row(
        "infer-model-param-typo-suggests",
        INFER_TEXT
        + ["--model_dir", "<model>"]
        + ["--model_params", "inference.beam_search.beam_widht: 4"],
        ("'inference.beam_search.beam_widht'", "'inference.beam_search.beam_width'"),
    ),
    Row(
        "infer-missing-checkpoint",
        INFER_TEXT + ["--model_dir", "<model>", "--checkpoint_path", "<model>/ckpt-99"],
        ("--checkpoint_path=<model>/ckpt-99", ".index"),
    ),
    Row(
        "infer-best-without-dev-set",
        INFER_TEXT + ["--model_dir", "<model>", "--checkpoint_path", "best"],
        ("--checkpoint_path=best", "<model>/best", "--input_pipeline_dev"),
    ),
    Row(
        "infer-unknown-task-suggests",
        ["-m", "bin.infer", "--tasks", "- class: DecodeTxt"]
        + ["--input_pipeline", "<infer_pipeline>", "--model_dir", "<model>"],
        ("'DecodeTxt'", "Did you mean 'DecodeText'"),
    ),
    Row(
        "infer-missing-input-file",
        INFER
        + ["--model_dir", "<model>", "--input_pipeline"]
        + ["params: {source_files: [<missing>/input.txt]}"],
        ("<missing>/input.txt", "source_files"),
    ),
    # bin.export.
    Row(
        "export-model-params-bad-yaml",
        EXPORT
        + ["--model_dir", "<model>", "--export_dir", "<fresh>"]
        + ["--model_params", "beam: [4"],
        ("--model_params", "invalid YAML"),
    ),
    Row(
        "export-unquoted-flag-value",
        EXPORT + ["--model_dir", "<model>", "--export_dir", "<fresh>", "now"],
        ("unexpected argument 'now'",),
    ),
    Row(
        "export-no-export-dir",
        EXPORT + ["--model_dir", "<model>"],
        ("--export_dir is not set",),
    ),
    Row(
        "export-into-non-empty-dir",
        EXPORT + ["--model_dir", "<model>", "--export_dir", "<data>"],
        ("--export_dir=<data>", "not empty", "--overwrite"),
    ),
    Row(
        "export-dir-is-a-file",
        EXPORT + ["--model_dir", "<model>", "--export_dir", "<vocab>"],
        ("--export_dir=<vocab>", "is a file"),
    ),
    Row(
        "export-model-param-typo-suggests",
        EXPORT
        + ["--model_dir", "<model>", "--export_dir", "<fresh>"]
        + ["--model_params", "embedding.dimm: 3"],
        ("'embedding.dimm'", "'embedding.dim'"),
    ),
    # bin/tools (standard library and numpy only, except plot_curves' reader).
    Row(
        "vocab-missing-input",
        VOCAB_TOOL + ["<missing>/corpus.txt"],
        ("<missing>/corpus.txt",),
    ),
    Row("vocab-input-is-directory", VOCAB_TOOL + ["<data>"], ("<data>",)),
    Row(
        "vocab-zero-max-size",
        VOCAB_TOOL + ["--max_vocab_size", "0", "<sources>"],
        ("--max_vocab_size", "got 0"),
    ),
    Row(
        "vocab-negative-min-frequency",
        VOCAB_TOOL + ["--min_frequency", "-1", "<sources>"],
        ("--min_frequency", "got -1"),
    ),
    Row(
        "vocab-bad-bool",
        VOCAB_TOOL + ["--downcase", "maybe", "<sources>"],
        ("--downcase", "'maybe'"),
    ),
    Row("toy-missing-output-dir", TOY_TOOL, ("--output_dir",)),
    Row(
        "toy-unknown-type",
        TOY_TOOL + ["--type", "shuffle", "--output_dir", "<fresh>"],
        ("--type", "'shuffle'", "reverse"),
    ),
    Row(
        "toy-max-len-below-min-len",
        TOY_TOOL + ["--min_len", "5", "--max_len", "2", "--output_dir", "<fresh>"],
        ("--max_len (2)", "--min_len (5)"),
    ),
    Row(
        "toy-output-dir-is-a-file",
        TOY_TOOL + ["--output_dir", "<vocab>"],
        ("--output_dir", "<vocab>"),
    ),
    Row(
        "toy-zero-vocab-size",
        TOY_TOOL + ["--vocab_size", "0", "--output_dir", "<fresh>"],
        ("--vocab_size", "got 0"),
    ),
    Row(
        "toy-output-dir-under-a-file",
        TOY_TOOL + ["--output_dir", "<vocab>/toy"],
        ("--output_dir <vocab>/toy", "Not a directory"),
    ),
    Row(
        "captioning-zero-examples",
        CAPTION_TOOL + ["--output_dir", "<fresh>", "--num_examples", "0"],
        ("--num_examples", "got 0"),
    ),
    Row(
        "captioning-output-dir-under-a-file",
        CAPTION_TOOL + ["--output_dir", "<vocab>/images"],
        ("--output_dir <vocab>/images", "Not a directory"),
    ),
    Row(
        "plot-missing-runs",
        PLOT_TOOL + ["--output", "<fresh>/curves.png"],
        ("--runs",),
    ),
    Row(
        "plot-missing-run-dir",
        PLOT_TOOL + ["--runs", "<missing>/run", "--output", "<fresh>/curves.png"],
        ("<missing>/run",),
    ),
    Row(
        "plot-smoothing-out-of-range",
        PLOT_TOOL
        + ["--runs", "<model>", "--output", "<fresh>/c.png"]
        + ["--smoothing", "1.5"],
        ("--smoothing", "1.5"),
    ),
    Row(
        "plot-unknown-tag",
        PLOT_TOOL
        + ["--runs", "<model>", "--output", "<fresh>/c.png"]
        + ["--tags", "eval:no_such_metric"],
        ("no_such_metric", "<model>"),
    ),
    Row("beam-viz-missing-data-flag", BEAM_TOOL + ["-o", "<fresh>"], ("--data",)),
    Row(
        "beam-viz-missing-data",
        BEAM_TOOL + ["-d", "<missing>/beams.npz", "-o", "<fresh>"],
        ("<missing>/beams.npz",),
    ),
    Row(
        "beam-viz-not-npz",
        BEAM_TOOL + ["-d", "<vocab>", "-o", "<fresh>"],
        ("<vocab>", "not a .npz file", "DumpBeams"),
    ),
    Row(
        "beam-viz-npz-without-beams",
        BEAM_TOOL + ["-d", "<other_npz>", "-o", "<fresh>"],
        ("<other_npz>", "'predicted_ids'"),
    ),
    Row(
        "beam-viz-missing-vocab",
        BEAM_TOOL + ["-d", "<beams>", "-v", "<missing>/vocab.txt", "-o", "<fresh>"],
        ("<missing>/vocab.txt",),
    ),
    Row(
        "beam-viz-output-is-a-file",
        BEAM_TOOL + ["-d", "<beams>", "-o", "<vocab>"],
        ("<vocab>", "cannot create"),
    ),
]


def _write(path, text):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return str(path)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """A tiny model trained by `bin.train`, with its corpus and configs.

    Returns:
      A dict name -> path (or YAML text) that fills the rows' `<name>` fields.
    """
    root = tmp_path_factory.mktemp("bad_inputs")
    data = write_toy_corpus(str(root / "data"), num_examples=40, seed=1)
    params = tiny_model_params(data["vocab"], **{"embedding.dim": 8})
    for side in ("encoder.params", "decoder.params"):
        params[side]["rnn_cell"]["cell_params"]["num_units"] = 8
    params["attention.params"]["num_units"] = 8
    configs = root / "configs"
    configs.mkdir()
    base = {
        "model": "AttentionSeq2Seq",
        "model_params": params,
        "input_pipeline_train": text_pipeline(data),
        "batch_size": 8,
        "train_steps": 2,
        "save_checkpoints_steps": 2,
        "schedule": "train",
    }
    found = {
        "root": str(root),
        "data": str(root / "data"),
        "model": str(root / "model"),
        "missing": str(root / "missing"),
        "configs": str(configs),
        "base_config": _write(configs / "base.yml", yaml.safe_dump(base)),
        "bad_yaml": _write(configs / "bad.yml", "model_params:\n  [unclosed\n"),
        "tab_yaml": _write(configs / "tab.yml", "model_params:\n\tembedding.dim: 8\n"),
        "list_yaml": _write(configs / "list.yml", "- model\n- AttentionSeq2Seq\n"),
        "steps_abc_yaml": _write(configs / "steps.yml", "train_steps: abc\n"),
        "batch_abc_yaml": _write(configs / "batch.yml", "batch_size: abc\n"),
        "sort_window_negative_yaml": _write(configs / "sort.yml", "sort_window: -1\n"),
        "train_pipeline": yaml.safe_dump(text_pipeline(data)),
        "infer_pipeline": yaml.safe_dump(text_pipeline(data, with_targets=False)),
        "empty": _write(root / "data" / "empty.txt", ""),
        "beams": str(root / "data" / "beams.npz"),
        "other_npz": str(root / "data" / "other.npz"),
        **data,
    }
    with open(data["targets"], encoding="utf-8") as handle:
        head = handle.readlines()[:5]
    found["short_targets"] = _write(root / "data" / "short.txt", "".join(head))
    shape = (1, 3, 2)  # [batch, time, beam]
    np.savez(
        found["beams"],
        predicted_ids=np.zeros(shape, np.int32),
        beam_parent_ids=np.zeros(shape, np.int32),
        scores=np.zeros(shape, np.float32),
    )
    np.savez(found["other_npz"], weights=np.zeros(3))
    trained = _run(TRAIN + ["--output_dir", "<model>"], found)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert os.path.exists(os.path.join(found["model"], "ckpt-2.index"))
    return found


def _fill(text, values):
    """Replaces every `<name>` in `text` by `values[name]`."""
    return re.sub(r"<(\w+)>", lambda match: values[match.group(1)], text)


def _run(argv, values):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, *[_fill(arg, values) for arg in argv]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _snapshot(root):
    """sha256 of every file under `root`, by path."""
    digests = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                digests[path] = hashlib.sha256(handle.read()).hexdigest()
    return digests


def _error_prefix(argv):
    tool = argv[0]
    if tool.startswith("bin/tools/"):
        return os.path.basename(tool)[: -len(".py")] + ": error: "
    return "error: "


def test_table_is_large_and_ids_unique():
    ids = [row.id for row in ROWS]
    assert len(ids) >= 45 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input_is_one_clean_error(paths, row):
    values = dict(paths, fresh=os.path.join(paths["root"], "fresh", row.id))
    before = _snapshot(paths["root"])

    result = _run(row.argv, values)

    stderr = result.stderr
    assert result.returncode == 2, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    prefix = _error_prefix(row.argv)
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(prefix)]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr[-3000:]
    for fragment in row.fragments:
        assert _fill(fragment, values) in errors[0], (fragment, errors[0])

    after = _snapshot(paths["root"])
    changed = [path for path in before if before[path] != after.get(path)]
    assert not changed, f"changed or removed: {changed}"
    added = sorted(set(after) - set(before))
    if row.creates:
        outside = [p for p in added if not p.startswith(values["fresh"] + os.sep)]
        assert not outside, f"written outside {values['fresh']}: {outside}"
    else:
        assert not added, f"new files: {added}"
