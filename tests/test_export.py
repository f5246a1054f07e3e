"""Tests for seq2seq.inference.export and bin/export.py (SavedModel export)."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_params, write_toy_corpus
from test_infer_cli import assert_user_error

from seq2seq.configurable import ModeKeys
from seq2seq.data.input_pipeline import SEQUENCE_END, split_tokens
from seq2seq.errors import ConfigError, UserError
from seq2seq.inference import export, inference
from seq2seq.models import AttentionSeq2Seq
from seq2seq.training.utils import TrainOptions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Toy tokens are "0".."4" and "笑" (single characters).
SENTENCES = [["0", "笑", "3"], ["4", "4", "1", "2", "0"], ["2"]]
BEAM = {
    "inference.beam_search.beam_width": 3,
    "inference.beam_search.length_penalty_weight": 0.5,
}

# Runs in a fresh interpreter outside the repository: TensorFlow only.
SERVE_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    greedy_dir, beam_dir, sentences = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

    def plain(outputs):
        result = {}
        for key, value in outputs.items():
            value = value.numpy()
            if value.dtype == object:
                value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(value)
            result[key] = value.tolist()
        return result

    report = {}
    greedy = tf.saved_model.load(greedy_dir)
    serve = greedy.signatures["serving_default"]
    report["greedy"] = plain(serve(source=tf.constant(sentences["greedy"])))
    report["greedy_alias"] = plain(
        greedy.signatures["translate"](source=tf.constant(sentences["greedy"]))
    )
    report["greedy_attr"] = plain(greedy.translate(tf.constant(sentences["greedy"])))
    report["blank"] = plain(serve(source=tf.constant(["", "   "])))
    report["empty_batch"] = plain(serve(source=tf.constant([], tf.string)))
    beam = tf.saved_model.load(beam_dir)
    report["beam"] = plain(
        beam.signatures["serving_default"](source=tf.constant(sentences["beam"]))
    )
    # The graph/session loader, as TensorFlow Serving loads a SavedModel.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], greedy_dir)
        signature = meta.signature_def["serving_default"]
        fetch = signature.outputs["translation"].name
        feed = {signature.inputs["source"].name: sentences["greedy"]}
        report["session"] = [b.decode("utf-8") for b in sess.run(fetch, feed)]
    report["seq2seq_imported"] = any(m.startswith("seq2seq") for m in sys.modules)
    print(json.dumps(report))
    """)


def _clean_env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)
    return env


def _train_dir(root, params):
    """A model directory with random weights, as bin/train.py leaves it."""
    model_dir = os.path.join(root, "model")
    keras.utils.set_random_seed(7)
    model = AttentionSeq2Seq(params, ModeKeys.INFER)
    model.infer(export._dummy_features(model), max_length=1)
    # Weights of unit scale instead of the tiny initialisation, so that the
    # output distributions are sharp and no two tokens nearly tie.
    rng = np.random.default_rng(1)
    for variable in model.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    tf.train.Checkpoint(model=model).save(os.path.join(model_dir, "ckpt"))
    TrainOptions.from_model(
        "AttentionSeq2Seq",
        params,
        resolved_config={
            "input_pipeline_train": {
                "class": "ParallelTextInputPipeline",
                "params": {"source_files": ["s.txt"], "target_files": ["t.txt"]},
            }
        },
    ).dump(model_dir)
    return model_dir


def _reference(model_dir, overrides, sentences):
    """What `model.infer` predicts in-process, as lists of output tokens."""
    options = inference.load_train_options(model_dir)
    model = inference.build_model(options, overrides)
    rows = [
        split_tokens(tf.constant(" ".join(s)), " ", append_token=SEQUENCE_END)[0]
        for s in sentences
    ]
    tokens = tf.ragged.stack(rows).to_tensor("")
    lengths = tf.constant([len(s) + 1 for s in sentences], tf.int32)
    features = model.preprocess({"source_tokens": tokens, "source_len": lengths})
    features = {k: features[k] for k in ("source_ids", "source_len")}
    model.infer(features, max_length=1)
    inference.restore_model(model, inference.resolve_checkpoint(model_dir))
    predictions = tf.function(model.infer)(features)
    ids = predictions["predicted_ids"].numpy()
    lens = predictions["predicted_len"].numpy()
    words = []
    for row, n in zip(ids, lens):
        out = [str(model.target_id_to_token[i]) for i in row[:n]]
        if out and out[-1] == SEQUENCE_END:
            out = out[:-1]
        words.append(out)
    return words, predictions["log_probs"].numpy(), lens


