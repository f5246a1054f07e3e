"""Ensembles: seq2seq.inference.ensemble, seq2seq.models.ensemble and
`bin/infer.py --model_dir a,b`."""

import json
import math
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_params
from test_infer_cli import read_lines, run_infer

from seq2seq.configurable import ModeKeys
from seq2seq.data.vocab import file_checksum
from seq2seq.errors import UserError
from seq2seq.inference import inference
from seq2seq.inference.ensemble import average_attention, average_log_probs
from seq2seq.models import AttentionSeq2Seq, Transformer
from seq2seq.models.ensemble import EnsembleModel, load_ensemble, pair_runs

SOURCES = [["0", "笑", "3"], ["4", "4", "1", "2", "0"], ["2"], ["3", "1"]]


def test_average_log_probs_is_the_log_of_the_mean_probability():
    first = np.log([[0.5, 0.25, 0.25]])
    second = np.log([[0.1, 0.1, 0.8]])
    combined = average_log_probs(
        [tf.constant(first + 3.0, tf.float32), tf.constant(second, tf.float32)]
    ).numpy()
    np.testing.assert_allclose(np.exp(combined), [[0.3, 0.175, 0.525]], rtol=1e-6)
    alone = average_log_probs([tf.constant([[1.0, 2.0]])]).numpy()
    np.testing.assert_allclose(alone, [[-math.log1p(math.e), -math.log1p(1 / math.e)]])
    attention = average_attention(
        [tf.constant([[1.0, 0.0]]), None, tf.constant([[0.0, 1.0]])]
    )
    np.testing.assert_allclose(attention.numpy(), [[0.5, 0.5]])
    assert average_attention([None, None]) is None


def test_pair_runs():
    assert pair_runs(["a", "b"], []) == [("a", None), ("b", None)]
    assert pair_runs(["a"], ["a/ckpt-1", "a/ckpt-2"]) == [
        ("a", "a/ckpt-1"),
        ("a", "a/ckpt-2"),
    ]
    assert pair_runs(["a", "b"], ["best"]) == [("a", "best"), ("b", "best")]
    assert pair_runs(["a", "b"], ["x", "y"]) == [("a", "x"), ("b", "y")]
    with pytest.raises(UserError, match="3 checkpoint"):
        pair_runs(["a", "b"], ["x", "y", "z"])
    with pytest.raises(UserError, match="1 checkpoint"):
        pair_runs(["a", "b"], ["a/ckpt-1"])


def _features(model):
    rows = [s + ["SEQUENCE_END"] for s in SOURCES]
    tokens = tf.ragged.constant(rows).to_tensor("")
    lengths = tf.constant([len(r) for r in rows], tf.int32)
    features = model.preprocess({"source_tokens": tokens, "source_len": lengths})
    return {k: features[k] for k in ("source_ids", "source_len")}


def _model_and_copy(model_class, params, tmp_path):
    """A model with unit-scale random weights (sharp distributions, no near
    ties) and a second instance restored from its checkpoint."""
    keras.utils.set_random_seed(5)
    model = model_class(params, ModeKeys.INFER)
    inference.create_variables(model)
    rng = np.random.default_rng(2)
    for variable in model.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    copy = model_class(params, ModeKeys.INFER)
    inference.create_variables(copy)
    inference.restore_model(copy, path)
    return model, copy


@pytest.mark.parametrize("model_class", [AttentionSeq2Seq, Transformer])
def test_ensemble_of_a_model_with_itself_is_the_model(model_class, toy_data, tmp_path):
    if model_class is Transformer:
        layers = {"num_layers": 1, "num_units": 8, "num_heads": 2, "ffn_units": 16}
        params = {
            "vocab_source": toy_data["vocab"],
            "vocab_target": toy_data["vocab"],
            "embedding.dim": 8,
            "encoder.params": dict(layers),
            "decoder.params": dict(layers, max_decode_length=9),
        }
    else:
        params = tiny_model_params(toy_data["vocab"], **{"source.reverse": True})
    model, copy = _model_and_copy(model_class, params, tmp_path)
    ensemble = EnsembleModel([model, copy])
    features = _features(model)
    # Greedy and beam search; the Transformer (whose decoder state is a
    # cache sized to the length limit) with beam search only, to save time.
    for beam_width in (3,) if model_class is Transformer else (1, 3):
        expected = model.infer(features, beam_width=beam_width)
        got = ensemble.infer(features, beam_width=beam_width)
        assert sorted(got) == sorted(expected)
        for key in ("predicted_ids", "predicted_len"):
            np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy())
        for key in expected:
            np.testing.assert_allclose(
                got[key].numpy(), expected[key].numpy(), atol=2e-5, err_msg=key
            )
    if model_class is AttentionSeq2Seq:
        assert "attention_scores" in expected