def test_export_serves_without_seq2seq_or_vocab_files(tmp_path):
    root = str(tmp_path)
    paths = write_toy_corpus(os.path.join(root, "data"), num_examples=60)
    params = tiny_model_params(paths["vocab"], **{"source.reverse": True})
    model_dir = _train_dir(root, params)
    greedy_dir = os.path.join(root, "exports", "greedy", "1")
    beam_dir = os.path.join(root, "exports", "beam", "1")

    # An old export there is replaced with --overwrite.
    os.makedirs(greedy_dir)
    for name in ("saved_model.pb", "old.txt"):
        with open(os.path.join(greedy_dir, name), "w") as handle:
            handle.write("stale")
    result = export.export_saved_model(model_dir, greedy_dir, overwrite=True)
    assert not os.path.exists(os.path.join(greedy_dir, "old.txt"))
    assert os.path.exists(os.path.join(greedy_dir, "saved_model.pb"))
    assert result.checkpoint_path.endswith("ckpt-1")
    assert (result.source_delimiter, result.target_delimiter) == (" ", " ")
    assert set(result.signatures) == {"serving_default", "translate"}
    assert result.signatures["serving_default"] == {
        "inputs": {"source": ("string", [None])},
        "outputs": {
            "length": ("int32", [None]),
            "log_prob": ("float32", [None]),
            "tokens": ("string", [None, None]),
            "translation": ("string", [None]),
        },
    }
    with open(os.path.join(greedy_dir, export.EXPORT_INFO_FILE)) as handle:
        info = json.load(handle)
    assert info["model_class"] == "AttentionSeq2Seq"
    assert info["model_params"]["inference.beam_search.beam_width"] == 0

    # The command line, with beam search and character-level sources.
    command = subprocess.run(
        [
            sys.executable, "-m", "bin.export",
            f"--model_dir={model_dir}",
            f"--export_dir={beam_dir}",
            f"--model_params={json.dumps(BEAM)}",
            "--source_delimiter=",
            "--target_delimiter=+",
        ],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert command.returncode == 0, command.stderr
    assert "signature 'serving_default'" in command.stdout
    assert "scores: float32 [None]" in command.stdout
    assert "source_delimiter='' target_delimiter='+'" in command.stdout

    greedy_ref, greedy_logp, greedy_lens = _reference(model_dir, {}, SENTENCES)
    # Some hypotheses stop at SEQUENCE_END, others run to the length limit.
    assert min(greedy_lens) < 12 and max(greedy_lens) == 12
    beam_ref, beam_logp, beam_lens = _reference(model_dir, BEAM, SENTENCES)

    # Serve from elsewhere, with the vocabularies and checkpoints gone.
    served = os.path.join(root, "served")
    shutil.move(os.path.join(root, "exports"), served)
    shutil.rmtree(os.path.join(root, "data"))
    shutil.rmtree(model_dir)
    sentences = {
        "greedy": [" ".join(s) for s in SENTENCES],
        "beam": ["".join(s) for s in SENTENCES],
    }
    process = subprocess.run(
        [
            sys.executable, "-c", SERVE_SCRIPT,
            os.path.join(served, "greedy", "1"),
            os.path.join(served, "beam", "1"),
            json.dumps(sentences),
        ],
        cwd=root, env=_clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    report = json.loads(process.stdout.strip().splitlines()[-1])
    assert report["seq2seq_imported"] is False

    greedy = report["greedy"]
    assert greedy["length"] == [len(w) for w in greedy_ref]
    assert [row[:n] for row, n in zip(greedy["tokens"], greedy["length"])] == (
        greedy_ref
    )
    assert all(
        set(row[n:]) <= {""} for row, n in zip(greedy["tokens"], greedy["length"])
    )
    assert greedy["translation"] == [" ".join(w) for w in greedy_ref]
    np.testing.assert_allclose(greedy["log_prob"], greedy_logp, rtol=1e-5)
    assert report["greedy_alias"] == greedy
    assert report["greedy_attr"]["translation"] == greedy["translation"]
    assert report["session"] == greedy["translation"]
    assert report["blank"]["translation"] == ["", ""]
    assert report["blank"]["length"] == [0, 0]
    assert report["blank"]["log_prob"] == [0.0, 0.0]
    assert report["empty_batch"]["translation"] == []

    beam = report["beam"]
    assert [row[:n] for row, n in zip(beam["tokens"], beam["length"])] == beam_ref
    assert beam["translation"] == ["+".join(w) for w in beam_ref]
    np.testing.assert_allclose(beam["log_prob"], beam_logp, rtol=1e-5)
    # GNMT penalty on the length with SEQUENCE_END: ((5 + n) / 6) ** 0.5.
    penalty = ((5.0 + beam_lens) / 6.0) ** 0.5
    np.testing.assert_allclose(beam["scores"], beam_logp / penalty, rtol=1e-5)


def test_non_empty_export_dir_is_a_user_error(tmp_path):
    export_dir = tmp_path / "1"
    export_dir.mkdir()
    (export_dir / "saved_model.pb").write_bytes(b"")
    with pytest.raises(UserError, match="not empty.*--overwrite"):
        export.export_saved_model(str(tmp_path / "no_model"), str(export_dir))
    with pytest.raises(UserError, match="is a file"):
        export.export_saved_model(
            str(tmp_path), str(export_dir / "saved_model.pb"), overwrite=True
        )
    with pytest.raises(UserError, match="--export_dir is not set"):
        export.export_saved_model(str(tmp_path), "")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with pytest.raises(ConfigError, match="model_params"):
        export.export_saved_model(
            str(model_dir), str(tmp_path / "2"), model_params=["beam"]
        )
    with pytest.raises(UserError, match="train_options.json"):
        export.export_saved_model(str(model_dir), str(tmp_path / "2"))
    # An empty directory is fine to export into (it fails later, on the model).
    (tmp_path / "3").mkdir()
    with pytest.raises(UserError, match="train_options.json"):
        export.export_saved_model(str(model_dir), str(tmp_path / "3"))


def test_command_line_reports_user_error_with_exit_code_2(tmp_path):
    export_dir = tmp_path / "1"
    export_dir.mkdir()
    (export_dir / "x").write_text("x")
    process = subprocess.run(
        [sys.executable, "-m", "bin.export", f"--model_dir={tmp_path}",
         f"--export_dir={export_dir}"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert process.returncode == 2
    assert "error: --export_dir=" in process.stderr
    assert "Traceback" not in process.stderr


@pytest.mark.parametrize(
    "config, expected",
    [
        (None, (None, None)),
        ({}, (None, None)),
        ({"input_pipeline_train": None}, (None, None)),
        (
            {"input_pipeline_train": {"class": "X", "params": {"source_files": []}}},
            (None, None),
        ),
        (
            {
                "input_pipeline_train": {
                    "class": "ParallelTextInputPipeline",
                    "params": {"source_delimiter": "", "target_delimiter": "|"},
                }
            },
            ("", "|"),
        ),
        (
            {"input_pipeline_train": "params: {source_delimiter: ',', x: 1}"},
            (",", None),
        ),
    ],
)
def test_delimiters_come_from_the_training_pipeline(config, expected):
    options = TrainOptions("AttentionSeq2Seq", {}, resolved_config=config)
    assert export._pipeline_delimiters(options) == expected


def _file_hashes(directory):
    """`{relative path: sha256}` of every file under `directory`."""
    hashes = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            hashes[os.path.relpath(path, directory)] = digest
    return hashes


def _run_export(*args):
    return subprocess.run(
        [sys.executable, "-m", "bin.export", *args],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_overwrite_never_deletes_a_training_run(tmp_path):
    root = str(tmp_path)
    paths = write_toy_corpus(os.path.join(root, "data"), num_examples=30)
    model_dir = _train_dir(root, tiny_model_params(paths["vocab"]))
    # What else a training run holds: the best checkpoint and events.
    best = os.path.join(model_dir, "best")
    os.makedirs(best)
    for name in ("ckpt-1.index", "ckpt-1.data-00000-of-00001"):
        shutil.copy(os.path.join(model_dir, name), best)
    with open(os.path.join(best, "checkpoint"), "w") as handle:
        handle.write('model_checkpoint_path: "ckpt-1"\n')
    with open(os.path.join(model_dir, "events.out.tfevents.1.host"), "wb") as handle:
        handle.write(b"\x00events")
    before = _file_hashes(root)

    # The reported case: the export dir is the model dir itself.
    result = _run_export(
        f"--model_dir={model_dir}", f"--export_dir={model_dir}", "--overwrite"
    )
    assert_user_error(result, f"--export_dir={model_dir}", "training run")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, result.stderr
    # --overwrite on a non-empty directory that holds no SavedModel.
    other = os.path.join(root, "data")
    result = _run_export(
        f"--model_dir={model_dir}", f"--export_dir={other}", "--overwrite"
    )
    assert_user_error(result, f"--export_dir={other}", "no SavedModel")
    assert _file_hashes(root) == before

    # The same refusals from Python, and the other ways in.
    copy = os.path.join(root, "saved", "1")
    os.makedirs(os.path.join(copy, "run"))
    for name in ("saved_model.pb", os.path.join("run", "train_options.json")):
        with open(os.path.join(copy, name), "w") as handle:
            handle.write("{}")
    before = _file_hashes(root)
    refused = [
        (model_dir, "is or lies inside the training run"),
        (best, "is or lies inside the training run"),
        (os.path.join(model_dir, "export", "1"), "is or lies inside"),
        (os.path.relpath(model_dir), "is or lies inside"),
        (root, "contains the training run"),
        (os.path.join(root, "data"), "holds no SavedModel"),
        (copy, "contains the training run " + os.path.join(copy, "run")),
    ]
    for export_dir, message in refused:
        with pytest.raises(UserError, match=re.escape(message)):
            export.export_saved_model(model_dir, export_dir, overwrite=True)
    # A run found by its files, with another --model_dir given.
    found = "lies inside the training run " + os.path.realpath(best)
    with pytest.raises(UserError, match=re.escape(found)):
        export.export_saved_model(
            os.path.join(root, "elsewhere"), os.path.join(best, "1"), overwrite=True
        )
    assert _file_hashes(root) == before
    assert not os.path.exists(os.path.join(model_dir, "export"))
    assert not [n for n in os.listdir(root) if n.startswith(".export-")]


def test_changed_vocabulary_is_refused(tmp_path):
    root = str(tmp_path)
    paths = write_toy_corpus(os.path.join(root, "data"), num_examples=30)
    model_dir = _train_dir(root, tiny_model_params(paths["vocab"]))
    with open(paths["vocab"], encoding="utf-8") as handle:
        tokens = handle.read().splitlines()
    with open(paths["vocab"], "w", encoding="utf-8") as handle:
        handle.write("\n".join(reversed(tokens)) + "\n")
    export_dir = os.path.join(root, "exports", "1")

    result = _run_export(f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    assert_user_error(
        result, f"vocabulary {paths['vocab']} changed", "--allow_vocab_change"
    )
    assert not os.path.exists(export_dir)
    # Deliberately, from Python.
    export.export_saved_model(model_dir, export_dir, allow_vocab_change=True)
    assert os.path.isfile(os.path.join(export_dir, "saved_model.pb"))