def test_ensemble_scores_are_the_log_of_the_mean_token_probability(toy_data, tmp_path):
    params = tiny_model_params(toy_data["vocab"])
    first, _ = _model_and_copy(AttentionSeq2Seq, params, tmp_path)
    keras.utils.set_random_seed(9)
    second = AttentionSeq2Seq(dict(params, **{"embedding.dim": 8}), ModeKeys.INFER)
    inference.create_variables(second)
    targets = [list(reversed(s)) for s in SOURCES]
    rows = [["SEQUENCE_START"] + t + ["SEQUENCE_END"] for t in targets]
    features = first.preprocess(
        {
            "source_tokens": tf.ragged.constant(
                [s + ["SEQUENCE_END"] for s in SOURCES]
            ).to_tensor(""),
            "source_len": tf.constant([len(s) + 1 for s in SOURCES], tf.int32),
            "target_tokens": tf.ragged.constant(rows).to_tensor(""),
            "target_len": tf.constant([len(r) for r in rows], tf.int32),
        }
    )
    scores = [m.score(features)["token_log_probs"].numpy() for m in (first, second)]
    combined = EnsembleModel([first, second]).score(features)
    expected = np.log((np.exp(scores[0]) + np.exp(scores[1])) / 2)
    mask = np.arange(expected.shape[1])[None, :] < (
        features["target_len"].numpy()[:, None] - 1
    )
    expected = np.where(mask, expected, 0.0)
    np.testing.assert_allclose(combined["token_log_probs"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(
        combined["sequence_log_prob"].numpy(), expected.sum(axis=1), atol=1e-5
    )


def _second_run(run, directory):
    """A run directory holding only `run`'s ckpt-10: its latest checkpoint
    is another model of the same vocabulary."""
    os.makedirs(directory)
    for name in os.listdir(run):
        if name.startswith("ckpt-10.") or name == "train_options.json":
            shutil.copy(os.path.join(run, name), directory)
    return str(directory)


def test_ensemble_of_two_runs_through_bin_infer(toy_run_with_checkpoints, tmp_path):
    run = toy_run_with_checkpoints["model_dir"]
    other = _second_run(run, tmp_path / "other")
    dev = toy_run_with_checkpoints["dev"]
    attention = tmp_path / "attention"
    tasks = (
        "- class: DecodeText\n"
        "- class: DumpAttention\n"
        f"  params: {{output_dir: {json.dumps(str(attention))}, dump_plots: false}}"
    )
    result = run_infer(
        "--model_dir",
        f"{run},{other}",
        "--model_params",
        "inference.beam_search.beam_width: 3",
        input_files=[dev["sources"]],
        tasks=tasks,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    sources = read_lines(dev["sources"])
    assert len(lines) == len(sources)
    assert "ckpt-30" in result.stderr and "ckpt-10" in result.stderr
    scores = np.load(attention / "attention_scores.npz")
    assert len(scores.files) == len(lines)
    for name, source in zip(scores.files, sources):
        matrix = scores[name]
        # Over the source and SEQUENCE_END; each row a mean of distributions.
        assert matrix.shape[1] == len(source.split()) + 1
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)


def test_runs_with_different_vocabularies_are_refused(
    toy_run_with_checkpoints, tmp_path
):
    run = toy_run_with_checkpoints["model_dir"]
    other = _second_run(run, tmp_path / "other")
    vocab = tmp_path / "vocab.txt"
    with open(toy_run_with_checkpoints["dev"]["vocab"], encoding="utf-8") as handle:
        vocab.write_text("".join(reversed(handle.readlines())), encoding="utf-8")
    options_path = os.path.join(other, "train_options.json")
    with open(options_path, encoding="utf-8") as handle:
        options = json.load(handle)
    options["model_params"]["vocab_target"] = str(vocab)
    options["vocab_checksums"][str(vocab)] = file_checksum(str(vocab))
    with open(options_path, "w", encoding="utf-8") as handle:
        json.dump(options, handle)
    with pytest.raises(UserError) as caught:
        load_ensemble([run, other])
    message = str(caught.value)
    assert run in message and other in message and "target vocabularies" in message
    assert "\n" not in message
    # Either order is refused; a run with itself is an ensemble.
    with pytest.raises(UserError, match="target vocabularies"):
        load_ensemble([other, run])
    model, checkpoints = load_ensemble([run, run], ["latest"])
    assert [os.path.basename(c) for c in checkpoints] == ["ckpt-30", "ckpt-30"]
    assert len(model.members) == 2
